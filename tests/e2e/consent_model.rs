//! Consent checks against a plain reference model: random sequences of grants, withdrawals,
//! denials, expiries, a retirement and erasures, then every check — now and as of random past
//! moments, single, batch and filter — must answer exactly as the model does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use accord::auth::model::Role;
use accord::clock::{Clock, ManualClock, Timestamp};
use accord_tests::{TestApp, TestDb, settings};
use serde_json::json;

use crate::on_both_backends;

const HOUR: i64 = 3600 * 1_000_000;
const SUBJECTS: &[&str] = &["s-a", "s-b", "s-c", "s-d"];
const CHANNELS: &[&str] = &["email", "sms", "any"];

/// A small deterministic generator (xorshift64*), so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

struct Purpose {
    key: &'static str,
    required: bool,
    basis: &'static str,
    lifetime_days: Option<i64>,
    retired_at: Option<i64>,
}

#[derive(Debug, Clone)]
struct Rec {
    subject: String,
    purpose: String,
    channel: String,
    decision: String,
    collected: i64,
    expires: Option<i64>,
    seq: u64,
}

fn rank(decision: &str) -> u8 {
    match decision {
        "withdrawn" => 2,
        "denied" => 1,
        _ => 0,
    }
}

/// The rules of DESIGN §4 and the issue, written out plainly.
fn model_check(
    purposes: &[Purpose],
    recs: &[Rec],
    subject: &str,
    purpose: &str,
    channel: &str,
    at: Option<i64>,
    now: i64,
) -> (bool, String, Option<u64>) {
    let t = at.unwrap_or(now);
    let p = purposes.iter().find(|p| p.key == purpose).unwrap();
    let best_for = |c: &str| {
        recs.iter()
            .filter(|r| r.subject == subject && r.purpose == purpose && r.channel == c)
            .filter(|r| at.is_none_or(|t| r.collected <= t))
            .max_by_key(|r| (r.collected, rank(&r.decision), r.seq))
            .cloned()
    };
    let best = if channel == "any" {
        best_for("any")
    } else {
        best_for(channel).or_else(|| best_for("any"))
    };
    let seq = best.as_ref().map(|r| r.seq);
    if p.retired_at.is_some_and(|r| r <= t) {
        return (false, "purpose_retired".into(), seq);
    }
    let state = match &best {
        None => "no_record",
        Some(r) if r.decision == "granted" && r.expires.is_some_and(|e| e <= t) => "expired",
        Some(r) => r.decision.as_str(),
    };
    match (p.required, state) {
        (_, "withdrawn" | "denied") => (false, state.into(), seq),
        (false, _) => (true, format!("not_required:{}", p.basis), seq),
        (true, "granted") => (true, state.into(), seq),
        (true, _) => (false, state.into(), seq),
    }
}

fn rfc(t: i64) -> String {
    Timestamp(t).to_rfc3339()
}

async fn run(db: TestDb, seed: u64) {
    // Midnight today: tokens' expiry is also checked against the system clock.
    let day = 24 * HOUR;
    let base = accord::clock::SystemClock.now().micros() / day * day;
    let clock = Arc::new(ManualClock::new(Timestamp(base)));
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with_clock(settings(&db, data.path()), clock.clone())
        .await
        .unwrap();
    let long = Duration::from_secs(200 * 86_400);
    let officer = app.token_valid_for(&[Role::ComplianceOfficer], long).await;
    let service = app.token_valid_for(&[Role::Service], long).await;
    let mut purposes = vec![
        Purpose {
            key: "p.consent",
            required: true,
            basis: "consent",
            lifetime_days: Some(3),
            retired_at: None,
        },
        Purpose {
            key: "p.li",
            required: false,
            basis: "legitimate_interests",
            lifetime_days: None,
            retired_at: None,
        },
        Purpose {
            key: "p.retire",
            required: true,
            basis: "consent",
            lifetime_days: None,
            retired_at: None,
        },
    ];
    for p in &purposes {
        let (status, v) = app
            .post_json_with(
                "/v1/purposes",
                &officer,
                &json!({"key": p.key, "title": p.key, "legal_basis": p.basis,
                        "lifetime_days": p.lifetime_days}),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }

    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut recs: Vec<Rec> = Vec::new();
    let mut last: Option<(&str, usize, &str, i64)> = None;
    let steps = 90;
    for step in 0..steps {
        clock.advance_micros(rng.below(7) as i64 * HOUR);
        let now = clock.now().micros();
        if step == steps / 2 {
            let (status, v) = app
                .post_json_with("/v1/purposes/p.retire/retire", &officer, &json!({}))
                .await;
            assert_eq!(status, 200, "{v}");
            purposes[2].retired_at = Some(now);
            continue;
        }
        if rng.below(40) == 0 {
            let subject = *rng.pick(SUBJECTS);
            let (status, v) = app
                .post_json_with(
                    &format!("/v1/subjects/{subject}/erase"),
                    &officer,
                    &json!({}),
                )
                .await;
            assert_eq!(status, 200, "{v}");
            recs.retain(|r| r.subject != subject);
            continue;
        }
        let decision = *rng.pick(&["granted", "granted", "withdrawn", "denied"]);
        // Often the same key and moment as the last record (a tie the rules must break), else
        // a random key and a whole hour in the last eight.
        let (subject, pi, channel, collected) = match last {
            Some(l) if rng.below(4) == 0 => l,
            _ => (
                *rng.pick(SUBJECTS),
                rng.below(3) as usize,
                *rng.pick(CHANNELS),
                (now / HOUR - rng.below(8) as i64) * HOUR,
            ),
        };
        last = Some((subject, pi, channel, collected));
        let p = &purposes[pi];
        let explicit_expiry = (decision == "granted" && rng.below(3) == 0)
            .then(|| collected + (1 + rng.below(72) as i64) * HOUR);
        let mut body = json!({"subject": subject, "purpose": p.key, "channel": channel,
                              "decision": decision, "collected_at": rfc(collected)});
        if let Some(e) = explicit_expiry {
            body["expires_at"] = json!(rfc(e));
        }
        let (status, v) = app.post_json_with("/v1/consents", &service, &body).await;
        if p.retired_at.is_some() {
            assert_eq!(status, 409, "a retired purpose takes no new record: {v}");
            continue;
        }
        match status {
            201 => {}
            200 if v["duplicate"] == true => continue,
            _ => panic!("seed {seed} step {step}: {body} -> {status} {v}"),
        }
        let expires = match (decision, explicit_expiry, p.lifetime_days) {
            ("granted", Some(e), _) => Some(e),
            ("granted", None, Some(d)) => Some(collected + d * 24 * HOUR),
            _ => None,
        };
        recs.push(Rec {
            subject: subject.into(),
            purpose: p.key.into(),
            channel: channel.into(),
            decision: decision.into(),
            collected,
            expires,
            seq: v["seq"].as_u64().unwrap(),
        });
    }

    let now = clock.now().micros();
    let mut moments: Vec<Option<i64>> = vec![None, Some(now)];
    for _ in 0..5 {
        moments.push(Some(
            base + rng.below(((now - base) / HOUR + 1) as u64) as i64 * HOUR,
        ));
    }
    let mut checked = 0;
    for at in &moments {
        let at_q = at.map(|t| format!("&at={}", rfc(t))).unwrap_or_default();
        let mut items = Vec::new();
        let mut expected = Vec::new();
        for p in &purposes {
            for channel in CHANNELS {
                let mut allowed_subjects = Vec::new();
                let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
                for subject in SUBJECTS {
                    let want = model_check(&purposes, &recs, subject, p.key, channel, *at, now);
                    let (status, got) = app
                        .get_json_with(
                            &format!(
                                "/v1/consents/check?subject={subject}&purpose={}&channel={channel}{}",
                                p.key,
                                at_q
                            ),
                            &service,
                        )
                        .await;
                    assert_eq!(status, 200, "{got}");
                    let got_t = (
                        got["allowed"].as_bool().unwrap(),
                        got["reason"].as_str().unwrap().to_string(),
                        got["seq"].as_u64(),
                    );
                    assert_eq!(
                        got_t, want,
                        "seed {seed}: {subject} {} {channel} at {at:?}: {got}",
                        p.key
                    );
                    checked += 1;
                    let mut item =
                        json!({"subject": subject, "purpose": p.key, "channel": channel});
                    if let Some(t) = at {
                        item["at"] = json!(rfc(*t));
                    }
                    items.push(item);
                    if want.0 {
                        allowed_subjects.push(json!(subject));
                    }
                    *reasons.entry(want.1.clone()).or_default() += 1;
                    expected.push(want);
                }
                // The same send list through the filter.
                let r = app
                    .send(
                        "POST",
                        &format!(
                            "/v1/consents/filter?purpose={}&channel={channel}{}",
                            p.key, at_q
                        ),
                        Some(&service),
                        &[],
                        Some(("text/plain", SUBJECTS.join("\n").into_bytes())),
                    )
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
                let lines = crate::support::json_lines(&r.body);
                let (trailer, permitted) = lines.split_last().unwrap();
                assert_eq!(
                    permitted,
                    allowed_subjects.as_slice(),
                    "seed {seed}: filter {} {channel} at {at:?}",
                    p.key
                );
                assert_eq!(trailer["trailer"]["reasons"], json!(reasons), "seed {seed}");
            }
        }
        // And the whole lot as one batch, in order.
        let (status, v) = app
            .post_json_with("/v1/consents/check", &service, &json!({"items": items}))
            .await;
        assert_eq!(status, 200, "{v}");
        let got: Vec<(bool, String, Option<u64>)> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["allowed"].as_bool().unwrap(),
                    a["reason"].as_str().unwrap().to_string(),
                    a["seq"].as_u64(),
                )
            })
            .collect();
        assert_eq!(got, expected, "seed {seed}: batch at {at:?}");
    }
    assert_eq!(checked, moments.len() * 3 * CHANNELS.len() * SUBJECTS.len());
    eprintln!("seed {seed}: {} records, {checked} checks", recs.len());
    app.stop().await;
}

async fn model(db: TestDb) {
    let seeds: Vec<u64> = match std::env::var("ACCORD_TEST_SEED") {
        Ok(s) => vec![s.parse().expect("ACCORD_TEST_SEED is a number")],
        Err(_) => vec![1, 2, 3],
    };
    let kind = db.kind();
    let mut first = Some(db);
    for seed in seeds {
        // A fresh database per seed.
        let db = match first.take() {
            Some(d) => d,
            None => TestDb::new(kind).expect("a fresh database"),
        };
        Box::pin(run(db, seed)).await;
    }
}

on_both_backends!(consent_matches_reference_model, super::model);
