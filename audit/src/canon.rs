//! RFC 8785 JSON Canonicalization Scheme (JCS), restricted to integers.
//!
//! Hashed JSON must have one byte spelling regardless of which serializer wrote it, so leaf bodies
//! and payload commitments go through here. Floats are refused rather than canonicalised: their
//! ECMAScript rendering is easy to get subtly wrong across languages, and nothing in the ledger
//! needs them (amounts are integers in minor units, times are integer microseconds).

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt::{self, Write as _};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::bytes::{find_special, utf16_cmp};

/// The largest integer magnitude an IEEE 754 double represents exactly (2^53 - 1); I-JSON's limit.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a value has no canonical form here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonError {
    /// A float, or an integer beyond ±(2^53 - 1), at `path` (e.g. `$.items[3].amount`).
    #[error(
        "number at {path} is not an integer within ±(2^53-1); canonical JSON here carries only such integers"
    )]
    Number {
        /// JSONPath-style location of the offending number.
        path: String,
    },
}

/// Serialises `v` as RFC 8785 canonical JSON: object members sorted by the UTF-16 code units of
/// their names, no insignificant whitespace, strings escaped exactly as RFC 8785 §3.2.2.2 says.
///
/// Numbers must be integers with magnitude at most 2^53 - 1; anything else is
/// [`CanonError::Number`] naming where it is. Equal values always give byte-identical output.
pub fn canonical_json(v: &Value) -> Result<String, CanonError> {
    let mut out = String::new();
    canonical_json_into(v, &mut out)?;
    Ok(out)
}

/// [`canonical_json`] onto the end of `out` (which is left with a partial text on error).
pub(crate) fn canonical_json_into(v: &Value, out: &mut String) -> Result<(), CanonError> {
    write_value(out, v).map_err(|segments| {
        // The failing number's location, collected innermost first while unwinding.
        let mut path = String::from("$");
        for segment in segments.iter().rev() {
            match segment {
                Segment::Index(i) => {
                    let _ = write!(path, "[{i}]");
                }
                Segment::Member(k) => push_member_path(&mut path, k),
            }
        }
        CanonError::Number { path }
    })
}

/// One step of a JSON path, for [`CanonError::Number`].
enum Segment<'v> {
    Index(usize),
    Member(&'v str),
}

/// Writes `v`; on a number without a canonical form, the path to it, innermost step first.
fn write_value<'v>(out: &mut String, v: &'v Value) -> Result<(), Vec<Segment<'v>>> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            let ok = if let Some(u) = n.as_u64() {
                u <= MAX_SAFE_INTEGER && {
                    let _ = write!(out, "{u}");
                    true
                }
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs() <= MAX_SAFE_INTEGER && {
                    let _ = write!(out, "{i}");
                    true
                }
            } else {
                false
            };
            if !ok {
                return Err(Vec::new());
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item).map_err(|mut p| {
                    p.push(Segment::Index(i));
                    p
                })?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // The map usually iterates in byte order already, which is the UTF-16 order unless
            // names mix characters above U+FFFF with U+E000..U+FFFF; sort only when it is not.
            let mut names = map.keys();
            let mut ordered = true;
            if let Some(mut previous) = names.next() {
                for name in names {
                    if utf16_cmp(previous, name) == Ordering::Greater {
                        ordered = false;
                        break;
                    }
                    previous = name;
                }
            }
            out.push('{');
            if ordered {
                write_members(out, map.iter())?;
            } else {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| utf16_cmp(a.0, b.0));
                write_members(out, entries.into_iter())?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_members<'v>(
    out: &mut String,
    members: impl Iterator<Item = (&'v String, &'v Value)>,
) -> Result<(), Vec<Segment<'v>>> {
    for (i, (k, item)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, k);
        out.push(':');
        write_value(out, item).map_err(|mut p| {
            p.push(Segment::Member(k));
            p
        })?;
    }
    Ok(())
}

/// `.name` for identifier-like names, `["name"]` otherwise, so the path stays unambiguous.
fn push_member_path(path: &mut String, k: &str) {
    let simple = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !k.starts_with(|c: char| c.is_ascii_digit());
    if simple {
        path.push('.');
        path.push_str(k);
    } else {
        path.push('[');
        write_string(path, k);
        path.push(']');
    }
}

/// RFC 8785 §3.2.2.2 string serialisation (the ECMAScript JSON.stringify rules).
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut run = 0;
    loop {
        // Copy the longest run that needs no escape in one go; `at` is always an ASCII byte.
        let at = find_special(bytes, run);
        out.push_str(&s[run..at]);
        let Some(&b) = bytes.get(at) else {
            break;
        };
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{c:04x}");
            }
        }
        run = at + 1;
    }
    out.push('"');
}

/// A member name that appears twice in one JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateMember {
    /// The repeated name.
    pub name: String,
    /// JSONPath-style location of its second appearance, e.g. `$.payload.data.decision`.
    pub path: String,
}

/// The first member name (in text order) that appears twice within one object, at any depth of
/// the JSON text `text`; `Ok(None)` when every object's names are distinct.
///
/// `serde_json` keeps the last of duplicate members without a word, while other readers keep the
/// first or refuse, so a text with duplicates can mean different things to different readers:
/// whatever is verified must not have any. An `Err` is `serde_json`'s own reason why `text` is not
/// one JSON value (nested deeper than its limit of 128 included).
pub fn duplicate_member(text: &str) -> Result<Option<DuplicateMember>, serde_json::Error> {
    let mut walk = Walk {
        path: String::from("$"),
        found: None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    (&mut walk).deserialize(&mut de)?;
    de.end()?;
    Ok(walk.found)
}

/// Walks a JSON value for [`duplicate_member`], keeping the path to where it is.
struct Walk {
    path: String,
    found: Option<DuplicateMember>,
}

impl<'de> DeserializeSeed<'de> for &mut Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let len = self.path.len();
        for i in 0usize.. {
            let _ = write!(self.path, "[{i}]");
            let more = items.next_element_seed(&mut *self)?.is_some();
            self.path.truncate(len);
            if !more {
                break;
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        let len = self.path.len();
        let mut names = HashSet::new();
        while let Some(name) = members.next_key::<String>()? {
            push_member_path(&mut self.path, &name);
            if self.found.is_none() && names.contains(&name) {
                self.found = Some(DuplicateMember {
                    name,
                    path: self.path.clone(),
                });
            } else {
                names.insert(name);
            }
            members.next_value_seed(&mut *self)?;
            self.path.truncate(len);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> Result<String, CanonError> {
        let v: Value = serde_json::from_str(text).unwrap();
        canonical_json(&v)
    }

    #[test]
    fn rfc8785_string_escaping_example() {
        // RFC 8785 §3.2.2.2 example input and its canonical form.
        let input = r#""\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/""#;
        assert_eq!(
            canon(input).unwrap(),
            "\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\""
        );
    }

    #[test]
    fn all_control_characters() {
        let s: String = (0u32..0x20).filter_map(char::from_u32).collect();
        let got = canonical_json(&Value::String(s)).unwrap();
        assert_eq!(
            got,
            "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\
             \\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\""
        );
        // DEL, U+2028 and non-ASCII stay literal.
        assert_eq!(
            canonical_json(&json!("\u{7f}\u{2028}é😀")).unwrap(),
            "\"\u{7f}\u{2028}é😀\""
        );
    }

    #[test]
    fn rfc8785_key_ordering_example() {
        // RFC 8785 §3.2.3: sorted by UTF-16 code units.
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
                    \"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\
                    \"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(canon(input).unwrap(), want);
    }

    #[test]
    fn utf16_order_differs_from_utf8_order() {
        // U+E000 sorts before U+1F600 in UTF-8 bytes (EE.. < F0..) but after it in UTF-16
        // (E000 > D83D), and RFC 8785 wants the UTF-16 order.
        assert!("\u{e000}".as_bytes() < "\u{1f600}".as_bytes());
        let v = json!({"\u{e000}": 1, "\u{1f600}": 2});
        assert_eq!(
            canonical_json(&v).unwrap(),
            "{\"\u{1f600}\":2,\"\u{e000}\":1}"
        );
    }

    #[test]
    fn nested_structures_and_whitespace() {
        let got = canon(r#" { "b" : [ 1 , { "z": null, "a": true } ], "a": "x" , "": false } "#);
        assert_eq!(
            got.unwrap(),
            r#"{"":false,"a":"x","b":[1,{"a":true,"z":null}]}"#
        );
        assert_eq!(canon("[]").unwrap(), "[]");
        assert_eq!(canon("{}").unwrap(), "{}");
    }

    #[test]
    fn integers_in_range_accepted() {
        assert_eq!(canon("0").unwrap(), "0");
        assert_eq!(canon("9007199254740991").unwrap(), "9007199254740991");
        assert_eq!(canon("-9007199254740991").unwrap(), "-9007199254740991");
        assert_eq!(canon("[-1,42]").unwrap(), "[-1,42]");
    }

    #[test]
    fn floats_and_big_integers_rejected_with_path() {
        let err = canon(r#"{"items":[{"amount":1},{"amount":2},{"amount":3},{"amount":1.5}]}"#)
            .unwrap_err();
        assert_eq!(
            err,
            CanonError::Number {
                path: "$.items[3].amount".into()
            }
        );
        assert!(err.to_string().contains("$.items[3].amount"));
        assert_eq!(
            canon("1.0").unwrap_err(),
            CanonError::Number { path: "$".into() }
        );
        assert_eq!(
            canon("[1e2]").unwrap_err(),
            CanonError::Number {
                path: "$[0]".into()
            }
        );
        assert_eq!(
            canon(r#"{"a b":{"x":9007199254740992}}"#).unwrap_err(),
            CanonError::Number {
                path: r#"$["a b"].x"#.into()
            }
        );
        assert_eq!(
            canon("-9007199254740992").unwrap_err(),
            CanonError::Number { path: "$".into() }
        );
        assert!(canon("18446744073709551615").is_err());
    }

    #[test]
    fn duplicate_members_are_found_at_any_depth() {
        let dup = |text: &str| duplicate_member(text).unwrap().map(|d| (d.name, d.path));
        assert_eq!(dup(r#"{"a":1,"b":[{"c":{}}],"d":"a"}"#), None);
        assert_eq!(dup(r#"[{"a":1},{"a":2}]"#), None);
        assert_eq!(dup("1"), None);
        assert_eq!(dup(r#"{"a":1,"a":2}"#), Some(("a".into(), "$.a".into())));
        assert_eq!(
            dup(r#"{"x":[0,{"y":{"k":1,"z":2,"k":3}}]}"#),
            Some(("k".into(), "$.x[1].y.k".into()))
        );
        // The first in text order; names are compared after unescaping.
        assert_eq!(
            dup(r#"{"p":{"q":1,"q":2},"p":3}"#),
            Some(("q".into(), "$.p.q".into()))
        );
        assert_eq!(
            dup(r#"{"a b":0,"a\u0020b":1}"#),
            Some(("a b".into(), r#"$["a b"]"#.into()))
        );
        assert!(duplicate_member("{\"a\":").is_err());
        assert!(duplicate_member("1 2").is_err());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(duplicate_member(&deep).is_err());
    }
}
