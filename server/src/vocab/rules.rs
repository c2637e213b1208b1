//! Validators that several domains need. Each parses what a caller sent into a type that can
//! only hold a valid value (`SubjectId::parse(field, &str)`), with an error naming the field and
//! what is wrong; its JSON Schema is beside it in [`super::schema`], held to it by the tests below.

use serde::Serialize;

use super::schema;
use crate::clock::Timestamp;
use crate::error::AppError;

/// Declares a text newtype whose only constructor is its `parse`, and which is sent as its text.
macro_rules! checked_text {
    ($(#[$meta:meta])* $name:ident, $check:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses the value of the request field `field`.
            pub fn parse(field: &str, s: &str) -> Result<$name, AppError> {
                $check(field, s).map(|()| $name(s.to_string()))
            }

            /// Checks the value of the request field `field` without keeping it (no allocation:
            /// the consent-check paths call this for every subject).
            pub fn check(field: &str, s: &str) -> Result<(), AppError> {
                $check(field, s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_text!(
    /// A data subject's id: 1–256 characters, no control characters, no surrounding white space.
    SubjectId,
    check_subject_id
);
checked_text!(
    /// A key such as `marketing.email`: lowercase letters, digits, `.`, `_`, `-`, starting with
    /// a letter, at most 64 characters.
    Key,
    check_key
);
checked_text!(
    /// A version such as `2026-03` or `v4.1`.
    Version,
    check_version
);
checked_text!(
    /// An absolute `http(s)://` URL or IRI.
    Url,
    check_url
);
checked_text!(
    /// A SHA-256 as 64 lowercase hex digits.
    Sha256Hex,
    check_sha256_hex
);
checked_text!(
    /// A jurisdiction: an ISO 3166 code such as `DE`, `US-CA`, or `EU`.
    Jurisdiction,
    check_jurisdiction
);

fn bad(field: &str, why: impl Into<String>) -> AppError {
    AppError::validation(field, why)
}

/// A subject id: 1–256 characters, no control characters, no surrounding white space.
fn check_subject_id(field: &str, s: &str) -> Result<(), AppError> {
    if s.is_empty() || s.chars().count() > 256 {
        return Err(bad(field, "a subject id has 1 to 256 characters"));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(field, "a subject id cannot hold control characters"));
    }
    if s.trim() != s {
        return Err(bad(
            field,
            "a subject id cannot start or end with white space",
        ));
    }
    Ok(())
}

/// A key such as `marketing.email`: lowercase letters, digits, `.`, `_`, `-`, starting with a
/// letter, at most 64 characters.
fn check_key(field: &str, s: &str) -> Result<(), AppError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!(
                "{s:?} is not a valid key: use 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter"
            ),
        ))
    }
}

/// A notice version such as `2026-03` or `v4.1`.
fn check_version(field: &str, s: &str) -> Result<(), AppError> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("{s:?} is not a valid version: use 1 to 32 letters, digits, '.', '_' or '-'"),
        ))
    }
}

/// A whole number a request may leave out (then `default`), within `range`: a query's `limit`,
/// `wait`. (Its schema: `{"type": "integer", "minimum": …, "maximum": …}`.)
pub fn bounded(
    field: &str,
    value: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<u64, AppError> {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(AppError::validation(
            field,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

/// Free text with a length limit and no control characters except newlines and tabs.
pub fn text(field: &str, s: &str, max: usize, required: bool) -> Result<(), AppError> {
    if required && s.trim().is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(bad(field, format!("must be at most {max} characters")));
    }
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(bad(field, "must not hold control characters"));
    }
    Ok(())
}

/// An absolute `http(s)://` URL or IRI.
fn check_url(field: &str, s: &str) -> Result<(), AppError> {
    text(field, s, 2048, true)?;
    let lower = s.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.contains(char::is_whitespace) => Ok(()),
        _ => Err(bad(field, format!("{s:?} is not an absolute http(s) URL"))),
    }
}

/// A SHA-256 as 64 lowercase hex digits.
fn check_sha256_hex(field: &str, s: &str) -> Result<(), AppError> {
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(bad(
            field,
            "must be a SHA-256 digest as 64 lowercase hexadecimal digits",
        ))
    }
}

/// A jurisdiction: an ISO 3166 code such as `DE`, `US-CA`, or `EU`.
fn check_jurisdiction(field: &str, s: &str) -> Result<(), AppError> {
    let ok = (2..=6).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_uppercase());
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("{s:?} is not a jurisdiction: use an ISO 3166 code such as DE, US-CA or EU"),
        ))
    }
}

/// Serde: an instant written as RFC 3339 text (see [`instant`]), for fields that are shown and
/// recorded as text (`#[serde(deserialize_with = "crate::vocab::rules::de_instant")]`).
pub fn de_instant<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    instant("instant", &s).map_err(|e| serde::de::Error::custom(e.to_string()))
}

/// [`de_instant`] for an optional field.
pub fn de_instant_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Timestamp>, D::Error> {
    let s = <Option<std::borrow::Cow<'de, str>> as serde::Deserialize>::deserialize(d)?;
    s.map(|s| instant("instant", &s).map_err(|e| serde::de::Error::custom(e.to_string())))
        .transpose()
}

/// Parses an RFC 3339 instant written as [`schema::INSTANT`] says (a year from 1700 to 2249,
/// `T` and `Z` in capitals, at most nine fractional digits), truncated to whole microseconds. Every
/// such instant lies within the range the ledger can hold ([`Timestamp::MIN`] to
/// [`Timestamp::MAX`]).
pub fn instant(field: &str, s: &str) -> Result<Timestamp, AppError> {
    if !schema::instant_shape(s) {
        return Err(bad(
            field,
            format!(
                "{s:?} is not an RFC 3339 date-time such as 2026-11-23T10:00:00Z, with a year from 1700 to 2249"
            ),
        ));
    }
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map(|dt| Timestamp(dt.timestamp_micros()))
        .map_err(|e| {
            bad(
                field,
                format!("{s:?} is not an RFC 3339 date-time such as 2026-11-23T10:00:00Z ({e})"),
            )
        })?;
    if !t.in_ledger_range() {
        return Err(bad(
            field,
            format!(
                "{s:?} is outside the range of instants the ledger can hold, {} to {}",
                Timestamp::MIN,
                Timestamp::MAX
            ),
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_name_the_problem() {
        assert!(Key::parse("purpose", "marketing.email").is_ok());
        assert!(Key::parse("purpose", "Marketing").is_err());
        assert!(Key::parse("purpose", "1abc").is_err());
        assert!(SubjectId::parse("subject", "s-1").is_ok());
        assert!(SubjectId::parse("subject", "").is_err());
        assert!(SubjectId::parse("subject", " s").is_err());
        assert!(SubjectId::check("subject", " s").is_err());
        assert!(SubjectId::check("subject", "s-1").is_ok());
        assert!(SubjectId::parse("subject", "a\u{0}b").is_err());
        assert!(Version::parse("version", "2026-03").is_ok());
        assert!(Version::parse("version", "a b").is_err());
        assert!(Url::parse("url", "https://example.com/privacy").is_ok());
        assert!(Url::parse("url", "ftp://example.com").is_err());
        assert!(Jurisdiction::parse("j", "US-CA").is_ok());
        assert!(Jurisdiction::parse("j", "germany").is_err());
        assert_eq!(
            instant("at", "2026-11-23T10:00:00.1234567Z").unwrap(),
            Timestamp(1_795_428_000_123_456)
        );
        assert!(instant("at", "yesterday").is_err());
        // Years 1700 to 2249, inside the ledger's range (canonical JSON's integers) whatever
        // the offset.
        assert!(instant("at", "2249-12-31T23:59:59.999999999-23:59").is_ok());
        assert!(instant("at", "1700-01-01T00:00:00+23:59").is_ok());
        let late = instant("expires_at", "2250-01-01T00:00:00Z").unwrap_err();
        assert!(late.to_string().contains("expires_at"), "{late}");
        assert!(late.to_string().contains("1700 to 2249"), "{late}");
        assert!(instant("at", "2300-01-01T00:00:00Z").is_err());
        assert!(instant("at", "1684-01-01T00:00:00Z").is_err());
        assert!(instant("at", "1699-12-31T23:59:59Z").is_err());
        for bad in [
            "2026-11-23t10:00:00Z",
            "2026-11-23T10:00:00z",
            "2026-11-23 10:00:00Z",
            " 2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00Z\n",
            "2026-11-23T10:00:60Z",
            "2026-11-23T10:00:00.Z",
            "2026-11-23T10:00:00.1234567890Z",
            "2026-11-23T10:00:00+24:00",
            "2026-11-23T10:00:00+0100",
            "2026-02-30T10:00:00Z",
            "+2026-11-23T10:00:00Z",
        ] {
            assert!(instant("at", bad).is_err(), "{bad:?}");
        }
        assert!(SubjectId::parse("subject", &"é".repeat(256)).is_ok());
        assert!(SubjectId::parse("subject", &"é".repeat(257)).is_err());
    }

    fn corpus() -> Vec<String> {
        let alphabet: Vec<char> = "aZz09._-:/ hHtTpPsS+TZé\u{0}\u{8}\t\n\u{b}\r\u{1f}\u{7f}\u{85}\u{9f}\u{a0}\u{1680}\u{2000}\u{200b}\u{2028}\u{3000}\u{feff}😀"
            .chars()
            .collect();
        let mut out: Vec<String> = [
            "",
            "a",
            " a",
            "a ",
            "a b",
            "marketing.email",
            "https://x",
            "http://",
            "HTTPS://example.com/p",
            "https://a b",
            "2026-03",
            "DE",
            "US-CA",
            "EU-",
            "dE",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let mut s = String::new();
            let mut y = x;
            for _ in 0..len {
                y = y
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push(alphabet[(y >> 33) as usize % alphabet.len()]);
            }
            // Some well-formed prefixes, so the rules' accepting side is exercised too.
            match x % 5 {
                0 => s.insert_str(0, "https://"),
                1 => s.insert(0, 'a'),
                _ => {}
            }
            out.push(s);
        }
        out
    }

    fn admits(schema: &serde_json::Value, re: &regex::Regex, s: &str) -> bool {
        let n = s.chars().count() as u64;
        re.is_match(s)
            && n >= schema["minLength"].as_u64().unwrap_or(0)
            && n <= schema["maxLength"].as_u64().unwrap_or(u64::MAX)
    }

    #[test]
    fn schemas_admit_exactly_what_validators_do() {
        type Validator = Box<dyn Fn(&str) -> bool>;
        let rules: Vec<(&str, serde_json::Value, Validator)> = vec![
            (
                "subject",
                schema::subject(),
                Box::new(|s| SubjectId::parse("f", s).is_ok()),
            ),
            (
                "key",
                schema::key(),
                Box::new(|s| Key::parse("f", s).is_ok()),
            ),
            (
                "version",
                schema::version(),
                Box::new(|s| Version::parse("f", s).is_ok()),
            ),
            (
                "sha256",
                schema::sha256_hex(),
                Box::new(|s| Sha256Hex::parse("f", s).is_ok()),
            ),
            (
                "jurisdiction",
                schema::jurisdiction(),
                Box::new(|s| Jurisdiction::parse("f", s).is_ok()),
            ),
            (
                "text required",
                schema::text(5, true),
                Box::new(|s| text("f", s, 5, true).is_ok()),
            ),
            (
                "text",
                schema::text(5, false),
                Box::new(|s| text("f", s, 5, false).is_ok()),
            ),
            (
                "url",
                schema::url(),
                Box::new(|s| Url::parse("f", s).is_ok()),
            ),
        ];
        let mut corpus = corpus();
        corpus.push("a".repeat(64));
        corpus.push(format!("a{}", "b".repeat(64)));
        corpus.push("f".repeat(64));
        corpus.push("x".repeat(256));
        corpus.push("x".repeat(257));
        for (name, schema, validator) in &rules {
            let re = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
            let mut accepted = 0;
            for s in &corpus {
                assert_eq!(
                    admits(schema, &re, s),
                    validator(s),
                    "the {name} schema and validator disagree on {s:?}"
                );
                accepted += usize::from(validator(s));
            }
            assert!(accepted > 0, "the corpus never satisfies the {name} rule");
        }
    }

    #[test]
    fn the_instant_schema_admits_exactly_what_the_parser_does() {
        let mut samples = vec![
            "2026-11-23T10:00:00Z".to_string(),
            "2026-11-23T10:00:00.5+01:00".to_string(),
        ];
        let parts: [&[&str]; 8] = [
            &[
                "1699", "1700", "2026", "2249", "2250", "0001", "9999", "20x6",
            ],
            &["-01", "-12", "-13", "-00", "/01"],
            &["-01", "-28", "-31", "-32", "-00"],
            &["T", "t", " "],
            &[
                "00:00:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60", "1:00:00",
            ],
            &["", ".1", ".123456789", ".1234567890", "."],
            &[
                "Z", "z", "+00:00", "-23:59", "+24:00", "+01:60", "+0100", "",
            ],
            &["", "\n", " "],
        ];
        let mut x: u64 = 7;
        for _ in 0..20_000 {
            let mut s = String::new();
            for p in parts {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push_str(p[(x >> 33) as usize % p.len()]);
            }
            samples.push(s);
        }
        let re = regex::Regex::new(schema::INSTANT).unwrap();
        let mut accepted = 0;
        for s in &samples {
            // The schema's `format: date-time` adds the calendar (no 31 November), as the parser does.
            let calendar = chrono::DateTime::parse_from_rfc3339(s).is_ok();
            assert_eq!(
                re.is_match(s) && calendar,
                instant("at", s).is_ok(),
                "the instant schema and parser disagree on {s:?}"
            );
            assert_eq!(re.is_match(s), schema::instant_shape(s), "{s:?}");
            accepted += usize::from(instant("at", s).is_ok());
        }
        assert!(accepted > 10, "{accepted}");
    }

    #[test]
    fn number_patterns_match_one_to_max() {
        for max in [
            1, 5, 9, 10, 11, 19, 20, 99, 100, 101, 366, 999, 1000, 8784, 527_040, 31_622_400,
        ] {
            let re = regex::Regex::new(&format!("^{}$", schema::up_to(max))).unwrap();
            for n in 0..=(max + 50).min(40_000) {
                assert_eq!(
                    re.is_match(&n.to_string()),
                    (1..=max).contains(&n),
                    "{max}: {n}"
                );
            }
            assert!(re.is_match(&max.to_string()));
            assert!(!re.is_match(&(max + 1).to_string()));
            assert!(!re.is_match(&format!("0{max}")));
        }
    }
}
