//! Who is calling: principals, and this instance's view of users, tokens and the policy
//! (reloaded as the ledger's access entries arrive).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::web;

use super::events::ACCESS_KINDS;
use super::model::Role;
use super::sessions::{REFRESH_MICROS, SESSION_COOKIE, Session, SessionCodec};
use super::tokens::TokenAuthority;
use super::{limiter, store};
use crate::authz::{Policy, user_subject};
use crate::clock::Timestamp;
use crate::db::Pool;
use crate::error::AppError;
use crate::ledger::Actor;
use crate::ledger::follow::Follower;
use crate::ledger::read::FollowedEntry;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// A name for people to read: an e-mail address, a client name, an external subject.
    pub name: String,
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person signed in to the web UI.
    User { user_id: String, session: Session },
    /// A service holding a token Accord issued.
    Service { client: String, jti: String },
    /// A caller holding a token from a configured identity provider.
    External { issuer: String, subject: String },
}

impl Principal {
    /// The subjects Casbin checks: a user's own subject (its grants are `g` rules), or the roles a
    /// token carries.
    pub fn casbin_subjects(&self) -> Vec<String> {
        match &self.kind {
            PrincipalKind::User { user_id, .. } => vec![user_subject(user_id)],
            _ => self.roles.iter().map(|r| r.as_str().to_string()).collect(),
        }
    }

    /// Whether the policy lets this caller perform `perm` (no allocation for token holders).
    pub fn allowed(&self, policy: &Policy, perm: crate::authz::Perm) -> bool {
        match &self.kind {
            PrincipalKind::User { user_id, .. } => policy.allows(&user_subject(user_id), perm),
            _ => self.roles.iter().any(|r| policy.allows(r.as_str(), perm)),
        }
    }

    /// The roles in `wanted` this caller may not put on a token it mints: each needs the
    /// permission `(role:<name>, grant)` in the policy.
    pub fn ungrantable(&self, policy: &Policy, wanted: &[Role]) -> Vec<Role> {
        wanted
            .iter()
            .copied()
            .filter(|r| !self.allowed(policy, crate::authz::Perm::grant(*r)))
            .collect()
    }

    pub fn role_names(&self) -> Vec<&'static str> {
        self.roles.iter().map(|r| r.as_str()).collect()
    }

    /// How this caller is named in ledger entries.
    pub fn actor(&self) -> Actor {
        match &self.kind {
            PrincipalKind::User { user_id, .. } => Actor::user(user_id),
            PrincipalKind::Service { client, jti } => Actor::service(&format!("{client}#{jti}")),
            PrincipalKind::External { issuer, subject } => {
                Actor::external(&format!("{issuer}#{subject}"))
            }
        }
    }

    pub fn id(&self) -> String {
        match &self.kind {
            PrincipalKind::User { user_id, .. } => format!("user:{user_id}"),
            PrincipalKind::Service { client, .. } => format!("service:{client}"),
            PrincipalKind::External { issuer, subject } => format!("external:{issuer}#{subject}"),
        }
    }
}

/// What authentication concluded for a request (in its extensions).
#[derive(Debug, Clone)]
pub enum Authn {
    Anonymous,
    Authenticated(Arc<Principal>),
    /// Credentials were sent but refused; the reason is for the caller.
    Refused(String),
}

/// A user as every request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedUser {
    pub email: String,
    pub name: String,
    pub disabled: bool,
    pub epoch: i64,
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedToken {
    pub client: String,
    pub roles: Vec<Role>,
    pub revoked: bool,
}

/// Access records and mechanisms shared by every request of an instance.
pub struct AccessState {
    pub policy: Policy,
    pub tokens: TokenAuthority,
    pub sessions: SessionCodec,
    pub limiter: limiter::LoginLimiter,
    /// Send session cookies with `Secure` (behind TLS).
    pub cookie_secure: bool,
    users: RwLock<HashMap<String, CachedUser>>,
    issued: RwLock<HashMap<String, CachedToken>>,
    /// Validly signed tokens found in no record, until when (µs) they are refused unseen.
    unknown: std::sync::Mutex<HashMap<String, i64>>,
    /// Ledger size up to which access entries have been applied.
    seen: AtomicU64,
    /// Ledger size up to which the follower has read (applied once the reload it needs is done).
    reached: AtomicU64,
}

impl std::fmt::Debug for AccessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessState").finish_non_exhaustive()
    }
}

/// How often each instance looks for access changes made anywhere.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

impl AccessState {
    pub fn new(
        policy: Policy,
        tokens: TokenAuthority,
        sessions: SessionCodec,
        cookie_secure: bool,
    ) -> Self {
        AccessState {
            policy,
            tokens,
            sessions,
            limiter: limiter::LoginLimiter::default(),
            cookie_secure,
            users: RwLock::new(HashMap::new()),
            issued: RwLock::new(HashMap::new()),
            unknown: std::sync::Mutex::new(HashMap::new()),
            seen: AtomicU64::new(0),
            reached: AtomicU64::new(0),
        }
    }

    pub fn user(&self, id: &str) -> Option<CachedUser> {
        self.users.read().ok().and_then(|u| u.get(id).cloned())
    }

    pub fn issued_token(&self, jti: &str) -> Option<CachedToken> {
        self.issued.read().ok().and_then(|t| t.get(jti).cloned())
    }

    /// Whether the caller recorded as `actor` (an `Actor`'s text) may still do `perm` now: a
    /// user still enabled and granted it, a token not revoked whose roles grant it. A caller from
    /// an external identity provider has no record here: what its token carried at the time is
    /// all there is, so it counts as still allowed.
    pub fn still_allows(&self, actor: &str, perm: crate::authz::Perm) -> bool {
        if let Some(id) = actor.strip_prefix("user:") {
            return self.user(id).is_some_and(|u| {
                !u.disabled && self.policy.allows(&crate::authz::user_subject(id), perm)
            });
        }
        if let Some(name) = actor.strip_prefix("service:") {
            let Some((_, jti)) = name.rsplit_once('#') else {
                return false;
            };
            return self.issued_token(jti).is_some_and(|t| {
                !t.revoked && t.roles.iter().any(|r| self.policy.allows(r.as_str(), perm))
            });
        }
        actor.starts_with("external:")
    }

    /// Reloads users, grants and tokens from the database and rebuilds the enforcer's grants.
    pub async fn reload(&self, pool: &Pool) -> Result<(), AppError> {
        let pool = pool.clone();
        let (users, grants, tokens, size) = web::block(move || -> Result<_, AppError> {
            let mut c = pool.get()?;
            let size = crate::ledger::read::size(&mut c)?;
            Ok((
                store::all_users(&mut c)?,
                store::all_grants(&mut c)?,
                store::all_tokens(&mut c)?,
                size,
            ))
        })
        .await??;
        let grants: Vec<(String, Role)> = grants
            .into_iter()
            .filter_map(|(u, r)| Role::parse(&r).map(|r| (u, r)))
            .collect();
        let mut by_user: HashMap<String, Vec<Role>> = HashMap::new();
        for (u, r) in &grants {
            by_user.entry(u.clone()).or_default().push(*r);
        }
        let users: HashMap<String, CachedUser> = users
            .into_iter()
            .map(|u| {
                let roles = by_user.remove(&u.id).unwrap_or_default();
                (
                    u.id,
                    CachedUser {
                        email: u.email,
                        name: u.name,
                        disabled: u.disabled,
                        epoch: u.session_epoch,
                        roles,
                    },
                )
            })
            .collect();
        let issued: HashMap<String, CachedToken> = tokens
            .into_iter()
            .map(|t| {
                let roles = t.role_list();
                (
                    t.jti,
                    CachedToken {
                        client: t.client,
                        roles,
                        revoked: t.revoked_at.is_some(),
                    },
                )
            })
            .collect();
        self.policy
            .set_grants(&grants)
            .await
            .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
        if let Ok(mut u) = self.users.write() {
            *u = users;
        }
        if let Ok(mut t) = self.issued.write() {
            *t = issued;
        }
        self.seen.fetch_max(size, Ordering::SeqCst);
        Ok(())
    }

    /// A session cookie with the attributes Accord always uses; `Secure` when configured or when
    /// the request came over TLS (directly or as a proxy reports it).
    pub fn session_cookie(&self, value: String, https: bool) -> Cookie<'static> {
        Cookie::build(SESSION_COOKIE, value)
            .path("/")
            .http_only(true)
            .secure(self.cookie_secure || https)
            .same_site(SameSite::Strict)
            .finish()
    }

    /// A cookie that removes the session.
    pub fn clear_session_cookie(&self, https: bool) -> Cookie<'static> {
        let mut c = self.session_cookie(String::new(), https);
        c.make_removal();
        c
    }

    pub(super) fn bearer(&self, value: &str, now: Timestamp) -> Bearer {
        let Some(token) = value.strip_prefix("Bearer ").map(str::trim) else {
            return Bearer::Done(Authn::Refused(
                "the Authorization header must be `Bearer <token>`".into(),
            ));
        };
        let verified = match self.tokens.validate(token, now.micros() / 1_000_000) {
            Ok(v) => v,
            Err(e) => return Bearer::Done(Authn::Refused(e.0)),
        };
        if let Some(jti) = verified.local_jti() {
            let revoked = self
                .issued
                .read()
                .ok()
                .and_then(|t| t.get(jti).map(|t| t.revoked));
            match revoked {
                None => {
                    return Bearer::Unknown {
                        jti: jti.to_string(),
                        principal: Arc::clone(&verified.principal),
                    };
                }
                Some(true) => return Bearer::Done(revoked_token()),
                Some(false) => {}
            }
        }
        Bearer::Done(Authn::Authenticated(Arc::clone(&verified.principal)))
    }

    /// A validly signed token this instance has not loaded yet (minted a moment ago, perhaps on
    /// another instance or by the CLI): looked up in the database before it is refused. A token
    /// found nowhere is remembered as unknown for [`UNKNOWN_TOKEN_MICROS`], so repeated requests
    /// with it cannot reach the database more than once in that time.
    pub(super) async fn bearer_not_loaded(
        &self,
        pool: &Pool,
        jti: String,
        principal: Arc<Principal>,
        now: Timestamp,
    ) -> Authn {
        let not_on_record = || Authn::Refused("the token is not on record".into());
        if let Ok(unknown) = self.unknown.lock()
            && unknown.get(&jti).is_some_and(|until| *until > now.micros())
        {
            return not_on_record();
        }
        let pool = pool.clone();
        let j = jti.clone();
        let found = web::block(move || -> Result<_, AppError> {
            let mut c = pool.get()?;
            Ok(store::token(&mut c, &j)?)
        })
        .await
        .map_err(AppError::from)
        .and_then(|r| r);
        match found {
            Ok(Some(row)) => {
                let revoked = row.revoked_at.is_some();
                if let Ok(mut issued) = self.issued.write() {
                    // A reload that ran meanwhile read a newer row (a revocation, say): it wins.
                    issued.entry(row.jti.clone()).or_insert(CachedToken {
                        roles: row.role_list(),
                        client: row.client,
                        revoked,
                    });
                }
                if revoked {
                    revoked_token()
                } else {
                    Authn::Authenticated(principal)
                }
            }
            Ok(None) => {
                if let Ok(mut unknown) = self.unknown.lock() {
                    if unknown.len() >= UNKNOWN_TOKENS_KEPT {
                        unknown.retain(|_, until| *until > now.micros());
                        if unknown.len() >= UNKNOWN_TOKENS_KEPT {
                            unknown.clear();
                        }
                    }
                    unknown.insert(jti, now.micros() + UNKNOWN_TOKEN_MICROS);
                }
                not_on_record()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look up a token not yet loaded");
                Authn::Refused("the token cannot be checked right now; try again".into())
            }
        }
    }

    /// Checks a session cookie; returns the outcome and, when due, a refreshed cookie.
    pub(super) fn session(
        &self,
        cookie: &str,
        now: Timestamp,
        https: bool,
    ) -> (Authn, Option<Cookie<'static>>) {
        let s = match self.sessions.decode(cookie, now) {
            Ok(s) => s,
            Err(e) => {
                return (
                    Authn::Refused(format!(
                        "the session is no longer valid ({e:?}); sign in again"
                    )),
                    None,
                );
            }
        };
        let Some(user) = self.user(&s.uid) else {
            return (Authn::Refused("the session's user is unknown".into()), None);
        };
        if user.disabled || user.epoch != s.epoch {
            return (
                Authn::Refused("the session has ended; sign in again".into()),
                None,
            );
        }
        let refresh = (now.micros() - s.seen > REFRESH_MICROS).then(|| {
            let fresh = Session {
                seen: now.micros(),
                ..s.clone()
            };
            self.session_cookie(self.sessions.encode(&fresh), https)
        });
        let principal = Principal {
            kind: PrincipalKind::User {
                user_id: s.uid.clone(),
                session: s,
            },
            name: user.email,
            roles: user.roles,
        };
        (Authn::Authenticated(Arc::new(principal)), refresh)
    }
}

fn revoked_token() -> Authn {
    Authn::Refused("the token has been revoked".into())
}

/// How long a validly signed token found nowhere in the database is remembered as unknown.
pub const UNKNOWN_TOKEN_MICROS: i64 = 2_000_000;
/// At most this many unknown tokens are remembered at once.
const UNKNOWN_TOKENS_KEPT: usize = 4096;

/// What a bearer header concluded before any database lookup.
pub(super) enum Bearer {
    Done(Authn),
    /// Signed by Accord's key but not among the tokens this instance has loaded.
    Unknown {
        jti: String,
        principal: Arc<Principal>,
    },
}

/// The access state follows the access entries: any of them (written here or on another instance)
/// reloads users, roles and tokens from their tables.
impl Follower for AccessState {
    const NAME: &'static str = "access state";

    fn kinds(&self) -> &'static [&'static str] {
        ACCESS_KINDS
    }

    fn applied(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }

    fn apply(&self, _page: &[FollowedEntry]) -> Result<(), AppError> {
        // The reload in `settle` reads the tables these entries changed.
        Ok(())
    }

    fn advanced(&self, seq: u64) {
        self.reached.fetch_max(seq, Ordering::SeqCst);
    }

    async fn settle(&self, pool: &Pool, applied: usize) -> Result<(), AppError> {
        if applied > 0 {
            self.reload(pool).await?;
        }
        self.seen
            .fetch_max(self.reached.load(Ordering::SeqCst), Ordering::SeqCst);
        Ok(())
    }
}
