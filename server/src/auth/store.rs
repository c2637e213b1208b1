//! Access tables. Written only by projections of access events (and the password hash beside
//! them); read by the service and by the in-memory access state.

use diesel::prelude::*;

use super::model::Role;
use crate::db::AnyConnection;
use crate::db::schema::{api_tokens, setup_links, user_roles, users};
use crate::vocab::Seq;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = users, treat_none_as_null = true)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub session_epoch: i64,
    pub locked_until: Option<i64>,
    pub created_at: i64,
    pub updated_seq: Seq,
}

pub fn insert_user(conn: &mut AnyConnection, row: &UserRow) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn user_by_email(conn: &mut AnyConnection, email: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn user_by_id(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::id.eq(id))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn all_users(conn: &mut AnyConnection) -> QueryResult<Vec<UserRow>> {
    users::table
        .order(users::email.asc())
        .select(UserRow::as_select())
        .load(conn)
}

pub fn count_users(conn: &mut AnyConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

/// A new password (its hash written by [`set_password_hash`]): every session ends and a lockout
/// is lifted.
pub fn password_changed(conn: &mut AnyConnection, id: &str, seq: Seq) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::id.eq(id)))
        .set((
            users::session_epoch.eq(users::session_epoch + 1),
            users::locked_until.eq(None::<i64>),
            users::updated_seq.eq(seq),
        ))
        .execute(conn)
}

/// Stores a password hash: the one column no ledger event carries.
pub fn set_password_hash(conn: &mut AnyConnection, id: &str, hash: &str) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::id.eq(id)))
        .set(users::password_hash.eq(Some(hash)))
        .execute(conn)
}

pub fn disable_user(conn: &mut AnyConnection, id: &str, seq: Seq) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::id.eq(id)))
        .set((
            users::disabled.eq(true),
            users::session_epoch.eq(users::session_epoch + 1),
            users::updated_seq.eq(seq),
        ))
        .execute(conn)
}

/// Ends every session of the user (logout everywhere).
pub fn bump_session_epoch(conn: &mut AnyConnection, id: &str, seq: Seq) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::id.eq(id)))
        .set((
            users::session_epoch.eq(users::session_epoch + 1),
            users::updated_seq.eq(seq),
        ))
        .execute(conn)
}

pub fn set_locked_until(
    conn: &mut AnyConnection,
    id: &str,
    until: i64,
    seq: Seq,
) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::id.eq(id)))
        .set((
            users::locked_until.eq(Some(until)),
            users::updated_seq.eq(seq),
        ))
        .execute(conn)
}

pub fn grant_role(
    conn: &mut AnyConnection,
    user_id: &str,
    role: Role,
    seq: Seq,
) -> QueryResult<()> {
    let exists: i64 = user_roles::table
        .filter(user_roles::user_id.eq(user_id))
        .filter(user_roles::role.eq(role.as_str()))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(user_roles::table)
            .values((
                user_roles::user_id.eq(user_id),
                user_roles::role.eq(role.as_str()),
                user_roles::granted_seq.eq(seq),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn revoke_role(conn: &mut AnyConnection, user_id: &str, role: Role) -> QueryResult<usize> {
    diesel::delete(
        user_roles::table
            .filter(user_roles::user_id.eq(user_id))
            .filter(user_roles::role.eq(role.as_str())),
    )
    .execute(conn)
}

/// One row of `user_roles`.
#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct GrantRow {
    pub user_id: String,
    pub role: String,
    pub granted_seq: Seq,
}

/// Every row of `user_roles`.
pub fn all_user_roles(conn: &mut AnyConnection) -> QueryResult<Vec<GrantRow>> {
    user_roles::table
        .order((user_roles::user_id.asc(), user_roles::role.asc()))
        .select((
            user_roles::user_id,
            user_roles::role,
            user_roles::granted_seq,
        ))
        .load(conn)
}

/// Every (user id, role) grant.
pub fn all_grants(conn: &mut AnyConnection) -> QueryResult<Vec<(String, String)>> {
    user_roles::table
        .order((user_roles::user_id.asc(), user_roles::role.asc()))
        .select((user_roles::user_id, user_roles::role))
        .load(conn)
}

pub fn roles_of(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Vec<Role>> {
    let names: Vec<String> = user_roles::table
        .filter(user_roles::user_id.eq(user_id))
        .select(user_roles::role)
        .load(conn)?;
    Ok(names.iter().filter_map(|n| Role::parse(n)).collect())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = api_tokens, treat_none_as_null = true)]
pub struct TokenRow {
    pub jti: String,
    pub client: String,
    /// JSON array of role names.
    pub roles: String,
    pub issued_at: i64,
    pub expires_at: i64,
    /// The ledger actor that minted it (`user:<id>`, `service:<client>#<jti>`, `cli`).
    pub minted_by: String,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
}

impl TokenRow {
    /// How a holder of this token is named in ledger entries: `service:<client>#<jti>`, so two
    /// tokens with one client name can be told apart.
    pub fn actor(&self) -> String {
        token_actor(&self.client, &self.jti)
    }

    pub fn role_list(&self) -> Vec<Role> {
        serde_json::from_str::<Vec<Role>>(&self.roles).unwrap_or_default()
    }
}

/// Refuses when `minted_by` (a ledger actor) no longer holds its power: a disabled user, or a
/// revoked token. Other actors (`cli`, `system`) always do.
pub fn minter_in_force(
    conn: &mut AnyConnection,
    minted_by: &str,
) -> Result<(), crate::error::AppError> {
    use crate::error::AppError;
    if let Some(uid) = minted_by.strip_prefix("user:") {
        let user = user_by_id(conn, uid)?;
        if user.is_none_or(|u| u.disabled) {
            return Err(AppError::Forbidden(format!(
                "{minted_by} is disabled and can mint no token"
            )));
        }
    } else if let Some((_, jti)) = minted_by
        .strip_prefix("service:")
        .and_then(|rest| rest.rsplit_once('#'))
    {
        let revoked = token(conn, jti)?.is_none_or(|t| t.revoked_at.is_some());
        if revoked {
            return Err(AppError::Forbidden(format!(
                "the token {jti} was revoked and can mint no token"
            )));
        }
    }
    Ok(())
}

/// The ledger actor of a holder of token `jti` issued to `client`.
pub fn token_actor(client: &str, jti: &str) -> String {
    format!("service:{client}#{jti}")
}

pub fn insert_token(conn: &mut AnyConnection, row: &TokenRow) -> QueryResult<()> {
    diesel::insert_into(api_tokens::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn all_tokens(conn: &mut AnyConnection) -> QueryResult<Vec<TokenRow>> {
    api_tokens::table
        .order(api_tokens::issued_at.asc())
        .select(TokenRow::as_select())
        .load(conn)
}

pub fn token(conn: &mut AnyConnection, jti: &str) -> QueryResult<Option<TokenRow>> {
    api_tokens::table
        .filter(api_tokens::jti.eq(jti))
        .select(TokenRow::as_select())
        .first(conn)
        .optional()
}

/// Tokens still in force (not revoked) that any of `minters` minted, and those they minted in turn:
/// everything that goes when the minters' power goes.
pub fn minted_closure(
    conn: &mut AnyConnection,
    minters: Vec<String>,
) -> QueryResult<Vec<TokenRow>> {
    let mut out: Vec<TokenRow> = Vec::new();
    let mut frontier = minters;
    while !frontier.is_empty() {
        let found: Vec<TokenRow> = api_tokens::table
            .filter(api_tokens::minted_by.eq_any(&frontier))
            .filter(api_tokens::revoked_at.is_null())
            .order(api_tokens::jti.asc())
            .select(TokenRow::as_select())
            .load(conn)?;
        frontier = found
            .iter()
            .filter(|t| !out.iter().any(|o| o.jti == t.jti))
            .map(TokenRow::actor)
            .collect();
        for t in found {
            if !out.iter().any(|o| o.jti == t.jti) {
                out.push(t);
            }
        }
    }
    out.sort_by(|a, b| a.jti.cmp(&b.jti));
    Ok(out)
}

pub fn revoke_token(conn: &mut AnyConnection, jti: &str, at: i64, by: &str) -> QueryResult<usize> {
    diesel::update(
        api_tokens::table
            .filter(api_tokens::jti.eq(jti))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set((
        api_tokens::revoked_at.eq(Some(at)),
        api_tokens::revoked_by.eq(Some(by)),
    ))
    .execute(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = setup_links, treat_none_as_null = true)]
pub struct SetupLinkRow {
    pub token_hash: String,
    pub purpose: String,
    pub user_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub fn insert_setup_link(conn: &mut AnyConnection, row: &SetupLinkRow) -> QueryResult<()> {
    diesel::insert_into(setup_links::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn setup_link(conn: &mut AnyConnection, hash: &str) -> QueryResult<Option<SetupLinkRow>> {
    setup_links::table
        .filter(setup_links::token_hash.eq(hash))
        .select(SetupLinkRow::as_select())
        .first(conn)
        .optional()
}

/// Marks a link used if it still is unused (single use, also across instances).
pub fn all_setup_links(conn: &mut AnyConnection) -> QueryResult<Vec<SetupLinkRow>> {
    setup_links::table
        .order(setup_links::token_hash.asc())
        .select(SetupLinkRow::as_select())
        .load(conn)
}

pub fn use_setup_link(conn: &mut AnyConnection, hash: &str, at: i64) -> QueryResult<usize> {
    diesel::update(
        setup_links::table
            .filter(setup_links::token_hash.eq(hash))
            .filter(setup_links::used_at.is_null()),
    )
    .set(setup_links::used_at.eq(Some(at)))
    .execute(conn)
}

/// The addresses of the enabled users holding any of `roles`, each once, in order.
pub fn emails_with_roles(conn: &mut AnyConnection, roles: &[String]) -> QueryResult<Vec<String>> {
    let mut emails: Vec<String> = users::table
        .inner_join(user_roles::table)
        .filter(user_roles::role.eq_any(roles))
        .filter(users::disabled.eq(false))
        .select(users::email)
        .load(conn)?;
    emails.sort();
    emails.dedup();
    Ok(emails)
}
