//! Request bodies read by hand (for routes whose limits or formats differ from the JSON default):
//! content-type checks and size-limited reads.

use actix_web::web::{self, BytesMut};
use actix_web::{HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// The request's media type (lowercase, parameters dropped), if it is one of `allowed`.
pub fn media_type(req: &HttpRequest, allowed: &[&'static str]) -> Result<&'static str, AppError> {
    let ct = req.content_type().trim().to_ascii_lowercase();
    allowed.iter().find(|a| **a == ct).copied().ok_or_else(|| {
        AppError::UnsupportedMediaType(format!(
            "send the body as {}{}",
            allowed.join(" or "),
            if ct.is_empty() {
                String::new()
            } else {
                format!(" (not {ct})")
            }
        ))
    })
}

/// Requires a JSON body: `application/json`, or a media type with a `json` subtype or a `+json`
/// suffix (as the JSON extractor takes them).
pub fn json_media_type(req: &HttpRequest) -> Result<(), AppError> {
    match req.mime_type().ok().flatten() {
        Some(m) if m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json") => Ok(()),
        _ => Err(AppError::UnsupportedMediaType(
            "send the body as application/json".into(),
        )),
    }
}

/// A JSON body that may be left out (empty or blank): its default then.
pub fn optional_json<T: DeserializeOwned + Default>(
    req: &HttpRequest,
    bytes: &[u8],
) -> Result<T, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_media_type(req)?;
    json(bytes)
}

/// A body's name for what the path names (`key`, `id`) must be the path's, if given.
pub fn same_as_path(field: &str, body: Option<&str>, path: &str) -> Result<(), AppError> {
    match body {
        Some(b) if b != path => Err(AppError::validation(
            field,
            format!("the body names {b:?} but the path names {path:?}"),
        )),
        _ => Ok(()),
    }
}

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_limited(mut payload: web::Payload, limit: usize) -> Result<BytesMut, AppError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| AppError::BadRequest(format!("the body could not be read: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge(format!(
                "the body is larger than {limit} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Parses a JSON body with an error that says where it went wrong.
/// An optional whole number as JSON Schema's `integer` means it: `90` or `90.0`, not `90.5`
/// (`#[serde(default, deserialize_with = "crate::body::whole_number")]`).
pub fn whole_number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i128>,
{
    use serde::Deserialize;
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = if let Some(i) = n.as_i64() {
        Some(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Some(i128::from(u))
    } else {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 2f64.powi(64))
            .map(|f| f as i128)
    };
    whole
        .and_then(|w| T::try_from(w).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number in range")))
}

pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(bytes).map_err(|e| AppError::BadRequest(format!("bad JSON body: {e}")))
}

/// Splits a streamed body into lines as chunks arrive; a line may span chunks. A line longer than
/// the buffer's limit stops it (see [`LineBuffer::too_long`]) without buffering the rest.
#[derive(Debug)]
pub struct LineBuffer {
    pending: Vec<u8>,
    /// Lines handed out so far (the next line's number is `line + 1`).
    pub line: u64,
    max_line: usize,
    too_long: Option<u64>,
}

impl LineBuffer {
    /// A buffer for lines of at most `max_line` bytes (without the newline).
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            pending: Vec::new(),
            line: 0,
            max_line,
            too_long: None,
        }
    }

    /// The number of the line that went past the limit, if one did.
    pub fn too_long(&self) -> Option<u64> {
        self.too_long
    }

    /// Whether a line has begun and not yet ended.
    pub fn mid_line(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The limit, in bytes.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    fn overflow(&mut self) -> bool {
        self.too_long = Some(self.line + 1);
        self.pending = Vec::new();
        false
    }

    /// Feeds a chunk; calls `f(line_number, line)` for every line it completes (without the
    /// newline). Stops early when `f` returns false, or when a line is longer than the limit.
    pub fn push(&mut self, chunk: &[u8], mut f: impl FnMut(u64, &[u8]) -> bool) -> bool {
        if self.too_long.is_some() {
            return false;
        }
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            if self.pending.len() + i > self.max_line {
                return self.overflow();
            }
            self.line += 1;
            let more = if self.pending.is_empty() {
                f(self.line, &rest[..i])
            } else {
                self.pending.extend_from_slice(&rest[..i]);
                let line = std::mem::take(&mut self.pending);
                f(self.line, &line)
            };
            rest = &rest[i + 1..];
            if !more {
                return false;
            }
        }
        if self.pending.len() + rest.len() > self.max_line {
            return self.overflow();
        }
        self.pending.extend_from_slice(rest);
        true
    }

    /// The last line, if the body did not end with a newline.
    pub fn finish(&mut self, mut f: impl FnMut(u64, &[u8]) -> bool) -> bool {
        if self.pending.is_empty() || self.too_long.is_some() {
            return self.too_long.is_none();
        }
        self.line += 1;
        let line = std::mem::take(&mut self.pending);
        f(self.line, &line)
    }

    /// The error for a line past the limit: 413 naming the line and the setting.
    pub fn too_long_error(&self) -> Option<AppError> {
        self.too_long.map(|line| {
            AppError::PayloadTooLarge(format!(
                "line {line} is longer than {} bytes (the limit limits.line_bytes); nothing was written",
                self.max_line
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_span_chunks() {
        let mut b = LineBuffer::new(16);
        let mut got = Vec::new();
        b.push(b"ab\ncd", |n, l| {
            got.push((n, l.to_vec()));
            true
        });
        b.push(b"e\n\nf", |n, l| {
            got.push((n, l.to_vec()));
            true
        });
        b.finish(|n, l| {
            got.push((n, l.to_vec()));
            true
        });
        assert_eq!(
            got,
            vec![
                (1, b"ab".to_vec()),
                (2, b"cde".to_vec()),
                (3, b"".to_vec()),
                (4, b"f".to_vec())
            ]
        );
    }

    #[test]
    fn a_line_past_the_limit_stops_the_buffer_and_is_named() {
        let mut b = LineBuffer::new(4);
        let mut got = Vec::new();
        assert!(b.push(b"abcd\nab", |n, _| {
            got.push(n);
            true
        }));
        // The second line grows past four bytes across chunks: stopped, nothing more handed out.
        assert!(!b.push(b"cde\nx\n", |n, _| {
            got.push(n);
            true
        }));
        assert_eq!(got, vec![1]);
        assert_eq!(b.too_long(), Some(2));
        assert!(!b.push(b"y\n", |_, _| true));
        assert!(!b.finish(|_, _| true));
        let e = b.too_long_error().unwrap();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(e.to_string().contains("limits.line_bytes"), "{e}");
        // One long line inside one chunk.
        let mut b = LineBuffer::new(4);
        assert!(!b.push(b"abcdef\n", |_, _| true));
        assert_eq!(b.too_long(), Some(1));
    }

    #[derive(Debug, serde::Deserialize)]
    struct Days {
        #[serde(default, deserialize_with = "super::whole_number")]
        days: Option<i64>,
    }

    #[test]
    fn whole_numbers_are_integers_as_json_schema_counts_them() {
        let days = |json: &str| serde_json::from_str::<Days>(json).map(|d| d.days);
        assert_eq!(days(r#"{"days": 30}"#).unwrap(), Some(30));
        assert_eq!(days(r#"{"days": 30.0}"#).unwrap(), Some(30));
        assert_eq!(days(r#"{"days": -2e0}"#).unwrap(), Some(-2));
        assert_eq!(days(r#"{"days": null}"#).unwrap(), None);
        assert_eq!(days("{}").unwrap(), None);
        assert!(days(r#"{"days": 30.5}"#).is_err());
        assert!(days(r#"{"days": 1e300}"#).is_err());
        assert!(days(r#"{"days": 18446744073709551615}"#).is_err());
        assert!(days(r#"{"days": "30"}"#).is_err());
    }
}
