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
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(bytes).map_err(|e| AppError::BadRequest(format!("bad JSON body: {e}")))
}

/// Splits a streamed body into lines as chunks arrive; a line may span chunks.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
    /// Lines handed out so far (the next line's number is `line + 1`).
    pub line: u64,
}

impl LineBuffer {
    /// Feeds a chunk; calls `f(line_number, line)` for every line it completes (without the
    /// newline). Stops early when `f` returns false.
    pub fn push(&mut self, chunk: &[u8], mut f: impl FnMut(u64, &[u8]) -> bool) -> bool {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
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
        self.pending.extend_from_slice(rest);
        true
    }

    /// The last line, if the body did not end with a newline.
    pub fn finish(&mut self, mut f: impl FnMut(u64, &[u8]) -> bool) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        self.line += 1;
        let line = std::mem::take(&mut self.pending);
        f(self.line, &line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_span_chunks() {
        let mut b = LineBuffer::default();
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
}
