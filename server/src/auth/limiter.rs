//! Failed-login limits: per account (leads to a recorded lockout) and per client address (refuses
//! further attempts for a while). Counters are per instance, in memory; the lockout itself is a
//! ledger event every instance honours.

use std::collections::HashMap;
use std::sync::Mutex;

/// Failures counted within this window.
pub const WINDOW_MICROS: i64 = 15 * 60 * 1_000_000;
/// Failures for one account within the window that lock it.
pub const ACCOUNT_LIMIT: usize = 5;
/// Failures from one address within the window after which it is refused.
pub const ADDRESS_LIMIT: usize = 20;
/// How long a lockout lasts.
pub const LOCKOUT_MICROS: i64 = 15 * 60 * 1_000_000;
/// Bound on tracked keys, so a flood of distinct names cannot grow memory without limit.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct LoginLimiter {
    accounts: Mutex<HashMap<String, Vec<i64>>>,
    addresses: Mutex<HashMap<String, Vec<i64>>>,
}

fn record(map: &Mutex<HashMap<String, Vec<i64>>>, key: &str, now: i64) -> usize {
    let Ok(mut m) = map.lock() else { return 0 };
    if m.len() >= MAX_KEYS {
        m.retain(|_, v| v.iter().any(|t| now - t < WINDOW_MICROS));
        if m.len() >= MAX_KEYS {
            m.clear();
        }
    }
    let v = m.entry(key.to_string()).or_default();
    v.retain(|t| now - t < WINDOW_MICROS);
    v.push(now);
    v.len()
}

fn count(map: &Mutex<HashMap<String, Vec<i64>>>, key: &str, now: i64) -> usize {
    map.lock()
        .ok()
        .and_then(|m| {
            m.get(key)
                .map(|v| v.iter().filter(|t| now - **t < WINDOW_MICROS).count())
        })
        .unwrap_or(0)
}

impl LoginLimiter {
    /// Whether this address may try at all right now.
    pub fn address_allowed(&self, address: &str, now: i64) -> bool {
        count(&self.addresses, address, now) < ADDRESS_LIMIT
    }

    /// Records a failure; returns the number of failures for the account within the window.
    pub fn failed(&self, account: &str, address: &str, now: i64) -> usize {
        record(&self.addresses, address, now);
        record(&self.accounts, account, now)
    }

    /// Forgets an account's failures (after a successful login or a lockout).
    pub fn reset_account(&self, account: &str) {
        if let Ok(mut m) = self.accounts.lock() {
            m.remove(account);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_and_addresses_are_counted_in_a_window() {
        let l = LoginLimiter::default();
        for i in 1..=ACCOUNT_LIMIT {
            assert_eq!(l.failed("a@x.org", "10.0.0.1", i as i64), i);
        }
        l.reset_account("a@x.org");
        assert_eq!(l.failed("a@x.org", "10.0.0.1", 10), 1);
        // Outside the window, old failures no longer count.
        assert_eq!(l.failed("a@x.org", "10.0.0.1", 10 + WINDOW_MICROS), 1);
        let l = LoginLimiter::default();
        for i in 0..ADDRESS_LIMIT {
            assert!(l.address_allowed("10.0.0.2", i as i64));
            l.failed(&format!("u{i}@x.org"), "10.0.0.2", i as i64);
        }
        assert!(!l.address_allowed("10.0.0.2", 100));
        assert!(l.address_allowed("10.0.0.3", 100));
    }
}
