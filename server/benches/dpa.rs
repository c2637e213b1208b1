//! DPA coverage checks in memory: builds a coverage index of `ACCORD_BENCH_VENDORS` vendors
//! (default 10,000: one in ten a sub-processor, authorised) whose processors' DPAs hold twice as
//! many versions (20,000; each amendment adds a purpose), then answers batches of 10,000 checks as the usage audit asks
//! them (random vendors, purposes, categories, moments) and prints checks per second. Prints
//! figures, asserts nothing. Run with
//!
//!     cargo bench -p accord --bench dpa
//!
//! Environment: `ACCORD_BENCH_VENDORS`, `ACCORD_BENCH_ROUNDS` (default 5; the median is reported).

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use accord::clock::Timestamp;
use accord::dpa::events::DpaEvent;
use accord::dpa::index::{DpaIndex, Query};
use accord::dpa::model::{
    Clause, DpaVersionDef, Mechanism, SubprocessorDecision, Transfer, VendorDef, VendorRole,
    VendorStatus, VersionStatus,
};
use accord::vocab::{Country, Seq};
use common::{env_u64, median};

const DAY: i64 = 86_400_000_000;
const PURPOSES: [&str; 4] = [
    "marketing.email",
    "analytics",
    "ads.personalised",
    "support",
];
const CATEGORIES: [&str; 4] = ["email_address", "name", "device_id", "purchase_history"];

/// A small deterministic generator (xorshift), so every run checks the same uses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn country(code: &str) -> Country {
    Country::parse("country", code).expect("a country")
}

/// The index, the first moment, and how many DPA versions it holds.
fn build(vendors: u64) -> (DpaIndex, i64, u64) {
    let index = DpaIndex::new();
    let start = Timestamp(1_767_225_600_000_000).micros(); // 2026-01-01
    let mut seq = 0u64;
    let mut apply = |at: i64, event: DpaEvent| {
        seq += 1;
        index.apply_event(at, Seq::new(seq), event).expect("apply");
    };
    let clauses: BTreeMap<Clause, bool> = Clause::ALL.iter().map(|c| (*c, true)).collect();
    // Versions to place: two per vendor, on the processors' DPAs (the first ones get a third).
    let processors = vendors - vendors / 10;
    let mut extra = (2 * vendors).saturating_sub(2 * processors);
    let mut total = 0;
    for v in 0..vendors {
        let id = format!("v{v}");
        let sub = v % 10 == 9;
        apply(
            start,
            DpaEvent::VendorDefined(VendorDef {
                id: id.clone(),
                version: 1,
                name: format!("Vendor {v}"),
                legal_name: None,
                country: country(if v % 3 == 0 { "US" } else { "DE" }),
                role: if sub {
                    VendorRole::SubProcessor
                } else {
                    VendorRole::Processor
                },
                contact: None,
                status: VendorStatus::Active,
                parent: sub.then(|| format!("v{}", v - 1)),
                data_categories: vec![],
            }),
        );
        if sub {
            apply(
                start,
                DpaEvent::SubprocessorDecided {
                    vendor: id,
                    parent: format!("v{}", v - 1),
                    decision: SubprocessorDecision::Authorised,
                    decided_on: "2026-01-01".into(),
                    note: None,
                },
            );
            continue;
        }
        let dpa = format!("d{v}");
        apply(
            start,
            DpaEvent::DpaCreated {
                id: dpa.clone(),
                vendor: id,
            },
        );
        let count = if extra > 0 {
            extra -= 1;
            3
        } else {
            2
        };
        total += count as u64;
        for version in 1..=count {
            let purposes = PURPOSES[..version as usize + 1]
                .iter()
                .map(|p| p.to_string())
                .collect();
            apply(
                start + i64::from(version) * 30 * DAY,
                DpaEvent::DpaVersionAdded(DpaVersionDef {
                    dpa: dpa.clone(),
                    version,
                    reference: format!("{dpa}/{version}"),
                    signed_on: "2025-12-01".into(),
                    effective_from: Timestamp(start + i64::from(version) * 30 * DAY),
                    expires_at: Some(Timestamp(start + 400 * DAY)),
                    purposes,
                    data_categories: CATEGORIES[..3].iter().map(|c| c.to_string()).collect(),
                    clauses: clauses.clone(),
                    transfers: vec![Transfer {
                        country: country("US"),
                        mechanism: Mechanism::Scc,
                        scc_module: Some(2),
                        tia_reference: None,
                    }],
                    document_sha256: None,
                    status: VersionStatus::Active,
                    reminder_days: vec![60, 30, 7],
                }),
            );
        }
    }
    (index, start, total)
}

fn main() {
    let vendors = env_u64("ACCORD_BENCH_VENDORS", 10_000);
    let rounds = env_u64("ACCORD_BENCH_ROUNDS", 5).max(1);
    let built = Instant::now();
    let (index, start, versions) = build(vendors);
    println!(
        "coverage index: {vendors} vendors, {versions} DPA versions, built in {:.2} s",
        built.elapsed().as_secs_f64()
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let batch = 10_000usize;
    let uses: Vec<(String, &str, Vec<String>, Timestamp)> = (0..batch)
        .map(|_| {
            let v = rng.below(vendors);
            let cats = (0..=rng.below(2))
                .map(|_| CATEGORIES[rng.below(4) as usize].to_string())
                .collect();
            let at = Timestamp(start + rng.below(450) as i64 * DAY);
            (format!("v{v}"), PURPOSES[rng.below(4) as usize], cats, at)
        })
        .collect();
    let mut rates = Vec::new();
    let mut covered = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut done = 0;
        while t.elapsed().as_secs_f64() < 2.0 {
            let answers = index
                .check_all(uses.iter().map(|(v, p, c, at)| Query {
                    vendor: v,
                    purpose: p,
                    data_categories: c,
                    country: None,
                    at: *at,
                }))
                .expect("checks");
            covered = answers
                .iter()
                .filter(|a| a.as_ref().is_ok_and(|c| c.covered))
                .count();
            done += answers.len();
        }
        rates.push(done as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "batch coverage checks ({batch} per batch, one thread): median {:.0} checks/s over {rounds} rounds ({covered} of {batch} covered)",
        median(rates)
    );
}
