//! The ledger events of the outbox: that a message went out. (What is scheduled is recorded by the
//! event that scheduled it: a DPA version's reminders by the version.)

use serde::{Deserialize, Serialize};

use crate::ledger::LedgerEvent;

pub const MAIL_SENT: &str = "notify.mail_sent";
pub const DUE: &str = "notify.due";

/// Every kind this module records.
pub const NOTIFY_KINDS: &[&str] = &[MAIL_SENT, DUE];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A mail was accepted by the mail server. `covers` lists the outbox items it answers: the
    /// items of one group that were due together (a reminder 30 days ahead and one 60 days ahead,
    /// both due, go out as one mail).
    MailSent {
        covers: Vec<String>,
        to: Vec<String>,
        subject: String,
        /// Tries it took (1 when the first went through).
        tries: u32,
    },
    /// A moment an earlier entry scheduled has come (a DPA version expiring, then expired): what
    /// it means is `kind` and `data`, as the scheduling domain wrote them.
    Due {
        item: String,
        kind: String,
        data: serde_json::Value,
    },
}

impl LedgerEvent for NotifyEvent {
    fn kind(&self) -> &'static str {
        match self {
            NotifyEvent::MailSent { .. } => MAIL_SENT,
            NotifyEvent::Due { .. } => DUE,
        }
    }

    fn entity(&self) -> String {
        match self {
            NotifyEvent::MailSent { covers, .. } => {
                format!(
                    "outbox:{}",
                    covers.first().map(String::as_str).unwrap_or("")
                )
            }
            NotifyEvent::Due { item, .. } => format!("outbox:{item}"),
        }
    }
}
