//! The policy files: the Casbin model and policy, and the purposes and notices loaded at start.
//!
//! The binary carries the default files of the repository's `policies/` folder, so it runs from any
//! directory. A configured `policies_dir` replaces them: it must hold `model.conf` and
//! `policy.csv`; its `purposes.toml`, when present, is the definitions file. Everything is read
//! and parsed here, before anything is written, and the start-up ledger entry records where the
//! files came from and their hashes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::StartError;
use crate::authz::{MODEL_FILE, POLICY_FILE, Rule, parse_rules};
use crate::consent::DEFINITIONS_FILE;
use crate::consent::definitions::Definitions;

const EMBEDDED_MODEL: &str = include_str!("../../policies/model.conf");
const EMBEDDED_POLICY: &str = include_str!("../../policies/policy.csv");
const EMBEDDED_PURPOSES: &str = include_str!("../../policies/purposes.toml");

/// Where the policy files in force came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    /// The defaults built into the binary.
    Embedded,
    /// A configured folder.
    Dir(PathBuf),
}

impl PolicySource {
    /// A name for one of the files, for messages.
    fn file_name(&self, file: &str) -> String {
        match self {
            PolicySource::Embedded => format!("the built-in {file}"),
            PolicySource::Dir(d) => d.join(file).display().to_string(),
        }
    }
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySource::Embedded => f.write_str("embedded"),
            PolicySource::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

/// The policy files, read and parsed.
#[derive(Debug, Clone)]
pub struct PolicyFiles {
    pub source: PolicySource,
    pub model: String,
    pub rules: Vec<Rule>,
    /// The purposes and notices to load (none when a configured folder has no `purposes.toml`).
    pub definitions: Option<Definitions>,
    /// File name → SHA-256 (hex) of each file in force.
    pub hashes: BTreeMap<String, String>,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl PolicyFiles {
    /// Reads the files from `dir`, or takes the embedded defaults when `dir` is `None`. Every
    /// problem is one sentence naming the file.
    pub fn load(dir: Option<&Path>) -> Result<PolicyFiles, StartError> {
        if dir.is_none() && Path::new("policies").join(POLICY_FILE).is_file() {
            tracing::warn!(
                "a policies/ folder is in the working directory but policies_dir is not set: \
                 the built-in policies are in force; set policies_dir (or ACCORD_POLICIES_DIR) \
                 to use that folder"
            );
        }
        let (source, model, policy, purposes) = match dir {
            None => (
                PolicySource::Embedded,
                EMBEDDED_MODEL.to_string(),
                EMBEDDED_POLICY.to_string(),
                Some(EMBEDDED_PURPOSES.to_string()),
            ),
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(StartError(format!(
                        "the policies folder {} does not exist (policies_dir / ACCORD_POLICIES_DIR); \
                         leave the setting out to use the built-in policies",
                        dir.display()
                    )));
                }
                let read = |name: &str| {
                    let path = dir.join(name);
                    std::fs::read_to_string(&path)
                        .map_err(|e| StartError(format!("cannot read {}: {e}", path.display())))
                };
                let purposes_path = dir.join(DEFINITIONS_FILE);
                let purposes = if purposes_path.exists() {
                    Some(read(DEFINITIONS_FILE)?)
                } else {
                    None
                };
                (
                    PolicySource::Dir(dir.to_path_buf()),
                    read(MODEL_FILE)?,
                    read(POLICY_FILE)?,
                    purposes,
                )
            }
        };
        let name = |file: &str| source.file_name(file);
        let rules =
            parse_rules(&policy).map_err(|e| StartError(format!("{}: {e}", name(POLICY_FILE))))?;
        let definitions = match &purposes {
            Some(text) => Some(Definitions::parse(text, false).map_err(|e| {
                StartError(format!(
                    "{} is not a valid definitions file: {e}",
                    name(DEFINITIONS_FILE)
                ))
            })?),
            None => None,
        };
        let mut hashes = BTreeMap::new();
        hashes.insert(MODEL_FILE.to_string(), sha256_hex(&model));
        hashes.insert(POLICY_FILE.to_string(), sha256_hex(&policy));
        if let Some(p) = &purposes {
            hashes.insert(DEFINITIONS_FILE.to_string(), sha256_hex(p));
        }
        Ok(PolicyFiles {
            source,
            model,
            rules,
            definitions,
            hashes,
        })
    }

    /// A name for the definitions file in messages.
    pub fn definitions_name(&self) -> String {
        self.source.file_name(DEFINITIONS_FILE)
    }

    /// Validates the purposes and notices without recording anything: one sentence naming the
    /// file and every bad field.
    pub fn check_definitions(&self, now: crate::clock::Timestamp) -> Result<(), StartError> {
        match &self.definitions {
            Some(defs) => defs.validate(now).map(|_| ()).map_err(|e| {
                StartError(format!(
                    "cannot load {}: {}",
                    self.definitions_name(),
                    crate::AppErrorText(&e)
                ))
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_files_parse() {
        let p = PolicyFiles::load(None).unwrap();
        assert_eq!(p.source, PolicySource::Embedded);
        assert!(p.rules.len() > 20);
        assert!(p.definitions.is_some());
        assert_eq!(p.hashes.len(), 3);
    }

    #[test]
    fn a_folder_replaces_them_and_must_hold_the_access_files() {
        let dir = std::env::temp_dir().join(format!("accord-policies-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let err = PolicyFiles::load(Some(&dir)).unwrap_err();
        assert!(err.0.contains("model.conf"), "{err}");
        std::fs::write(dir.join(MODEL_FILE), EMBEDDED_MODEL).unwrap();
        std::fs::write(dir.join(POLICY_FILE), "p, admin, user, read\n").unwrap();
        let p = PolicyFiles::load(Some(&dir)).unwrap();
        assert_eq!(p.rules.len(), 1);
        assert!(p.definitions.is_none());
        std::fs::write(dir.join(POLICY_FILE), "p, root, user, read\n").unwrap();
        let err = PolicyFiles::load(Some(&dir)).unwrap_err();
        assert!(err.0.contains("policy.csv: line 1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = PolicyFiles::load(Some(&dir)).unwrap_err();
        assert!(err.0.contains("does not exist"), "{err}");
    }
}
