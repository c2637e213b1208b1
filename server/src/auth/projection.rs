//! The access tables as a fold over the ledger: [`apply`] writes what one access event means to
//! them. The write path calls it inside the append (after the service's guards), and `accord
//! ledger replay` calls it for every recorded event, so both arrive at the same rows. Password
//! hashes are the one thing no event carries (a credential is a secret, not a record): the
//! service writes them beside the projection, and replay names them as not replayable.

use diesel::QueryResult;

use super::events::AccessEvent;
use super::store::{self, SetupLinkRow, TokenRow, UserRow};
use crate::db::{AnyConnection, ProjectedTable, Rows, json_rows};
use crate::ledger::Appended;

/// The tables this projection writes, as `replay --check` compares them.
pub const TABLES: &[ProjectedTable] = &[
    ProjectedTable {
        name: "users",
        key: &["id"],
        rows: Rows::All(|c| json_rows(store::all_users(c)?)),
    },
    ProjectedTable {
        name: "user_roles",
        key: &["user_id", "role"],
        rows: Rows::All(|c| json_rows(store::all_user_roles(c)?)),
    },
    ProjectedTable {
        name: "api_tokens",
        key: &["jti"],
        rows: Rows::All(|c| json_rows(store::all_tokens(c)?)),
    },
    ProjectedTable {
        name: "setup_links",
        key: &["token_hash"],
        rows: Rows::All(|c| json_rows(store::all_setup_links(c)?)),
    },
];

/// Applies one access event recorded as `a`.
pub fn apply(c: &mut AnyConnection, event: &AccessEvent, a: &Appended) -> QueryResult<()> {
    let seq = a.seq;
    let at = a.at.micros();
    match event {
        AccessEvent::UserCreated {
            user_id,
            email,
            name,
            roles,
        } => {
            store::insert_user(
                c,
                &UserRow {
                    id: user_id.clone(),
                    email: email.clone(),
                    name: name.clone(),
                    password_hash: None,
                    disabled: false,
                    session_epoch: 0,
                    locked_until: None,
                    created_at: at,
                    updated_seq: seq,
                },
            )?;
            for r in roles {
                store::grant_role(c, user_id, *r, seq)?;
            }
        }
        AccessEvent::PasswordSet { user_id } => {
            store::password_changed(c, user_id, seq)?;
        }
        AccessEvent::RolesChanged {
            user_id,
            granted,
            revoked,
        } => {
            for r in granted {
                store::grant_role(c, user_id, *r, seq)?;
            }
            for r in revoked {
                store::revoke_role(c, user_id, *r)?;
            }
        }
        AccessEvent::UserDisabled { user_id } => {
            store::disable_user(c, user_id, seq)?;
        }
        AccessEvent::LoggedIn { .. } => {}
        AccessEvent::LoggedOut { user_id } => {
            store::bump_session_epoch(c, user_id, seq)?;
        }
        AccessEvent::LockedOut { user_id, until, .. } => {
            store::set_locked_until(c, user_id, *until, seq)?;
        }
        AccessEvent::TokenIssued {
            jti,
            client,
            roles,
            expires_at,
            minted_by,
        } => store::insert_token(
            c,
            &TokenRow {
                jti: jti.clone(),
                client: client.clone(),
                roles: serde_json::to_string(roles)
                    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?,
                issued_at: at,
                expires_at: *expires_at,
                minted_by: minted_by.clone(),
                revoked_at: None,
                revoked_by: None,
            },
        )?,
        AccessEvent::TokenRevoked { jti, .. } => {
            store::revoke_token(c, jti, at, &a.actor)?;
        }
        AccessEvent::SetupLinkCreated {
            token_hash,
            purpose,
            user_id,
            expires_at,
        } => store::insert_setup_link(
            c,
            &SetupLinkRow {
                token_hash: token_hash.clone(),
                purpose: purpose.clone(),
                user_id: user_id.clone(),
                created_at: at,
                expires_at: *expires_at,
                used_at: None,
            },
        )?,
        AccessEvent::SetupLinkUsed { token_hash } => {
            store::use_setup_link(c, token_hash, at)?;
        }
    }
    Ok(())
}
