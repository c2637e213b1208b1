//! Bulk imports (NDJSON or CSV): every row is validated before anything is written; if any row is
//! bad nothing is written and the answer lists the bad rows (line, field, reason: the first
//! hundred, and the count). A domain says what a row is ([`Rows`]); reading bodies and files,
//! counting lines, the limits and the summary of problems are here, once.

use actix_web::HttpRequest;
use actix_web::web;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::body::{self, LineBuffer};
use crate::config::Limits;
use crate::error::{AppError, FieldError};
use crate::idempotency::RequestHash;

/// Bad rows listed in an answer; the rest are only counted.
pub const LISTED_ERRORS: usize = 100;

/// The media types an import body may have.
pub const MEDIA_TYPES: &[&str] = &["application/x-ndjson", "application/jsonl", "text/csv"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    /// By file name: `.csv` is CSV, anything else NDJSON.
    pub fn of_path(path: &std::path::Path) -> Format {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            Format::Csv
        } else {
            Format::Ndjson
        }
    }
}

/// What one domain's rows are: how a CSV row becomes an input, and how an input is checked
/// against what is stored. Checks that span rows (a name used twice, a reference to a later row)
/// belong in [`Rows::whole`], run once every row is valid on its own.
pub trait Rows {
    type Input: DeserializeOwned;
    type Record;
    /// What a row is, for messages: `a consent object`.
    const WHAT: &'static str;
    /// The CSV columns allowed.
    const COLUMNS: &'static [&'static str];
    /// A CSV row (only allowed columns; an empty cell is a field left out).
    fn csv_input(headers: &csv::StringRecord, rec: &csv::StringRecord) -> Self::Input;
    /// One row, at `line`.
    fn check(&mut self, line: u64, input: Self::Input) -> Result<Self::Record, AppError>;
    /// Once every row passed [`Rows::check`]: the rules that span rows. The errors it returns
    /// carry the lines they are about.
    fn whole(&mut self, _records: &mut Vec<Self::Record>) -> Result<(), AppError> {
        Ok(())
    }
}

/// Validates rows as they come, keeping the good records and the first errors. Past a limit it
/// stops at once (the rest of the input is not read) with an error naming the limit and the line.
pub struct Validator<R: Rows> {
    rows_of: R,
    records: Vec<R::Record>,
    errors: Vec<FieldError>,
    bad_rows: u64,
    /// Rows with a malformed field (the rest of the bad rows are refused by what the state does
    /// not allow: an unregistered purpose, an unknown parent).
    invalid_rows: u64,
    rows: u64,
    max_rows: u64,
    max_line: usize,
    stopped: Option<AppError>,
}

impl<R: Rows> Validator<R> {
    /// A validator accepting at most `max_rows` rows of at most `max_line` bytes each.
    pub fn new(rows_of: R, max_rows: u64, max_line: usize) -> Self {
        Validator {
            rows_of,
            records: Vec::new(),
            errors: Vec::new(),
            bad_rows: 0,
            invalid_rows: 0,
            rows: 0,
            max_rows,
            max_line,
            stopped: None,
        }
    }

    /// Whether a limit was passed: nothing more is read.
    pub fn stopped(&self) -> bool {
        self.stopped.is_some()
    }

    /// Stops at a limit: nothing will be written.
    pub fn stop(&mut self, e: AppError) {
        self.records = Vec::new();
        self.stopped.get_or_insert(e);
    }

    fn list(&mut self, line: u64, f: FieldError) {
        if self.errors.len() < LISTED_ERRORS {
            self.errors.push(FieldError {
                line: Some(line),
                ..f
            });
        }
    }

    fn bad(&mut self, line: u64, field: &str, message: String) {
        self.bad_rows += 1;
        self.invalid_rows += 1;
        self.list(
            line,
            FieldError {
                field: field.to_string(),
                message,
                line: None,
            },
        );
    }

    /// Takes a row's error: a problem with fields is listed field by field.
    fn refused(&mut self, line: u64, e: AppError) {
        let Some(fields) = e.field_errors() else {
            return self.bad(line, "", e.to_string());
        };
        self.bad_rows += 1;
        if matches!(e, AppError::Validation { .. }) {
            self.invalid_rows += 1;
        }
        for f in fields {
            self.list(f.line.unwrap_or(line), f.clone());
        }
    }

    /// One parsed row (or why it could not be parsed).
    pub fn row(&mut self, line: u64, input: Result<R::Input, String>) {
        if self.stopped() {
            return;
        }
        self.rows += 1;
        if self.rows > self.max_rows {
            return self.stop(AppError::PayloadTooLarge(format!(
                "line {line}: an import holds at most {} rows (the limit limits.import_rows); split it — nothing was written",
                self.max_rows
            )));
        }
        let input = match input {
            Ok(i) => i,
            Err(message) => return self.bad(line, "", message),
        };
        match self.rows_of.check(line, input) {
            Ok(rec) => {
                if self.bad_rows == 0 {
                    self.records.push(rec);
                }
            }
            Err(e) => self.refused(line, e),
        }
        if self.bad_rows > 0 {
            // Nothing will be written: stop holding records.
            self.records = Vec::new();
        }
    }

    /// One NDJSON line; false once a limit stops the validator.
    pub fn ndjson_line(&mut self, line: u64, raw: &[u8]) -> bool {
        let raw = raw.trim_ascii();
        if !raw.is_empty() {
            let parsed = serde_json::from_slice::<R::Input>(raw)
                .map_err(|e| format!("not {}: {e}", R::WHAT));
            self.row(line, parsed);
        }
        !self.stopped()
    }

    /// A whole NDJSON document.
    pub fn ndjson(&mut self, data: &[u8]) {
        let mut lines = LineBuffer::new(self.max_line);
        if lines.push(data, |n, l| self.ndjson_line(n, l)) {
            lines.finish(|n, l| self.ndjson_line(n, l));
        }
        if let Some(e) = lines.too_long_error() {
            self.stop(e);
        }
    }

    /// A whole CSV document (header row first).
    pub fn csv(&mut self, data: &[u8]) {
        if let Some(i) = data
            .split(|b| *b == b'\n')
            .position(|l| l.len() > self.max_line)
        {
            return self.stop(AppError::PayloadTooLarge(format!(
                "line {} is longer than {} bytes (the limit limits.line_bytes); nothing was written",
                i + 1,
                self.max_line
            )));
        }
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            // Header names may be padded; values are taken as written, as in JSON.
            .trim(csv::Trim::Headers)
            .from_reader(data);
        let headers = match rdr.headers() {
            Ok(h) => h.clone(),
            Err(e) => return self.bad(1, "", format!("the header row is unreadable: {e}")),
        };
        for (i, h) in headers.iter().enumerate() {
            if !R::COLUMNS.contains(&h) {
                self.bad(
                    1,
                    h,
                    format!(
                        "column {} ({h:?}) is not a field of {}; the columns are {}",
                        i + 1,
                        R::WHAT,
                        R::COLUMNS.join(", ")
                    ),
                );
            } else if headers.iter().take(i).any(|earlier| earlier == h) {
                self.bad(1, h, format!("column {} ({h:?}) appears twice", i + 1));
            }
        }
        if self.bad_rows > 0 {
            return;
        }
        // Lines are counted here: for a CRLF file the reader counts one line short and puts a
        // record's start at the newline before it.
        let (mut counted_to, mut line_at) = (0usize, 1u64);
        let mut line_of = |byte: usize| {
            let byte = (byte + usize::from(data.get(byte) == Some(&b'\n'))).min(data.len());
            if byte > counted_to {
                line_at += data[counted_to..byte]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count() as u64;
                counted_to = byte;
            }
            line_at
        };
        for result in rdr.records() {
            match result {
                Ok(rec) => {
                    let line = rec
                        .position()
                        .map(|p| line_of(p.byte() as usize))
                        .unwrap_or(0);
                    if rec.iter().all(str::is_empty) {
                        continue;
                    }
                    let input = R::csv_input(&headers, &rec);
                    self.row(line, Ok(input));
                    if self.stopped() {
                        break;
                    }
                }
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    self.rows += 1;
                    self.bad(line, "", format!("unreadable CSV row: {e}"));
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        break;
                    }
                }
            }
        }
    }

    /// The records, or a problem listing the bad rows.
    pub fn finish(self) -> Result<Vec<R::Record>, AppError> {
        self.finish_with_reference().map(|(records, _)| records)
    }

    /// The records and what they were checked against, or a problem listing the bad rows.
    pub fn finish_with_reference(mut self) -> Result<(Vec<R::Record>, R), AppError> {
        if let Some(e) = self.stopped {
            return Err(e);
        }
        if self.bad_rows == 0 && self.rows == 0 {
            return Err(AppError::validation("", "the import holds no rows"));
        }
        if self.bad_rows == 0 {
            let mut records = std::mem::take(&mut self.records);
            match self.rows_of.whole(&mut records) {
                Ok(()) => return Ok((records, self.rows_of)),
                Err(e) => {
                    let invalid = matches!(e, AppError::Validation { .. });
                    let fields = e.field_errors().map(<[FieldError]>::to_vec);
                    let Some(fields) = fields else {
                        return Err(e);
                    };
                    let mut lines: Vec<u64> = fields.iter().filter_map(|f| f.line).collect();
                    lines.sort_unstable();
                    lines.dedup();
                    self.bad_rows = lines.len().max(1) as u64;
                    self.invalid_rows = if invalid { self.bad_rows } else { 0 };
                    for f in fields {
                        self.list(f.line.unwrap_or(0), f);
                    }
                }
            }
        }
        let first = self.errors.first().map(|e| {
            format!(
                "line {}{}: {}",
                e.line.unwrap_or(0),
                if e.field.is_empty() {
                    String::new()
                } else {
                    format!(", {}", e.field)
                },
                e.message
            )
        });
        let detail = format!(
            "{} of {} rows are {}, so nothing was written (the first {} problems are listed); the first: {}",
            self.bad_rows,
            self.rows,
            if self.invalid_rows > 0 {
                "invalid"
            } else {
                "refused"
            },
            self.errors.len(),
            first.unwrap_or_default()
        );
        let errors = self.errors;
        Err(if self.invalid_rows > 0 {
            AppError::Validation { detail, errors }
        } else {
            AppError::Unmet { detail, errors }
        })
    }
}

/// Validates a whole file (for the CLI: any number of rows, lines of at most `max_line` bytes);
/// the records and what they were checked against.
pub fn validate_file<R: Rows>(
    path: &std::path::Path,
    rows_of: R,
    max_line: usize,
) -> Result<(Vec<R::Record>, R), AppError> {
    let data = std::fs::read(path)
        .map_err(|e| AppError::BadRequest(format!("cannot read {}: {e}", path.display())))?;
    let mut v = Validator::new(rows_of, u64::MAX, max_line);
    match Format::of_path(path) {
        Format::Csv => v.csv(&data),
        Format::Ndjson => v.ndjson(&data),
    }
    v.finish_with_reference()
}

/// Reads an import body: NDJSON (`application/x-ndjson`) validated as it streams in, or CSV
/// (`text/csv`) read whole within the limit and then validated. Past a limit (bytes, rows, line
/// length) it ends at once with 413 naming the limit and the line. The request hash covers the
/// body for idempotency.
pub async fn read_http<R>(
    req: &HttpRequest,
    mut payload: web::Payload,
    limits: Limits,
    rows_of: R,
) -> Result<(Validator<R>, RequestHash), AppError>
where
    R: Rows + Send + 'static,
    R::Record: Send,
{
    let format = match body::media_type(req, MEDIA_TYPES)? {
        "text/csv" => Format::Csv,
        _ => Format::Ndjson,
    };
    let too_big = |line: u64| {
        AppError::PayloadTooLarge(format!(
            "line {line}: an import body holds at most {} bytes (the limit limits.import_bytes); split it — nothing was written",
            limits.import_bytes
        ))
    };
    let mut v = Validator::new(rows_of, limits.import_rows, limits.line_bytes);
    let mut hash = RequestHash::new(req);
    match format {
        Format::Csv => {
            let data = body::read_limited(payload, limits.import_bytes)
                .await
                .map_err(|e| match e {
                    AppError::PayloadTooLarge(_) => too_big(1),
                    other => other,
                })?;
            hash.update(&data);
            v = web::block(move || {
                v.csv(&data);
                v
            })
            .await?;
        }
        Format::Ndjson => {
            let mut lines = LineBuffer::new(limits.line_bytes);
            let mut total = 0usize;
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    AppError::BadRequest(format!("the body could not be read: {e}"))
                })?;
                total += chunk.len();
                hash.update(&chunk);
                if total > limits.import_bytes {
                    return Err(too_big(lines.line + 1));
                }
                if !lines.push(&chunk, |n, l| v.ndjson_line(n, l)) {
                    break;
                }
            }
            if let Some(e) = lines.too_long_error() {
                return Err(e);
            }
            if !v.stopped() {
                lines.finish(|n, l| v.ndjson_line(n, l));
            }
        }
    }
    Ok((v, hash))
}

/// Splits a CSV cell holding several keys, `email;sms`, in order; a key written twice counts once,
/// and an empty cell is none. Keys are taken as written (blanks are not trimmed).
pub fn csv_list(cell: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if cell.is_empty() {
        return out;
    }
    for k in cell.split(';') {
        if !out.iter().any(|o| o == k) {
            out.push(k.to_string());
        }
    }
    out
}
