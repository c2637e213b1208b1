//! API tokens: JWTs signed by Accord with Ed25519 (EdDSA), and tokens from trusted external issuers
//! whose keys are configured as a JWKS file.
//!
//! Validation pins the algorithm per key, requires `exp`, `iss`, `aud` and `sub`, allows at most
//! 30 s of clock leeway, checks the header's `typ`, and maps `kid` only to Accord's own key or to a
//! configured issuer's keys (RFC 8725). A signature is verified once per token; the verified claims
//! are kept in a bounded cache until the token expires; each worker thread also remembers the last
//! token that validated on it, so a caller that sends the same token on every request costs one
//! constant-time comparison. Revocation is checked on every request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::model::Role;
use crate::config::ExternalIssuer;
use crate::error::AppError;

/// The `typ` of API tokens Accord issues (RFC 9068 access-token media type).
pub const API_TOKEN_TYP: &str = "at+jwt";
/// The audience of API tokens Accord issues.
pub const API_AUDIENCE: &str = "accord-api";
/// Largest clock skew tolerated on `exp` (and `nbf`).
pub const LEEWAY_SECS: u64 = 30;
/// Most verified tokens kept in memory.
const CACHE_MAX: usize = 10_000;

/// Distinguishes authorities (several run in one process in tests) in the per-thread memo.
static NEXT_AUTHORITY: AtomicU64 = AtomicU64::new(1);

/// A thread's last validated token: (authority, token, its verified claims).
type Remembered = (u64, Box<str>, Arc<VerifiedToken>);

thread_local! {
    static LAST_TOKEN: RefCell<Option<Remembered>> = const { RefCell::new(None) };
}

/// The claims of a token Accord issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub roles: Vec<Role>,
}

/// Who a validated token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSubject {
    /// Issued by Accord (its jti must be on record and not revoked).
    Local { jti: String, client: String },
    /// Issued by a configured identity provider.
    External { issuer: String, subject: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub subject: TokenSubject,
    pub roles: Vec<Role>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// The caller this token speaks for, built once per token.
    pub principal: Arc<super::Principal>,
}

impl VerifiedToken {
    fn new(subject: TokenSubject, roles: Vec<Role>, exp: i64) -> Self {
        let (kind, name) = match &subject {
            TokenSubject::Local { jti, client } => (
                super::PrincipalKind::Service {
                    client: client.clone(),
                    jti: jti.clone(),
                },
                client.clone(),
            ),
            TokenSubject::External { issuer, subject } => (
                super::PrincipalKind::External {
                    issuer: issuer.clone(),
                    subject: subject.clone(),
                },
                subject.clone(),
            ),
        };
        let principal = Arc::new(super::Principal {
            kind,
            name,
            roles: roles.clone(),
        });
        VerifiedToken {
            subject,
            roles,
            exp,
            principal,
        }
    }

    /// The `jti` of a token Accord issued (checked against revocations on every request).
    pub fn local_jti(&self) -> Option<&str> {
        match &self.subject {
            TokenSubject::Local { jti, .. } => Some(jti),
            TokenSubject::External { .. } => None,
        }
    }
}

/// Why a bearer token was refused. The message goes to the caller (it names no secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

struct ExternalKeys {
    issuer: String,
    audience: String,
    roles_claim: String,
    role_map: HashMap<String, Vec<Role>>,
    keys: HashMap<String, (DecodingKey, Algorithm)>,
}

/// Signs and validates tokens.
pub struct TokenAuthority {
    issuer: String,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    external: Vec<ExternalKeys>,
    cache: RwLock<HashMap<[u8; 32], Arc<VerifiedToken>>>,
    /// This authority's key in the per-thread memo.
    id: u64,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthority")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The key id of an Ed25519 public key: the first 8 bytes of its SHA-256, hex.
pub fn key_id(public: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public)[..8])
}

/// Reads and checks every configured external issuer's keys (at start, before anything is
/// written).
pub fn check_external_issuers(external: &[ExternalIssuer]) -> Result<(), AppError> {
    for e in external {
        load_external(e)?;
    }
    Ok(())
}

impl TokenAuthority {
    /// `issuer` names this Accord (its ledger origin); `external` are trusted identity providers.
    pub fn new(
        issuer: &str,
        key: &SigningKey,
        external: &[ExternalIssuer],
    ) -> Result<TokenAuthority, AppError> {
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| AppError::internal(anyhow::anyhow!("token key: {e}")))?;
        let encoding = EncodingKey::from_ed_pem(pem.as_bytes())
            .map_err(|e| AppError::internal(anyhow::anyhow!("token key: {e}")))?;
        let public = key.verifying_key().to_bytes();
        let decoding = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public))
            .map_err(|e| AppError::internal(anyhow::anyhow!("token key: {e}")))?;
        let external = external
            .iter()
            .map(load_external)
            .collect::<Result<Vec<_>, _>>()?;
        let authority = TokenAuthority {
            issuer: issuer.to_string(),
            kid: key_id(&public),
            encoding,
            decoding,
            external,
            cache: RwLock::new(HashMap::new()),
            id: NEXT_AUTHORITY.fetch_add(1, Ordering::Relaxed),
        };
        authority.self_test()?;
        Ok(authority)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs and verifies one token: a misconfigured crypto backend fails here, at start, not at
    /// the first request.
    fn self_test(&self) -> Result<(), AppError> {
        let claims = ApiClaims {
            iss: self.issuer.clone(),
            aud: API_AUDIENCE.into(),
            sub: "service:self-test".into(),
            exp: i64::MAX / 2,
            iat: 0,
            jti: "self-test".into(),
            roles: vec![],
        };
        let token = self.sign(&claims)?;
        self.verify_local(&token, 0)
            .map(|_| ())
            .map_err(|e| AppError::internal(anyhow::anyhow!("token self-test failed: {e}")))
    }

    /// Signs claims as an API token.
    pub fn sign(&self, claims: &ApiClaims) -> Result<String, AppError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(API_TOKEN_TYP.into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| AppError::internal(anyhow::anyhow!("cannot sign a token: {e}")))
    }

    fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
        let mut v = Validation::new(alg);
        v.set_issuer(&[issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = LEEWAY_SECS;
        v
    }

    fn verify_local(&self, token: &str, now_secs: i64) -> Result<VerifiedToken, TokenError> {
        let data = jsonwebtoken::decode::<ApiClaims>(
            token,
            &self.decoding,
            &Self::validation(Algorithm::EdDSA, &self.issuer, API_AUDIENCE),
        )
        .map_err(|e| TokenError(format!("the token is not valid: {e}")))?;
        let c = data.claims;
        let client = c
            .sub
            .strip_prefix("service:")
            .ok_or_else(|| TokenError("the token's subject is not a service".into()))?;
        if c.exp + LEEWAY_SECS as i64 <= now_secs && now_secs > 0 {
            return Err(TokenError("the token has expired".into()));
        }
        Ok(VerifiedToken::new(
            TokenSubject::Local {
                jti: c.jti,
                client: client.to_string(),
            },
            c.roles,
            c.exp,
        ))
    }

    fn verify_external(
        &self,
        token: &str,
        kid: &str,
        header_alg: Algorithm,
    ) -> Result<VerifiedToken, TokenError> {
        for ext in &self.external {
            let Some((key, alg)) = ext.keys.get(kid) else {
                continue;
            };
            if *alg != header_alg {
                return Err(TokenError(format!(
                    "the token's algorithm {header_alg:?} is not the one pinned for key {kid}"
                )));
            }
            let data = jsonwebtoken::decode::<serde_json::Value>(
                token,
                key,
                &Self::validation(*alg, &ext.issuer, &ext.audience),
            )
            .map_err(|e| TokenError(format!("the token is not valid: {e}")))?;
            let claims = data.claims;
            let subject = claims["sub"].as_str().unwrap_or_default().to_string();
            let exp = claims["exp"].as_i64().unwrap_or(0);
            let names: Vec<String> = match &claims[&ext.roles_claim] {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            let mut roles: Vec<Role> = names
                .iter()
                .filter_map(|n| ext.role_map.get(n))
                .flatten()
                .copied()
                .collect();
            roles.sort();
            roles.dedup();
            return Ok(VerifiedToken::new(
                TokenSubject::External {
                    issuer: ext.issuer.clone(),
                    subject,
                },
                roles,
                exp,
            ));
        }
        Err(TokenError(format!(
            "the token's key id {kid:?} is not a key Accord trusts"
        )))
    }

    /// Validates a bearer token, using the cache of verified tokens. Revocation is the caller's
    /// check (it changes while a token is cached).
    pub fn validate(&self, token: &str, now_secs: i64) -> Result<Arc<VerifiedToken>, TokenError> {
        let remembered = LAST_TOKEN.with_borrow(|last| match last {
            // Constant time: a guess must not learn how much of the remembered token it matches.
            Some((id, t, hit)) if *id == self.id && same_secret(t.as_bytes(), token.as_bytes()) => {
                Some(unexpired(hit, now_secs))
            }
            _ => None,
        });
        if let Some(answer) = remembered {
            return answer;
        }
        let verified = self.validate_cached(token, now_secs)?;
        LAST_TOKEN.set(Some((self.id, token.into(), Arc::clone(&verified))));
        Ok(verified)
    }

    /// [`TokenAuthority::validate`] without the per-thread memo.
    fn validate_cached(
        &self,
        token: &str,
        now_secs: i64,
    ) -> Result<Arc<VerifiedToken>, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Ok(cache) = self.cache.read()
            && let Some(hit) = cache.get(&digest)
        {
            return unexpired(hit, now_secs);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError(format!("the token is not a JWT: {e}")))?;
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| TokenError("the token names no key (kid)".into()))?;
        let verified = Arc::new(if kid == self.kid {
            if header.alg != Algorithm::EdDSA {
                return Err(TokenError(
                    "the token's algorithm is not EdDSA, the one pinned for Accord's key".into(),
                ));
            }
            if header.typ.as_deref() != Some(API_TOKEN_TYP) {
                return Err(TokenError(format!(
                    "the token's type is not {API_TOKEN_TYP}"
                )));
            }
            self.verify_local(token, now_secs)?
        } else {
            self.verify_external(token, kid, header.alg)?
        });
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_MAX {
                cache.retain(|_, v| v.exp + LEEWAY_SECS as i64 > now_secs);
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(digest, Arc::clone(&verified));
        }
        Ok(verified)
    }
}

/// Whether two secrets are equal, in a time that depends on their length only: eight bytes at a
/// time, with no branch on their contents.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_ne_bytes(w)
    };
    let (x, y) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = word(x.remainder()) ^ word(y.remainder());
    let diff = x.zip(y).fold(tail, |acc, (x, y)| acc | (word(x) ^ word(y)));
    std::hint::black_box(diff) == 0
}

/// A verified token from a cache, unless it has expired since.
fn unexpired(hit: &Arc<VerifiedToken>, now_secs: i64) -> Result<Arc<VerifiedToken>, TokenError> {
    if hit.exp + LEEWAY_SECS as i64 <= now_secs {
        Err(TokenError("the token has expired".into()))
    } else {
        Ok(Arc::clone(hit))
    }
}

fn load_external(cfg: &ExternalIssuer) -> Result<ExternalKeys, AppError> {
    let text = std::fs::read_to_string(&cfg.jwks_file).map_err(|e| {
        AppError::Unavailable(format!(
            "cannot read the JWKS file {}: {e}",
            cfg.jwks_file.display()
        ))
    })?;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text).map_err(|e| {
        AppError::Unavailable(format!(
            "the JWKS file {} is not a JWK set: {e}",
            cfg.jwks_file.display()
        ))
    })?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let alg = pinned_algorithm(jwk).ok_or_else(|| {
            AppError::Unavailable(format!(
                "key {kid} in {} has no usable algorithm (set \"alg\")",
                cfg.jwks_file.display()
            ))
        })?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| {
            AppError::Unavailable(format!("key {kid} in {}: {e}", cfg.jwks_file.display()))
        })?;
        keys.insert(kid, (key, alg));
    }
    let role_map = cfg
        .role_map
        .iter()
        .map(|(group, roles)| {
            let parsed = roles
                .iter()
                .map(|r| {
                    Role::parse(r).ok_or_else(|| {
                        AppError::Unavailable(format!(
                            "the role map of issuer {} names an unknown role {r:?}",
                            cfg.issuer
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((group.clone(), parsed))
        })
        .collect::<Result<HashMap<_, _>, AppError>>()?;
    Ok(ExternalKeys {
        issuer: cfg.issuer.clone(),
        audience: cfg.audience.clone(),
        roles_claim: cfg.roles_claim.clone(),
        role_map,
        keys,
    })
}

/// The one algorithm a JWK may be used with: its `alg`, or for Ed25519 keys EdDSA.
fn pinned_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    use jsonwebtoken::jwk::{AlgorithmParameters, KeyAlgorithm};
    match jwk.common.key_algorithm {
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::RS384) => Some(Algorithm::RS384),
        Some(KeyAlgorithm::RS512) => Some(Algorithm::RS512),
        Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::ES384) => Some(Algorithm::ES384),
        Some(_) => None,
        None => match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority() -> TokenAuthority {
        TokenAuthority::new("accord/test", &SigningKey::from_bytes(&[5; 32]), &[]).unwrap()
    }

    fn claims(exp: i64) -> ApiClaims {
        ApiClaims {
            iss: "accord/test".into(),
            aud: API_AUDIENCE.into(),
            sub: "service:crm".into(),
            exp,
            iat: 1,
            jti: "t1".into(),
            roles: vec![Role::Service],
        }
    }

    #[test]
    fn issued_tokens_validate() {
        let a = authority();
        let t = a.sign(&claims(2_000_000_000)).unwrap();
        let v = a.validate(&t, 1_900_000_000).unwrap();
        assert_eq!(v.roles, vec![Role::Service]);
        assert_eq!(
            v.subject,
            TokenSubject::Local {
                jti: "t1".into(),
                client: "crm".into()
            }
        );
        // Cached: the second validation answers with the same verified token.
        assert!(Arc::ptr_eq(&a.validate(&t, 1_900_000_000).unwrap(), &v));
        assert_eq!(v.principal.name, "crm");
    }

    #[test]
    fn expired_foreign_and_tampered_tokens_are_refused() {
        let a = authority();
        let expired = a.sign(&claims(1_000)).unwrap();
        assert!(a.validate(&expired, 2_000).is_err());
        // Signed by another key with the same kid claim: refused.
        let other =
            TokenAuthority::new("accord/test", &SigningKey::from_bytes(&[6; 32]), &[]).unwrap();
        let forged = other.sign(&claims(2_000_000_000)).unwrap();
        assert!(a.validate(&forged, 1_900_000_000).is_err());
        // A changed payload breaks the signature.
        let t = a.sign(&claims(2_000_000_000)).unwrap();
        let mut parts: Vec<&str> = t.split('.').collect();
        let tampered_payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&ApiClaims {
                roles: vec![Role::Admin],
                ..claims(2_000_000_000)
            })
            .unwrap(),
        );
        parts[1] = &tampered_payload;
        assert!(a.validate(&parts.join("."), 1_900_000_000).is_err());
        // Wrong issuer or audience.
        let wrong_aud = a
            .sign(&ApiClaims {
                aud: "elsewhere".into(),
                ..claims(2_000_000_000)
            })
            .unwrap();
        assert!(a.validate(&wrong_aud, 1_900_000_000).is_err());
        assert!(a.validate("not-a-token", 0).is_err());
    }

    #[test]
    fn a_remembered_token_still_expires_and_is_not_another_authoritys() {
        let a = authority();
        let t = a.sign(&claims(2_000_000_000)).unwrap();
        let v = a.validate(&t, 1_900_000_000).unwrap();
        // The same thread, the same token: answered from the memo, and expiry still applies.
        assert!(Arc::ptr_eq(&a.validate(&t, 1_900_000_001).unwrap(), &v));
        // The documented 30 s of leeway: accepted 29 s after expiry, refused at 30 s.
        assert!(a.validate(&t, 2_000_000_029).is_ok());
        assert_eq!(
            a.validate(&t, 2_000_000_030).unwrap_err().0,
            "the token has expired"
        );
        // Another authority (another key, same issuer name) does not take the memo's word.
        let b = TokenAuthority::new("accord/test", &SigningKey::from_bytes(&[6; 32]), &[]).unwrap();
        a.validate(&t, 1_900_000_000).unwrap();
        assert!(b.validate(&t, 1_900_000_000).is_err());
        // And after that refusal, the first authority still knows its token.
        assert!(Arc::ptr_eq(&a.validate(&t, 1_900_000_000).unwrap(), &v));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"", b""));
        assert!(same_secret(b"abcdefghijk", b"abcdefghijk"));
        assert!(!same_secret(b"abcdefghijk", b"abcdefghijK"));
        assert!(!same_secret(b"Abcdefghijk", b"abcdefghijk"));
        assert!(!same_secret(b"abcdefgh", b"abcdefghi"));
        assert!(!same_secret(b"abcdefghi\0", b"abcdefghi"));
    }

    #[test]
    fn a_hs256_token_with_our_kid_is_refused() {
        let a = authority();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(a.kid.clone());
        header.typ = Some(API_TOKEN_TYP.into());
        let t = jsonwebtoken::encode(
            &header,
            &claims(2_000_000_000),
            &EncodingKey::from_secret(b"guessable"),
        )
        .unwrap();
        let e = a.validate(&t, 1_900_000_000).unwrap_err();
        assert!(e.0.contains("EdDSA"), "{e}");
    }
}
