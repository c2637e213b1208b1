//! Access events: every change to who may do what is a ledger entry.

use serde::{Deserialize, Serialize};

use super::model::Role;
use crate::ledger::LedgerEvent;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AccessEvent {
    UserCreated {
        user_id: String,
        email: String,
        name: String,
        roles: Vec<Role>,
    },
    /// The password was set or changed. The hash itself is kept only in the users table: a
    /// credential is a secret, not a record, and must not travel in exports.
    PasswordSet {
        user_id: String,
    },
    RolesChanged {
        user_id: String,
        granted: Vec<Role>,
        revoked: Vec<Role>,
    },
    UserDisabled {
        user_id: String,
    },
    LoggedIn {
        user_id: String,
        address: Option<String>,
    },
    LoggedOut {
        user_id: String,
    },
    /// Too many failed logins: no login for this account until `until` (µs).
    LockedOut {
        user_id: String,
        until: i64,
        failures: u32,
    },
    TokenIssued {
        jti: String,
        client: String,
        roles: Vec<Role>,
        expires_at: i64,
        /// The actor that minted it (`user:<id>`, `service:<client>#<jti>`, `cli`).
        minted_by: String,
    },
    TokenRevoked {
        jti: String,
        /// Why, when the revocation follows from another change: the minter was disabled or
        /// its own token revoked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        because: Option<String>,
    },
    /// A one-time link (its SHA-256, never the link itself).
    SetupLinkCreated {
        token_hash: String,
        purpose: String,
        user_id: Option<String>,
        expires_at: i64,
    },
    SetupLinkUsed {
        token_hash: String,
    },
}

/// The kinds of access entries.
pub const USER_CREATED: &str = "access.user_created";
pub const PASSWORD_SET: &str = "access.password_set";
pub const ROLES_CHANGED: &str = "access.roles_changed";
pub const USER_DISABLED: &str = "access.user_disabled";
pub const LOGGED_IN: &str = "access.logged_in";
pub const LOGGED_OUT: &str = "access.logged_out";
pub const LOCKED_OUT: &str = "access.locked_out";
pub const TOKEN_ISSUED: &str = "access.token_issued";
pub const TOKEN_REVOKED: &str = "access.token_revoked";
pub const SETUP_LINK_CREATED: &str = "access.setup_link_created";
pub const SETUP_LINK_USED: &str = "access.setup_link_used";

/// Every access kind.
pub const ACCESS_KINDS: &[&str] = &[
    USER_CREATED,
    PASSWORD_SET,
    ROLES_CHANGED,
    USER_DISABLED,
    LOGGED_IN,
    LOGGED_OUT,
    LOCKED_OUT,
    TOKEN_ISSUED,
    TOKEN_REVOKED,
    SETUP_LINK_CREATED,
    SETUP_LINK_USED,
];

impl LedgerEvent for AccessEvent {
    fn kind(&self) -> &'static str {
        match self {
            AccessEvent::UserCreated { .. } => USER_CREATED,
            AccessEvent::PasswordSet { .. } => PASSWORD_SET,
            AccessEvent::RolesChanged { .. } => ROLES_CHANGED,
            AccessEvent::UserDisabled { .. } => USER_DISABLED,
            AccessEvent::LoggedIn { .. } => LOGGED_IN,
            AccessEvent::LoggedOut { .. } => LOGGED_OUT,
            AccessEvent::LockedOut { .. } => LOCKED_OUT,
            AccessEvent::TokenIssued { .. } => TOKEN_ISSUED,
            AccessEvent::TokenRevoked { .. } => TOKEN_REVOKED,
            AccessEvent::SetupLinkCreated { .. } => SETUP_LINK_CREATED,
            AccessEvent::SetupLinkUsed { .. } => SETUP_LINK_USED,
        }
    }

    fn entity(&self) -> String {
        match self {
            AccessEvent::UserCreated { user_id, .. }
            | AccessEvent::PasswordSet { user_id }
            | AccessEvent::RolesChanged { user_id, .. }
            | AccessEvent::UserDisabled { user_id }
            | AccessEvent::LoggedIn { user_id, .. }
            | AccessEvent::LoggedOut { user_id }
            | AccessEvent::LockedOut { user_id, .. } => format!("user:{user_id}"),
            AccessEvent::TokenIssued { jti, .. } | AccessEvent::TokenRevoked { jti, .. } => {
                format!("token:{jti}")
            }
            AccessEvent::SetupLinkCreated { token_hash, .. }
            | AccessEvent::SetupLinkUsed { token_hash } => {
                format!("setup_link:{}", &token_hash[..token_hash.len().min(16)])
            }
        }
    }
}
