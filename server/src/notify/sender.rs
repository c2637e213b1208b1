//! Drains the outbox: every instance looks for mail that is due, takes each item with a lease (so
//! of several instances one sends it), sends it, and records the sending as a ledger entry. A
//! failed try is retried with back-off; nothing is lost while the mail server is down.
//!
//! Delivery is at least once: a mail the server accepted whose entry could not be written (the
//! instance died in between) is sent again once its lease runs out.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::events::NotifyEvent;
use super::lease;
use super::mailer::Mailer;
use super::projection;
use super::store::{self, OutboxRow};
use crate::clock::SharedClock;
use crate::config::NotifySettings;
use crate::db::{AnyConnection, Pool};
use crate::error::AppError;
use crate::ledger::event::first;
use crate::ledger::{Actor, AppendRequest, EventDraft, Ledger};

/// Who receives mail sent to the holders of some roles: their addresses.
pub type Recipients =
    Arc<dyn Fn(&mut AnyConnection, &[String]) -> Result<Vec<String>, AppError> + Send + Sync>;

/// Items looked at per round.
const ROUND: i64 = 200;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    pub failed: usize,
}

#[derive(Clone)]
pub struct Sender {
    ledger: Ledger,
    pool: Pool,
    clock: SharedClock,
    mailer: Option<Mailer>,
    settings: NotifySettings,
    /// Put before each message's link.
    public_url: String,
    /// This instance, as the holder of a lease.
    owner: String,
    recipients: Recipients,
}

impl Sender {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ledger: Ledger,
        pool: Pool,
        clock: SharedClock,
        mailer: Option<Mailer>,
        settings: NotifySettings,
        public_url: String,
        owner: String,
        recipients: Recipients,
    ) -> Sender {
        Sender {
            ledger,
            pool,
            clock,
            mailer,
            settings,
            public_url,
            owner,
            recipients,
        }
    }

    /// Rounds until the process ends: moments always, mail only with a mail server (without
    /// one it stays in the outbox).
    pub async fn run(self) {
        loop {
            if let Err(e) = self.moments().await {
                tracing::warn!(error = %e, "due moments could not be recorded");
            }
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "the outbox could not be drained");
            }
            actix_web::rt::time::sleep(self.settings.poll).await;
        }
    }

    /// Records each moment that has come as a `notify.due` entry (one instance each).
    pub async fn moments(&self) -> Result<usize, AppError> {
        let now = self.clock.now().micros();
        let due = self
            .db(move |c| Ok(store::due(c, "event", now, ROUND)?))
            .await?;
        let mut recorded = 0;
        for item in due {
            for m in self.take(item.grp, now).await? {
                let event = NotifyEvent::Due {
                    item: m.id.clone(),
                    kind: m.subject.clone(),
                    data: serde_json::from_str(&m.body).unwrap_or(serde_json::Value::Null),
                };
                match self.record(event).await {
                    Ok(()) => recorded += 1,
                    Err(AppError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
                let (owner, g) = (self.owner.clone(), m.grp.clone());
                self.db(move |c| Ok(lease::release(c, &g, &owner).map(drop)?))
                    .await?;
            }
        }
        Ok(recorded)
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        crate::db::blocking(&self.pool, f).await
    }

    /// Takes a group for this instance and reads its due items again (the list it was found in
    /// may be stale: another instance records what it sent before it lets the group go). Nothing
    /// when another instance holds it, its next try is not due, or nothing in it is due now.
    async fn take(&self, group: String, now: i64) -> Result<Vec<OutboxRow>, AppError> {
        let until = now + self.settings.lease.as_micros() as i64;
        let owner = self.owner.clone();
        self.db(move |c| {
            if !lease::claim(c, &group, &owner, now, until)? {
                return Ok(Vec::new());
            }
            let items = store::due_in_group(c, &group, now)?;
            if items.is_empty() {
                lease::release(c, &group, &owner)?;
            }
            Ok(items)
        })
        .await
    }

    /// Sends what is due now: one mail per group of items due together.
    pub async fn round(&self) -> Result<Round, AppError> {
        let Some(mailer) = &self.mailer else {
            return Ok(Round::default());
        };
        let now = self.clock.now().micros();
        let due = self
            .db(move |c| Ok(store::due(c, "mail", now, ROUND)?))
            .await?;
        let groups: BTreeSet<String> = due.into_iter().map(|r| r.grp).collect();
        let mut round = Round::default();
        for group in groups {
            // The clock is read for each group: sends take time, and a lease dated from the start
            // of a long round could run out before the group is sent.
            let items = self.take(group.clone(), self.clock.now().micros()).await?;
            if items.is_empty() {
                continue;
            }
            match self.send(mailer, &items).await {
                Ok(()) => round.sent += 1,
                Err(error) => {
                    round.failed += 1;
                    tracing::warn!(%group, %error, "a mail could not be sent; it will be tried again");
                    self.failed(&group, &error).await?;
                }
            }
        }
        Ok(round)
    }

    /// Sends one group's mail (the text of its latest due item) and records it.
    async fn send(&self, mailer: &Mailer, items: &[OutboxRow]) -> Result<(), String> {
        let Some(item) = items.iter().max_by_key(|i| (i.due_at, i.id.clone())) else {
            return Ok(());
        };
        let roles: Vec<String> = serde_json::from_str(&item.recipients)
            .map_err(|e| format!("outbox item {} names no roles: {e}", item.id))?;
        let resolve = self.recipients.clone();
        let wanted = roles.clone();
        let to = self
            .db(move |c| resolve(c, &wanted))
            .await
            .map_err(|e| e.to_string())?;
        if to.is_empty() {
            return Err(format!(
                "no enabled user holds {}: grant one of these roles to someone who should receive it",
                roles.join(" or ")
            ));
        }
        let mut text = item.body.clone();
        if let Some(link) = &item.link {
            text.push_str(&format!("\n\n{}{link}\n", self.public_url));
        }
        let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
        let group = item.grp.clone();
        let tries = {
            let g = vec![group.clone()];
            self.db(move |c| Ok(lease::of(c, &g)?))
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .map(|a| a.failures.max(0) as u32)
                .max()
                .unwrap_or(0)
                + 1
        };
        let sent = mailer.send(&to, &item.subject, &text).await?;
        if !sent.refused.is_empty() {
            tracing::warn!(addresses = ?sent.refused, "addresses no mail can be sent to were left out");
        }
        let event = NotifyEvent::MailSent {
            covers: ids.clone(),
            to: sent.to,
            subject: item.subject.clone(),
            tries,
        };
        if let Err(e) = self.record(event).await {
            // The mail went out; only its entry is missing. The group stays held until its lease
            // runs out, then it is sent again (at least once).
            tracing::error!(error = %e, "a mail was sent but its sending could not be recorded");
            return Ok(());
        }
        let owner = self.owner.clone();
        let released = self
            .db(move |c| {
                lease::succeeded(c, &group, &owner)?;
                Ok(lease::release(c, &group, &owner).map(drop)?)
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "a sent group could not be let go; its lease will run out");
        }
        Ok(())
    }

    async fn record(&self, event: NotifyEvent) -> Result<(), AppError> {
        let e = event.clone();
        self.ledger
            .append_returning::<()>(AppendRequest::new(Actor::system(), vec![EventDraft::new(&event)?]).project(
                move |c, appended| {
                    let a = first(appended)?;
                    let pending = projection::apply(c, &e, a)?;
                    match (&e, pending) {
                        // A moment cancelled meanwhile (a renewal, a termination) did not come.
                        (NotifyEvent::Due { item, .. }, 0) => Err(AppError::conflict(
                            crate::error::ConflictCode::Changed,
                            format!("outbox item {item} is no longer pending"),
                        )),
                        // A mail that went out is recorded whatever happened meanwhile.
                        (NotifyEvent::MailSent { .. }, 0) => {
                            tracing::warn!(
                                seq = a.seq.get(),
                                "a mail was sent for outbox items no longer pending (cancelled meanwhile, or sent by another instance)"
                            );
                            Ok(())
                        }
                        _ => Ok(()),
                    }
                },
            ))
            .await
            .map(drop)
    }

    async fn failed(&self, group: &str, error: &str) -> Result<(), AppError> {
        let g = vec![group.to_string()];
        let failures = self
            .db(move |c| Ok(lease::of(c, &g)?))
            .await?
            .iter()
            .map(|a| a.failures.max(0) as u32)
            .max()
            .unwrap_or(0);
        let next = self.clock.now().micros()
            + lease::backoff(self.settings.retry_base, self.settings.retry_max, failures)
                .as_micros() as i64;
        let (owner, error, group) = (
            self.owner.clone(),
            crate::error::one_line(error),
            group.to_string(),
        );
        self.db(move |c| Ok(lease::failed(c, &group, &owner, next, &error).map(drop)?))
            .await
    }
}
