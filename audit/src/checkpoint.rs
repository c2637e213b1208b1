//! C2SP tlog checkpoints (<https://c2sp.org/tlog-checkpoint>): the signed statement "the log
//! `origin` has `size` entries and this root".

use crate::hash::{Hash, from_b64, to_b64};
use crate::note::{NoteError, NoteSigner, NoteVerifier, open_note};

/// A log's state at one size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, unique per log.
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// Merkle root over those entries.
    pub root: Hash,
}

/// Why a checkpoint text or note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The note did not open (see [`NoteError`]).
    #[error("{0}")]
    Note(#[from] NoteError),
    /// The text is not a checkpoint body.
    #[error("checkpoint text is malformed: {0}")]
    Malformed(String),
}

impl Checkpoint {
    /// `"origin\nsize\nbase64(root)\n"`, the text that gets signed.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, to_b64(&self.root))
    }

    /// Parses a checkpoint body: a non-empty origin line, the size in decimal without leading
    /// zeros, the root in standard base64 (32 bytes), then optional extension lines, which are
    /// ignored. The text must end with a newline.
    pub fn parse_text(text: &str) -> Result<Self, CheckpointError> {
        let malformed = |m: &str| CheckpointError::Malformed(m.to_string());
        let Some(body) = text.strip_suffix('\n') else {
            return Err(malformed("it does not end with a newline"));
        };
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(malformed("the origin line is empty"));
        }
        let size_line = lines
            .next()
            .ok_or_else(|| malformed("the size line is missing"))?;
        let size = parse_size(size_line)
            .ok_or_else(|| malformed("the size must be a decimal number without leading zeros"))?;
        let root_line = lines
            .next()
            .ok_or_else(|| malformed("the root hash line is missing"))?;
        let root = from_b64(root_line)
            .map_err(|e| CheckpointError::Malformed(format!("the root hash is invalid: {e}")))?;
        if lines.any(str::is_empty) {
            return Err(malformed("it contains an empty extension line"));
        }
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
        })
    }

    /// The full signed note for this checkpoint.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError> {
        signer.sign(&self.to_text())
    }

    /// Opens a signed checkpoint note: it must carry a valid signature by `verifier` (other
    /// signers, e.g. witnesses, are ignored) and its text must parse.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Self, CheckpointError> {
        let opened = open_note(note, std::slice::from_ref(verifier))?;
        Self::parse_text(opened.text)
    }

    /// Reads the checkpoint in a note without checking any signature: only for naming a
    /// checkpoint in an error message before its signature has been checked. Never trust it.
    pub fn peek_unverified(note: &str) -> Option<Self> {
        let split = note.rfind("\n\n")?;
        Self::parse_text(note.get(..split + 1)?).ok()
    }
}

fn parse_size(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use ed25519_dalek::SigningKey;

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "accord.example/log".into(),
            size: 12,
            root: leaf_hash(b"root"),
        }
    }

    #[test]
    fn text_round_trip() {
        let c = cp();
        let text = c.to_text();
        assert_eq!(text.lines().count(), 3);
        assert_eq!(Checkpoint::parse_text(&text).unwrap(), c);
        let with_ext = format!("{text}ext one\next two\n");
        assert_eq!(Checkpoint::parse_text(&with_ext).unwrap(), c);
    }

    #[test]
    fn parse_text_rejects() {
        let root = to_b64(&leaf_hash(b"root"));
        for bad in [
            String::new(),
            "o\n12\n".to_string(),
            format!("o\n12\n{root}"),
            format!("\n12\n{root}\n"),
            format!("o\n012\n{root}\n"),
            format!("o\n+12\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            "o\n12\nZG9uJ3QgY2FyZSAy\n".to_string(),
            format!("o\n12\n{root}\n\nx\n"),
        ] {
            assert!(Checkpoint::parse_text(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Checkpoint::parse_text(&format!("o\n0\n{root}\n"))
                .unwrap()
                .size,
            0
        );
        assert_eq!(
            Checkpoint::parse_text(&format!("o\n18446744073709551615\n{root}\n"))
                .unwrap()
                .size,
            u64::MAX
        );
    }

    #[test]
    fn sign_and_open() {
        let s = NoteSigner::new("accord.example/log", SigningKey::from_bytes(&[5; 32])).unwrap();
        let other =
            NoteSigner::new("accord.example/log", SigningKey::from_bytes(&[6; 32])).unwrap();
        let note = cp().sign(&s).unwrap();
        assert_eq!(Checkpoint::open(&note, &s.verifier()).unwrap(), cp());
        assert_eq!(Checkpoint::peek_unverified(&note), Some(cp()));
        assert!(matches!(
            Checkpoint::open(&note, &other.verifier()),
            Err(CheckpointError::Note(NoteError::NoKnownSignature { .. }))
        ));
        let tampered = note.replacen("\n12\n", "\n13\n", 1);
        assert!(matches!(
            Checkpoint::open(&tampered, &s.verifier()),
            Err(CheckpointError::Note(NoteError::BadSignature { .. }))
        ));
        // A validly signed note that is not a checkpoint.
        let not_cp = s.sign("hello\n").unwrap();
        assert!(matches!(
            Checkpoint::open(&not_cp, &s.verifier()),
            Err(CheckpointError::Malformed(_))
        ));
        assert_eq!(Checkpoint::peek_unverified("garbage"), None);
    }
}
