//! Changes other services follow: a few kinds of ledger entry, named for what they mean to a
//! service (a consent withdrawn, a subject erased, a DPA expiring), each with its ledger seq so the
//! follower can deduplicate and ask for its proof. Served as a feed (`GET /v1/changes`, pages
//! after a seq with no gaps) and pushed to webhooks, which follow the same feed.
//!
//! The ledger is the outbox here: a change is in the feed exactly when its entry is recorded, so
//! nothing is written twice on the write path, and a subscriber's progress is one seq.

pub mod api;
pub mod webhooks;

use serde::Serialize;
use serde_json::{Value, json};

use crate::authz::Perm;
use crate::consent::events::CONSENT_RECORDED;
use crate::db::AnyConnection;
use crate::error::AppError;
use crate::ledger::read::FollowedEntry;
use crate::text_enum;
use crate::vocab::Seq;

text_enum! {
    /// What a service may follow.
    pub enum ChangeKind: "change kind" {
        /// A consent decision recorded (granted or denied).
        ConsentRecorded => "consent.recorded",
        /// A consent withdrawn.
        ConsentWithdrawn => "consent.withdrawn",
        /// A data subject erased: the entries listed no longer hold their records.
        ConsentErased => "consent.erased",
        /// A DPA version nears its expiry (at its first reminder).
        DpaExpiring => "dpa.expiring",
        /// A DPA version expired without a successor.
        DpaExpired => "dpa.expired",
        /// A DPA was terminated.
        DpaTerminated => "dpa.terminated",
    }
}

impl ChangeKind {
    /// What a caller must hold to follow this kind.
    pub fn needs(self) -> Perm {
        match self {
            ChangeKind::ConsentRecorded
            | ChangeKind::ConsentWithdrawn
            | ChangeKind::ConsentErased => crate::consent::api::CONSENT_READ,
            ChangeKind::DpaExpiring | ChangeKind::DpaExpired | ChangeKind::DpaTerminated => {
                crate::dpa::api::DPA_READ
            }
        }
    }

    /// The ledger kinds its entries have.
    fn ledger_kind(self) -> &'static str {
        match self {
            ChangeKind::ConsentRecorded | ChangeKind::ConsentWithdrawn => CONSENT_RECORDED,
            ChangeKind::ConsentErased => accord_audit::payload::ERASURE_KIND,
            ChangeKind::DpaExpiring | ChangeKind::DpaExpired => crate::notify::events::DUE,
            ChangeKind::DpaTerminated => crate::dpa::events::DPA_TERMINATED,
        }
    }
}

/// Parses a comma-separated list of kinds (`consent.withdrawn,dpa.expiring`), each once.
pub fn parse_kinds(field: &str, list: &[String]) -> Result<Vec<ChangeKind>, AppError> {
    let mut p = crate::vocab::Problems::default();
    let mut kinds = Vec::new();
    if list.is_empty() {
        p.add(
            field,
            format!(
                "name at least one of {}",
                ChangeKind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    for (i, k) in list.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if let Some(kind) = p.take(ChangeKind::parse_field(&f, k)) {
            if kinds.contains(&kind) {
                p.add(f, format!("{k:?} is listed twice"));
            } else {
                kinds.push(kind);
            }
        }
    }
    p.into_result().map(|()| kinds)
}

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Change {
    /// Its ledger entry: deduplicate by it, and ask for its proof.
    pub seq: Seq,
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// When it was recorded.
    #[serde(serialize_with = "crate::clock::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub at: crate::clock::Timestamp,
    /// What changed: a consent record's fields; the seqs an erasure emptied; a DPA's id, version
    /// and dates. (A record erased since is left out: its seq is in a later `consent.erased`.)
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A page of changes and where the next one starts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub changes: Vec<Change>,
    /// Ask for `after=next` for the following page: every entry up to it was looked at, so
    /// following from it misses nothing.
    pub next: Seq,
    /// Whether the ledger held more entries than this page looked at.
    pub more: bool,
}

/// What an entry means to a follower of `kinds`, if anything.
fn change_of(e: &FollowedEntry, kinds: &[ChangeKind]) -> Option<Change> {
    let payload: Option<Value> = e
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok());
    let at = crate::clock::Timestamp(e.at);
    let (kind, data) = match e.kind.as_str() {
        CONSENT_RECORDED => {
            // An erased record is no longer reported: the `consent.erased` change lists its seq.
            let p = payload.as_ref()?;
            let record = Some(p.get("record").unwrap_or(p));
            let withdrawn = record
                .and_then(|r| r.get("decision"))
                .is_some_and(|d| d == "withdrawn");
            let kind = if withdrawn {
                ChangeKind::ConsentWithdrawn
            } else {
                ChangeKind::ConsentRecorded
            };
            let data = record.map(|r| {
                let mut out = serde_json::Map::new();
                for f in [
                    "subject",
                    "purpose",
                    "channel",
                    "decision",
                    "legal_basis",
                    "method",
                    "collected_at",
                    "expires_at",
                    "jurisdiction",
                    "source",
                ] {
                    let Some(v) = r.get(f).filter(|v| !v.is_null()) else {
                        continue;
                    };
                    // Instants are kept as microseconds; followers get RFC 3339.
                    let v = match (f, v.as_i64()) {
                        ("collected_at" | "expires_at", Some(us)) => {
                            json!(crate::clock::Timestamp(us).to_rfc3339())
                        }
                        _ => v.clone(),
                    };
                    out.insert(f.into(), v);
                }
                Value::Object(out)
            });
            (kind, data.unwrap_or(Value::Null))
        }
        k if k == accord_audit::payload::ERASURE_KIND => (
            ChangeKind::ConsentErased,
            json!({"erased_seqs": payload.as_ref().and_then(|p| p.get("redacted_seqs")).cloned().unwrap_or(json!([]))}),
        ),
        k if k == crate::notify::events::DUE => {
            let p = payload?;
            let kind = ChangeKind::parse(p.get("kind")?.as_str()?)?;
            (kind, p.get("data").cloned().unwrap_or(Value::Null))
        }
        k if k == crate::dpa::events::DPA_TERMINATED => {
            let mut data = payload.unwrap_or(Value::Null);
            if let Some(o) = data.as_object_mut() {
                o.remove("type");
                if let Some(id) = o.remove("id") {
                    o.insert("dpa".into(), id);
                }
            }
            (ChangeKind::DpaTerminated, data)
        }
        _ => return None,
    };
    kinds.contains(&kind).then_some(Change {
        seq: e.seq,
        kind: kind.as_str(),
        at,
        data,
    })
}

/// Entries read per query (a page may hold fewer changes than this: entries of the same ledger
/// kind but another change kind are skipped).
pub const SCAN: i64 = 1000;
/// Entries looked at per page at most: past it, the page ends (`more`) where it got to.
pub const MAX_SCANNED: usize = 10 * SCAN as usize;

/// The changes of `kinds` after `after` (all of them when `after` is `None`), at most `limit`.
pub fn page(
    c: &mut AnyConnection,
    kinds: &[ChangeKind],
    after: Option<Seq>,
    limit: usize,
) -> Result<Page, AppError> {
    let size = crate::ledger::read::size(c)?;
    let from = after.map(|s| s.get() + 1).unwrap_or(0);
    let mut ledger_kinds: Vec<&str> = kinds.iter().map(|k| k.ledger_kind()).collect();
    ledger_kinds.sort_unstable();
    ledger_kinds.dedup();
    let mut changes = Vec::new();
    let mut next = after.map(|s| s.get());
    let mut at = from;
    let mut more = false;
    let mut scanned = 0usize;
    while at < size {
        let entries = crate::ledger::read::follow(c, &ledger_kinds, at, size, SCAN)?;
        let full = entries.len() as i64 == SCAN;
        for e in &entries {
            if changes.len() == limit || scanned == MAX_SCANNED {
                more = true;
                break;
            }
            scanned += 1;
            if let Some(ch) = change_of(e, kinds) {
                changes.push(ch);
            }
            next = Some(e.seq.get());
        }
        if more || !full {
            break;
        }
        at = next.map(|n| n + 1).unwrap_or(size);
    }
    if !more {
        // Every entry before the ledger's size was looked at: later pages start there.
        next = Some(size.saturating_sub(1)).filter(|_| size > 0).max(next);
    }
    Ok(Page {
        changes,
        next: Seq::new(next.unwrap_or(0)),
        more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, kind: &str, payload: Value) -> FollowedEntry {
        FollowedEntry {
            seq: Seq::new(seq),
            at: 1_795_000_000_000_000,
            kind: kind.into(),
            payload: Some(payload.to_string()),
        }
    }

    #[test]
    fn entries_mean_what_followers_asked_for() {
        let granted = entry(
            3,
            CONSENT_RECORDED,
            json!({"type": "consent_recorded", "subject": "s", "purpose": "p", "channel": "email",
                   "decision": "granted", "fingerprint": "x", "evidence": {"ip": "198.51.100.1"},
                   "collected_at": 1_795_000_000_000_000_i64}),
        );
        let withdrawn = entry(
            4,
            CONSENT_RECORDED,
            json!({"type": "consent_recorded", "subject": "s", "purpose": "p", "channel": "email",
                   "decision": "withdrawn"}),
        );
        let all = ChangeKind::ALL;
        let g = change_of(&granted, all).unwrap();
        assert_eq!(g.kind, "consent.recorded");
        assert_eq!(g.data["collected_at"], "2026-11-18T11:06:40.000000Z");
        assert_eq!(g.data["subject"], "s");
        assert!(g.data.get("evidence").is_none(), "evidence stays in Accord");
        assert_eq!(
            change_of(&withdrawn, all).unwrap().kind,
            "consent.withdrawn"
        );
        assert!(change_of(&granted, &[ChangeKind::ConsentWithdrawn]).is_none());
        let due = entry(
            9,
            crate::notify::events::DUE,
            json!({"type": "due", "item": "dpa:d:v1:expiring", "kind": "dpa.expiring",
                   "data": {"dpa": "d", "version": 1}}),
        );
        let d = change_of(&due, all).unwrap();
        assert_eq!(
            (d.kind, d.data["dpa"].clone()),
            ("dpa.expiring", json!("d"))
        );
        assert!(change_of(&due, &[ChangeKind::DpaExpired]).is_none());
        let mut erased = entry(5, CONSENT_RECORDED, json!({}));
        erased.payload = None;
        assert!(
            change_of(&erased, all).is_none(),
            "an erased record is left out"
        );
    }

    #[test]
    fn kinds_are_named_and_listed_once() {
        let k = parse_kinds("kinds", &["consent.withdrawn".into(), "dpa.expired".into()]).unwrap();
        assert_eq!(
            k,
            vec![ChangeKind::ConsentWithdrawn, ChangeKind::DpaExpired]
        );
        let e = parse_kinds(
            "kinds",
            &[
                "consent.withdrawn".into(),
                "consent.withdrawn".into(),
                "nope".into(),
            ],
        )
        .unwrap_err();
        let fields: Vec<&str> = e
            .field_errors()
            .unwrap()
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(fields, vec!["kinds[1]", "kinds[2]"]);
        assert!(parse_kinds("kinds", &[]).is_err());
    }
}
