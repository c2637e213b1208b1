//! Field errors gathered over a whole request, answered once.

use crate::error::{AppError, FieldError};

/// Collects field errors so a request is checked as a whole and answered once: a 422 when a field
/// is invalid (listing those the current state does not allow too), else a 409 when the current
/// state does not allow one.
#[derive(Debug, Default)]
pub struct Problems {
    invalid: Vec<FieldError>,
    unmet: Vec<FieldError>,
}

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.invalid.push(FieldError::new(field, message));
    }

    /// A field that is well-formed but refers to what the current state does not allow.
    pub fn unmet(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.unmet.push(FieldError::new(field, message));
    }

    /// Keeps the value when the result is Ok; records the error's fields otherwise.
    pub fn take<T>(&mut self, r: Result<T, AppError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(AppError::Validation { errors, .. }) => {
                self.invalid.extend(errors);
                None
            }
            Err(AppError::Unmet { errors, .. }) => {
                self.unmet.extend(errors);
                None
            }
            Err(other) => {
                self.add("", other.to_string());
                None
            }
        }
    }

    /// Records another error's fields under `prefix` (`items/3/`, `purpose[0].`).
    pub fn take_prefixed(&mut self, prefix: &str, e: AppError) {
        match e {
            AppError::Validation { errors, .. } => {
                self.invalid.extend(errors.into_iter().map(|f| FieldError {
                    field: format!("{prefix}{}", f.field),
                    ..f
                }))
            }
            AppError::Unmet { errors, .. } => {
                self.unmet.extend(errors.into_iter().map(|f| FieldError {
                    field: format!("{prefix}{}", f.field),
                    ..f
                }))
            }
            other => self.add(prefix.trim_end_matches(['/', '.']), other.to_string()),
        }
    }

    pub fn len(&self) -> usize {
        self.invalid.len() + self.unmet.len()
    }

    pub fn is_empty(&self) -> bool {
        self.invalid.is_empty() && self.unmet.is_empty()
    }

    pub fn into_result(self) -> Result<(), AppError> {
        let (errors, unmet) = if !self.invalid.is_empty() {
            let mut all = self.invalid;
            all.extend(self.unmet);
            (all, false)
        } else if !self.unmet.is_empty() {
            (self.unmet, true)
        } else {
            return Ok(());
        };
        let detail = if errors.len() == 1 {
            format!("{}: {}", errors[0].field, errors[0].message)
        } else {
            format!(
                "{} fields are {}; the first: {}: {}",
                errors.len(),
                if unmet { "refused" } else { "invalid" },
                errors[0].field,
                errors[0].message
            )
        };
        Err(if unmet {
            AppError::Unmet { detail, errors }
        } else {
            AppError::Validation { detail, errors }
        })
    }
}
