//! Time as a dependency. Domain code never reads the system clock; it asks a [`Clock`], so tests can
//! fix or advance time and every stored timestamp has the same precision.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use accord_audit::receipt::civil_from_days;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A UTC instant in whole microseconds since the Unix epoch: the precision both databases keep, so
/// what is hashed is exactly what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// In the OpenAPI document: the integer it serialises to (microseconds since the Unix epoch, UTC).
/// Answers that show instants as text mark those fields as RFC 3339 strings instead.
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                utoipa::openapi::schema::KnownFormat::Int64,
            )))
            .description(Some("Microseconds since 1970-01-01T00:00:00Z (UTC)."))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

impl Timestamp {
    /// The earliest instant the ledger can hold: canonical JSON carries integers of at most
    /// 2^53 − 1 in magnitude (1684-12-… in microseconds).
    pub const MIN: Timestamp = Timestamp(-(1 << 53) + 1);
    /// The latest instant the ledger can hold (2255-06-05T23:47:34.740991Z).
    pub const MAX: Timestamp = Timestamp((1 << 53) - 1);

    pub fn micros(self) -> i64 {
        self.0
    }

    /// Whether the ledger can hold this instant.
    pub fn in_ledger_range(self) -> bool {
        (Self::MIN..=Self::MAX).contains(&self)
    }

    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        Timestamp(dt.timestamp_micros())
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// RFC 3339 with microseconds, e.g. `2026-11-23T08:00:00.000000Z`.
    pub fn to_rfc3339(self) -> String {
        let mut buf = [0u8; RFC3339_LEN];
        match self.write_rfc3339(&mut buf) {
            Some(text) => text.to_string(),
            None => self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        }
    }

    /// [`Timestamp::to_rfc3339`] into `buf`, without allocating, for the years 0000 to 9999 (the
    /// others, which need a sign and more digits, answer `None`). Every check answer carries one or
    /// two of these, so they are written directly rather than through a calendar library.
    pub fn write_rfc3339(self, buf: &mut [u8; RFC3339_LEN]) -> Option<&str> {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, of_day / 3600);
        put(14, 2, of_day / 60 % 60);
        put(17, 2, of_day % 60);
        put(20, 6, micros);
        for (at, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
        ] {
            buf[at] = c;
        }
        buf[26] = b'Z';
        std::str::from_utf8(buf).ok()
    }

    pub fn saturating_sub_micros(self, other: Timestamp) -> i64 {
        self.0.saturating_sub(other.0)
    }
}

/// Length of `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub const RFC3339_LEN: usize = 27;

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The one source of time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock, truncated to whole microseconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
    fn now(&self) -> Timestamp {
        Timestamp(Utc::now().timestamp_micros())
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(AtomicI64::new(start.0))
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    pub fn advance_micros(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_microseconds() {
        assert_eq!(
            Timestamp(1_700_000_000_123_456).to_rfc3339(),
            "2023-11-14T22:13:20.123456Z"
        );
    }

    #[test]
    fn rfc3339_agrees_with_the_calendar_library() {
        let check = |micros: i64| {
            let t = Timestamp(micros);
            let want = t.to_datetime().to_rfc3339_opts(SecondsFormat::Micros, true);
            assert_eq!(t.to_rfc3339(), want, "{micros}");
        };
        let first = -62_167_219_200_000_000; // 0000-01-01T00:00:00Z
        let last = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z
        for edge in [
            first,
            first - 1,
            last,
            last + 1,
            -1,
            0,
            1,
            951_782_400_000_000,
        ] {
            check(edge);
        }
        // Pseudo-random instants over the whole four-digit range.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check(first + (x % (last - first + 1) as u64) as i64);
        }
        // The first and last microsecond of every day from 1896 to 2104 (1900 and 2100 are not
        // leap years, 2000 is) and of the first and last years of the range.
        let day = 86_400_000_000i64;
        let days = |from: i64, to: i64| (from / day)..(to / day);
        for d in days(-2_335_219_200_000_000, 4_260_211_200_000_000)
            .chain(days(first, first + 366 * day))
            .chain(days(last - 366 * day, last))
        {
            check(d * day);
            check(d * day - 1);
        }
        // Outside the four-digit years: the calendar library's signed form.
        let mut buf = [0u8; RFC3339_LEN];
        for outside in [first - 1, last + 1, i64::MIN, i64::MAX] {
            assert_eq!(
                Timestamp(outside).write_rfc3339(&mut buf),
                None,
                "{outside}"
            );
            check(outside);
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(10));
        assert_eq!(c.now(), Timestamp(10));
        c.advance_micros(5);
        assert_eq!(c.now(), Timestamp(15));
    }
}

/// Serde helpers for API answers, which show instants as RFC 3339 text.
pub mod rfc3339 {
    use super::Timestamp;

    pub fn serialize<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; super::RFC3339_LEN];
        match t.write_rfc3339(&mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&t.to_rfc3339()),
        }
    }

    pub fn option<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serialize(t, s),
            None => s.serialize_none(),
        }
    }
}
