//! Access rules: validate a command, turn it into events, record them with their projection.
//! Used by the HTTP API, the web UI and the CLI alike.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::events::AccessEvent;
use super::limiter::LOCKOUT_MICROS;
use super::model::{Email, Role, validate_client, validate_name, validate_password};
use super::projection;
use super::store::{self, SetupLinkRow, TokenRow, UserRow};
use super::tokens::{API_AUDIENCE, ApiClaims, TokenAuthority};
use super::{AccessState, passwords};
use crate::clock::SharedClock;
use crate::db::{AnyConnection, Pool};
use crate::error::{AppError, ConflictCode};
use crate::idempotency::{self, Answer};
use crate::keys::random_bytes;
use crate::ledger::{Actor, AppendRequest, Appended, EventDraft, Ledger, Trailer};
use crate::vocab::Seq;

/// How long a one-time set-up link is valid.
pub const SETUP_LINK_MICROS: i64 = 3600 * 1_000_000;

pub const PURPOSE_FIRST_ADMIN: &str = "first_admin";
pub const PURPOSE_SET_PASSWORD: &str = "set_password";

/// The access commands, over a ledger and a pool.
#[derive(Clone)]
pub struct AccessService {
    ledger: Ledger,
    pool: Pool,
    clock: SharedClock,
    /// The server's in-memory access state, refreshed after each change (absent in the CLI).
    state: Option<Arc<AccessState>>,
}

/// A token just issued: the only moment its text exists outside the caller.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    pub client: String,
    pub roles: Vec<Role>,
    pub expires_at: String,
    pub seq: Seq,
    /// What was signed: kept for a retried request, which gets the same token signed again.
    #[serde(skip)]
    #[schema(ignore)]
    pub claims: ApiClaims,
}

/// What a token is asked for: the client it is for, its roles, how long it lasts.
#[derive(Debug, Clone, Copy)]
pub struct TokenOrder<'a> {
    pub client: &'a str,
    pub roles: &'a [Role],
    pub ttl: Duration,
}

/// What is kept of an issued token for a retried request: its claims, never its text (the
/// signature is deterministic, so signing them again gives the same token).
#[derive(Debug, Serialize, Deserialize)]
pub struct KeptToken {
    pub claims: ApiClaims,
    pub seq: Seq,
}

impl IssuedToken {
    /// Signs `claims` (of a token recorded at `seq`).
    pub fn sign(
        authority: &TokenAuthority,
        claims: ApiClaims,
        seq: Seq,
    ) -> Result<IssuedToken, AppError> {
        Ok(IssuedToken::new(authority.sign(&claims)?, claims, seq))
    }

    fn new(token: String, claims: ApiClaims, seq: Seq) -> IssuedToken {
        let client = claims
            .sub
            .strip_prefix("service:")
            .unwrap_or(&claims.sub)
            .to_string();
        IssuedToken {
            token,
            jti: claims.jti.clone(),
            client,
            roles: claims.roles.clone(),
            expires_at: crate::clock::Timestamp(claims.exp * 1_000_000).to_rfc3339(),
            seq,
            claims,
        }
    }

    /// The part kept for a retried request.
    pub fn kept(&self) -> Result<String, AppError> {
        serde_json::to_string(&KeptToken {
            claims: self.claims.clone(),
            seq: self.seq,
        })
        .map_err(AppError::internal)
    }
}

/// Why a login failed. Only [`LoginError::Generic`] is ever shown as such to the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong e-mail, wrong password, disabled or locked account: one message for all.
    Generic,
    /// Too many failures from this address for now.
    TooManyAttempts,
}

fn drafts(events: &[AccessEvent]) -> Result<Vec<EventDraft>, AppError> {
    events.iter().map(EventDraft::new).collect()
}

pub fn link_hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

fn new_id(prefix: &str) -> Result<String, AppError> {
    random_bytes::<10>()
        .map(|b| format!("{prefix}{}", hex::encode(b)))
        .map_err(|e| AppError::internal(anyhow::anyhow!(e)))
}

impl AccessService {
    pub fn new(
        ledger: Ledger,
        pool: Pool,
        clock: SharedClock,
        state: Option<Arc<AccessState>>,
    ) -> Self {
        AccessService {
            ledger,
            pool,
            clock,
            state,
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        crate::db::blocking(&self.pool, f).await
    }

    /// Records access events: `guard` checks, under the ledger's lock, that they still apply
    /// (an error records nothing), then the projection applies them.
    async fn record(
        &self,
        actor: Actor,
        request_id: Option<String>,
        events: Vec<AccessEvent>,
        guard: impl FnOnce(&mut AnyConnection, &[Appended]) -> Result<(), AppError> + Send + 'static,
    ) -> Result<Vec<Appended>, AppError> {
        self.record_with_secret(actor, request_id, events, guard, None)
            .await
    }

    /// [`Self::record`], also storing a user's password hash (`(user id, hash)`), which no event
    /// carries.
    async fn record_with_secret(
        &self,
        actor: Actor,
        request_id: Option<String>,
        events: Vec<AccessEvent>,
        guard: impl FnOnce(&mut AnyConnection, &[Appended]) -> Result<(), AppError> + Send + 'static,
        password: Option<(String, String)>,
    ) -> Result<Vec<Appended>, AppError> {
        let (out, ()) = self
            .record_returning(actor, request_id, events, guard, password, None)
            .await?;
        Ok(out)
    }

    /// Records access events: `guard` checks under the ledger's lock and returns the answer, the
    /// projection applies them (with a password hash, if given), and `trailer` records the answer
    /// for an idempotency key.
    async fn record_returning<T: Send + 'static>(
        &self,
        actor: Actor,
        request_id: Option<String>,
        events: Vec<AccessEvent>,
        guard: impl FnOnce(&mut AnyConnection, &[Appended]) -> Result<T, AppError> + Send + 'static,
        password: Option<(String, String)>,
        trailer: Option<Trailer>,
    ) -> Result<(Vec<Appended>, T), AppError> {
        let drafts = drafts(&events)?;
        let out = self
            .ledger
            .append_returning::<T>(
                AppendRequest::new(actor, drafts)
                    .request_id(request_id)
                    .project(move |c, appended| {
                        let value = guard(c, appended)?;
                        for (e, a) in events.iter().zip(appended) {
                            projection::apply(c, e, a)?;
                        }
                        if let Some((uid, hash)) = &password
                            && store::set_password_hash(c, uid, hash)? != 1
                        {
                            return Err(AppError::NotFound(format!("no user {uid}")));
                        }
                        Ok(value)
                    })
                    .trailer(trailer),
            )
            .await?;
        if let Some(state) = &self.state {
            state.reload(&self.pool).await?;
        }
        Ok(out)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<UserRow, AppError> {
        let email = Email::parse("email", email)?;
        self.read(move |c| {
            store::user_by_email(c, email.as_str())?.ok_or_else(|| {
                AppError::NotFound(format!("no user has the e-mail address {email}"))
            })
        })
        .await
    }

    pub async fn list_users(&self) -> Result<Vec<(UserRow, Vec<Role>)>, AppError> {
        self.read(|c| {
            store::all_users(c)?
                .into_iter()
                .map(|u| {
                    let roles = store::roles_of(c, &u.id)?;
                    Ok((u, roles))
                })
                .collect()
        })
        .await
    }

    pub async fn count_users(&self) -> Result<i64, AppError> {
        self.read(|c| Ok(store::count_users(c)?)).await
    }

    /// Creates a user with roles and, optionally, a password.
    pub async fn create_user(
        &self,
        actor: Actor,
        request_id: Option<String>,
        email: &str,
        name: &str,
        roles: &[Role],
        password: Option<&str>,
    ) -> Result<UserRow, AppError> {
        let email = Email::parse("email", email)?;
        let name = validate_name("name", name)?;
        if let Some(p) = password {
            validate_password("password", p)?;
        }
        let hash = match password {
            Some(p) => Some(hash_blocking(p).await?),
            None => None,
        };
        self.create_user_hashed(actor, request_id, email, name, roles.to_vec(), hash, None)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_user_hashed(
        &self,
        actor: Actor,
        request_id: Option<String>,
        email: Email,
        name: String,
        mut roles: Vec<Role>,
        hash: Option<String>,
        first_admin_link: Option<String>,
    ) -> Result<UserRow, AppError> {
        roles.sort();
        roles.dedup();
        let id = new_id("u_")?;
        let mut events = Vec::new();
        if let Some(h) = &first_admin_link {
            events.push(AccessEvent::SetupLinkUsed {
                token_hash: h.clone(),
            });
        }
        events.push(AccessEvent::UserCreated {
            user_id: id.clone(),
            email: email.to_string(),
            name: name.clone(),
            roles: roles.clone(),
        });
        if hash.is_some() {
            events.push(AccessEvent::PasswordSet {
                user_id: id.clone(),
            });
        }
        let address = email.to_string();
        let secret = hash.map(|h| (id.clone(), h));
        let link = first_admin_link;
        self.record_with_secret(
            actor,
            request_id,
            events,
            move |c, _| {
                if let Some(h) = &link {
                    if store::count_users(c)? > 0 {
                        return Err(AppError::conflict(
                            ConflictCode::Exists,
                            "an administrator already exists; this link can no longer be used",
                        ));
                    }
                    unused_link(c, h)?;
                }
                if store::user_by_email(c, &address)?.is_some() {
                    return Err(AppError::conflict(
                        ConflictCode::Exists,
                        format!("a user with the e-mail address {address} already exists"),
                    ));
                }
                Ok(())
            },
            secret,
        )
        .await?;
        let uid = id;
        self.read(move |c| {
            store::user_by_id(c, &uid)?
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("the user just created is gone")))
        })
        .await
    }

    /// Sets a user's password (ending their sessions).
    pub async fn set_password(
        &self,
        actor: Actor,
        request_id: Option<String>,
        user_id: &str,
        password: &str,
    ) -> Result<(), AppError> {
        validate_password("password", password)?;
        let hash = hash_blocking(password).await?;
        let uid = user_id.to_string();
        self.record_with_secret(
            actor,
            request_id,
            vec![AccessEvent::PasswordSet {
                user_id: uid.clone(),
            }],
            {
                let uid = uid.clone();
                move |c, _| {
                    store::user_by_id(c, &uid)?
                        .map(|_| ())
                        .ok_or_else(|| AppError::NotFound(format!("no user {uid}")))
                }
            },
            Some((uid, hash)),
        )
        .await?;
        Ok(())
    }

    /// Grants and revokes roles; returns the roles held afterwards.
    pub async fn change_roles(
        &self,
        actor: Actor,
        request_id: Option<String>,
        email: &str,
        grant: &[Role],
        revoke: &[Role],
    ) -> Result<Vec<Role>, AppError> {
        if grant.is_empty() && revoke.is_empty() {
            return Err(AppError::validation(
                "grant",
                "name at least one role to grant or revoke",
            ));
        }
        if let Some(r) = grant.iter().find(|r| revoke.contains(r)) {
            return Err(AppError::validation(
                "revoke",
                format!("{r} is both granted and revoked"),
            ));
        }
        let user = self.user_by_email(email).await?;
        let uid = user.id.clone();
        let (g, r) = (grant.to_vec(), revoke.to_vec());
        self.record(
            actor,
            request_id,
            vec![AccessEvent::RolesChanged {
                user_id: uid.clone(),
                granted: g.clone(),
                revoked: r.clone(),
            }],
            |_, _| Ok(()),
        )
        .await?;
        let uid = user.id;
        self.read(move |c| Ok(store::roles_of(c, &uid)?)).await
    }

    /// Disables a user: no more logins, every session ends, and every token they minted (and
    /// every token minted with those) is revoked in the same change.
    pub async fn disable_user(
        &self,
        actor: Actor,
        request_id: Option<String>,
        email: &str,
    ) -> Result<UserRow, AppError> {
        let user = self.user_by_email(email).await?;
        if user.disabled {
            return Err(AppError::conflict(
                ConflictCode::Done,
                format!("{} is already disabled", user.email),
            ));
        }
        let minter = Actor::user(&user.id).as_str().to_string();
        let because = format!("minted by {minter} (or with a token they minted), who was disabled");
        let uid = user.id.clone();
        self.with_minted_revoked(
            actor,
            request_id,
            minter,
            because,
            vec![AccessEvent::UserDisabled {
                user_id: uid.clone(),
            }],
            move |c, _| {
                // Under the ledger's lock: a concurrent disable records nothing twice.
                match store::user_by_id(c, &uid)? {
                    Some(u) if u.disabled => Err(AppError::conflict(
                        ConflictCode::Done,
                        format!("{} is already disabled", u.email),
                    )),
                    _ => Ok(()),
                }
            },
        )
        .await?;
        Ok(user)
    }

    /// Records `events` (checked by `guard`) together with the revocation of every token still in
    /// force that `minter` minted, directly or through tokens it minted. The set is decided before
    /// the append and re-checked under the ledger's lock; a token minted in between makes the
    /// change retry, so nothing minted by `minter` survives it.
    async fn with_minted_revoked(
        &self,
        actor: Actor,
        request_id: Option<String>,
        minter: String,
        because: String,
        events: Vec<AccessEvent>,
        guard: impl Fn(&mut AnyConnection, &[Appended]) -> Result<(), AppError> + Clone + Send + 'static,
    ) -> Result<Vec<Appended>, AppError> {
        const ATTEMPTS: usize = 5;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let minted = self
                .read({
                    let m = minter.clone();
                    move |c| Ok(store::minted_closure(c, vec![m])?)
                })
                .await?;
            let planned: Vec<String> = minted.iter().map(|t| t.jti.clone()).collect();
            let mut all = events.clone();
            all.extend(planned.iter().map(|jti| AccessEvent::TokenRevoked {
                jti: jti.clone(),
                because: Some(because.clone()),
            }));
            let (m, guard) = (minter.clone(), guard.clone());
            let outcome = self
                .record(
                    actor.clone(),
                    request_id.clone(),
                    all,
                    move |c, appended| {
                        guard(c, appended)?;
                        let current: Vec<String> = store::minted_closure(c, vec![m])?
                            .into_iter()
                            .map(|t| t.jti)
                            .collect();
                        if current != planned {
                            return Err(AppError::conflict(
                                ConflictCode::MintedChanged,
                                "tokens were minted while their revocation was being prepared; try again",
                            ));
                        }
                        Ok(())
                    },
                )
                .await;
            match outcome {
                Err(e)
                    if e.conflict_code() == Some(ConflictCode::MintedChanged)
                        && attempt < ATTEMPTS => {}
                other => return other,
            }
        }
    }

    /// Issues an API token for a service client.
    pub async fn issue_token(
        &self,
        actor: Actor,
        request_id: Option<String>,
        authority: &TokenAuthority,
        order: TokenOrder<'_>,
        answer: Option<Answer<IssuedToken>>,
    ) -> Result<IssuedToken, AppError> {
        let TokenOrder { client, roles, ttl } = order;
        let client = validate_client("client", client)?;
        if roles.is_empty() {
            return Err(AppError::validation("roles", "name at least one role"));
        }
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let now = self.clock.now().micros();
        let iat = now / 1_000_000;
        let exp = iat + ttl.as_secs() as i64;
        let jti = new_id("t_")?;
        let claims = ApiClaims {
            iss: authority.issuer().to_string(),
            aud: API_AUDIENCE.into(),
            sub: format!("service:{client}"),
            exp,
            iat,
            jti: jti.clone(),
            roles: roles.clone(),
        };
        let token = authority.sign(&claims)?;
        let minted_by = actor.as_str().to_string();
        let (_, issued) = self
            .record_returning(
                actor,
                request_id,
                vec![AccessEvent::TokenIssued {
                    jti,
                    client,
                    roles,
                    expires_at: exp * 1_000_000,
                    minted_by: minted_by.clone(),
                }],
                move |c, appended| {
                    // Checked again under the ledger's lock: a minter disabled (or a minting token
                    // revoked) while this request was on its way mints nothing.
                    store::minter_in_force(c, &minted_by)?;
                    let seq = appended.last().map(|a| a.seq).unwrap_or_default();
                    Ok(IssuedToken::new(token, claims, seq))
                },
                None,
                idempotency::trailer(answer, None),
            )
            .await?;
        Ok(issued)
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>, AppError> {
        self.read(|c| Ok(store::all_tokens(c)?)).await
    }

    /// Revokes a token, and every token minted with it (directly or in turn); every instance
    /// refuses them within a second.
    pub async fn revoke_token(
        &self,
        actor: Actor,
        request_id: Option<String>,
        jti: &str,
    ) -> Result<TokenRow, AppError> {
        let j = jti.trim().to_string();
        let existing = self
            .read({
                let j = j.clone();
                move |c| {
                    store::token(c, &j)?
                        .ok_or_else(|| AppError::NotFound(format!("no token has the id {j}")))
                }
            })
            .await?;
        if existing.revoked_at.is_some() {
            return Err(AppError::conflict(
                ConflictCode::Done,
                format!("the token {j} is already revoked"),
            ));
        }
        let because = format!("minted with the token {j} (or one minted with it), revoked");
        self.with_minted_revoked(
            actor,
            request_id,
            existing.actor(),
            because,
            vec![AccessEvent::TokenRevoked {
                jti: j.clone(),
                because: None,
            }],
            move |c, _| {
                if store::token(c, &j)?.is_some_and(|t| t.revoked_at.is_some()) {
                    return Err(AppError::conflict(
                        ConflictCode::Done,
                        format!("the token {j} is already revoked"),
                    ));
                }
                Ok(())
            },
        )
        .await?;
        Ok(existing)
    }

    /// Creates a one-time link; returns its secret (shown once, never stored).
    pub async fn create_setup_link(
        &self,
        actor: Actor,
        purpose: &str,
        user_id: Option<String>,
    ) -> Result<String, AppError> {
        let raw = URL_SAFE
            .encode(random_bytes::<32>().map_err(|e| AppError::internal(anyhow::anyhow!(e)))?);
        let hash = link_hash(&raw);
        let now = self.clock.now().micros();
        self.record(
            actor,
            None,
            vec![AccessEvent::SetupLinkCreated {
                token_hash: hash,
                purpose: purpose.to_string(),
                user_id,
                expires_at: now + SETUP_LINK_MICROS,
            }],
            |_, _| Ok(()),
        )
        .await?;
        Ok(raw)
    }

    /// The link a secret names, if it can still be used.
    pub async fn usable_link(&self, raw: &str) -> Result<SetupLinkRow, AppError> {
        let hash = link_hash(raw.trim());
        let now = self.clock.now().micros();
        self.read(move |c| {
            let gone = || {
                AppError::NotFound(
                    "this link is not valid: it may have expired or been used already".into(),
                )
            };
            let link = store::setup_link(c, &hash)?.ok_or_else(gone)?;
            if link.used_at.is_some() || link.expires_at <= now {
                return Err(gone());
            }
            Ok(link)
        })
        .await
    }

    /// Uses a first-admin link: creates the administrator.
    pub async fn complete_first_admin(
        &self,
        request_id: Option<String>,
        raw: &str,
        email: &str,
        name: &str,
        password: &str,
    ) -> Result<UserRow, AppError> {
        let link = self.usable_link(raw).await?;
        if link.purpose != PURPOSE_FIRST_ADMIN {
            return Err(AppError::conflict(
                ConflictCode::LinkPurpose,
                "this link is not for creating the first administrator",
            ));
        }
        let email = Email::parse("email", email)?;
        let name = validate_name("name", name)?;
        validate_password("password", password)?;
        let hash = hash_blocking(password).await?;
        self.create_user_hashed(
            Actor::system(),
            request_id,
            email,
            name,
            vec![Role::Admin],
            Some(hash),
            Some(link.token_hash),
        )
        .await
    }

    /// Uses a set-password link.
    pub async fn complete_set_password(
        &self,
        request_id: Option<String>,
        raw: &str,
        password: &str,
    ) -> Result<(), AppError> {
        let link = self.usable_link(raw).await?;
        let Some(uid) = link
            .user_id
            .clone()
            .filter(|_| link.purpose == PURPOSE_SET_PASSWORD)
        else {
            return Err(AppError::conflict(
                ConflictCode::LinkPurpose,
                "this link is not for setting a password",
            ));
        };
        validate_password("password", password)?;
        let hash = hash_blocking(password).await?;
        let token_hash = link.token_hash.clone();
        self.record_with_secret(
            Actor::user(&uid),
            request_id,
            vec![
                AccessEvent::SetupLinkUsed {
                    token_hash: token_hash.clone(),
                },
                AccessEvent::PasswordSet {
                    user_id: uid.clone(),
                },
            ],
            move |c, _| unused_link(c, &token_hash),
            Some((uid, hash)),
        )
        .await?;
        Ok(())
    }

    /// Checks an e-mail and password. Each attempt is counted per account and per address
    /// *before* the password hash is checked, so parallel attempts check at most the limits'
    /// worth of passwords; past a limit the answer is [`LoginError::TooManyAttempts`] with no
    /// hash checked. The attempt that reaches the account's limit and fails records the lockout
    /// (one entry per lockout). Success is recorded.
    pub async fn login(
        &self,
        state: &AccessState,
        email: &str,
        password: &str,
        address: &str,
        request_id: Option<String>,
    ) -> Result<UserRow, LoginError> {
        let now = self.clock.now().micros();
        // Nothing that cannot be an address reaches the counters.
        let Ok(email) = Email::parse("email", email) else {
            return Err(LoginError::Generic);
        };
        let key = email.as_str().to_string();
        let reservation = state
            .limiter
            .reserve(&key, address, now)
            .map_err(|_| LoginError::TooManyAttempts)?;
        let user = self
            .read({
                let key = key.clone();
                move |c| Ok(store::user_by_email(c, &key)?)
            })
            .await
            .unwrap_or(None);
        let pw = password.to_string();
        let candidate = user.clone();
        let ok = web::block(move || match candidate {
            Some(u) if !u.disabled && u.locked_until.is_none_or(|t| t <= now) => {
                match &u.password_hash {
                    Some(h) => passwords::verify(&pw, h),
                    None => {
                        passwords::verify_dummy(&pw);
                        false
                    }
                }
            }
            _ => {
                passwords::verify_dummy(&pw);
                false
            }
        })
        .await
        .unwrap_or(false);
        let Some(user) = user.filter(|_| ok) else {
            if reservation.locks_account()
                && let Some(u) = self
                    .read({
                        let key = key.clone();
                        move |c| Ok(store::user_by_email(c, &key)?)
                    })
                    .await
                    .ok()
                    .flatten()
            {
                let until = now + LOCKOUT_MICROS;
                let uid = u.id.clone();
                let locked = self
                    .record(
                        Actor::system(),
                        request_id.clone(),
                        vec![AccessEvent::LockedOut {
                            user_id: uid.clone(),
                            until,
                            failures: reservation.account_attempts as u32,
                        }],
                        |_, _| Ok(()),
                    )
                    .await;
                if let Err(e) = locked {
                    tracing::error!(error = %e, "cannot record a lockout");
                }
            }
            return Err(LoginError::Generic);
        };
        state.limiter.succeeded(&key, address, reservation);
        let uid = user.id.clone();
        let recorded = self
            .record(
                Actor::user(&uid),
                request_id,
                vec![AccessEvent::LoggedIn {
                    user_id: uid,
                    address: Some(address.to_string()),
                }],
                |_, _| Ok(()),
            )
            .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record a login");
            return Err(LoginError::Generic);
        }
        Ok(user)
    }

    /// Ends every session of the user.
    pub async fn logout(&self, user_id: &str, request_id: Option<String>) -> Result<(), AppError> {
        let uid = user_id.to_string();
        self.record(
            Actor::user(&uid),
            request_id,
            vec![AccessEvent::LoggedOut {
                user_id: uid.clone(),
            }],
            |_, _| Ok(()),
        )
        .await?;
        Ok(())
    }
}

/// Under the ledger's lock: the one-time link is still unused.
fn unused_link(c: &mut AnyConnection, token_hash: &str) -> Result<(), AppError> {
    match store::setup_link(c, token_hash)? {
        Some(link) if link.used_at.is_none() => Ok(()),
        _ => Err(AppError::conflict(
            ConflictCode::Done,
            "this link has already been used",
        )),
    }
}

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as URL_SAFE;

/// Argon2 takes tens of milliseconds: off the async workers.
async fn hash_blocking(password: &str) -> Result<String, AppError> {
    let p = password.to_string();
    web::block(move || passwords::hash(&p)).await?
}
