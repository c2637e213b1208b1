//! Definitions files (`policies/purposes.toml`, `accord purposes load`): purposes and notice
//! versions, read, checked as a whole, and loaded through the service.

use serde::{Deserialize, Serialize};

use super::input::{NoticeInput, PurposeInput};
use super::model::{NoticeDef, PurposeDef};
use crate::error::AppError;
use crate::vocab::Problems;

/// A definitions file (`policies/purposes.toml`): purposes and notice versions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    #[serde(default)]
    pub purpose: Vec<PurposeInput>,
    #[serde(default)]
    pub notice: Vec<NoticeInput>,
}

impl Definitions {
    /// Reads a TOML (or, by extension, JSON) definitions file.
    pub fn read(path: &std::path::Path) -> Result<Definitions, AppError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AppError::BadRequest(format!("cannot read {}: {e}", path.display())))?;
        let json = path.extension().is_some_and(|e| e == "json");
        Self::parse(&text, json).map_err(|e| {
            AppError::BadRequest(format!(
                "{} is not a valid definitions file: {e}",
                path.display()
            ))
        })
    }

    /// Parses definitions from TOML (or JSON) text; the error is one line.
    pub fn parse(text: &str, json: bool) -> Result<Definitions, String> {
        if json {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            toml::from_str(text).map_err(|e| crate::error::one_line(&e.to_string()))
        }
    }

    /// Validates every purpose and notice, listing every problem by its place in the file.
    pub fn validate(
        &self,
        now: crate::clock::Timestamp,
    ) -> Result<(Vec<PurposeDef>, Vec<NoticeDef>), AppError> {
        let mut problems = Problems::default();
        let mut purposes = Vec::new();
        for (i, p) in self.purpose.iter().enumerate() {
            match p.validate(None) {
                Ok(d) => purposes.push(d),
                Err(e) => problems.take_prefixed(&format!("purpose[{i}]."), e),
            }
        }
        let mut notices = Vec::new();
        for (i, n) in self.notice.iter().enumerate() {
            match n.validate(now) {
                Ok(d) => notices.push(d),
                Err(e) => problems.take_prefixed(&format!("notice[{i}]."), e),
            }
        }
        problems.into_result()?;
        Ok((purposes, notices))
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadSummary {
    pub purposes_changed: u64,
    pub notices_published: u64,
    pub unchanged: u64,
}
