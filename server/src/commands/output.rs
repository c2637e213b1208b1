//! How the command line shows things: progress on a terminal, problems with their fields, role
//! lists.

use std::io::IsTerminal;

use crate::auth::model::Role;
use crate::error::AppError;

/// A progress bar on standard error, drawn only when it is a terminal: piped or logged output gets
/// just the command's one summary line.
pub struct Progress {
    tty: bool,
    total: Option<u64>,
    unit: &'static str,
}

impl Progress {
    pub fn new(total: Option<u64>, unit: &'static str) -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            total,
            unit,
        }
    }

    pub fn show(&self, done: u64) {
        if !self.tty {
            return;
        }
        match self.total {
            Some(total) => {
                let width = 30u64;
                let filled = (done * width)
                    .checked_div(total)
                    .unwrap_or(width)
                    .min(width) as usize;
                eprint!(
                    "\r[{}{}] {done}/{total} {}",
                    "#".repeat(filled),
                    "-".repeat(width as usize - filled),
                    self.unit
                );
            }
            None => eprint!("\r{done} {}", self.unit),
        }
    }

    pub fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// A problem with its field-level errors (and row lines), for the terminal.
pub fn problem_text(e: &AppError) -> String {
    match e {
        AppError::Validation { detail, errors } | AppError::Unmet { detail, errors } => {
            let mut out = detail.clone();
            for f in errors {
                out.push_str("\n  ");
                if let Some(l) = f.line {
                    out.push_str(&format!("line {l}: "));
                }
                if !f.field.is_empty() {
                    out.push_str(&format!("{}: ", f.field));
                }
                out.push_str(&f.message);
            }
            out
        }
        other => other.to_string(),
    }
}

pub fn role_list(roles: &[Role]) -> String {
    if roles.is_empty() {
        "none".into()
    } else {
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
