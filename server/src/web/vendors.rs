//! The vendor pages: every vendor with its DPA standing and an expiry timeline (an inline SVG: one
//! bar per DPA version from effective to expiry, today marked), and one vendor with its
//! sub-processors, DPA versions, clauses and transfers.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{UiError, html};
use crate::clock::Timestamp;
use crate::dpa::model::{Clause, Coverage, Reason, VendorDef, VersionStatus};
use crate::dpa::service::DpaView;
use crate::error::AppError;
use crate::state::AppState;
use crate::vocab::Key;

const DAY: i64 = 86_400_000_000;
/// A version expiring within this many days is flagged.
pub const EXPIRING_DAYS: i64 = 60;

/// In words, where a vendor's DPA cover stands (the coverage check's answer, leaving out the
/// purpose and the data), and the class that colours it. `expires`: the covering version's expiry.
pub fn describe(
    c: &Coverage,
    expires: Option<Timestamp>,
    now: Timestamp,
) -> (String, &'static str) {
    if c.covered {
        return match expires {
            Some(e) if e.micros() - now.micros() <= EXPIRING_DAYS * DAY => (
                format!("covered, expires {}", &e.to_rfc3339()[..10]),
                "warn",
            ),
            _ => ("covered".into(), "ok"),
        };
    }
    let words: Vec<String> = c
        .reasons
        .iter()
        .map(|r| match r {
            Reason::NoDpa => "no DPA".into(),
            Reason::NotYetEffective => "not yet effective".into(),
            Reason::Expired => "expired".into(),
            Reason::Terminated => "terminated".into(),
            Reason::PurposeNotCovered => "purpose not covered".into(),
            Reason::CategoryNotCovered => "data category not covered".into(),
            Reason::TransferNotCovered => "transfer to its country not covered".into(),
            Reason::ClauseMissing(cl) => format!("Art. 28(3) clause missing: {}", cl.as_str()),
            Reason::SubprocessorNotAuthorised => "sub-processor not authorised".into(),
            Reason::VendorOffboarded => "offboarded".into(),
        })
        .collect();
    let class = if c.reasons == [Reason::NotYetEffective] {
        "warn"
    } else {
        "bad"
    };
    (words.join("; "), class)
}

/// One row of the vendor table.
pub struct Row {
    pub id: String,
    pub name: String,
    pub role: String,
    pub country: String,
    pub standing: String,
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
        let active: Vec<_> = d
            .versions
            .iter()
            .map(|v| &v.value)
            .filter(|v| v.status == VersionStatus::Active)
            .collect();
        for (i, v) in active.iter().enumerate() {
            let start = v.effective_from.micros();
            let mut end = v.expires_at.map(Timestamp::micros).unwrap_or(to);
            // An amendment in force ends the version before it.
            if let Some(next) = active.get(i + 1) {
                end = end.min(next.effective_from.micros().max(start));
            }
            if let Some(t) = d.terminated_at {
                end = end.min(t.micros());
            }
            let (class, state) = match (
                end <= now.micros(),
                end - now.micros() <= EXPIRING_DAYS * DAY,
            ) {
                (true, _) => ("expired", "ended"),
                (false, true) => ("expiring", "ends within 60 days"),
                _ => ("covered", "in force or to come"),
            };
            let y = 30 + bars.len() as i64 * ROW_HEIGHT;
            let x = x_of(start);
            bars.push(Bar {
                x,
                y,
                width: (x_of(end) - x).max(2),
                short: format!(
                    "{} {vendor} · {} v{}",
                    match class {
                        "expired" => "✕",
                        "expiring" => "!",
                        _ => "✓",
                    },
                    d.id,
                    v.version
                ),
                label: format!(
                    "{vendor} · {} v{}: {} to {} ({state})",
                    d.id,
                    v.version,
                    &v.effective_from.to_rfc3339()[..10],
                    if end < to {
                        Timestamp(end).to_rfc3339()[..10].to_string()
                    } else {
                        "no expiry".into()
                    }
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

/// Where `vendor` stands now: (words, class, the covering DPA, its expiry).
fn stands(
    state: &AppState,
    dpas: &[DpaView],
    vendor: &str,
    now: Timestamp,
) -> Result<(String, &'static str, String, String), AppError> {
    let c = match state.dpa.standing(vendor, now)? {
        Ok(c) => c,
        Err(_) => {
            return Ok((
                "not yet known here".into(),
                "warn",
                String::new(),
                String::new(),
            ));
        }
    };
    let expires = dpas
        .iter()
        .find(|d| Some(&d.id) == c.dpa.as_ref())
        .and_then(|d| {
            d.versions
                .iter()
                .find(|v| Some(v.value.version) == c.version)
        })
        .and_then(|v| v.value.expires_at);
    let (words, class) = describe(&c, expires, now);
    Ok((
        words,
        class,
        c.dpa.clone().unwrap_or_default(),
        expires
            .map(|e| e.to_rfc3339()[..10].to_string())
            .unwrap_or_default(),
    ))
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
    let rows = vendors
        .iter()
        .map(|v| {
            let (standing, class, dpa, expires) = stands(&state, &dpas, &v.id, now)?;
            Ok(Row {
                id: v.id.clone(),
                name: v.name.clone(),
                role: v.role.as_str().into(),
                country: v.country.as_str().into(),
                standing,
                class,
                dpa,
                expires,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
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

/// A reminder as the vendor page tells it.
struct ReminderRow {
    dpa: String,
    due: String,
    /// What became of it, in words.
    fate: String,
    class: &'static str,
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
    standing: String,
    class: &'static str,
    subprocessors: Vec<SubRow>,
    versions: Vec<VersionRow>,
    terminated: Vec<String>,
    reminders: Vec<ReminderRow>,
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
        (crate::dpa::model::VendorRole::SubProcessor, Some(p)) => p.clone(),
        _ => vendor.id.clone(),
    };
    let all = svc.dpas().await?;
    let (standing, class, _, _) = stands(&state, &all, &vendor.id, now)?;
    let dpas: Vec<DpaView> = all.into_iter().filter(|d| d.vendor == holder).collect();
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
    let abouts: Vec<String> = dpas
        .iter()
        .map(|d| crate::dpa::projection::about(&d.id))
        .collect();
    let smtp = state.settings.smtp.is_some();
    let reminders = state
        .db(move |c| crate::notify::api::items_about(c, &abouts))
        .await?
        .iter()
        .filter(|i| i.channel == "mail")
        .map(|i| {
            let (fate, class) = super::outbox::fate(i, now, smtp);
            ReminderRow {
                dpa: i.about.trim_start_matches("dpa:").to_string(),
                due: i.due_at.to_rfc3339()[..10].to_string(),
                fate,
                class,
            }
        })
        .collect();
    html(&VendorPage {
        vendor,
        standing,
        class,
        subprocessors,
        versions,
        terminated,
        reminders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpa::model::DpaVersionDef;
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
            documents: vec![],
        }
    }

    #[test]
    fn the_standing_is_the_checks_answer_in_words() {
        let now = Timestamp(1000 * DAY);
        let c = |covered, reasons: Vec<Reason>| Coverage {
            covered,
            dpa: Some("d".into()),
            version: Some(1),
            reasons,
            seq: None,
        };
        assert_eq!(
            describe(&c(true, vec![]), None, now),
            ("covered".into(), "ok")
        );
        let soon = describe(&c(true, vec![]), Some(Timestamp(1030 * DAY)), now);
        assert_eq!(soon.1, "warn");
        assert!(soon.0.starts_with("covered, expires"), "{}", soon.0);
        let gap = describe(
            &c(
                false,
                vec![
                    Reason::ClauseMissing(Clause::Audits),
                    Reason::SubprocessorNotAuthorised,
                ],
            ),
            None,
            now,
        );
        assert_eq!(
            gap,
            (
                "Art. 28(3) clause missing: audits; sub-processor not authorised".into(),
                "bad"
            )
        );
        assert_eq!(
            describe(&c(false, vec![Reason::NotYetEffective]), None, now).1,
            "warn"
        );
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

    #[test]
    fn a_reminder_says_what_became_of_it() {
        use crate::notify::api::OutboxItem;
        let day = 86_400_000_000;
        let item = |state: &str, due: i64| OutboxItem {
            id: "dpa:d:v1:7d".into(),
            channel: "mail".into(),
            about: "dpa:d".into(),
            group: "dpa:d:v1".into(),
            due_at: Timestamp(due),
            roles: vec!["legal".into()],
            subject: "s".into(),
            body: "b".into(),
            link: None,
            state: state.into(),
            seq: crate::vocab::Seq::new(1),
            done_seq: None,
            done_at: None,
            sent_to: None,
            failures: 0,
            next_try_at: None,
            last_error: None,
        };
        let now = Timestamp(1_795_000_000_000_000);
        let mut sent = item("sent", now.micros() - day);
        sent.done_at = Some(now);
        sent.sent_to = Some(vec!["a@x.test".into(), "b@x.test".into()]);
        use crate::web::outbox::fate;
        assert_eq!(fate(&sent, now, true).0, "sent 2026-11-18 to 2 people");
        assert!(
            fate(&item("pending", now.micros() + day), now, true)
                .0
                .starts_with("due 2026-11-19")
        );
        assert_eq!(fate(&item("pending", now.micros()), now, false).1, "warn");
        let mut failing = item("pending", now.micros() - day);
        failing.failures = 2;
        failing.last_error = Some("127.0.0.1:25: connection refused".into());
        failing.next_try_at = Some(Timestamp(now.micros() + 60_000_000));
        let (words, class) = fate(&failing, now, true);
        assert!(
            words.contains("2 failed tries: 127.0.0.1:25: connection refused"),
            "{words}"
        );
        assert_eq!(class, "bad");
        assert!(
            fate(&item("cancelled", now.micros()), now, true)
                .0
                .starts_with("not sent")
        );
    }
}
