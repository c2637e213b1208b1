//! Bulk onboarding of vendors (NDJSON or CSV), through [`crate::bulk`]: each row is a vendor as
//! `POST /v1/vendors` takes it. Rows are checked on their own first, then together over what is
//! stored (a vendor once per import, parents registered or in the file, no circles); the rows are
//! then ordered so a parent is written before the vendors working for it.

use std::collections::HashMap;

use super::chain::{Vendors, check_parent};
use super::input::VendorInput;
use super::model::VendorDef;
use super::store;
use crate::bulk::{Rows, csv_list};
use crate::db::AnyConnection;
use crate::error::{AppError, FieldError};
use crate::vocab::Seq;

/// The CSV columns: the vendor's fields; `data_categories` holds keys separated by `;`.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "name",
    "legal_name",
    "country",
    "role",
    "contact",
    "status",
    "parent",
    "data_categories",
];

/// The vendors stored when the import was read, and the rows read so far.
pub struct VendorRows {
    stored: HashMap<String, VendorDef>,
    /// The seq of the last vendor change stored: a write checks that nothing changed since.
    pub mark: Option<Seq>,
    /// The line of each vendor id in the import.
    lines: HashMap<String, u64>,
}

impl VendorRows {
    pub fn load(c: &mut AnyConnection) -> Result<VendorRows, AppError> {
        let mut stored = HashMap::new();
        let mut mark = None;
        for row in store::latest_vendors(c)? {
            mark = mark.max(Some(row.seq));
            stored.insert(row.id.clone(), row.def()?);
        }
        Ok(VendorRows {
            stored,
            mark,
            lines: HashMap::new(),
        })
    }

    /// The stored version of a vendor.
    pub fn stored(&self, id: &str) -> Option<&VendorDef> {
        self.stored.get(id)
    }
}

/// The vendors as they will be once an import is written.
struct Overlay<'a> {
    defs: HashMap<&'a str, &'a VendorDef>,
    children: HashMap<&'a str, &'a str>,
}

impl<'a> Overlay<'a> {
    fn new(stored: &'a HashMap<String, VendorDef>, rows: &'a [VendorDef]) -> Self {
        let mut defs: HashMap<&str, &VendorDef> =
            stored.iter().map(|(k, v)| (k.as_str(), v)).collect();
        for d in rows {
            defs.insert(d.id.as_str(), d);
        }
        let children = defs
            .values()
            .filter_map(|d| Some((d.parent.as_deref()?, d.id.as_str())))
            .collect();
        Overlay { defs, children }
    }

    /// Links from a vendor up to the end of its chain (bounded: the rules were checked).
    fn depth(&self, id: &str) -> usize {
        let mut at = id;
        let mut n = 0;
        while let Some(p) = self.defs.get(at).and_then(|d| d.parent.as_deref()) {
            n += 1;
            at = p;
            if n > super::index::MAX_CHAIN {
                break;
            }
        }
        n
    }
}

impl Vendors for Overlay<'_> {
    fn latest(&mut self, id: &str) -> Result<Option<VendorDef>, AppError> {
        Ok(self.defs.get(id).map(|d| (*d).clone()))
    }

    fn a_child(&mut self, id: &str) -> Result<Option<String>, AppError> {
        Ok(self.children.get(id).map(|c| c.to_string()))
    }
}

impl Rows for VendorRows {
    type Input = VendorInput;
    type Record = VendorDef;
    const WHAT: &'static str = "a vendor object";
    const COLUMNS: &'static [&'static str] = CSV_COLUMNS;

    fn csv_input(headers: &csv::StringRecord, rec: &csv::StringRecord) -> VendorInput {
        let mut input = VendorInput::default();
        for (h, v) in headers.iter().zip(rec.iter()) {
            if v.is_empty() {
                continue;
            }
            let text = Some(v.to_string());
            match h {
                "id" => input.id = text,
                "name" => input.name = text,
                "legal_name" => input.legal_name = text,
                "country" => input.country = text,
                "role" => input.role = text,
                "contact" => input.contact = text,
                "status" => input.status = text,
                "parent" => input.parent = text,
                "data_categories" => input.data_categories = csv_list(v),
                _ => {}
            }
        }
        input
    }

    fn check(&mut self, line: u64, input: VendorInput) -> Result<VendorDef, AppError> {
        let def = input.validate(None)?;
        if let Some(earlier) = self.lines.insert(def.id.clone(), line) {
            self.lines.insert(def.id.clone(), earlier);
            return Err(AppError::validation(
                "id",
                format!(
                    "{:?} is also on line {earlier}: a vendor appears once in an import",
                    def.id
                ),
            ));
        }
        Ok(def)
    }

    fn whole(&mut self, rows: &mut Vec<VendorDef>) -> Result<(), AppError> {
        let mut errors = Vec::new();
        let depths: HashMap<String, usize> = {
            let mut overlay = Overlay::new(&self.stored, rows);
            for d in rows.iter() {
                if let Err(e) = check_parent(&mut overlay, d) {
                    let line = self.lines.get(&d.id).copied();
                    errors.extend(
                        e.field_errors()
                            .unwrap_or_default()
                            .iter()
                            .map(|f| FieldError { line, ..f.clone() }),
                    );
                }
            }
            rows.iter()
                .map(|d| (d.id.clone(), overlay.depth(&d.id)))
                .collect()
        };
        if !errors.is_empty() {
            return Err(AppError::Unmet {
                detail: "rows refused".into(),
                errors,
            });
        }
        // Parents first, so every vendor.defined names a parent already defined.
        rows.sort_by_key(|d| depths.get(&d.id).copied().unwrap_or(0));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::Validator;
    use crate::dpa::model::{VendorRole, VendorStatus};
    use crate::vocab::Country;

    fn stored() -> VendorRows {
        let processor = VendorDef {
            id: "mailer".into(),
            version: 1,
            name: "Mailer".into(),
            legal_name: None,
            country: Country::parse("country", "DE").unwrap(),
            role: VendorRole::Processor,
            contact: None,
            status: VendorStatus::Active,
            parent: None,
            data_categories: vec![],
        };
        VendorRows {
            stored: [(processor.id.clone(), processor)].into_iter().collect(),
            mark: Some(Seq::new(1)),
            lines: HashMap::new(),
        }
    }

    #[test]
    fn children_may_come_before_their_parents_and_are_written_after() {
        let mut v = Validator::new(stored(), 100, 4096);
        v.csv(
            b"id,name,country,role,parent,data_categories\n\
              sms,SMS,US,sub_processor,cloud,contact.phone;contact.email\n\
              cloud,Cloud,IE,sub_processor,mailer,\n\
              agency,Agency,FR,controller,,\n",
        );
        let rows = v.finish().unwrap();
        let order: Vec<&str> = rows.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(order, vec!["agency", "cloud", "sms"]);
        assert_eq!(
            rows[2].data_categories,
            vec!["contact.phone", "contact.email"]
        );
    }

    #[test]
    fn rules_across_rows_name_their_lines() {
        let mut v = Validator::new(stored(), 100, 4096);
        v.ndjson(
            br#"{"id":"a","name":"A","country":"DE","role":"sub_processor","parent":"b"}
{"id":"b","name":"B","country":"DE","role":"sub_processor","parent":"a"}
{"id":"c","name":"C","country":"DE","role":"sub_processor","parent":"nowhere"}
{"id":"mailer","name":"Mailer","country":"DE","role":"controller"}
{"id":"d","name":"D","country":"DE","role":"sub_processor","parent":"mailer"}
"#,
        );
        let AppError::Unmet { errors, detail } = v.finish().unwrap_err() else {
            panic!("not a conflict")
        };
        // d works for mailer, which the file makes a controller: refused as well.
        assert!(detail.starts_with("5 of 5 rows are refused"), "{detail}");
        let got: Vec<(Option<u64>, &str)> =
            errors.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Some(1), "parent"),
                (Some(2), "parent"),
                (Some(3), "parent"),
                (Some(4), "role"),
                (Some(5), "parent")
            ]
        );
        assert!(
            errors[2].message.contains("\"nowhere\""),
            "{}",
            errors[2].message
        );
    }

    #[test]
    fn a_vendor_twice_is_named_with_both_lines() {
        let mut v = Validator::new(stored(), 100, 4096);
        v.csv(b"id,name,country,role\nx,X,DE,processor\ny,Y,DE,processor\nx,X2,DE,processor\n");
        let AppError::Validation { errors, .. } = v.finish().unwrap_err() else {
            panic!("not invalid")
        };
        assert_eq!((errors[0].line, errors[0].field.as_str()), (Some(4), "id"));
        assert!(
            errors[0].message.contains("line 2"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn unknown_columns_and_bad_fields_are_invalid() {
        let mut v = Validator::new(stored(), 100, 4096);
        v.csv(b"id,name,country,colour\nx,X,DE,red\n");
        let AppError::Validation { errors, .. } = v.finish().unwrap_err() else {
            panic!()
        };
        assert_eq!(errors[0].field, "colour");
        let mut v = Validator::new(stored(), 100, 4096);
        v.csv(b"id,name,country,role\nx,X,ZZ,processor\ny,Y,DE,boss\n");
        let AppError::Validation { errors, .. } = v.finish().unwrap_err() else {
            panic!()
        };
        let got: Vec<(Option<u64>, &str)> =
            errors.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(got, vec![(Some(2), "country"), (Some(3), "role")]);
    }
}
