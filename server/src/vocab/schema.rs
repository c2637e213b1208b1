//! The rules of [`super::rules`] as JSON Schema, for the OpenAPI document: each pattern admits exactly what
//! its validator does under JSON Schema's (ECMA-262) and Rust's `regex` semantics (a test holds
//! them to it), so character classes are spelt out: `\s` means different things in different
//! engines. (Python's `re` differs in one way: its `$` also matches before a final newline.)

use serde_json::{Value, json};

/// Unicode's control characters (general category Cc: what `char::is_control` is).
pub const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";
/// The controls free text may not hold: all but tab, line feed and carriage return.
pub const CONTROL_BUT_LINES: &str = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f";
/// Unicode White_Space that is not a control (`char::is_whitespace` minus `CONTROL`).
pub const SPACE: &str = r"\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Every Unicode White_Space character (`char::is_whitespace`; what `str::trim` removes).
pub const WHITE_SPACE: &str =
    r"\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

pub const KEY: &str = "^[a-z][a-z0-9._-]{0,63}$";
pub const VERSION: &str = "^[A-Za-z0-9._-]{1,32}$";
pub const SHA256_HEX: &str = "^[0-9a-f]{64}$";
pub const JURISDICTION: &str = "^[A-Z][A-Z0-9-]{1,5}$";
/// An instant: RFC 3339 with a year from 1700 to 2249 (inside the ledger's range whatever
/// the offset).
pub const INSTANT: &str = concat!(
    "^(?:1[7-9][0-9]{2}|2[01][0-9]{2}|22[0-4][0-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])",
    "T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,9})?",
    "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
);

fn string(pattern: String, min: usize, max: usize) -> Value {
    json!({"type": "string", "pattern": pattern, "minLength": min, "maxLength": max})
}

pub fn subject() -> Value {
    string(
        format!("^[^{CONTROL}{SPACE}](?:[^{CONTROL}]*[^{CONTROL}{SPACE}])?$"),
        1,
        256,
    )
}

pub fn key() -> Value {
    string(KEY.into(), 1, 64)
}

pub fn version() -> Value {
    string(VERSION.into(), 1, 32)
}

pub fn sha256_hex() -> Value {
    string(SHA256_HEX.into(), 64, 64)
}

pub fn jurisdiction() -> Value {
    string(JURISDICTION.into(), 2, 6)
}

/// Free text of at most `max` characters: no controls but tab and line breaks; when
/// `required`, something besides white space.
pub fn text(max: usize, required: bool) -> Value {
    if required {
        string(
            format!("^[^{CONTROL_BUT_LINES}]*[^{CONTROL}{SPACE}][^{CONTROL_BUT_LINES}]*$"),
            1,
            max,
        )
    } else {
        string(format!("^[^{CONTROL_BUT_LINES}]*$"), 0, max)
    }
}

pub fn url() -> Value {
    string(
        format!("^[hH][tT][tT][pP][sS]?://[^{CONTROL}{SPACE}]+$"),
        8,
        2048,
    )
}

pub fn instant() -> Value {
    json!({"type": "string", "format": "date-time", "pattern": INSTANT, "minLength": 20, "maxLength": 35})
}

/// Whether `s` is written as [`INSTANT`] says (the calendar is checked by the parser).
pub fn instant_shape(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|d| d.len() == r.len() && d.iter().all(u8::is_ascii_digit))
    };
    let num = |r: std::ops::Range<usize>| -> u32 {
        b[r].iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
    };
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    if !(1700..=2249).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        let n = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        i += 1 + n;
    }
    match &b[i..] {
        b"Z" => true,
        [sign, ..] if (*sign == b'+' || *sign == b'-') && b.len() == i + 6 => {
            digits(i + 1..i + 3)
                && b[i + 3] == b':'
                && digits(i + 4..i + 6)
                && num(i + 1..i + 3) <= 23
                && num(i + 4..i + 6) <= 59
        }
        _ => false,
    }
}

/// A pattern for the whole numbers 1 to `max` written without leading zeros.
pub fn up_to(max: u64) -> String {
    let m = max.to_string();
    let m = m.as_bytes();
    let k = m.len();
    let mut alts = Vec::new();
    if k > 1 {
        alts.push(if k == 2 {
            "[1-9]".to_string()
        } else {
            format!("[1-9][0-9]{{0,{}}}", k - 2)
        });
    }
    for i in 0..k {
        let low = if i == 0 { b'1' } else { b'0' };
        if m[i] > low {
            let prefix = std::str::from_utf8(&m[..i]).unwrap_or_default();
            let rest = k - i - 1;
            let class = if m[i] - 1 == low {
                format!("{}", char::from(low))
            } else {
                format!("[{}-{}]", char::from(low), char::from(m[i] - 1))
            };
            alts.push(match rest {
                0 => format!("{prefix}{class}"),
                1 => format!("{prefix}{class}[0-9]"),
                _ => format!("{prefix}{class}[0-9]{{{rest}}}"),
            });
        }
    }
    alts.push(std::str::from_utf8(m).unwrap_or_default().to_string());
    format!("(?:{})", alts.join("|"))
}
