//! Authorisation: Casbin decides, from `policies/model.conf` and `policies/policy.csv`, which role
//! may perform which action on which resource; users' role grants (from Accord's own table) reach
//! the enforcer as `g` rules. Every route is registered through [`Routes`] with the access it
//! requires — there is no other way to add a route — and [`Authorize`] enforces it.

mod routes;

pub use routes::{Authorize, RouteSpec, Routes};

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use serde::Serialize;

use crate::auth::model::Role;

/// A permission: an action on a kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Perm {
    pub resource: &'static str,
    pub action: &'static str,
}

impl Perm {
    pub const fn new(resource: &'static str, action: &'static str) -> Perm {
        Perm { resource, action }
    }

    /// The permission to put `role` on a token one mints: `(role:<name>, grant)` in the policy.
    pub fn grant(role: Role) -> Perm {
        let resource = match role {
            Role::Admin => "role:admin",
            Role::ComplianceOfficer => "role:compliance_officer",
            Role::Legal => "role:legal",
            Role::MarketingLead => "role:marketing_lead",
            Role::Marketer => "role:marketer",
            Role::Auditor => "role:auditor",
            Role::Service => "role:service",
        };
        Perm::new(resource, "grant")
    }
}

impl std::fmt::Display for Perm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)
    }
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Access {
    /// Anyone (health probes, the login page, one-time set-up links).
    Public,
    /// Any authenticated caller (their own identity, logout).
    Authenticated,
    /// Callers holding a role the policy allows this permission.
    Permission(Perm),
}

/// One `p` line of policy.csv.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct Rule {
    pub role: String,
    pub resource: String,
    pub action: String,
}

/// The loaded policy and the enforcer built from it.
pub struct Policy {
    model_text: String,
    rules: Vec<Rule>,
    enforcer: RwLock<Enforcer>,
    decisions: RwLock<Decisions>,
}

/// Cached decisions, valid for one generation of the grants.
#[derive(Default)]
struct Decisions {
    /// Bumped (and the map cleared) whenever the grants change.
    generation: u64,
    /// subject → permission → decision; looked up without allocating.
    map: HashMap<String, HashMap<Perm, bool>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

pub const MODEL_FILE: &str = "model.conf";
pub const POLICY_FILE: &str = "policy.csv";

/// Parses policy.csv: `p, role, resource, action` lines; `#` comments and blank lines ignored.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split(',').map(str::trim).collect();
        match parts.as_slice() {
            ["p", role, resource, action] => {
                if Role::parse(role).is_none() {
                    return Err(format!("line {}: {role:?} is not a role", i + 1));
                }
                if resource.is_empty() || action.is_empty() {
                    return Err(format!("line {}: empty resource or action", i + 1));
                }
                rules.push(Rule {
                    role: role.to_string(),
                    resource: resource.to_string(),
                    action: action.to_string(),
                });
            }
            _ => {
                return Err(format!(
                    "line {}: expected `p, role, resource, action`, found {line:?}",
                    i + 1
                ));
            }
        }
    }
    Ok(rules)
}

async fn build_enforcer(
    model_text: &str,
    rules: &[Rule],
    grants: &[(String, Role)],
) -> Result<Enforcer, String> {
    let model = DefaultModel::from_str(model_text)
        .await
        .map_err(|e| format!("the Casbin model is not valid: {e}"))?;
    let mut e = Enforcer::new(model, MemoryAdapter::default())
        .await
        .map_err(|e| format!("cannot build the enforcer: {e}"))?;
    let p: Vec<Vec<String>> = rules
        .iter()
        .map(|r| vec![r.role.clone(), r.resource.clone(), r.action.clone()])
        .collect();
    if !p.is_empty() {
        e.add_policies(p)
            .await
            .map_err(|e| format!("cannot load the policy: {e}"))?;
    }
    let g: Vec<Vec<String>> = grants
        .iter()
        .map(|(user, role)| vec![user_subject(user), role.as_str().to_string()])
        .collect();
    if !g.is_empty() {
        e.add_grouping_policies(g)
            .await
            .map_err(|e| format!("cannot load the role grants: {e}"))?;
    }
    Ok(e)
}

/// The Casbin subject for a user.
pub fn user_subject(user_id: &str) -> String {
    format!("user:{user_id}")
}

impl Policy {
    pub async fn from_parts(model_text: String, rules: Vec<Rule>) -> Result<Policy, String> {
        let enforcer = build_enforcer(&model_text, &rules, &[]).await?;
        Ok(Policy {
            model_text,
            rules,
            enforcer: RwLock::new(enforcer),
            decisions: RwLock::new(Decisions::default()),
        })
    }

    /// Replaces the users' role grants (after any access change, on any instance). The new
    /// enforcer is in place before the cache's generation moves, so a decision made with the old
    /// grants can never be cached under the new generation.
    pub async fn set_grants(&self, grants: &[(String, Role)]) -> Result<(), String> {
        let fresh = build_enforcer(&self.model_text, &self.rules, grants).await?;
        if let Ok(mut e) = self.enforcer.write() {
            *e = fresh;
        }
        if let Ok(mut d) = self.decisions.write() {
            d.generation += 1;
            d.map.clear();
        }
        Ok(())
    }

    /// Whether `subject` (a role name or `user:<id>`) may perform `perm`. Decisions are cached
    /// until the grants change.
    pub fn allows(&self, subject: &str, perm: Perm) -> bool {
        self.allows_between(subject, perm, || {})
    }

    /// [`Policy::allows`], calling `between` after deciding and before caching the decision
    /// (tests interleave a change of grants there).
    fn allows_between(&self, subject: &str, perm: Perm, between: impl FnOnce()) -> bool {
        let generation = match self.decisions.read() {
            Ok(d) => {
                if let Some(hit) = d.map.get(subject).and_then(|m| m.get(&perm)) {
                    return *hit;
                }
                d.generation
            }
            Err(_) => return false,
        };
        let decision = self
            .enforcer
            .read()
            .ok()
            .and_then(|e| e.enforce((subject, perm.resource, perm.action)).ok())
            .unwrap_or(false);
        between();
        if let Ok(mut d) = self.decisions.write()
            && d.generation == generation
        {
            // Bounded: subjects are roles and users, few; a flood cannot grow this without limit.
            if d.map.len() > 100_000 {
                d.map.clear();
            }
            d.map
                .entry(subject.to_string())
                .or_default()
                .insert(perm, decision);
        }
        decision
    }

    /// As [`Policy::allows`], for a (resource, action) read from the policy rather than a route.
    pub fn allows_dynamic(&self, subject: &str, resource: &str, action: &str) -> bool {
        self.enforcer
            .read()
            .ok()
            .and_then(|e| e.enforce((subject, resource, action)).ok())
            .unwrap_or(false)
    }

    /// Whether a role, by itself, may perform `perm` (straight from policy.csv via the enforcer).
    pub fn role_allows(&self, role: Role, perm: Perm) -> bool {
        self.allows(role.as_str(), perm)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn model_text(&self) -> &str {
        &self.model_text
    }

    /// Every (resource, action) the policy mentions.
    pub fn permissions(&self) -> BTreeSet<(String, String)> {
        self.rules
            .iter()
            .map(|r| (r.resource.clone(), r.action.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = include_str!("../../../policies/model.conf");
    const POLICY: &str = include_str!("../../../policies/policy.csv");

    #[test]
    fn policy_lines_are_checked() {
        assert!(parse_rules(POLICY).unwrap().len() > 20);
        assert!(
            parse_rules("p, root, user, read")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(parse_rules("p, admin, user").is_err());
        assert!(parse_rules("g, alice, admin").is_err());
        assert_eq!(parse_rules("# only a comment\n\n").unwrap(), vec![]);
    }

    #[actix_web::test]
    async fn casbin_decides_by_role_and_grant() {
        let p = Policy::from_parts(MODEL.into(), parse_rules(POLICY).unwrap())
            .await
            .unwrap();
        let ledger_read = Perm::new("ledger", "read");
        assert!(p.role_allows(Role::Auditor, ledger_read));
        assert!(!p.role_allows(Role::Admin, ledger_read));
        assert!(!p.allows(&user_subject("u1"), ledger_read));
        p.set_grants(&[("u1".into(), Role::Auditor)]).await.unwrap();
        assert!(p.allows(&user_subject("u1"), ledger_read));
        assert!(!p.allows(&user_subject("u2"), ledger_read));
        p.set_grants(&[]).await.unwrap();
        assert!(!p.allows(&user_subject("u1"), ledger_read), "cache cleared");
    }

    /// A decision made with the old grants, cached after the grants changed, would keep a
    /// revoked role working: the generation check refuses to cache it.
    #[actix_web::test]
    async fn a_decision_racing_a_revocation_is_not_cached() {
        let p = std::sync::Arc::new(
            Policy::from_parts(MODEL.into(), parse_rules(POLICY).unwrap())
                .await
                .unwrap(),
        );
        let ledger_read = Perm::new("ledger", "read");
        p.set_grants(&[("u1".into(), Role::Auditor)]).await.unwrap();
        let decided = std::sync::Arc::new(std::sync::Barrier::new(2));
        let revoked = std::sync::Arc::new(std::sync::Barrier::new(2));
        let racer = {
            let (p, decided, revoked) = (p.clone(), decided.clone(), revoked.clone());
            std::thread::spawn(move || {
                p.allows_between(&user_subject("u1"), ledger_read, || {
                    decided.wait();
                    revoked.wait();
                })
            })
        };
        decided.wait();
        p.set_grants(&[]).await.unwrap();
        revoked.wait();
        assert!(racer.join().unwrap(), "decided with the old grants");
        assert!(
            !p.allows(&user_subject("u1"), ledger_read),
            "the revoked role is not served from the cache"
        );
    }
}
