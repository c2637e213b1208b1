//! What domain code hands to the ledger: typed events, who did it, and the request it came from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::AppError;

/// A domain event that can be recorded. Implemented by each domain's event enum.
pub trait LedgerEvent: Serialize {
    /// Dotted kind, e.g. `consent.recorded`; goes into the leaf body.
    fn kind(&self) -> &'static str;
    /// The entity the event is about, e.g. `purpose:marketing.email`.
    fn entity(&self) -> String;
    /// The data subject the event concerns, if any. Only its HMAC (`subject_ref`) reaches the leaf.
    fn subject(&self) -> Option<&str> {
        None
    }
}

/// An event ready for the sequencer: its leaf fields and its canonical payload.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub kind: String,
    pub entity: String,
    pub subject: Option<String>,
    /// RFC 8785 canonical JSON of the event.
    pub payload: String,
}

impl EventDraft {
    /// Serialises and canonicalises an event. Fails (as an internal error: it is a programming
    /// mistake) if the event holds a non-integer number, which has no canonical form here.
    pub fn new<E: LedgerEvent>(event: &E) -> Result<EventDraft, AppError> {
        let value = serde_json::to_value(event).map_err(AppError::internal)?;
        let payload = accord_audit::canon::canonical_json(&value).map_err(|e| {
            AppError::internal(anyhow::anyhow!("event is not canonicalisable: {e}"))
        })?;
        Ok(EventDraft {
            kind: event.kind().to_string(),
            entity: event.entity(),
            subject: event.subject().map(str::to_string),
            payload,
        })
    }
}

/// Who caused a change, as recorded in the leaf: `system`, `cli`, `user:<id>`, `service:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(String);

impl Actor {
    pub fn system() -> Actor {
        Actor("system".into())
    }
    pub fn cli() -> Actor {
        Actor("cli".into())
    }
    pub fn user(id: &str) -> Actor {
        Actor(format!("user:{id}"))
    }
    pub fn service(name: &str) -> Actor {
        Actor(format!("service:{name}"))
    }
    pub fn external(id: &str) -> Actor {
        Actor(format!("external:{id}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A recorded entry, as the writer gets it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appended {
    pub seq: crate::vocab::Seq,
    pub leaf_hash: String,
    pub at: Timestamp,
    pub kind: String,
    /// Who caused it (the leaf's `actor`).
    pub actor: String,
}

/// The first of an append's recorded entries (an append of one event or more has one).
pub fn first(appended: &[Appended]) -> Result<&Appended, AppError> {
    appended
        .first()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("append returned no entry")))
}

/// A definition (a purpose, a notice, a vendor, a DPA version…) and the entry that recorded it;
/// `changed: false` (and no leaf hash) when it was already so and nothing was recorded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Defined<T> {
    pub seq: crate::vocab::Seq,
    pub leaf_hash: String,
    pub changed: bool,
    #[serde(flatten)]
    pub value: T,
}

impl<T> Defined<T> {
    /// `value`, recorded by the entry `a`.
    pub fn new(a: &Appended, value: T) -> Defined<T> {
        Defined {
            seq: a.seq,
            leaf_hash: a.leaf_hash.clone(),
            changed: true,
            value,
        }
    }

    /// `value`, already recorded at `seq`: nothing was written.
    pub fn unchanged(seq: crate::vocab::Seq, value: T) -> Defined<T> {
        Defined {
            seq,
            leaf_hash: String::new(),
            changed: false,
            value,
        }
    }
}

/// The ledger's own events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SystemEvent {
    /// Seq 0: the log exists, under this origin and key.
    LedgerInitialised {
        origin: String,
        verifier_key: String,
        version: String,
    },
    /// An instance started: what ran, with which configuration and access policy files.
    ServerStarted {
        instance: String,
        version: String,
        backend: String,
        config_fingerprint: String,
        /// File name → SHA-256 (hex) of each policy file in force.
        policies: BTreeMap<String, String>,
        /// Where they came from: `embedded` (built into the binary) or the configured folder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policies_source: Option<String>,
    },
}

impl LedgerEvent for SystemEvent {
    fn kind(&self) -> &'static str {
        match self {
            SystemEvent::LedgerInitialised { .. } => "ledger.initialised",
            SystemEvent::ServerStarted { .. } => "server.started",
        }
    }

    fn entity(&self) -> String {
        match self {
            SystemEvent::LedgerInitialised { origin, .. } => format!("ledger:{origin}"),
            SystemEvent::ServerStarted { instance, .. } => format!("instance:{instance}"),
        }
    }
}
