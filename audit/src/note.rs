//! C2SP signed notes (<https://c2sp.org/signed-note>), Ed25519 keys only.
//!
//! A note is a text, a blank line, and signature lines `— name base64(key id || signature)`.
//! Keys are named; a verifier key is written `name+hhhhhhhh+base64(0x01 || public key)` where
//! `hhhhhhhh` is the key id: the first four bytes, big endian, of
//! SHA-256(name || "\n" || 0x01 || public key).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use crate::hash::sha256;

/// The signature algorithm byte for Ed25519 in key ids and verifier keys.
const ALG_ED25519: u8 = 0x01;
/// Every signature line starts with an em dash and a space.
const SIG_PREFIX: &str = "\u{2014} ";
/// Bound on signature lines, so a hostile note cannot make us verify forever.
const MAX_SIGNATURES: usize = 100;

/// Why a key, a text or a note was refused. The Display says what was wrong in plain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key name that is empty, contains whitespace or contains '+'.
    #[error("key name {0:?} is invalid: it must be non-empty, without whitespace or '+'")]
    InvalidName(String),
    /// A verifier key string that does not have the `name+hhhhhhhh+base64` form.
    #[error("verifier key is malformed: {0}")]
    MalformedKey(String),
    /// A verifier key whose key id is not the one its name and public key give.
    #[error(
        "verifier key id {claimed:08x} does not match its name and public key (expected {actual:08x})"
    )]
    KeyIdMismatch {
        /// The id written in the key.
        claimed: u32,
        /// The id computed from name and key.
        actual: u32,
    },
    /// Text that cannot be signed or a note whose text part is invalid.
    #[error("note text is invalid: {0}")]
    InvalidText(String),
    /// A note that does not have the signed-note structure.
    #[error("note is malformed: {0}")]
    Malformed(String),
    /// A known key's signature did not verify: the note was altered or signed by another key.
    #[error("signature by known key {name}+{key_id:08x} does not verify")]
    BadSignature {
        /// The key's name.
        name: String,
        /// The key's id.
        key_id: u32,
    },
    /// No signature from any of the known keys.
    #[error("note has no signature from a known key (expected one of: {expected})")]
    NoKnownSignature {
        /// The known keys, as `name+id`, comma-separated.
        expected: String,
    },
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::InvalidName(name.to_string()));
    }
    Ok(())
}

fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let h = sha256(&[name.as_bytes(), b"\n", &[ALG_ED25519], key.as_bytes()]);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// Text rules shared by signing and opening: non-empty, ends in a newline, no empty line (the
/// last blank line must be the one separating text from signatures), no control characters
/// other than newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.bytes().all(|b| b == b'\n') {
        return Err(NoteError::InvalidText("it is empty".into()));
    }
    if !text.ends_with('\n') {
        return Err(NoteError::InvalidText(
            "it does not end with a newline".into(),
        ));
    }
    if text.starts_with('\n') || text.contains("\n\n") {
        return Err(NoteError::InvalidText("it contains an empty line".into()));
    }
    if text.chars().any(|c| c != '\n' && (c as u32) < 0x20) {
        return Err(NoteError::InvalidText(
            "it contains a control character other than newline".into(),
        ));
    }
    Ok(())
}

/// A named Ed25519 signing key for notes.
#[derive(Debug, Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl NoteSigner {
    /// A signer named `name` (non-empty, no whitespace, no '+').
    pub fn new(name: impl Into<String>, key: SigningKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_name(&name)?;
        Ok(Self { name, key })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id (see the module docs).
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, &self.key.verifying_key())
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        let key = self.key.verifying_key();
        NoteVerifier {
            key_id: key_id(&self.name, &key),
            name: self.name.clone(),
            key,
        }
    }

    /// Signs `text` (non-empty, ending in '\n', no empty line, no control characters but '\n')
    /// and returns the note: `text + "\n" + "— name base64(key id || signature)\n"`.
    /// Ed25519 is deterministic, so the same text always gives the same note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig: Signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key_id().to_be_bytes());
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }
}

/// A named Ed25519 verifier key for notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for `key` under `name` (non-empty, no whitespace, no '+').
    pub fn new(name: impl Into<String>, key: VerifyingKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_name(&name)?;
        Ok(Self {
            key_id: key_id(&name, &key),
            name,
            key,
        })
    }

    /// Parses `name+hhhhhhhh+base64(0x01 || public key)` and checks that the key id matches the
    /// name and key. Surrounding whitespace (e.g. a trailing newline from a file) is ignored.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let vkey = vkey.trim();
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedKey(
                "expected name+hhhhhhhh+base64".into(),
            ));
        };
        check_name(name)?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::MalformedKey(
                "the key id must be 8 hex digits".into(),
            ));
        }
        let claimed = u32::from_str_radix(id_hex, 16)
            .map_err(|_| NoteError::MalformedKey("the key id must be 8 hex digits".into()))?;
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|e| NoteError::MalformedKey(format!("the key is not valid base64: {e}")))?;
        let Some((&alg, pk)) = raw.split_first() else {
            return Err(NoteError::MalformedKey("the key is empty".into()));
        };
        if alg != ALG_ED25519 {
            return Err(NoteError::MalformedKey(format!(
                "algorithm byte {alg:#04x} is not Ed25519 (0x01)"
            )));
        }
        let pk: [u8; 32] = pk.try_into().map_err(|_| {
            NoteError::MalformedKey(format!(
                "an Ed25519 public key is 32 bytes, got {}",
                pk.len()
            ))
        })?;
        let key = VerifyingKey::from_bytes(&pk)
            .map_err(|_| NoteError::MalformedKey("not a valid Ed25519 public key".into()))?;
        let actual = key_id(name, &key);
        if actual != claimed {
            return Err(NoteError::KeyIdMismatch { claimed, actual });
        }
        Ok(Self {
            name: name.to_string(),
            key_id: actual,
            key,
        })
    }

    /// The `name+hhhhhhhh+base64` form, which [`NoteVerifier::parse`] reads back.
    pub fn to_vkey(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, STANDARD.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// A note whose signatures were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote<'a> {
    /// The signed text, including its final newline.
    pub text: &'a str,
    /// Names of the known keys whose signatures verified, in note order.
    pub verified_by: Vec<String>,
}

/// Opens a signed note: splits at the last blank line, checks the text and every signature line,
/// verifies the signatures of known keys and ignores those of unknown (name, key id) pairs.
///
/// Fails when the note is malformed, when any known key's signature does not verify, or when no
/// known key signed it. Success means at least one of `known` signed exactly `text`.
pub fn open_note<'a>(note: &'a str, known: &[NoteVerifier]) -> Result<OpenedNote<'a>, NoteError> {
    let Some(split) = note.rfind("\n\n") else {
        return Err(NoteError::Malformed(
            "no blank line separates the text from the signatures".into(),
        ));
    };
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    check_text(text)?;
    if sigs.is_empty() {
        return Err(NoteError::Malformed("no signature lines".into()));
    }
    if !sigs.ends_with('\n') {
        return Err(NoteError::Malformed(
            "the last signature line does not end with a newline".into(),
        ));
    }
    let mut verified_by: Vec<String> = Vec::new();
    // Split on '\n' only: a '\r' before it is a control character, not part of a line ending.
    let lines = sigs.strip_suffix('\n').unwrap_or(sigs);
    for (n, line) in lines.split('\n').enumerate() {
        if line.chars().any(|c| (c as u32) < 0x20) {
            return Err(NoteError::Malformed(format!(
                "signature line {} contains a control character",
                n + 1
            )));
        }
        if n >= MAX_SIGNATURES {
            return Err(NoteError::Malformed(format!(
                "more than {MAX_SIGNATURES} signature lines"
            )));
        }
        let Some(rest) = line.strip_prefix(SIG_PREFIX) else {
            return Err(NoteError::Malformed(format!(
                "signature line {} does not start with \"— \"",
                n + 1
            )));
        };
        let Some((name, b64)) = rest.split_once(' ') else {
            return Err(NoteError::Malformed(format!(
                "signature line {} has no space between name and signature",
                n + 1
            )));
        };
        check_name(name).map_err(|_| {
            NoteError::Malformed(format!("signature line {} has an invalid key name", n + 1))
        })?;
        let blob = STANDARD.decode(b64).map_err(|e| {
            NoteError::Malformed(format!("signature line {} is not valid base64: {e}", n + 1))
        })?;
        let Some((id_bytes, sig_bytes)) = blob.split_first_chunk::<4>() else {
            return Err(NoteError::Malformed(format!(
                "signature line {} is too short to hold a key id",
                n + 1
            )));
        };
        if sig_bytes.is_empty() {
            return Err(NoteError::Malformed(format!(
                "signature line {} holds no signature",
                n + 1
            )));
        }
        let id = u32::from_be_bytes(*id_bytes);
        let Some(verifier) = known.iter().find(|k| k.name == name && k.key_id == id) else {
            continue;
        };
        let bad = || NoteError::BadSignature {
            name: verifier.name.clone(),
            key_id: verifier.key_id,
        };
        let sig_array: [u8; 64] = sig_bytes.try_into().map_err(|_| bad())?;
        let sig = Signature::from_bytes(&sig_array);
        verifier
            .key
            .verify(text.as_bytes(), &sig)
            .map_err(|_| bad())?;
        if !verified_by.iter().any(|v| v == name) {
            verified_by.push(name.to_string());
        }
    }
    if verified_by.is_empty() {
        let expected = known
            .iter()
            .map(|k| format!("{}+{:08x}", k.name, k.key_id))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(NoteError::NoKnownSignature { expected });
    }
    Ok(OpenedNote { text, verified_by })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(n: u8, name: &str) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[n; 32])).unwrap()
    }

    const TEXT: &str = "accord.example/log\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

    #[test]
    fn interoperates_with_the_published_go_example() {
        // The example key and note from the signed-note reference implementation's documentation.
        let skey_b64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let raw = STANDARD.decode(skey_b64).unwrap();
        let seed: [u8; 32] = raw[1..].try_into().unwrap();
        let s = NoteSigner::new("PeterNeumann", SigningKey::from_bytes(&seed)).unwrap();
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        assert_eq!(s.verifier().to_vkey(), vkey);
        assert_eq!(s.key_id(), 0xc74f20a3);
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let want = format!(
            "{text}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        assert_eq!(s.sign(text).unwrap(), want);
        let v = NoteVerifier::parse(vkey).unwrap();
        let opened = open_note(&want, std::slice::from_ref(&v)).unwrap();
        assert_eq!(opened.text, text);
        assert_eq!(opened.verified_by, vec!["PeterNeumann".to_string()]);
        let altered = want.replace("cryptography", "cryptographY");
        assert!(matches!(
            open_note(&altered, &[v]),
            Err(NoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn sign_open_round_trip() {
        let s = signer(1, "accord.example/log");
        let note = s.sign(TEXT).unwrap();
        assert!(note.starts_with(TEXT));
        let opened = open_note(&note, &[s.verifier()]).unwrap();
        assert_eq!(opened.text, TEXT);
        assert_eq!(opened.verified_by, vec!["accord.example/log".to_string()]);
        let v = NoteVerifier::parse(&s.verifier().to_vkey()).unwrap();
        assert_eq!(v, s.verifier());
        assert_eq!(v.name(), "accord.example/log");
        assert_eq!(v.key_id(), s.key_id());
        // A trailing newline, as read from a file, is fine.
        assert!(NoteVerifier::parse(&format!("{}\n", v.to_vkey())).is_ok());
    }

    #[test]
    fn unknown_signers_are_ignored() {
        let s = signer(1, "log");
        let witness = signer(2, "witness");
        let note = s.sign(TEXT).unwrap();
        let extra = witness.sign(TEXT).unwrap();
        let witness_line = extra.rsplit_once("\n\n").unwrap().1;
        let both = format!("{note}{witness_line}");
        let opened = open_note(&both, &[s.verifier()]).unwrap();
        assert_eq!(opened.verified_by, vec!["log".to_string()]);
        let opened = open_note(&both, &[witness.verifier(), s.verifier()]).unwrap();
        assert_eq!(
            opened.verified_by,
            vec!["log".to_string(), "witness".to_string()]
        );
        // An unknown line with garbage signature bytes is still ignored.
        let junk = format!("{note}— someone AAAAAAAAAAAA\n");
        assert!(open_note(&junk, &[s.verifier()]).is_ok());
        // Only unknown signers: refused.
        let err = open_note(&note, &[witness.verifier()]).unwrap_err();
        assert!(matches!(err, NoteError::NoKnownSignature { .. }));
        assert!(err.to_string().contains("witness+"));
    }

    #[test]
    fn known_key_with_bad_signature_is_rejected() {
        let s = signer(1, "log");
        let note = s.sign(TEXT).unwrap();
        let tampered = note.replacen("42", "43", 1);
        let err = open_note(&tampered, &[s.verifier()]).unwrap_err();
        assert_eq!(
            err,
            NoteError::BadSignature {
                name: "log".into(),
                key_id: s.key_id()
            }
        );
        // Same name and id but another key's signature bytes: still a bad signature.
        let other = signer(9, "log");
        let forged_sig = other.sign(TEXT).unwrap();
        let forged_b64 = forged_sig.rsplit_once(' ').unwrap().1.trim_end();
        let mut blob = STANDARD.decode(forged_b64).unwrap();
        blob[..4].copy_from_slice(&s.key_id().to_be_bytes());
        let forged = format!("{TEXT}\n— log {}\n", STANDARD.encode(blob));
        assert!(matches!(
            open_note(&forged, &[s.verifier()]),
            Err(NoteError::BadSignature { .. })
        ));
        // A known key with a truncated signature.
        let short = format!(
            "{TEXT}\n— log {}\n",
            STANDARD.encode(
                s.key_id()
                    .to_be_bytes()
                    .iter()
                    .chain(&[1u8; 10])
                    .copied()
                    .collect::<Vec<_>>()
            )
        );
        assert!(matches!(
            open_note(&short, &[s.verifier()]),
            Err(NoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn malformed_notes_are_rejected_with_a_reason() {
        let s = signer(1, "log");
        let note = s.sign(TEXT).unwrap();
        let known = [s.verifier()];
        let cases: Vec<(String, &str)> = vec![
            (note.replacen("\n\n", "\n", 1), "no blank line"),
            (note.trim_end_matches('\n').to_string(), "newline"),
            (note.replacen("— log ", "— log !!!", 1), "base64"),
            (note.replacen("— log", "-- log", 1), "does not start"),
            (note.replacen("— log ", "— log", 1), "no space"),
            (note.replacen("— log", "— lo+g", 1), "invalid key name"),
            (format!("{note}\n"), "empty line"),
            (note[TEXT.len()..].to_string(), "no blank line"),
            (format!("\n{}", &note[TEXT.len()..]), "is empty"),
            (
                format!(
                    "\n\n— log {}\n",
                    note.rsplit_once(' ').unwrap().1.trim_end()
                ),
                "is empty",
            ),
            (format!("{TEXT}\n"), "no signature lines"),
            (format!("{TEXT}\n\n"), "empty line"),
            (note.replacen("42", "4\u{7}2", 1), "control character"),
            (
                format!("{}\r\n", note.trim_end_matches('\n')),
                "control character",
            ),
            (format!("{TEXT}\n— log AAAA\n"), "too short"),
            (format!("{TEXT}\n— log AAAAAA==\n"), "no signature"),
        ];
        for (bad, want) in cases {
            let err = open_note(&bad, &known).unwrap_err();
            assert!(
                err.to_string().contains(want),
                "{bad:?}: got {err}, want it to mention {want:?}"
            );
        }
        let many = format!("{note}{}", "— other AAAAAAAAAAAA\n".repeat(MAX_SIGNATURES));
        assert!(
            open_note(&many, &known)
                .unwrap_err()
                .to_string()
                .contains("more than")
        );
    }

    #[test]
    fn sign_refuses_bad_text_and_names() {
        let s = signer(1, "log");
        assert!(s.sign("").is_err());
        assert!(s.sign("no newline").is_err());
        assert!(s.sign("a\n\nb\n").is_err());
        assert!(s.sign("\n").is_err());
        assert!(s.sign("tab\there\n").is_err());
        for name in ["", "a b", "a+b", "a\nb", "a\u{a0}b"] {
            assert!(
                NoteSigner::new(name, SigningKey::from_bytes(&[1; 32])).is_err(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn vkey_parsing() {
        let s = signer(3, "log");
        let vkey = s.verifier().to_vkey();
        let (name, rest) = vkey.split_once('+').unwrap();
        let (id, key) = rest.split_once('+').unwrap();
        // A key id that does not match the name and key.
        let wrong_id = format!("{name}+{:08x}+{key}", s.key_id() ^ 1);
        assert!(matches!(
            NoteVerifier::parse(&wrong_id),
            Err(NoteError::KeyIdMismatch { .. })
        ));
        // Renaming the key changes its id, so the old id no longer matches.
        assert!(matches!(
            NoteVerifier::parse(&format!("other+{id}+{key}")),
            Err(NoteError::KeyIdMismatch { .. })
        ));
        for bad in [
            "",
            "log",
            "log+1234",
            &format!("log+{id}"),
            &format!("log+123+{key}"),
            &format!("log+zzzzzzzz+{key}"),
            &format!("log+{id}+!!!"),
            &format!("log+{id}+"),
            &format!("log+{id}+AgAA"),
            &format!("+{id}+{key}"),
            &format!("{name}+{id}+{}", STANDARD.encode([1u8; 20])),
        ] {
            assert!(NoteVerifier::parse(bad).is_err(), "{bad:?}");
        }
    }
}
