//! Bulk import of consent decisions (NDJSON or CSV). Every row is validated first; if any is bad
//! nothing is written and the answer lists the bad rows (line, field, reason: the first hundred,
//! and the count). Rows already recorded are skipped, so a re-run writes nothing new.

use std::collections::{HashMap, HashSet};

use super::input::{ConsentContext, ConsentInput};
use super::model::{ConsentRecord, Evidence, Method, PurposeDef};
use super::store;
use crate::body::LineBuffer;
use crate::clock::Timestamp;
use crate::db::AnyConnection;
use crate::error::{AppError, FieldError};

/// Bad rows listed in an answer; the rest are only counted.
pub const LISTED_ERRORS: usize = 100;
/// Largest import body accepted over HTTP.
pub const IMPORT_BODY_LIMIT: usize = 2 * 1024 * 1024 * 1024;

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

/// What validation needs, read once from the database.
pub struct Reference {
    purposes: HashMap<String, PurposeDef>,
    notices: HashSet<(String, String)>,
    now: Timestamp,
}

impl Reference {
    pub fn load(conn: &mut AnyConnection, now: Timestamp) -> Result<Reference, AppError> {
        let mut purposes = HashMap::new();
        for row in store::all_purpose_versions(conn)? {
            purposes.insert(row.key.clone(), row.def()?);
        }
        let notices = store::all_notices(conn)?
            .into_iter()
            .map(|n| (n.key, n.version))
            .collect();
        Ok(Reference {
            purposes,
            notices,
            now,
        })
    }
}

/// Validates rows as they come, keeping the good records and the first errors. Past a limit it
/// stops at once (the rest of the input is not read) with an error naming the limit and the line.
pub struct Validator {
    reference: Reference,
    pub records: Vec<ConsentRecord>,
    pub errors: Vec<FieldError>,
    pub bad_rows: u64,
    /// Rows with a malformed field (the rest of the bad rows refer to what the state does not
    /// allow: an unregistered purpose, an unpublished notice).
    invalid_rows: u64,
    pub rows: u64,
    max_rows: u64,
    max_line: usize,
    stopped: Option<AppError>,
}

impl Validator {
    /// A validator accepting at most `max_rows` rows of at most `max_line` bytes each.
    pub fn new(reference: Reference, max_rows: u64, max_line: usize) -> Self {
        Validator {
            reference,
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

    fn bad(&mut self, line: u64, field: &str, message: String) {
        self.bad_rows += 1;
        self.invalid_rows += 1;
        if self.errors.len() < LISTED_ERRORS {
            self.errors.push(FieldError {
                field: field.to_string(),
                message,
                line: Some(line),
            });
        }
    }

    /// One parsed row (or why it could not be parsed).
    pub fn row(&mut self, line: u64, input: Result<ConsentInput, String>) {
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
        let r = &self.reference;
        let purpose = |k: &str| r.purposes.get(k).cloned();
        let notice = |k: &str, v: &str| r.notices.contains(&(k.to_string(), v.to_string()));
        let cx = ConsentContext {
            now: r.now,
            purpose: &purpose,
            notice_exists: Some(&notice),
            gpc: false,
            default_method: Method::Import,
        };
        match input.validate(&cx) {
            Ok(rec) => {
                if self.bad_rows == 0 {
                    self.records.push(rec);
                }
            }
            Err(e) if e.field_errors().is_some() => {
                self.bad_rows += 1;
                if matches!(e, AppError::Validation { .. }) {
                    self.invalid_rows += 1;
                }
                for f in e.field_errors().unwrap_or_default() {
                    if self.errors.len() < LISTED_ERRORS {
                        self.errors.push(FieldError {
                            line: Some(line),
                            ..f.clone()
                        });
                    }
                }
            }
            Err(other) => self.bad(line, "", other.to_string()),
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
            let parsed = serde_json::from_slice::<ConsentInput>(raw)
                .map_err(|e| format!("not a consent object: {e}"));
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
            if !CSV_COLUMNS.contains(&h) {
                self.bad(
                    1,
                    h,
                    format!(
                        "column {} ({h:?}) is not a consent field; the columns are {}",
                        i + 1,
                        CSV_COLUMNS.join(", ")
                    ),
                );
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
                    let input = csv_input(&headers, &rec);
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
    pub fn finish(self) -> Result<Vec<ConsentRecord>, AppError> {
        if let Some(e) = self.stopped {
            return Err(e);
        }
        if self.bad_rows == 0 {
            if self.rows == 0 {
                return Err(AppError::validation("", "the import holds no rows"));
            }
            return Ok(self.records);
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

/// The CSV columns: the consent fields, and evidence as `evidence_<field>`.
pub const CSV_COLUMNS: &[&str] = &[
    "subject",
    "purpose",
    "channel",
    "decision",
    "legal_basis",
    "method",
    "notice_key",
    "notice_version",
    "collected_at",
    "expires_at",
    "jurisdiction",
    "source",
    "evidence_form_id",
    "evidence_ip",
    "evidence_user_agent",
    "evidence_page_url",
    "evidence_reference",
];

fn csv_input(headers: &csv::StringRecord, rec: &csv::StringRecord) -> ConsentInput {
    let mut input = ConsentInput::default();
    let mut evidence = Evidence::default();
    for (h, v) in headers.iter().zip(rec.iter()) {
        if v.is_empty() {
            continue;
        }
        let v = Some(v.to_string());
        match h {
            "subject" => input.subject = v,
            "purpose" => input.purpose = v,
            "channel" => input.channel = v,
            "decision" => input.decision = v,
            "legal_basis" => input.legal_basis = v,
            "method" => input.method = v,
            "notice_key" => input.notice_key = v,
            "notice_version" => input.notice_version = v,
            "collected_at" => input.collected_at = v,
            "expires_at" => input.expires_at = v,
            "jurisdiction" => input.jurisdiction = v,
            "source" => input.source = v,
            "evidence_form_id" => evidence.form_id = v,
            "evidence_ip" => evidence.ip = v,
            "evidence_user_agent" => evidence.user_agent = v,
            "evidence_page_url" => evidence.page_url = v,
            "evidence_reference" => evidence.reference = v,
            _ => {}
        }
    }
    if !evidence.is_empty() {
        input.evidence = Some(evidence);
    }
    input
}

/// Validates a whole file (for the CLI: any number of rows, lines of at most `max_line` bytes).
pub fn validate_file(
    path: &std::path::Path,
    reference: Reference,
    max_line: usize,
) -> Result<Vec<ConsentRecord>, AppError> {
    let data = std::fs::read(path)
        .map_err(|e| AppError::BadRequest(format!("cannot read {}: {e}", path.display())))?;
    let mut v = Validator::new(reference, u64::MAX, max_line);
    match Format::of_path(path) {
        Format::Csv => v.csv(&data),
        Format::Ndjson => v.ndjson(&data),
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::model::{LegalBasis, PurposeStatus};

    fn reference() -> Reference {
        let def = PurposeDef {
            key: "marketing.email".into(),
            version: 1,
            title: "E-mail marketing".into(),
            description: String::new(),
            legal_basis: LegalBasis::Consent,
            consent_required: true,
            lifetime_days: Some(365),
            gpc_applies: true,
            dpv_iri: None,
            status: PurposeStatus::Active,
        };
        Reference {
            purposes: [(def.key.clone(), def)].into_iter().collect(),
            notices: [("privacy".to_string(), "v1".to_string())]
                .into_iter()
                .collect(),
            now: Timestamp(1_795_428_000_000_000),
        }
    }

    #[test]
    fn csv_rows_are_validated_with_line_numbers() {
        let mut v = Validator::new(reference(), 1000, 4096);
        v.csv(
            b"subject,purpose,channel,decision,collected_at,notice_key,notice_version\n\
              s-1,marketing.email,email,granted,2026-01-01T00:00:00Z,privacy,v1\n\
              s-2,marketing.sms,email,granted,2026-01-01T00:00:00Z,,\n\
              s-3,marketing.email,fax,granted,2026-01-01T00:00:00Z,privacy,v2\n",
        );
        let err = v.finish().unwrap_err();
        let AppError::Validation { errors, detail } = err else {
            panic!("not a validation error")
        };
        assert!(detail.starts_with("2 of 3 rows are invalid"), "{detail}");
        assert_eq!(errors[0].line, Some(3));
        assert_eq!(errors[0].field, "purpose");
        assert_eq!(errors[1].line, Some(4));
        assert_eq!(errors[1].field, "channel");
        assert_eq!(errors[2].field, "notice_version");
    }

    #[test]
    fn rows_refused_only_by_the_state_are_a_conflict() {
        let mut v = Validator::new(reference(), 1000, 4096);
        v.csv(
            b"subject,purpose,channel,decision,notice_key,notice_version\n\
              s-1,marketing.email,email,granted,privacy,v1\n\
              s-2,marketing.sms,email,granted,,\n\
              s-3,marketing.email,email,granted,privacy,v2\n",
        );
        let AppError::Unmet { errors, detail } = v.finish().unwrap_err() else {
            panic!("not a conflict")
        };
        assert!(detail.starts_with("2 of 3 rows are refused"), "{detail}");
        assert_eq!(
            (errors[0].line, errors[0].field.as_str()),
            (Some(3), "purpose")
        );
        assert_eq!(
            (errors[1].line, errors[1].field.as_str()),
            (Some(4), "notice_version")
        );
    }

    #[test]
    fn csv_lines_count_the_same_with_crlf() {
        for eol in ["\n", "\r\n"] {
            let mut v = Validator::new(reference(), 1000, 4096);
            let csv = [
                "subject,purpose,channel,decision",
                "s-1,marketing.email,email,granted",
                "s-2,nope,email,granted",
            ]
            .join(eol);
            v.csv(csv.as_bytes());
            let err = v.finish().unwrap_err();
            assert_eq!(err.field_errors().unwrap()[0].line, Some(3), "{eol:?}");
        }
    }

    #[test]
    fn csv_values_are_taken_as_written() {
        let mut v = Validator::new(reference(), 1000, 4096);
        v.csv(b"subject , purpose,channel,decision\n s-1,marketing.email,email,granted\n");
        let AppError::Validation { errors, .. } = v.finish().unwrap_err() else {
            panic!("not a validation error")
        };
        assert_eq!(
            (errors[0].line, errors[0].field.as_str()),
            (Some(2), "subject")
        );
        assert!(
            errors[0].message.contains("white space"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn unknown_csv_columns_are_named() {
        let mut v = Validator::new(reference(), 1000, 4096);
        v.csv(b"subject,purpose,colour\ns,marketing.email,red\n");
        let AppError::Validation { errors, .. } = v.finish().unwrap_err() else {
            panic!()
        };
        assert_eq!(errors[0].field, "colour");
    }

    #[test]
    fn ndjson_rows_get_defaults() {
        let mut v = Validator::new(reference(), 1000, 4096);
        v.ndjson_line(
            1,
            br#"{"subject":"s-1","purpose":"marketing.email","channel":"email","decision":"granted","collected_at":"2026-01-01T00:00:00Z"}"#,
        );
        v.ndjson_line(2, b"  ");
        let recs = v.finish().unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].method, Method::Import);
        assert_eq!(
            recs[0]
                .expires_at
                .map(|t| t.micros() - recs[0].collected_at.micros()),
            Some(365 * 86_400 * 1_000_000)
        );
        let mut v = Validator::new(reference(), 1000, 4096);
        v.ndjson_line(7, b"{not json");
        let AppError::Validation { errors, .. } = v.finish().unwrap_err() else {
            panic!()
        };
        assert_eq!(errors[0].line, Some(7));
    }
}
