//! Browser sessions and CSRF protection.
//!
//! A session is a signed cookie (HMAC-SHA-256 under a key in the data directory, shared by every
//! instance): user id, session epoch, issue time and last-seen time. It is refused after 30 minutes
//! idle or 12 hours in all, and when the user's epoch moved on (logout, password change, disable).
//! Every form carries a CSRF token bound to the session (or, before login, to a random pre-session
//! cookie), compared in constant time; posts from a foreign `Origin` are refused too.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::clock::Timestamp;

pub const SESSION_COOKIE: &str = "accord_session";
pub const PRESESSION_COOKIE: &str = "accord_pre";
pub const CSRF_FIELD: &str = "csrf";
/// Idle and absolute session lifetimes.
pub const IDLE_MICROS: i64 = 30 * 60 * 1_000_000;
pub const ABSOLUTE_MICROS: i64 = 12 * 3600 * 1_000_000;
/// The last-seen time is refreshed (a new cookie sent) at most once a minute.
pub const REFRESH_MICROS: i64 = 60 * 1_000_000;

/// What the session cookie holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Random session id; the CSRF token is bound to it.
    pub sid: String,
    pub uid: String,
    pub epoch: i64,
    /// Issued at and last seen (µs).
    pub iat: i64,
    pub seen: i64,
}

/// Why a session cookie was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    Malformed,
    BadSignature,
    Idle,
    Expired,
}

/// Signs and checks session cookies and CSRF tokens.
#[derive(Clone)]
pub struct SessionCodec {
    key: [u8; 32],
}

impl std::fmt::Debug for SessionCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCodec").finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

impl SessionCodec {
    pub fn new(key: [u8; 32]) -> Self {
        SessionCodec { key }
    }

    fn mac(&self, domain: &[u8], data: &[u8]) -> HmacSha256 {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(domain);
        m.update(data);
        m
    }

    /// `base64url(json).base64url(hmac)`.
    pub fn encode(&self, s: &Session) -> String {
        let json = serde_json::to_vec(s).unwrap_or_default();
        let sig = self
            .mac(b"accord/session/v1\0", &json)
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    pub fn decode(&self, cookie: &str, now: Timestamp) -> Result<Session, SessionError> {
        let (payload, sig) = cookie.split_once('.').ok_or(SessionError::Malformed)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SessionError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| SessionError::Malformed)?;
        self.mac(b"accord/session/v1\0", &json)
            .verify_slice(&sig)
            .map_err(|_| SessionError::BadSignature)?;
        let s: Session = serde_json::from_slice(&json).map_err(|_| SessionError::Malformed)?;
        let now = now.micros();
        if now.saturating_sub(s.iat) > ABSOLUTE_MICROS {
            return Err(SessionError::Expired);
        }
        if now.saturating_sub(s.seen) > IDLE_MICROS {
            return Err(SessionError::Idle);
        }
        Ok(s)
    }

    /// The CSRF token for forms shown under `binding` (a session id or a pre-session value).
    pub fn csrf_token(&self, binding: &str) -> String {
        URL_SAFE_NO_PAD.encode(
            self.mac(b"accord/csrf/v1\0", binding.as_bytes())
                .finalize()
                .into_bytes(),
        )
    }

    /// Constant-time check of a submitted CSRF token.
    pub fn csrf_ok(&self, binding: &str, submitted: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(submitted) {
            Ok(bytes) => self
                .mac(b"accord/csrf/v1\0", binding.as_bytes())
                .verify_slice(&bytes)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// Whether a state-changing browser request comes from our own pages: `Origin` (when sent) must
/// be this host, and `Sec-Fetch-Site` (when sent) must not be cross-site.
pub fn same_origin(origin: Option<&str>, fetch_site: Option<&str>, host: &str) -> bool {
    if let Some(site) = fetch_site
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match origin {
        None => true,
        Some("null") => false,
        Some(o) => o
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/') == host)
            .unwrap_or(false),
    }
}

/// What a session's CSRF tokens are bound to.
pub fn session_binding(sid: &str) -> String {
    format!("session:{sid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(now: i64) -> Session {
        Session {
            sid: "s1".into(),
            uid: "u_1".into(),
            epoch: 3,
            iat: now,
            seen: now,
        }
    }

    #[test]
    fn cookies_round_trip_and_resist_tampering() {
        let c = SessionCodec::new([9; 32]);
        let now = 1_000_000_000_000;
        let cookie = c.encode(&session(now));
        assert_eq!(c.decode(&cookie, Timestamp(now + 1)), Ok(session(now)));
        let other = SessionCodec::new([8; 32]);
        assert_eq!(
            other.decode(&cookie, Timestamp(now)),
            Err(SessionError::BadSignature)
        );
        // Changing the user inside the cookie breaks the signature.
        let (p, sig) = cookie.split_once('.').unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        let forged = URL_SAFE_NO_PAD.encode(json.replace("u_1", "u_2"));
        assert_eq!(
            c.decode(&format!("{forged}.{sig}"), Timestamp(now)),
            Err(SessionError::BadSignature)
        );
        assert_eq!(
            c.decode("garbage", Timestamp(now)),
            Err(SessionError::Malformed)
        );
    }

    /// The documented lifetimes: 30 minutes idle, 12 hours at most.
    #[test]
    fn sessions_expire_idle_and_absolute() {
        const MINUTE: i64 = 60 * 1_000_000;
        let c = SessionCodec::new([9; 32]);
        let t0 = 1_000_000_000_000;
        let cookie = c.encode(&session(t0));
        assert!(c.decode(&cookie, Timestamp(t0 + 30 * MINUTE)).is_ok());
        assert_eq!(
            c.decode(&cookie, Timestamp(t0 + 30 * MINUTE + 1)),
            Err(SessionError::Idle)
        );
        let mut s = session(t0);
        s.seen = t0 + 12 * 60 * MINUTE;
        assert!(
            c.decode(&c.encode(&s), Timestamp(t0 + 12 * 60 * MINUTE))
                .is_ok()
        );
        assert_eq!(
            c.decode(&c.encode(&s), Timestamp(t0 + 12 * 60 * MINUTE + 1)),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn csrf_tokens_are_bound() {
        let c = SessionCodec::new([9; 32]);
        let t = c.csrf_token("sid-a");
        assert!(c.csrf_ok("sid-a", &t));
        assert!(!c.csrf_ok("sid-b", &t));
        assert!(!c.csrf_ok("sid-a", "x"));
        assert!(!c.csrf_ok("sid-a", ""));
    }

    #[test]
    fn foreign_origins_are_refused() {
        assert!(same_origin(None, None, "127.0.0.1:8080"));
        assert!(same_origin(
            Some("http://127.0.0.1:8080"),
            Some("same-origin"),
            "127.0.0.1:8080"
        ));
        assert!(!same_origin(
            Some("https://evil.example"),
            None,
            "127.0.0.1:8080"
        ));
        assert!(!same_origin(None, Some("cross-site"), "127.0.0.1:8080"));
        assert!(!same_origin(Some("null"), None, "127.0.0.1:8080"));
    }
}
