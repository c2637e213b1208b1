//! The outbox as a fold over the ledger. Domain projections schedule messages with [`schedule`]
//! and cancel them with [`cancel`] inside their own apply; [`apply`] records what the sender
//! reported. Replay rebuilds the same rows.

use diesel::QueryResult;

use super::events::NotifyEvent;
use super::store::{self, OutboxRow};
use crate::clock::Timestamp;
use crate::db::{AnyConnection, ProjectedTable, Rows, json_rows};
use crate::ledger::Appended;

/// The table this projection writes, as `replay --check` compares it.
pub const TABLES: &[ProjectedTable] = &[ProjectedTable {
    name: "outbox",
    key: &["id"],
    rows: Rows::All(|c| json_rows(store::all(c)?)),
}];

/// A mail to schedule.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Unique and stable: the same event always schedules the same ids.
    pub id: String,
    /// What it is about; [`cancel`] with this ends it while pending.
    pub about: String,
    /// Items of one group due together go out as one mail (the latest due one's text).
    pub group: String,
    pub due_at: Timestamp,
    /// It goes to the users holding any of these roles when it is sent.
    pub roles: Vec<String>,
    pub subject: String,
    pub body: String,
    /// A path on this server (the sender puts the public URL before it).
    pub link: Option<String>,
}

/// Schedules a mail, recorded by `a`.
pub fn schedule(c: &mut AnyConnection, mail: Mail, a: &Appended) -> QueryResult<()> {
    store::insert(
        c,
        &OutboxRow {
            id: mail.id,
            channel: "mail".into(),
            about: mail.about,
            grp: mail.group,
            due_at: mail.due_at.micros(),
            recipients: serde_json::to_string(&mail.roles).unwrap_or_else(|_| "[]".into()),
            subject: mail.subject,
            body: mail.body,
            link: mail.link,
            seq: a.seq,
            state: store::PENDING.into(),
            done_seq: None,
            done_at: None,
            sent_to: None,
        },
    )
}

/// A moment to record in the ledger when it comes, as a `notify.due` entry carrying `kind` and
/// `data` (so services following the ledger learn of it then, with a seq).
#[derive(Debug, Clone)]
pub struct Moment {
    pub id: String,
    pub about: String,
    pub due_at: Timestamp,
    pub kind: String,
    pub data: serde_json::Value,
}

/// Schedules a moment, recorded by `a`.
pub fn schedule_moment(c: &mut AnyConnection, m: Moment, a: &Appended) -> QueryResult<()> {
    store::insert(
        c,
        &OutboxRow {
            grp: m.id.clone(),
            id: m.id,
            channel: "event".into(),
            about: m.about,
            due_at: m.due_at.micros(),
            recipients: "[]".into(),
            subject: m.kind,
            body: m.data.to_string(),
            link: None,
            seq: a.seq,
            state: store::PENDING.into(),
            done_seq: None,
            done_at: None,
            sent_to: None,
        },
    )
}

/// Cancels what is still pending about `about` (the change `a` made it moot).
pub fn cancel(c: &mut AnyConnection, about: &str, a: &Appended) -> QueryResult<usize> {
    store::cancel_about(c, about, a.seq, a.at.micros())
}

/// Applies one outbox event recorded as `a`; returns how many items it found pending.
pub fn apply(c: &mut AnyConnection, event: &NotifyEvent, a: &Appended) -> QueryResult<usize> {
    match event {
        NotifyEvent::MailSent { covers, to, .. } => store::mark_sent(
            c,
            covers,
            &serde_json::to_string(to).unwrap_or_else(|_| "[]".into()),
            a.seq,
            a.at.micros(),
        ),
        NotifyEvent::Due { item, .. } => {
            store::mark_sent(c, std::slice::from_ref(item), "[]", a.seq, a.at.micros())
        }
    }
}
