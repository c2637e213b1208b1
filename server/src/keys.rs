//! The server's secrets, kept as files in the data directory, readable only by the owner:
//! the ledger's checkpoint signing key, the API token signing key (both Ed25519, PKCS#8 PEM) and the
//! key that turns subject ids into `subject_ref`s (HMAC-SHA-256). Created on first start; several
//! instances sharing one ledger must share these files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const LEDGER_KEY_FILE: &str = "ledger-signing-key.pem";
pub const TOKEN_KEY_FILE: &str = "token-signing-key.pem";
pub const SUBJECT_KEY_FILE: &str = "subject-ref.key";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// The loaded keys. `Debug` never prints key material.
pub struct Keys {
    pub ledger: SigningKey,
    pub token: SigningKey,
    subject: [u8; 32],
    /// Files created by this load (first start), for the start-up log.
    pub created: Vec<PathBuf>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

impl Keys {
    /// Loads the keys from `dir`, creating the directory and any missing key.
    pub fn load_or_create(dir: &Path) -> Result<Keys, KeyError> {
        ensure_private_dir(dir)?;
        let mut created = Vec::new();
        let ledger = load_signing_key(&dir.join(LEDGER_KEY_FILE), &mut created)?;
        let token = load_signing_key(&dir.join(TOKEN_KEY_FILE), &mut created)?;
        let subject = load_secret(&dir.join(SUBJECT_KEY_FILE), &mut created)?;
        Ok(Keys {
            ledger,
            token,
            subject,
            created,
        })
    }

    /// Loads existing keys from `dir` without creating anything (for commands that only read).
    pub fn load(dir: &Path) -> Result<Keys, KeyError> {
        for f in [LEDGER_KEY_FILE, TOKEN_KEY_FILE, SUBJECT_KEY_FILE] {
            if !dir.join(f).exists() {
                return Err(KeyError(format!(
                    "the key file {} does not exist: point --data-dir at the server's data directory",
                    dir.join(f).display()
                )));
            }
        }
        Self::load_or_create(dir)
    }

    /// Builds keys from fixed material (benchmarks and tests).
    pub fn from_parts(ledger: SigningKey, token: SigningKey, subject: [u8; 32]) -> Keys {
        Keys {
            ledger,
            token,
            subject,
            created: Vec::new(),
        }
    }

    /// The key that signs session cookies and CSRF tokens, derived from the token signing key so
    /// every instance sharing the key files shares it (and rotating that key ends all sessions).
    pub fn session_key(&self) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.token.to_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"accord/session-key/v1");
        mac.finalize().into_bytes().into()
    }

    /// `subject_ref` for a subject id: HMAC-SHA-256 under the server key, lowercase hex. Lets a
    /// subject's entries be found without the id appearing in any leaf.
    pub fn subject_ref(&self, subject_id: &str) -> String {
        subject_ref(&self.subject, subject_id)
    }

    /// A keyed reference for what an idempotent request asked and the key it came with: HMAC-SHA-256
    /// under the server key, with a prefix no subject id can have (subject ids hold no control
    /// characters), so it equals no `subject_ref` and nobody holding the ledger can test guesses.
    pub fn request_ref(&self, what: &str, data: &str) -> String {
        subject_ref(
            &self.subject,
            &format!("accord/idempotency/v1\0{what}\0{data}"),
        )
    }
}

pub fn subject_ref(key: &[u8; 32], subject_id: &str) -> String {
    // HMAC accepts keys of any length; this cannot fail for a 32-byte key.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(subject_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| KeyError(format!("the operating system gave no randomness: {e}")))?;
    Ok(b)
}

fn ensure_private_dir(dir: &Path) -> Result<(), KeyError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| {
            KeyError(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
        set_mode(dir, 0o700)?;
    } else if !dir.is_dir() {
        return Err(KeyError(format!(
            "the data directory {} is not a directory",
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| {
        KeyError(format!(
            "cannot restrict the permissions of {}: {e}",
            path.display()
        ))
    })
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), KeyError> {
    Ok(())
}

/// Writes a new secret file that only the owner can read, complete or not at all: the contents go
/// to a private temporary file first, which is then hard-linked into place. Linking fails if the
/// name exists, so two instances starting at once agree on one key, and neither can read the
/// other's file half-written.
fn write_new_private(path: &Path, contents: &[u8]) -> Result<bool, KeyError> {
    let suffix = hex::encode(random_bytes::<6>()?);
    let tmp = path.with_extension(format!("tmp-{suffix}"));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = opts
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents).and_then(|_| f.sync_all()));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(KeyError(format!("cannot write {}: {e}", tmp.display())));
    }
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(KeyError(format!("cannot create {}: {e}", path.display()))),
    }
}

fn read_private(path: &Path) -> Result<String, KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                "key file is readable by others than its owner; run chmod 600 on it"
            );
        }
    }
    fs::read_to_string(path)
        .map_err(|e| KeyError(format!("cannot read the key file {}: {e}", path.display())))
}

fn load_signing_key(path: &Path, created: &mut Vec<PathBuf>) -> Result<SigningKey, KeyError> {
    if !path.exists() {
        let key = SigningKey::from_bytes(&random_bytes::<32>()?);
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError(format!("cannot encode a new key: {e}")))?;
        if write_new_private(path, pem.as_bytes())? {
            created.push(path.to_path_buf());
        }
    }
    let pem = read_private(path)?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        KeyError(format!(
            "the key file {} is not an Ed25519 PKCS#8 PEM private key: {e}",
            path.display()
        ))
    })
}

fn load_secret(path: &Path, created: &mut Vec<PathBuf>) -> Result<[u8; 32], KeyError> {
    if !path.exists() {
        let secret = random_bytes::<32>()?;
        if write_new_private(path, format!("{}\n", hex::encode(secret)).as_bytes())? {
            created.push(path.to_path_buf());
        }
    }
    let text = read_private(path)?;
    let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            KeyError(format!(
                "the key file {} must hold 64 hexadecimal characters",
                path.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        let k1 = Keys::load_or_create(&d).unwrap();
        assert_eq!(k1.created.len(), 3);
        let k2 = Keys::load_or_create(&d).unwrap();
        assert!(k2.created.is_empty());
        assert_eq!(k1.ledger.to_bytes(), k2.ledger.to_bytes());
        assert_eq!(k1.subject_ref("s-1"), k2.subject_ref("s-1"));
        assert_ne!(k1.subject_ref("s-1"), k1.subject_ref("s-2"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [LEDGER_KEY_FILE, TOKEN_KEY_FILE, SUBJECT_KEY_FILE] {
                let mode = fs::metadata(d.join(f)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
            let mode = fs::metadata(&d).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn a_damaged_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        Keys::load_or_create(dir.path()).unwrap();
        fs::write(dir.path().join(LEDGER_KEY_FILE), "garbage").unwrap();
        let e = Keys::load_or_create(dir.path()).unwrap_err();
        assert!(e.0.contains(LEDGER_KEY_FILE), "{e}");
    }
}
