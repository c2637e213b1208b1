//! Webhooks: a service subscribes to change kinds and receives each change once, in seq order, as
//! a signed POST. A subscription is a ledger entry; its progress is one seq (the last change it
//! acknowledged with a 2xx), kept beside the ledger. Every instance runs a dispatcher; one holds a
//! subscription at a time (a lease), so each change goes out once, retried with back-off while
//! the receiver fails. A change acknowledged but not yet marked (the instance died in between) is
//! sent again: receivers deduplicate by `seq`.

use std::time::Duration;

use diesel::prelude::*;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Change, ChangeKind};
use crate::clock::{SharedClock, Timestamp};
use crate::config::NotifySettings;
use crate::db::schema::{webhook_cursors, webhook_deliveries, webhook_secrets, webhooks};
use crate::db::{AnyConnection, Pool, ProjectedTable, Rows, json_rows};
use crate::error::AppError;
use crate::ledger::{Appended, LedgerEvent};
use crate::notify::lease;
use crate::vocab::Seq;

pub const WEBHOOK_CREATED: &str = "webhook.created";
pub const WEBHOOK_DELETED: &str = "webhook.deleted";
pub const WEBHOOK_KINDS: &[&str] = &[WEBHOOK_CREATED, WEBHOOK_DELETED];

/// Changes sent per subscription per round at most.
const BATCH: usize = 100;
/// How long a receiver may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries listed per subscription.
pub const LISTED: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A subscription: changes recorded after this entry are delivered to `url`.
    Created {
        id: String,
        url: String,
        kinds: Vec<String>,
        /// SHA-256 (hex) of the signing secret; the secret is not in the ledger.
        secret_sha256: String,
        created_by: String,
    },
    Deleted {
        id: String,
    },
}

impl LedgerEvent for WebhookEvent {
    fn kind(&self) -> &'static str {
        match self {
            WebhookEvent::Created { .. } => WEBHOOK_CREATED,
            WebhookEvent::Deleted { .. } => WEBHOOK_DELETED,
        }
    }

    fn entity(&self) -> String {
        match self {
            WebhookEvent::Created { id, .. } | WebhookEvent::Deleted { id } => {
                format!("webhook:{id}")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = webhooks, treat_none_as_null = true)]
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    pub kinds: String,
    pub secret_sha256: String,
    pub seq: Seq,
    pub created_by: String,
    pub at: i64,
    pub deleted_seq: Option<Seq>,
}

impl WebhookRow {
    pub fn kinds(&self) -> Vec<ChangeKind> {
        serde_json::from_str::<Vec<String>>(&self.kinds)
            .unwrap_or_default()
            .iter()
            .filter_map(|k| ChangeKind::parse(k))
            .collect()
    }
}

/// How a subscription's deliveries go: how far they got, and (from its lease) its failures.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The last change the receiver acknowledged.
    pub delivered_seq: Option<Seq>,
    pub failures: u32,
    /// When the next try is due, while failing.
    pub next_try: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// The lease key of a subscription.
fn key(id: &str) -> String {
    format!("webhook:{id}")
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = webhook_deliveries, treat_none_as_null = true)]
pub struct DeliveryRow {
    pub webhook: String,
    pub seq: Seq,
    pub kind: String,
    pub tries: i32,
    /// `delivered`, or `failing` (to be tried again).
    pub state: String,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    /// When it was last tried (microseconds since the epoch).
    pub at: i64,
}

/// The table the projection writes, as `replay --check` compares it.
pub const TABLES: &[ProjectedTable] = &[ProjectedTable {
    name: "webhooks",
    key: &["id"],
    rows: Rows::All(|c| json_rows(all(c)?)),
}];

/// Applies one webhook event recorded as `a`.
pub fn apply(c: &mut AnyConnection, event: &WebhookEvent, a: &Appended) -> QueryResult<()> {
    match event {
        WebhookEvent::Created {
            id,
            url,
            kinds,
            secret_sha256,
            created_by,
        } => diesel::insert_into(webhooks::table)
            .values(&WebhookRow {
                id: id.clone(),
                url: url.clone(),
                kinds: serde_json::to_string(kinds).unwrap_or_else(|_| "[]".into()),
                secret_sha256: secret_sha256.clone(),
                seq: a.seq,
                created_by: created_by.clone(),
                at: a.at.micros(),
                deleted_seq: None,
            })
            .execute(c)
            .map(drop),
        WebhookEvent::Deleted { id } => diesel::update(
            webhooks::table
                .filter(webhooks::id.eq(id))
                .filter(webhooks::deleted_seq.is_null()),
        )
        .set(webhooks::deleted_seq.eq(Some(a.seq)))
        .execute(c)
        .map(drop),
    }
}

pub fn all(c: &mut AnyConnection) -> QueryResult<Vec<WebhookRow>> {
    webhooks::table
        .order(webhooks::id.asc())
        .select(WebhookRow::as_select())
        .load(c)
}

pub fn one(c: &mut AnyConnection, id: &str) -> QueryResult<Option<WebhookRow>> {
    webhooks::table
        .filter(webhooks::id.eq(id))
        .select(WebhookRow::as_select())
        .first(c)
        .optional()
}

fn active(c: &mut AnyConnection) -> QueryResult<Vec<WebhookRow>> {
    webhooks::table
        .filter(webhooks::deleted_seq.is_null())
        .order(webhooks::id.asc())
        .select(WebhookRow::as_select())
        .load(c)
}

/// Keeps a subscription's secret (inside the append that records it).
pub fn put_secret(c: &mut AnyConnection, id: &str, secret: &str) -> QueryResult<()> {
    diesel::insert_into(webhook_secrets::table)
        .values((
            webhook_secrets::id.eq(id),
            webhook_secrets::secret.eq(secret),
        ))
        .execute(c)
        .map(drop)
}

/// Forgets a subscription's secret (it was deleted: nothing more is signed with it).
pub fn drop_secret(c: &mut AnyConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(webhook_secrets::table.filter(webhook_secrets::id.eq(id))).execute(c)
}

fn secret(c: &mut AnyConnection, id: &str) -> QueryResult<Option<String>> {
    webhook_secrets::table
        .filter(webhook_secrets::id.eq(id))
        .select(webhook_secrets::secret)
        .first(c)
        .optional()
}

/// How a subscription's deliveries go.
pub fn progress(c: &mut AnyConnection, id: &str) -> QueryResult<Progress> {
    let delivered_seq = webhook_cursors::table
        .filter(webhook_cursors::id.eq(id))
        .select(webhook_cursors::delivered_seq)
        .first::<Seq>(c)
        .optional()?;
    let l = lease::of(c, &[key(id)])?.into_iter().next();
    Ok(Progress {
        delivered_seq,
        failures: l.as_ref().map(|l| l.failures.max(0) as u32).unwrap_or(0),
        next_try: l
            .as_ref()
            .filter(|l| l.failures > 0)
            .map(|l| Timestamp(l.next_at)),
        last_error: l.and_then(|l| l.last_error),
    })
}

pub fn deliveries(c: &mut AnyConnection, id: &str, limit: i64) -> QueryResult<Vec<DeliveryRow>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::webhook.eq(id))
        .order(webhook_deliveries::seq.desc())
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(c)
}

/// Moves a subscription's progress to `seq` (never back).
fn advance(c: &mut AnyConnection, id: &str, seq: Seq) -> QueryResult<usize> {
    let n = crate::insert_or_ignore!(
        c,
        webhook_cursors::table,
        (
            webhook_cursors::id.eq(id),
            webhook_cursors::delivered_seq.eq(seq)
        )
    )?;
    if n == 1 {
        return Ok(n);
    }
    diesel::update(
        webhook_cursors::table
            .filter(webhook_cursors::id.eq(id))
            .filter(webhook_cursors::delivered_seq.lt(seq)),
    )
    .set(webhook_cursors::delivered_seq.eq(seq))
    .execute(c)
}

/// How long delivered changes stay listed.
pub const KEEP_DELIVERIES: Duration = Duration::from_secs(30 * 86_400);

/// Forgets the deliveries that went through before `before` (failing ones stay).
fn forget_deliveries(c: &mut AnyConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(
        webhook_deliveries::table
            .filter(webhook_deliveries::state.eq("delivered"))
            .filter(webhook_deliveries::at.lt(before)),
    )
    .execute(c)
}

/// Records a delivery's outcome (a retry of the same change updates its row).
fn noted(c: &mut AnyConnection, row: DeliveryRow) -> QueryResult<()> {
    let key = webhook_deliveries::table
        .filter(webhook_deliveries::webhook.eq(&row.webhook))
        .filter(webhook_deliveries::seq.eq(row.seq));
    let tries: Option<i32> = key.select(webhook_deliveries::tries).first(c).optional()?;
    match tries {
        None => diesel::insert_into(webhook_deliveries::table)
            .values(&row)
            .execute(c)
            .map(drop),
        Some(t) => diesel::update(key)
            .set((
                webhook_deliveries::tries.eq(t + 1),
                webhook_deliveries::state.eq(&row.state),
                webhook_deliveries::http_status.eq(row.http_status),
                webhook_deliveries::error.eq(&row.error),
                webhook_deliveries::at.eq(row.at),
            ))
            .execute(c)
            .map(drop),
    }
}

/// The `Accord-Signature` header of a body sent at `t` (seconds since the epoch):
/// `t=<t>,v1=<hex HMAC-SHA256 over "<t>." and the body, keyed with the secret>`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a receiver gets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery<'a> {
    pub webhook: &'a str,
    #[serde(flatten)]
    pub change: &'a Change,
}

/// Every instance's webhook dispatcher.
#[derive(Clone)]
pub struct Dispatcher {
    pool: Pool,
    clock: SharedClock,
    settings: NotifySettings,
    owner: String,
    /// Whether a subscription's creator may still read what it follows.
    access: std::sync::Arc<crate::auth::access::AccessState>,
}

impl Dispatcher {
    pub fn new(
        pool: Pool,
        clock: SharedClock,
        settings: NotifySettings,
        owner: String,
        access: std::sync::Arc<crate::auth::access::AccessState>,
    ) -> Self {
        Dispatcher {
            pool,
            clock,
            settings,
            owner,
            access,
        }
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        crate::db::blocking(&self.pool, f).await
    }

    /// Rounds until the process ends.
    pub async fn run(self) {
        let client = awc::Client::builder().timeout(TIMEOUT).finish();
        loop {
            if let Err(e) = self.round(&client).await {
                tracing::warn!(error = %e, "webhooks could not be served");
            }
            actix_web::rt::time::sleep(self.settings.poll).await;
        }
    }

    /// Delivers what each subscription this instance can take has not yet acknowledged.
    /// Subscriptions are served side by side, so a slow receiver holds up only its own.
    pub async fn round(&self, client: &awc::Client) -> Result<usize, AppError> {
        let hooks = self.db(|c| Ok(active(c)?)).await?;
        let served =
            futures_util::future::join_all(hooks.into_iter().map(|h| self.serve(client, h))).await;
        let mut sent = 0;
        for s in served {
            sent += s?;
        }
        let before = self.clock.now().micros() - KEEP_DELIVERIES.as_micros() as i64;
        self.db(move |c| Ok(forget_deliveries(c, before).map(drop)?))
            .await?;
        Ok(sent)
    }

    async fn serve(&self, client: &awc::Client, hook: WebhookRow) -> Result<usize, AppError> {
        let started = std::time::Instant::now();
        let now = self.clock.now().micros();
        let until = now + self.settings.lease.as_micros() as i64;
        let (owner, id) = (self.owner.clone(), hook.id.clone());
        // A subscription reaches only what its creator may still read.
        let lost = hook
            .kinds()
            .into_iter()
            .find(|k| !self.access.still_allows(&hook.created_by, k.needs()));
        let taken = self
            .db(move |c| {
                if !lease::claim(c, &key(&id), &owner, now, until)? {
                    return Ok(None);
                }
                let progress = progress(c, &id)?;
                let secret = secret(c, &id)?;
                Ok(Some((progress, secret)))
            })
            .await?;
        let Some((progress, secret)) = taken else {
            return Ok(0);
        };
        if let Some(kind) = lost {
            let why = format!(
                "paused: {} may no longer read {} (it needs {}); nothing is sent until they may again",
                hook.created_by,
                kind.as_str(),
                kind.needs()
            );
            let next = now + self.settings.retry_max.as_micros() as i64;
            let (owner, id) = (self.owner.clone(), hook.id.clone());
            self.db(move |c| Ok(lease::failed(c, &key(&id), &owner, next, &why).map(drop)?))
                .await?;
            return Ok(0);
        }
        let after = progress.delivered_seq.map_or(hook.seq, |d| d.max(hook.seq));
        let failures = progress.failures;
        let (kinds, id) = (hook.kinds(), hook.id.clone());
        let mut page = self
            .db(move |c| {
                let page = super::page(c, &kinds, Some(after), BATCH)?;
                // Read after the page: a deletion recorded before any change in it shows here.
                let ended = one(c, &id)?.and_then(|h| h.deleted_seq);
                Ok(match ended {
                    Some(end) => super::Page {
                        changes: page.changes.into_iter().filter(|ch| ch.seq < end).collect(),
                        next: page.next.min(end),
                        more: false,
                    },
                    None => page,
                })
            })
            .await?;
        page.changes.truncate(BATCH);
        let mut sent = 0;
        let mut failed = None;
        let mut stopped_at = None;
        for change in &page.changes {
            // Stay well inside the lease: what is left goes in the next round.
            if started.elapsed() > self.settings.lease / 2 {
                break;
            }
            stopped_at = Some(change.seq);
            let outcome = match &secret {
                None => Err((None, "its signing secret is missing".to_string())),
                Some(s) => self.deliver(client, &hook.id, &hook.url, s, change).await,
            };
            let (state, status, error) = match &outcome {
                Ok(status) => ("delivered", Some(*status), None),
                Err((status, e)) => ("failing", *status, Some(e.clone())),
            };
            let (owner, id, seq) = (self.owner.clone(), hook.id.clone(), change.seq);
            let row = DeliveryRow {
                webhook: hook.id.clone(),
                seq,
                kind: change.kind.to_string(),
                tries: 1,
                state: state.into(),
                http_status: status.map(i32::from),
                error: error.clone(),
                at: self.clock.now().micros(),
            };
            let ok = outcome.is_ok();
            self.db(move |c| {
                noted(c, row)?;
                if ok {
                    advance(c, &id, seq)?;
                    lease::succeeded(c, &key(&id), &owner)?;
                }
                Ok(())
            })
            .await?;
            if let Some(e) = error {
                failed = Some(e);
                break;
            }
            sent += 1;
        }
        let (owner, id) = (self.owner.clone(), hook.id.clone());
        match failed {
            Some(e) => {
                let wait =
                    lease::backoff(self.settings.retry_base, self.settings.retry_max, failures);
                let next = self.clock.now().micros() + wait.as_micros() as i64;
                self.db(move |c| Ok(lease::failed(c, &key(&id), &owner, next, &e).map(drop)?))
                    .await?;
            }
            None => {
                // Entries looked at and not for this subscription count as passed (all of the
                // page when every change in it went out).
                let next = if sent == page.changes.len() {
                    page.next
                } else {
                    stopped_at.unwrap_or(after)
                };
                self.db(move |c| {
                    if next.get() > after.get() {
                        advance(c, &id, next)?;
                    }
                    Ok(lease::release(c, &key(&id), &owner).map(drop)?)
                })
                .await?;
            }
        }
        Ok(sent)
    }

    /// One POST; the status of a 2xx answer, or the status (if any) and why it failed.
    async fn deliver(
        &self,
        client: &awc::Client,
        id: &str,
        url: &str,
        secret: &str,
        change: &Change,
    ) -> Result<u16, (Option<u16>, String)> {
        let body = serde_json::to_vec(&Delivery {
            webhook: id,
            change,
        })
        .map_err(|e| (None, e.to_string()))?;
        let t = self.clock.now().micros().div_euclid(1_000_000);
        let sent = client
            .post(url)
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("Accord-Webhook", id))
            .insert_header(("Accord-Seq", change.seq.get().to_string()))
            .insert_header(("Accord-Signature", signature(secret, t, &body)))
            .send_body(body)
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
            Ok(r) => Err((
                Some(r.status().as_u16()),
                format!("{url} answered {}", r.status()),
            )),
            Err(e) => Err((None, format!("{url}: {e}"))),
        }
    }
}
