//! The coverage index: every vendor, DPA and sub-processor decision in memory, each with the time
//! it was recorded, so "was this use covered?" is answered for any moment without a query. Kept
//! current by following the ledger (as the consent index is); the set of contracts is small next
//! to consent, so an instance reads all of it at start.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::events::{DPA_KINDS, DpaEvent};
use super::model::{
    Clause, Coverage, DpaVersionDef, Reason, SubprocessorDecision, VendorDef, VendorRole,
    VendorStatus, VersionStatus,
};
use crate::clock::Timestamp;
use crate::error::AppError;
use crate::ledger::follow::Follower;
use crate::ledger::read::FollowedEntry;
use crate::vocab::{Country, Seq};

/// How deep a chain of sub-processors is followed to the processor whose DPA covers it.
pub const MAX_CHAIN: usize = 8;

/// A value and when it was recorded.
#[derive(Debug, Clone)]
struct Recorded<T> {
    at: i64,
    seq: Seq,
    value: T,
}

/// The latest of `items` recorded at or before `at` (they are in record order).
fn as_of<T>(items: &[Recorded<T>], at: i64) -> Option<&Recorded<T>> {
    items.iter().rev().find(|r| r.at <= at)
}

#[derive(Debug)]
struct Terms {
    def: DpaVersionDef,
    missing: Vec<Clause>,
}

#[derive(Debug)]
struct Dpa {
    at: i64,
    versions: Vec<Recorded<Arc<Terms>>>,
    /// (recorded at, effective at).
    terminated: Option<(i64, i64)>,
}

#[derive(Debug, Clone)]
struct Decided {
    parent: String,
    decision: SubprocessorDecision,
    decided_on: i64,
}

#[derive(Debug, Default)]
struct State {
    vendors: HashMap<String, Vec<Recorded<Arc<VendorDef>>>>,
    dpas: HashMap<String, Dpa>,
    /// Vendor id → its DPAs' ids, in the order they were created.
    by_vendor: HashMap<String, Vec<String>>,
    /// Sub-processor id → the decisions about it, in record order.
    decisions: HashMap<String, Vec<Recorded<Decided>>>,
}

/// What a coverage check asks.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub vendor: &'a str,
    pub purpose: &'a str,
    pub data_categories: &'a [String],
    /// Where the data goes; the vendor's own country when absent.
    pub country: Option<Country>,
    pub at: Timestamp,
}

/// Why a check could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    UnknownVendor,
}

/// One DPA judged for a query: its reasons (none when it covers) and the version judged.
struct Judged<'a> {
    dpa: &'a str,
    version: Option<&'a Recorded<Arc<Terms>>>,
    reasons: Vec<Reason>,
}

#[derive(Debug)]
pub struct DpaIndex {
    state: RwLock<State>,
    /// Every ledger entry below this seq has been applied.
    applied: watch::Sender<u64>,
    kick: Notify,
}

impl Default for DpaIndex {
    fn default() -> Self {
        DpaIndex::new()
    }
}

fn poisoned<T>(_: T) -> AppError {
    AppError::internal(anyhow::anyhow!("the coverage index lock is poisoned"))
}

/// A `YYYY-MM-DD` date as the instant it begins (UTC).
pub fn day_start(date: &str) -> Option<i64> {
    crate::vocab::instant("date", &format!("{date}T00:00:00Z"))
        .ok()
        .map(Timestamp::micros)
}

impl DpaIndex {
    pub fn new() -> Self {
        DpaIndex {
            state: RwLock::new(State::default()),
            applied: watch::channel(0).0,
            kick: Notify::new(),
        }
    }

    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Asks the follower to look at the ledger now.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// After a write: waits (at most a few seconds) until this index shows entry `seq`, so the
    /// writer reads its own write here.
    pub async fn wait_for_write(&self, seq: u64) {
        if self.applied() > seq {
            return;
        }
        self.kick();
        let mut rx = self.applied.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            rx.wait_for(|applied| *applied > seq),
        )
        .await;
    }

    /// Whether a vendor is known (now).
    pub fn knows_vendor(&self, id: &str) -> bool {
        self.state
            .read()
            .map(|s| s.vendors.contains_key(id))
            .unwrap_or(false)
    }

    /// Answers one check.
    /// Where a vendor's cover stands at `at`, whatever the purpose and data: the answer of a
    /// check that leaves out the purpose and the categories (the pages show this).
    pub fn standing(
        &self,
        vendor: &str,
        at: Timestamp,
    ) -> Result<Result<Coverage, CheckError>, AppError> {
        let state = self.state.read().map_err(poisoned)?;
        let q = Query {
            vendor,
            purpose: "",
            data_categories: &[],
            country: None,
            at,
        };
        Ok(state.check_with(&q, false))
    }

    /// Answers checks in order, under one read of the index.
    pub fn check_all<'q>(
        &self,
        queries: impl Iterator<Item = Query<'q>>,
    ) -> Result<Vec<Result<Coverage, CheckError>>, AppError> {
        let state = self.state.read().map_err(poisoned)?;
        Ok(queries.map(|q| state.check(&q)).collect())
    }

    fn apply_entry(&self, e: &FollowedEntry) -> Result<(), AppError> {
        let Some(payload) = &e.payload else {
            return Ok(());
        };
        let event: DpaEvent = serde_json::from_str(payload).map_err(|err| {
            AppError::internal(anyhow::anyhow!("entry {} is unreadable: {err}", e.seq))
        })?;
        self.apply_event(e.at, e.seq, event)
    }

    /// Applies one event recorded at `at` (µs) as entry `seq` (the follower's step, and a way to
    /// build an index without a ledger for measuring it).
    pub fn apply_event(&self, at: i64, seq: Seq, event: DpaEvent) -> Result<(), AppError> {
        let mut s = self.state.write().map_err(poisoned)?;
        match event {
            DpaEvent::VendorDefined(def) => {
                s.vendors.entry(def.id.clone()).or_default().push(Recorded {
                    at,
                    seq,
                    value: Arc::new(def),
                });
            }
            DpaEvent::SubprocessorDecided {
                vendor,
                parent,
                decision,
                decided_on,
                ..
            } => {
                let decided_on = day_start(&decided_on).unwrap_or(at);
                s.decisions.entry(vendor).or_default().push(Recorded {
                    at,
                    seq,
                    value: Decided {
                        parent,
                        decision,
                        decided_on,
                    },
                });
            }
            DpaEvent::DpaCreated { id, vendor } => {
                s.by_vendor.entry(vendor).or_default().push(id.clone());
                s.dpas.insert(
                    id,
                    Dpa {
                        at,
                        versions: Vec::new(),
                        terminated: None,
                    },
                );
            }
            DpaEvent::DpaVersionAdded(def) => {
                if let Some(d) = s.dpas.get_mut(&def.dpa) {
                    let missing = def.missing_clauses().collect();
                    d.versions.push(Recorded {
                        at,
                        seq,
                        value: Arc::new(Terms { def, missing }),
                    });
                }
            }
            DpaEvent::DpaTerminated {
                id, effective_at, ..
            } => {
                if let Some(d) = s.dpas.get_mut(&id) {
                    d.terminated = Some((at, effective_at.micros()));
                }
            }
            DpaEvent::DocumentAttached { .. } => {}
        }
        Ok(())
    }
}

impl State {
    fn vendor_at(&self, id: &str, at: i64) -> Option<&VendorDef> {
        self.vendors
            .get(id)
            .and_then(|v| as_of(v, at))
            .map(|r| &*r.value)
    }

    fn check(&self, q: &Query<'_>) -> Result<Coverage, CheckError> {
        self.check_with(q, true)
    }

    /// A check; `terms`: whether the purpose and the categories are held against the terms.
    fn check_with(&self, q: &Query<'_>, terms: bool) -> Result<Coverage, CheckError> {
        let at = q.at.micros();
        if !self.vendors.contains_key(q.vendor) {
            return Err(CheckError::UnknownVendor);
        }
        let Some(vendor) = self.vendor_at(q.vendor, at) else {
            // Not yet registered then: nothing could cover it.
            return Ok(not_covered(None, None, vec![Reason::NoDpa]));
        };
        let country = q.country.unwrap_or(vendor.country);
        let mut extra = Vec::new();
        // Up the chain of sub-processors to the processor whose DPA covers them, each link
        // authorised by the controller as of `at`.
        let mut holder = vendor;
        for _ in 0..MAX_CHAIN {
            if holder.status == VendorStatus::Offboarded {
                extra.push(Reason::VendorOffboarded);
            }
            if holder.role != VendorRole::SubProcessor {
                break;
            }
            let parent = holder.parent.as_deref().unwrap_or_default();
            if !self.authorised(holder, at) {
                extra.push(Reason::SubprocessorNotAuthorised);
            }
            match self.vendor_at(parent, at) {
                Some(p) => holder = p,
                None => {
                    extra.push(Reason::NoDpa);
                    break;
                }
            }
        }
        if holder.role == VendorRole::SubProcessor {
            // The chain never reached a processor: no DPA covers it.
            extra.push(Reason::NoDpa);
            extra.sort();
            extra.dedup();
            return Ok(not_covered(None, None, extra));
        }
        extra.sort();
        extra.dedup();
        let best = self
            .by_vendor
            .get(&holder.id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.dpas.get_key_value(id))
            .filter(|(_, d)| d.at <= at)
            .map(|(id, d)| judge(id, d, q, country, at, terms))
            .min_by_key(|j| (j.reasons.len(), std::cmp::Reverse(j.version.map(|v| v.seq))));
        let Some(best) = best else {
            let mut reasons = vec![Reason::NoDpa];
            reasons.extend(extra);
            reasons.sort();
            reasons.dedup();
            return Ok(not_covered(None, None, reasons));
        };
        let mut reasons = best.reasons;
        reasons.extend(extra);
        reasons.sort();
        reasons.dedup();
        Ok(Coverage {
            covered: reasons.is_empty(),
            dpa: Some(best.dpa.to_string()),
            version: best.version.map(|v| v.value.def.version),
            reasons,
            seq: best.version.map(|v| v.seq),
        })
    }

    /// Whether the controller's latest decision about a sub-processor under its parent, as it
    /// stood at `at`, authorises it. Only decisions recorded since it last came to work for that
    /// parent count: an authorisation does not come back with a move away and back.
    fn authorised(&self, sub: &VendorDef, at: i64) -> bool {
        let parent = sub.parent.as_deref().unwrap_or_default();
        let versions = self
            .vendors
            .get(&sub.id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let known = versions.iter().take_while(|v| v.at <= at).count();
        let since = versions[..known]
            .iter()
            .rev()
            .take_while(|v| v.value.parent.as_deref() == Some(parent))
            .last()
            .map(|v| v.at)
            .unwrap_or(i64::MAX);
        self.decisions
            .get(&sub.id)
            .into_iter()
            .flatten()
            .rev()
            .find(|d| {
                d.at <= at && d.at >= since && d.value.decided_on <= at && d.value.parent == parent
            })
            .is_some_and(|d| d.value.decision == SubprocessorDecision::Authorised)
    }
}

fn not_covered(dpa: Option<String>, version: Option<i32>, reasons: Vec<Reason>) -> Coverage {
    Coverage {
        covered: false,
        dpa,
        version,
        reasons,
        seq: None,
    }
}

/// Judges one DPA for a query as it stood at `at`: the version in force then (the latest active
/// one recorded by then and effective by then), its standing, and its terms.
fn judge<'a>(
    id: &'a str,
    d: &'a Dpa,
    q: &Query<'_>,
    country: Country,
    at: i64,
    check_terms: bool,
) -> Judged<'a> {
    let known = d
        .versions
        .iter()
        .filter(|v| v.at <= at && v.value.def.status == VersionStatus::Active);
    let in_force = known
        .clone()
        .rev()
        .find(|v| v.value.def.effective_from.micros() <= at);
    let judged = |version, reasons| Judged {
        dpa: id,
        version,
        reasons,
    };
    // A termination in effect ends the DPA, even one that had not yet taken effect.
    if let Some((recorded, effective)) = d.terminated
        && recorded <= at
        && effective <= at
    {
        return judged(in_force.or(known.clone().next()), vec![Reason::Terminated]);
    }
    let Some(v) = in_force else {
        return match known.clone().next() {
            Some(first) => judged(Some(first), vec![Reason::NotYetEffective]),
            None => judged(None, vec![Reason::NoDpa]),
        };
    };
    let terms = &v.value.def;
    if terms.expires_at.is_some_and(|e| e.micros() <= at) {
        return judged(Some(v), vec![Reason::Expired]);
    }
    let mut reasons = Vec::new();
    if check_terms && !terms.purposes.iter().any(|p| p == q.purpose) {
        reasons.push(Reason::PurposeNotCovered);
    }
    if q.data_categories
        .iter()
        .any(|c| !terms.data_categories.contains(c))
    {
        reasons.push(Reason::CategoryNotCovered);
    }
    if !country.in_eea() && !terms.transfers.iter().any(|t| t.country == country) {
        reasons.push(Reason::TransferNotCovered);
    }
    reasons.extend(v.value.missing.iter().map(|c| Reason::ClauseMissing(*c)));
    judged(Some(v), reasons)
}

/// The index follows the vendor and DPA entries.
impl Follower for DpaIndex {
    const NAME: &'static str = "coverage index";

    fn kinds(&self) -> &'static [&'static str] {
        DPA_KINDS
    }

    fn applied(&self) -> u64 {
        DpaIndex::applied(self)
    }

    fn apply(&self, page: &[FollowedEntry]) -> Result<(), AppError> {
        page.iter().try_for_each(|e| self.apply_entry(e))
    }

    fn advanced(&self, seq: u64) {
        self.applied.send_replace(seq);
    }

    async fn wait(&self, interval: Duration) {
        let _ = tokio::time::timeout(interval, self.kick.notified()).await;
    }
}

/// The index against a reference model: random histories of vendors, DPA versions (amendments
/// with moving effective dates and expiries, drafts), terminations and sub-processor decisions,
/// each answered for random uses at random moments by the index and by a plain re-reading of
/// every event recorded by then.
#[cfg(test)]
mod model_tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::dpa::model::{Mechanism, Transfer};

    const DAY: i64 = 86_400_000_000;
    const PURPOSES: [&str; 3] = ["p.a", "p.b", "p.c"];
    const CATEGORIES: [&str; 3] = ["c.a", "c.b", "c.c"];
    const COUNTRIES: [&str; 3] = ["DE", "US", "JP"];

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len() as u64) as usize]
        }
        fn some(&mut self, from: &[&str]) -> Vec<String> {
            from.iter()
                .filter(|_| self.below(3) > 0)
                .map(|s| s.to_string())
                .collect()
        }
    }

    fn country(c: &str) -> Country {
        Country::parse("c", c).unwrap()
    }

    /// A random history: (recorded at, event), in record order.
    fn history(rng: &mut Rng) -> Vec<(i64, DpaEvent)> {
        let mut out = Vec::new();
        let mut at = 1000 * DAY;
        let mut versions: BTreeMap<String, i32> = BTreeMap::new();
        let mut ended = std::collections::BTreeSet::new();
        for step in 0..60 {
            at += rng.below(20) as i64 * DAY + 1;
            let v = format!("v{}", rng.below(4));
            let event = match rng.below(6) {
                0 | 1 => {
                    let sub = v == "v3";
                    DpaEvent::VendorDefined(VendorDef {
                        id: v.clone(),
                        version: 1,
                        name: v.clone(),
                        legal_name: None,
                        country: country(rng.pick(&COUNTRIES)),
                        role: if sub {
                            VendorRole::SubProcessor
                        } else {
                            VendorRole::Processor
                        },
                        contact: None,
                        status: if rng.below(6) == 0 {
                            VendorStatus::Offboarded
                        } else {
                            VendorStatus::Active
                        },
                        parent: sub.then(|| "v0".to_string()),
                        data_categories: vec![],
                    })
                }
                2 => {
                    let d = format!("d{}", rng.below(3));
                    if versions.contains_key(&d) {
                        continue;
                    }
                    versions.insert(d.clone(), 0);
                    DpaEvent::DpaCreated {
                        id: d,
                        vendor: format!("v{}", rng.below(3)),
                    }
                }
                3 => {
                    let d = format!("d{}", rng.below(3));
                    let Some(n) = versions.get_mut(&d) else {
                        continue;
                    };
                    *n += 1;
                    let from = at + (rng.below(60) as i64 - 30) * DAY;
                    let clauses = Clause::ALL
                        .iter()
                        .map(|c| (*c, rng.below(30) > 0))
                        .collect();
                    DpaEvent::DpaVersionAdded(DpaVersionDef {
                        dpa: d,
                        version: *n,
                        reference: format!("r{step}"),
                        signed_on: "2026-01-01".into(),
                        effective_from: Timestamp(from),
                        expires_at: (rng.below(2) == 0)
                            .then(|| Timestamp(from + (1 + rng.below(200) as i64) * DAY)),
                        purposes: rng.some(&PURPOSES),
                        data_categories: rng.some(&CATEGORIES),
                        clauses,
                        transfers: rng
                            .some(&["US", "JP"])
                            .iter()
                            .map(|c| Transfer {
                                country: country(c),
                                mechanism: Mechanism::Bcr,
                                scc_module: None,
                                tia_reference: None,
                            })
                            .collect(),
                        document_sha256: None,
                        status: if rng.below(5) == 0 {
                            VersionStatus::Draft
                        } else {
                            VersionStatus::Active
                        },
                        reminder_days: vec![],
                    })
                }
                4 => {
                    let d = format!("d{}", rng.below(3));
                    if !versions.contains_key(&d) || rng.below(3) > 0 || !ended.insert(d.clone()) {
                        continue;
                    }
                    DpaEvent::DpaTerminated {
                        id: d,
                        effective_at: Timestamp(at + (rng.below(40) as i64 - 20) * DAY),
                        reason: None,
                    }
                }
                _ => DpaEvent::SubprocessorDecided {
                    vendor: "v3".into(),
                    parent: "v0".into(),
                    decision: if rng.below(3) == 0 {
                        SubprocessorDecision::Objected
                    } else {
                        SubprocessorDecision::Authorised
                    },
                    decided_on: "1971-01-01".into(),
                    note: None,
                },
            };
            out.push((at, event));
        }
        out
    }

    /// The reference: every rule read off the events recorded by `at`, with no index. Where DPAs
    /// tie (as many reasons each), any of their answers is right.
    fn reference(events: &[(i64, DpaEvent)], q: &Query<'_>) -> Option<Vec<Vec<Reason>>> {
        let at = q.at.micros();
        let known: Vec<&DpaEvent> = events
            .iter()
            .filter(|(t, _)| *t <= at)
            .map(|(_, e)| e)
            .collect();
        let ever = events
            .iter()
            .any(|(_, e)| matches!(e, DpaEvent::VendorDefined(v) if v.id == q.vendor));
        if !ever {
            return None;
        }
        let vendor_at = |id: &str| {
            known.iter().rev().find_map(|e| match e {
                DpaEvent::VendorDefined(v) if v.id == id => Some(v.clone()),
                _ => None,
            })
        };
        let Some(vendor) = vendor_at(q.vendor) else {
            return Some(vec![vec![Reason::NoDpa]]);
        };
        let mut extra = Vec::new();
        let mut holder = vendor.clone();
        if holder.status == VendorStatus::Offboarded {
            extra.push(Reason::VendorOffboarded);
        }
        if holder.role == VendorRole::SubProcessor {
            // Decisions count from when it came to work for its parent (it never moves here).
            let since = events
                .iter()
                .find(|(_, e)| matches!(e, DpaEvent::VendorDefined(v) if v.id == holder.id))
                .map(|(t, _)| *t)
                .unwrap_or(i64::MAX);
            let known_since: Vec<&DpaEvent> = events
                .iter()
                .filter(|(t, _)| *t <= at && *t >= since)
                .map(|(_, e)| e)
                .collect();
            let authorised = known_since.iter().rev().find_map(|e| match e {
                DpaEvent::SubprocessorDecided {
                    vendor, decision, ..
                } if *vendor == holder.id => Some(*decision == SubprocessorDecision::Authorised),
                _ => None,
            });
            if authorised != Some(true) {
                extra.push(Reason::SubprocessorNotAuthorised);
            }
            match vendor_at(holder.parent.as_deref().unwrap_or_default()) {
                Some(p) => {
                    holder = p;
                    if holder.status == VendorStatus::Offboarded {
                        extra.push(Reason::VendorOffboarded);
                    }
                }
                None => extra.push(Reason::NoDpa),
            }
        }
        let country = q.country.unwrap_or(vendor.country);
        let dpas: Vec<&String> = known
            .iter()
            .filter_map(|e| match e {
                DpaEvent::DpaCreated { id, vendor } if *vendor == holder.id => Some(id),
                _ => None,
            })
            .collect();
        let judged: Vec<Vec<Reason>> = dpas
            .iter()
            .map(|d| {
                let versions: Vec<&DpaVersionDef> = known
                    .iter()
                    .filter_map(|e| match e {
                        DpaEvent::DpaVersionAdded(v)
                            if &v.dpa == *d && v.status == VersionStatus::Active =>
                        {
                            Some(v)
                        }
                        _ => None,
                    })
                    .collect();
                let terminated = known.iter().any(|e| {
                    matches!(e, DpaEvent::DpaTerminated { id, effective_at, .. }
                        if id == *d && effective_at.micros() <= at)
                });
                if terminated {
                    return vec![Reason::Terminated];
                }
                let Some(v) = versions
                    .iter()
                    .rev()
                    .find(|v| v.effective_from.micros() <= at)
                else {
                    return vec![if versions.is_empty() {
                        Reason::NoDpa
                    } else {
                        Reason::NotYetEffective
                    }];
                };
                if v.expires_at.is_some_and(|e| e.micros() <= at) {
                    return vec![Reason::Expired];
                }
                let mut r = Vec::new();
                if !v.purposes.iter().any(|p| p == q.purpose) {
                    r.push(Reason::PurposeNotCovered);
                }
                if q.data_categories
                    .iter()
                    .any(|c| !v.data_categories.contains(c))
                {
                    r.push(Reason::CategoryNotCovered);
                }
                if !country.in_eea() && !v.transfers.iter().any(|t| t.country == country) {
                    r.push(Reason::TransferNotCovered);
                }
                r.extend(v.missing_clauses().map(Reason::ClauseMissing));
                r
            })
            .collect();
        let least = judged.iter().map(Vec::len).min();
        let mut answers: Vec<Vec<Reason>> = match least {
            Some(n) => judged.into_iter().filter(|r| r.len() == n).collect(),
            None => vec![vec![Reason::NoDpa]],
        };
        for reasons in &mut answers {
            reasons.extend(extra.iter().copied());
            reasons.sort();
            reasons.dedup();
        }
        Some(answers)
    }

    #[test]
    fn the_index_answers_as_the_events_say() {
        let mut checked = 0;
        let (mut covered, mut seen) = (0, std::collections::HashSet::new());
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let events = history(&mut rng);
            let index = DpaIndex::new();
            for (i, (at, e)) in events.iter().enumerate() {
                index
                    .apply_event(*at, Seq::new(i as u64), e.clone())
                    .unwrap();
            }
            let end = events.last().map(|(t, _)| *t).unwrap_or(0) + 100 * DAY;
            for _ in 0..200 {
                let vendor = format!("v{}", rng.below(4));
                let categories: Vec<String> = match rng.below(3) {
                    0 => vec![],
                    _ => vec![rng.pick(&CATEGORIES).to_string()],
                };
                let country = (rng.below(2) == 0).then(|| country(rng.pick(&COUNTRIES)));
                let q = Query {
                    vendor: &vendor,
                    purpose: rng.pick(&PURPOSES),
                    data_categories: &categories,
                    country,
                    at: Timestamp(
                        900 * DAY + rng.below(((end - 900 * DAY) / DAY) as u64) as i64 * DAY,
                    ),
                };
                let got = index.check_all(std::iter::once(q)).unwrap().pop().unwrap();
                match (reference(&events, &q), got) {
                    (None, Err(CheckError::UnknownVendor)) => {}
                    (Some(want), Ok(c)) => {
                        assert!(
                            want.contains(&c.reasons),
                            "seed {seed}, {q:?}: want one of {want:?}, got {c:?}"
                        );
                        assert_eq!(c.covered, c.reasons.is_empty());
                        checked += 1;
                        covered += usize::from(c.covered);
                        seen.extend(c.reasons.iter().map(std::mem::discriminant));
                    }
                    (want, got) => panic!("seed {seed}, {q:?}: want {want:?}, got {got:?}"),
                }
            }
        }
        assert!(checked > 4000, "{checked}");
        // The histories reach every kind of answer.
        assert!(covered > 100, "{covered} covered");
        assert_eq!(seen.len(), 10, "reason kinds seen: {}", seen.len());
    }
}
