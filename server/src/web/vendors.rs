//! The vendor pages: every vendor with its DPA standing and an expiry timeline (an inline SVG: one
//! bar per DPA version from effective to expiry, today marked), and one vendor with its
//! sub-processors, DPA versions, clauses and transfers.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{UiError, html};
use crate::clock::Timestamp;
use crate::dpa::model::{Clause, DpaVersionDef, VendorDef, VendorRole, VersionStatus};
use crate::dpa::service::DpaView;
use crate::error::AppError;
use crate::state::AppState;
use crate::vocab::Key;

const DAY: i64 = 86_400_000_000;
/// A version expiring within this many days is flagged.
pub const EXPIRING_DAYS: i64 = 60;

/// Where a vendor stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Covered,
    Expiring,
    /// In force, but lacking some Art. 28(3) clause: the coverage check refuses it.
    ClausesMissing,
    /// A sub-processor the controller has not authorised.
    NotAuthorised,
    Expired,
    NotYetEffective,
    Terminated,
    None,
}

impl Standing {
    pub fn label(self) -> &'static str {
        match self {
            Standing::Covered => "covered",
            Standing::Expiring => "expiring within 60 days",
            Standing::ClausesMissing => "in force, Art. 28(3) clauses missing",
            Standing::NotAuthorised => "sub-processor not authorised",
            Standing::Expired => "expired",
            Standing::NotYetEffective => "not yet effective",
            Standing::Terminated => "terminated",
            Standing::None => "no DPA",
        }
    }

    /// How good it is (higher is better), to pick a vendor's best DPA.
    fn rank(self) -> u8 {
        match self {
            Standing::Covered => 6,
            Standing::Expiring => 5,
            Standing::ClausesMissing => 4,
            Standing::NotAuthorised => 1,
            Standing::NotYetEffective => 3,
            Standing::Expired => 2,
            Standing::Terminated => 1,
            Standing::None => 0,
        }
    }
}

/// A DPA's standing at `now`, and the version in force (if any).
pub fn standing(d: &DpaView, now: Timestamp) -> (Standing, Option<&DpaVersionDef>) {
    if d.terminated_at.is_some_and(|t| t <= now) {
        return (Standing::Terminated, None);
    }
    let active = d
        .versions
        .iter()
        .map(|v| &v.value)
        .filter(|v| v.status == VersionStatus::Active);
    match active.clone().rev().find(|v| v.effective_from <= now) {
        None if active.clone().next().is_some() => (Standing::NotYetEffective, None),
        None => (Standing::None, None),
        Some(v) => match v.expires_at {
            Some(e) if e <= now => (Standing::Expired, Some(v)),
            _ if v.missing_clauses().next().is_some() => (Standing::ClausesMissing, Some(v)),
            Some(e) if e.micros() - now.micros() <= EXPIRING_DAYS * DAY => {
                (Standing::Expiring, Some(v))
            }
            _ => (Standing::Covered, Some(v)),
        },
    }
}

/// One row of the vendor table.
pub struct Row {
    pub id: String,
    pub name: String,
    pub role: String,
    pub country: String,
    pub standing: &'static str,
    pub class: &'static str,
    pub dpa: String,
    pub expires: String,
}

/// One bar of the timeline.
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    /// Beside the bar.
    pub short: String,
    /// Its tooltip: the version and its dates.
    pub label: String,
    pub class: &'static str,
}

/// The timeline as the SVG draws it: a label column, then time from `from` to `to`.
pub struct Timeline {
    pub height: i64,
    pub today_x: i64,
    pub bars: Vec<Bar>,
    /// (x, year) of each 1 January in range.
    pub ticks: Vec<(i64, i32)>,
}

pub const LABEL_WIDTH: i64 = 220;
pub const PLOT_WIDTH: i64 = 640;
const ROW_HEIGHT: i64 = 24;

/// Lays out one bar per active DPA version, a year before today to two years after it.
pub fn timeline(dpas: &[(String, &DpaView)], now: Timestamp) -> Timeline {
    let from = now.micros() - 365 * DAY;
    let to = now.micros() + 730 * DAY;
    let x_of = |t: i64| LABEL_WIDTH + (t.clamp(from, to) - from) * PLOT_WIDTH / (to - from);
    let mut bars = Vec::new();
    for (vendor, d) in dpas {
        for v in d.versions.iter().map(|v| &v.value) {
            if v.status != VersionStatus::Active {
                continue;
            }
            let start = v.effective_from.micros();
            let mut end = v.expires_at.map(Timestamp::micros).unwrap_or(to);
            if let Some(t) = d.terminated_at {
                end = end.min(t.micros());
            }
            let class = match (
                end <= now.micros(),
                end - now.micros() <= EXPIRING_DAYS * DAY,
            ) {
                (true, _) => "expired",
                (false, true) => "expiring",
                _ => "covered",
            };
            let y = 30 + bars.len() as i64 * ROW_HEIGHT;
            let x = x_of(start);
            bars.push(Bar {
                x,
                y,
                width: (x_of(end) - x).max(2),
                short: format!("{vendor} · {} v{}", d.id, v.version),
                label: format!(
                    "{vendor} · {} v{}: {} to {}",
                    d.id,
                    v.version,
                    &v.effective_from.to_rfc3339()[..10],
                    v.expires_at
                        .map(|e| e.to_rfc3339()[..10].to_string())
                        .unwrap_or_else(|| "no expiry".into())
                ),
                class,
            });
        }
    }
    let first_year: i32 = Timestamp(from).to_rfc3339()[..4].parse().unwrap_or(2026);
    let ticks = (first_year + 1..=first_year + 4)
        .filter_map(|y| {
            let t = crate::dpa::index::day_start(&format!("{y}-01-01"))?;
            (t > from && t < to).then_some((x_of(t), y))
        })
        .collect();
    Timeline {
        height: 40 + bars.len() as i64 * ROW_HEIGHT,
        today_x: x_of(now.micros()),
        bars,
        ticks,
    }
}

#[derive(Template)]
#[template(path = "vendors.html")]
struct VendorsPage {
    rows: Vec<Row>,
    timeline: Timeline,
    plot_end: i64,
}

fn class_of(s: Standing) -> &'static str {
    match s {
        Standing::Covered => "ok",
        Standing::Expiring | Standing::NotYetEffective => "warn",
        _ => "bad",
    }
}

pub(super) async fn vendors(state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let svc = crate::dpa::api::service(&state);
    let now = state.clock.now();
    let vendors: Vec<VendorDef> = svc
        .vendors()
        .await?
        .iter()
        .map(|r| r.def())
        .collect::<Result<_, _>>()
        .map_err(AppError::from)?;
    let dpas = svc.dpas().await?;
    // The controller's latest decision about each sub-processor: (vendor, parent) → authorised.
    let decisions = state
        .db(|c| Ok(crate::dpa::store::all_decisions(c)?))
        .await?;
    let authorised = |v: &VendorDef| {
        decisions
            .iter()
            .rev()
            .find(|d| Some(&d.parent) == v.parent.as_ref() && d.vendor == v.id)
            .is_some_and(|d| d.decision == "authorised")
    };
    let mut by_vendor: HashMap<&str, Vec<&DpaView>> = HashMap::new();
    for d in &dpas {
        by_vendor.entry(d.vendor.as_str()).or_default().push(d);
    }
    let best = |id: &str| {
        by_vendor
            .get(id)
            .into_iter()
            .flatten()
            .map(|d| (standing(d, now), d))
            .max_by_key(|((s, _), _)| s.rank())
    };
    let rows = vendors
        .iter()
        .map(|v| {
            // A sub-processor stands on its processor's DPA.
            let holder = match (&v.role, &v.parent) {
                (VendorRole::SubProcessor, Some(p)) => p.as_str(),
                _ => v.id.as_str(),
            };
            let (standing, dpa, expires) = match best(holder) {
                Some(((s, version), d)) => (
                    s,
                    d.id.clone(),
                    version
                        .and_then(|v| v.expires_at)
                        .map(|e| e.to_rfc3339()[..10].to_string())
                        .unwrap_or_default(),
                ),
                None => (Standing::None, String::new(), String::new()),
            };
            let standing = if v.role == VendorRole::SubProcessor && !authorised(v) {
                Standing::NotAuthorised
            } else {
                standing
            };
            Row {
                id: v.id.clone(),
                name: v.name.clone(),
                role: v.role.as_str().replace('_', "-"),
                country: v.country.as_str().into(),
                standing: standing.label(),
                class: class_of(standing),
                dpa,
                expires,
            }
        })
        .collect();
    let drawn: Vec<(String, &DpaView)> = dpas.iter().map(|d| (d.vendor.clone(), d)).collect();
    html(&VendorsPage {
        rows,
        timeline: timeline(&drawn, now),
        plot_end: LABEL_WIDTH + PLOT_WIDTH,
    })
}

/// A DPA version as the vendor page shows it.
struct VersionRow {
    dpa: String,
    version: i32,
    reference: String,
    effective_from: String,
    expires_at: String,
    status: String,
    purposes: String,
    categories: String,
    /// (clause, present).
    clauses: Vec<(&'static str, bool)>,
    transfers: Vec<String>,
}

struct SubRow {
    id: String,
    name: String,
    decision: String,
}

#[derive(Template)]
#[template(path = "vendor.html")]
struct VendorPage {
    vendor: VendorDef,
    standing: &'static str,
    class: &'static str,
    subprocessors: Vec<SubRow>,
    versions: Vec<VersionRow>,
    terminated: Vec<String>,
}

pub(super) async fn vendor(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    Key::check("id", &id)?;
    let svc = crate::dpa::api::service(&state);
    let now = state.clock.now();
    let vendor = svc
        .vendor(&id)
        .await?
        .last()
        .map(|r| r.def())
        .transpose()
        .map_err(AppError::from)?
        .ok_or_else(|| AppError::NotFound(format!("no vendor {:?}", id.as_str())))?;
    let holder = match (&vendor.role, &vendor.parent) {
        (VendorRole::SubProcessor, Some(p)) => p.clone(),
        _ => vendor.id.clone(),
    };
    let dpas: Vec<DpaView> = svc
        .dpas()
        .await?
        .into_iter()
        .filter(|d| d.vendor == holder)
        .collect();
    let best = dpas
        .iter()
        .map(|d| standing(d, now).0)
        .max_by_key(|s| s.rank())
        .unwrap_or(Standing::None);
    let id = vendor.id.clone();
    let subprocessors = state
        .db(move |c| {
            let mut out = Vec::new();
            for child in crate::dpa::store::children(c, &id)? {
                let last = crate::dpa::store::decisions_of(c, &child.id)?
                    .into_iter()
                    .rev()
                    .find(|d| d.parent == id);
                out.push(SubRow {
                    id: child.id,
                    name: child.name,
                    decision: last
                        .map(|d| format!("{} on {}", d.decision, d.decided_on))
                        .unwrap_or_else(|| "not decided".into()),
                });
            }
            Ok(out)
        })
        .await?;
    let versions = dpas
        .iter()
        .flat_map(|d| d.versions.iter().map(move |v| (d, &v.value)))
        .map(|(d, v)| VersionRow {
            dpa: d.id.clone(),
            version: v.version,
            reference: v.reference.clone(),
            effective_from: v.effective_from.to_rfc3339()[..10].to_string(),
            expires_at: v
                .expires_at
                .map(|e| e.to_rfc3339()[..10].to_string())
                .unwrap_or_else(|| "no expiry".into()),
            status: v.status.as_str().into(),
            purposes: v.purposes.join(", "),
            categories: v.data_categories.join(", "),
            clauses: Clause::ALL
                .iter()
                .map(|c| (c.as_str(), v.clauses.get(c).copied().unwrap_or(false)))
                .collect(),
            transfers: v
                .transfers
                .iter()
                .map(|t| match t.scc_module {
                    Some(m) => format!("{}: {} module {m}", t.country, t.mechanism),
                    None => format!("{}: {}", t.country, t.mechanism),
                })
                .collect(),
        })
        .collect();
    let terminated = dpas
        .iter()
        .filter_map(|d| {
            d.terminated_at.map(|t| {
                format!(
                    "{} terminated from {}{}",
                    d.id,
                    &t.to_rfc3339()[..10],
                    d.termination_reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )
            })
        })
        .collect();
    html(&VendorPage {
        vendor,
        standing: best.label(),
        class: class_of(best),
        subprocessors,
        versions,
        terminated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Defined;
    use std::collections::BTreeMap;

    fn version(n: i32, from: i64, to: Option<i64>) -> Defined<DpaVersionDef> {
        Defined::unchanged(
            crate::vocab::Seq::new(n as u64),
            DpaVersionDef {
                dpa: "d".into(),
                version: n,
                reference: "r".into(),
                signed_on: "2026-01-01".into(),
                effective_from: Timestamp(from),
                expires_at: to.map(Timestamp),
                purposes: vec![],
                data_categories: vec![],
                clauses: Clause::ALL
                    .iter()
                    .map(|c| (*c, true))
                    .collect::<BTreeMap<_, _>>(),
                transfers: vec![],
                document_sha256: None,
                status: VersionStatus::Active,
                reminder_days: vec![],
            },
        )
    }

    fn dpa(versions: Vec<Defined<DpaVersionDef>>) -> DpaView {
        DpaView {
            id: "d".into(),
            vendor: "v".into(),
            seq: crate::vocab::Seq::ZERO,
            terminated_at: None,
            termination_reason: None,
            versions,
        }
    }

    #[test]
    fn standing_follows_the_version_in_force() {
        let now = Timestamp(1000 * DAY);
        let s = |v| standing(&dpa(v), now).0;
        assert_eq!(s(vec![]), Standing::None);
        assert_eq!(
            s(vec![version(1, 900 * DAY, Some(2000 * DAY))]),
            Standing::Covered
        );
        assert_eq!(
            s(vec![version(1, 900 * DAY, Some(1030 * DAY))]),
            Standing::Expiring
        );
        assert_eq!(
            s(vec![version(1, 900 * DAY, Some(990 * DAY))]),
            Standing::Expired
        );
        assert_eq!(
            s(vec![version(1, 1100 * DAY, None)]),
            Standing::NotYetEffective
        );
        let mut d = dpa(vec![version(1, 900 * DAY, None)]);
        d.terminated_at = Some(Timestamp(999 * DAY));
        assert_eq!(standing(&d, now).0, Standing::Terminated);
    }

    #[test]
    fn timeline_bars_stay_in_the_plot() {
        let now = Timestamp(20_000 * DAY);
        let d = dpa(vec![
            version(1, 0, Some(19_990 * DAY)),
            version(2, 19_990 * DAY, None),
        ]);
        let t = timeline(&[("v".into(), &d)], now);
        assert_eq!(t.bars.len(), 2);
        for b in &t.bars {
            assert!(
                b.x >= LABEL_WIDTH && b.x + b.width <= LABEL_WIDTH + PLOT_WIDTH + 2,
                "{}",
                b.label
            );
        }
        assert_eq!(t.bars[0].class, "expired");
        assert_eq!(t.bars[1].class, "covered");
        assert!(t.today_x > LABEL_WIDTH && t.today_x < LABEL_WIDTH + PLOT_WIDTH);
    }
}
