//! Bulk import of consent decisions (NDJSON or CSV), through [`crate::bulk`]: every row is
//! validated first; if any is bad nothing is written. Rows already recorded are skipped, so a
//! re-run writes nothing new.

use std::collections::{HashMap, HashSet};

use super::input::{ConsentContext, ConsentInput};
use super::model::{ConsentRecord, Evidence, Method, PurposeDef};
use super::store;
use crate::bulk::Rows;
use crate::clock::Timestamp;
use crate::db::AnyConnection;
use crate::error::AppError;

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

impl Rows for Reference {
    type Input = ConsentInput;
    type Record = ConsentRecord;
    const WHAT: &'static str = "a consent object";
    const COLUMNS: &'static [&'static str] = CSV_COLUMNS;

    fn csv_input(headers: &csv::StringRecord, rec: &csv::StringRecord) -> ConsentInput {
        csv_input(headers, rec)
    }

    fn check(&mut self, _line: u64, input: ConsentInput) -> Result<ConsentRecord, AppError> {
        let purpose = |k: &str| self.purposes.get(k).cloned();
        let notice = |k: &str, v: &str| self.notices.contains(&(k.to_string(), v.to_string()));
        let cx = ConsentContext {
            now: self.now,
            purpose: &purpose,
            notice_exists: Some(&notice),
            gpc: false,
            default_method: Method::Import,
        };
        input.validate(&cx)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::Validator;
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
