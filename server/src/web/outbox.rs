//! `/ui/outbox`: what mail waits, went or was cancelled, in words (with or without a mail server).

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{UiError, html};
use crate::clock::Timestamp;
use crate::notify::api::OutboxItem;
use crate::state::AppState;

/// What became of an outbox item, in words, and how to mark it.
pub(super) fn fate(i: &OutboxItem, now: Timestamp, smtp: bool) -> (String, &'static str) {
    let day = |t: Timestamp| t.to_rfc3339()[..10].to_string();
    match i.state.as_str() {
        "sent" => {
            let n = i.sent_to.as_ref().map(Vec::len).unwrap_or(0);
            (
                format!(
                    "sent {} to {n} {}",
                    i.done_at.map(day).unwrap_or_default(),
                    if n == 1 { "person" } else { "people" }
                ),
                "ok",
            )
        }
        "cancelled" => (
            "not sent: a later version or the termination made it moot".into(),
            "",
        ),
        _ if i.due_at > now => (format!("due {}", day(i.due_at)), ""),
        _ if !smtp => ("due, waiting: no mail server is configured".into(), "warn"),
        _ => match (&i.last_error, i.next_try_at) {
            (Some(e), Some(next)) => (
                format!(
                    "due, not sent yet ({} failed {}: {e}); next try {}",
                    i.failures,
                    if i.failures == 1 { "try" } else { "tries" },
                    next.to_rfc3339()
                ),
                "bad",
            ),
            _ => ("due, being sent".into(), "warn"),
        },
    }
}

struct Row {
    due: String,
    to: String,
    subject: String,
    fate: String,
    class: &'static str,
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    smtp: bool,
    waiting: usize,
    rows: Vec<Row>,
}

pub(super) async fn outbox(state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let now = state.clock.now();
    let smtp = state.settings.smtp.is_some();
    let items = state
        .db(|c| {
            let rows = crate::notify::store::listed(c, None, crate::notify::api::MAX_LIMIT as i64)?;
            crate::notify::api::with_attempts(c, rows)
        })
        .await?;
    let mail: Vec<&OutboxItem> = items.iter().filter(|i| i.channel == "mail").collect();
    let waiting = mail
        .iter()
        .filter(|i| i.state == "pending" && i.due_at <= now)
        .count();
    let rows = mail
        .iter()
        .map(|i| {
            let (fate, class) = fate(i, now, smtp);
            Row {
                due: i.due_at.to_rfc3339()[..10].to_string(),
                to: i.roles.join(", "),
                subject: i.subject.clone(),
                fate,
                class,
            }
        })
        .collect();
    html(&OutboxPage {
        smtp,
        waiting,
        rows,
    })
}
