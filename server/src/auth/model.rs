//! The vocabulary of access: roles, people, services, and the checks on what callers send.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::AppError;

crate::text_enum! {
    /// The roles of DESIGN §5. What each may do is in `policies/policy.csv`.
    pub enum Role: "role" {
        Admin => "admin",
        ComplianceOfficer => "compliance_officer",
        Legal => "legal",
        MarketingLead => "marketing_lead",
        Marketer => "marketer",
        Auditor => "auditor",
        Service => "service",
    }
}

/// A normalised e-mail address (trimmed, lowercase).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Email, AppError> {
        let s = raw.trim().to_lowercase();
        let bad = |why: &str| AppError::validation(field, why.to_string());
        if s.is_empty() || s.len() > 254 {
            return Err(bad("must be an e-mail address of at most 254 characters"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain spaces or control characters"));
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err(bad("must contain an @"));
        };
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(bad("must have one @ with text on both sides"));
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(bad("must have a domain such as example.com after the @"));
        }
        Ok(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's display name: 1–200 printable characters.
pub fn validate_name(field: &str, raw: &str) -> Result<String, AppError> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) {
        return Err(AppError::validation(
            field,
            "must be 1 to 200 printable characters",
        ));
    }
    Ok(s.to_string())
}

/// A service client name: 1–64 of a-z, 0-9, `.`, `_`, `-`.
pub fn validate_client(field: &str, raw: &str) -> Result<String, AppError> {
    let s = raw.trim();
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(AppError::validation(
            field,
            "must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-'",
        ));
    }
    Ok(s.to_string())
}

/// The longest lifetime a token may have.
pub const MAX_TTL_SECS: u64 = 366 * 86_400;

/// [`parse_ttl`]'s rule as JSON Schema: a whole number without leading zeros and a unit, at most
/// 366 days.
pub fn ttl_schema() -> serde_json::Value {
    use crate::vocab::schema::up_to;
    let pattern = format!(
        "^(?:{}d|{}h|{}m|{}s)$",
        up_to(MAX_TTL_SECS / 86_400),
        up_to(MAX_TTL_SECS / 3600),
        up_to(MAX_TTL_SECS / 60),
        up_to(MAX_TTL_SECS)
    );
    serde_json::json!({"type": ["string", "null"], "pattern": pattern, "maxLength": 9})
}

/// [`validate_client`]'s rule as JSON Schema (surrounding white space is trimmed).
pub fn client_schema() -> serde_json::Value {
    use crate::vocab::schema::WHITE_SPACE;
    serde_json::json!({
        "type": "string",
        "pattern": format!("^[{WHITE_SPACE}]*[a-z0-9._-]{{1,64}}[{WHITE_SPACE}]*$"),
    })
}

/// A password: 12 to 1024 characters. Length is what makes a password strong; no composition rules.
pub fn validate_password(field: &str, raw: &str) -> Result<(), AppError> {
    let n = raw.chars().count();
    if n < 12 {
        return Err(AppError::validation(
            field,
            "must be at least 12 characters",
        ));
    }
    if n > 1024 {
        return Err(AppError::validation(
            field,
            "must be at most 1024 characters",
        ));
    }
    Ok(())
}

/// A lifetime such as `90d`, `12h`, `30m` or `3600s`; at most 366 days.
pub fn parse_ttl(field: &str, raw: &str) -> Result<Duration, AppError> {
    let bad = || {
        AppError::validation(
            field,
            format!("{raw:?} is not a lifetime such as 90d, 12h, 30m or 3600s (at most 366d)"),
        )
    };
    let split = raw.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = raw.split_at(split);
    if num.starts_with('0') {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if secs == 0 || secs > MAX_TTL_SECS {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_reject_unknown() {
        for &r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
        let e = Role::parse_field("role", "root").unwrap_err();
        assert!(e.to_string().contains("compliance_officer"));
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("email", " Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a da@example.com",
            "a@b@c.d",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttls_parse_with_units_and_bounds() {
        assert_eq!(
            parse_ttl("ttl", "90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            parse_ttl("ttl", "12h").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(parse_ttl("ttl", "45s").unwrap(), Duration::from_secs(45));
        for bad in [
            "",
            "d",
            "0d",
            "400d",
            "12x",
            "1.5h",
            "-1d",
            "090d",
            " 90d",
            "367d",
            "8785h",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl("ttl", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_ttl_schema_admits_exactly_what_parse_ttl_does() {
        let schema = ttl_schema();
        let re = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
        let mut samples: Vec<String> = ["", "d", "1", "1d ", "01d", "1.0d", "1D", "+1d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for n in (0..10_000u64).chain([527_040, 527_041, 31_622_400, 31_622_401, 99_999_999]) {
            for unit in ["d", "h", "m", "s", "x"] {
                samples.push(format!("{n}{unit}"));
            }
        }
        for s in &samples {
            assert_eq!(re.is_match(s), parse_ttl("ttl", s).is_ok(), "{s:?}");
            assert!(s.len() <= 9 || parse_ttl("ttl", s).is_err());
        }
    }

    #[test]
    fn passwords_need_length_only() {
        assert!(validate_password("password", "short").is_err());
        assert!(validate_password("password", "correct horse battery").is_ok());
        assert!(validate_password("password", &"x".repeat(1025)).is_err());
    }

    #[test]
    fn client_names_are_plain() {
        assert!(validate_client("client", "crm-sync.prod").is_ok());
        assert!(validate_client("client", "CRM").is_err());
        assert!(validate_client("client", "a b").is_err());
    }
}
