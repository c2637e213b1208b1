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

fn count(map: &Mutex<HashMap<String, Vec<i64>>>, key: &str, now: i64) -> usize {
    map.lock()
        .ok()
        .and_then(|m| {
            m.get(key)
                .map(|v| v.iter().filter(|t| now - **t < WINDOW_MICROS).count())
        })
        .unwrap_or(0)
}

/// Why a sign-in attempt was refused before its password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The account has used up its attempts for the window (it is locked, or about to be).
    Account,
    /// The address has used up its attempts for the window.
    Address,
}

/// An attempt counted before the password hash is checked. A failed attempt keeps it (it is the
/// failure); a successful one gives it back with [`LoginLimiter::succeeded`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Reservation {
    /// Attempts for the account within the window, this one included.
    pub account_attempts: usize,
}

impl Reservation {
    /// Whether this attempt, failing, is the one that reaches the account's limit: it records the
    /// lockout. Exactly one attempt per window is.
    pub fn locks_account(&self) -> bool {
        self.account_attempts == ACCOUNT_LIMIT
    }
}

impl LoginLimiter {
    /// Counts an attempt for `account` and `address` before any password is checked, or refuses
    /// it when either has used up its attempts: parallel attempts cannot check more passwords than
    /// the limits allow. Both maps are updated under one lock order (addresses, then accounts).
    pub fn reserve(&self, account: &str, address: &str, now: i64) -> Result<Reservation, Refused> {
        let (Ok(mut addresses), Ok(mut accounts)) = (self.addresses.lock(), self.accounts.lock())
        else {
            return Err(Refused::Address);
        };
        if live(&mut addresses, address, now) >= ADDRESS_LIMIT {
            return Err(Refused::Address);
        }
        if live(&mut accounts, account, now) >= ACCOUNT_LIMIT {
            return Err(Refused::Account);
        }
        push(&mut addresses, address, now);
        let account_attempts = push(&mut accounts, account, now);
        if account_attempts == ACCOUNT_LIMIT
            && let Some(v) = accounts.get_mut(account)
        {
            // The attempt that reaches the limit starts the lockout: the account's attempts all
            // count from now, so none is given back until the lockout ends, and the limit
            // cannot be reached again (a second lockout entry) while it lasts.
            v.iter_mut().for_each(|t| *t = now);
        }
        Ok(Reservation { account_attempts })
    }

    /// A successful sign-in: the account's attempts are forgotten, and the address gets this
    /// attempt back (only failures count against an address).
    pub fn succeeded(&self, account: &str, address: &str, reservation: Reservation) {
        let _ = reservation;
        if let (Ok(mut addresses), Ok(mut accounts)) = (self.addresses.lock(), self.accounts.lock())
        {
            if let Some(v) = addresses.get_mut(address) {
                v.pop();
            }
            accounts.remove(account);
        }
    }

    /// Whether this address may try at all right now.
    pub fn address_allowed(&self, address: &str, now: i64) -> bool {
        count(&self.addresses, address, now) < ADDRESS_LIMIT
    }
}

/// Attempts for `key` within the window (dropping older ones).
fn live(m: &mut HashMap<String, Vec<i64>>, key: &str, now: i64) -> usize {
    match m.get_mut(key) {
        Some(v) => {
            v.retain(|t| now - t < WINDOW_MICROS);
            v.len()
        }
        None => 0,
    }
}

/// Adds an attempt for `key`; returns the attempts within the window.
fn push(m: &mut HashMap<String, Vec<i64>>, key: &str, now: i64) -> usize {
    if m.len() >= MAX_KEYS && !m.contains_key(key) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented limits: 5 per account and 20 per address within 15 minutes.
    #[test]
    fn attempts_are_reserved_before_any_password_is_checked() {
        const MINUTE: i64 = 60 * 1_000_000;
        let l = LoginLimiter::default();
        let mut locks = 0;
        for i in 1..=5 {
            let r = l.reserve("a@x.org", "10.0.0.1", i as i64).unwrap();
            assert_eq!(r.account_attempts, i);
            locks += usize::from(r.locks_account());
        }
        assert_eq!(locks, 1, "exactly one attempt records the lockout");
        assert_eq!(LOCKOUT_MICROS, 15 * MINUTE, "a lockout lasts 15 minutes");
        // Further attempts are refused without a password check, and lock nothing again.
        assert_eq!(l.reserve("a@x.org", "10.0.0.9", 10), Err(Refused::Account));
        assert_eq!(
            l.reserve("a@x.org", "10.0.0.9", 5 + 15 * MINUTE - 1),
            Err(Refused::Account),
            "still within 15 minutes of the fifth"
        );
        // Outside the window, the account may try again.
        let r = l.reserve("a@x.org", "10.0.0.1", 10 + 15 * MINUTE).unwrap();
        assert_eq!(r.account_attempts, 1);
        l.succeeded("a@x.org", "10.0.0.1", r);
        assert_eq!(
            l.reserve("a@x.org", "10.0.0.1", 11 + 15 * MINUTE)
                .unwrap()
                .account_attempts,
            1
        );
        let l = LoginLimiter::default();
        for i in 0..20 {
            assert!(l.address_allowed("10.0.0.2", i as i64));
            let _ = l
                .reserve(&format!("u{i}@x.org"), "10.0.0.2", i as i64)
                .unwrap();
        }
        assert!(!l.address_allowed("10.0.0.2", 100));
        assert_eq!(
            l.reserve("new@x.org", "10.0.0.2", 100),
            Err(Refused::Address)
        );
        assert!(l.reserve("new@x.org", "10.0.0.3", 100).is_ok());
    }

    /// Many parallel attempts on one account: only the limit's worth get to check a password.
    #[test]
    fn parallel_attempts_get_at_most_the_limit() {
        let l = std::sync::Arc::new(LoginLimiter::default());
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let l = l.clone();
                std::thread::spawn(move || l.reserve("a@x.org", &format!("10.0.1.{i}"), 1).is_ok())
            })
            .collect();
        let granted = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(granted, 5);
    }
}
