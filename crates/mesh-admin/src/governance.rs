//! The in-memory policy and rate-limit state the relay asks on every call.
//!
//! Roles' rules, keys' narrowing and rules, and every organisation's rate limits are loaded
//! whole into one immutable snapshot, swapped after any change to them (the services call
//! [`crate::Admin::access_changed`]). The relay never waits for the database: it reads the
//! current snapshot, and the buckets that count calls live here in memory.

use mesh_core::policy::{Access, Layer, Rule, Scope};
use mesh_core::ratelimit::{Bucket, LimitScope};
use mesh_core::{Principal, Role};
use mesh_relay::ports::{Governor, Limited};
use mesh_store::{ApiKey, RateLimitRow, RoleRow, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// What a key stores besides its hash: its narrowing and its own rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyPolicy {
    /// The routes and tools the key is narrowed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Rules applied on top of its user's role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

impl KeyPolicy {
    /// Parses the stored JSON; a row that does not parse narrows the key to nothing rather
    /// than widening it (fail closed), and says so in the log.
    pub fn from_stored(key_id: &str, stored: Option<&str>) -> KeyPolicy {
        let Some(raw) = stored else { return KeyPolicy::default() };
        serde_json::from_str(raw).unwrap_or_else(|e| {
            tracing::error!(key = %key_id, error = %e, "stored key policy does not parse; the key is narrowed to nothing");
            KeyPolicy {
                scope: Some(Scope {
                    connections: Some(vec![]),
                    gateways: Some(vec![]),
                    tools: Some(vec![]),
                    management: false,
                }),
                rules: Vec::new(),
            }
        })
    }
}

/// What the key cache and the policies are built from, read once per change.
pub struct AccessRows {
    /// The operator organisation (`Store::operator_org`): the one made at first start.
    pub operator_org: Option<String>,
    /// Active keys with their user's role name.
    pub keys: Vec<(ApiKey, String)>,
    /// Live OAuth access tokens with their grant and the user's role name.
    pub tokens: Vec<(mesh_store::OAuthToken, mesh_store::OAuthGrant, String)>,
    /// Every organisation's stored roles.
    pub roles: Vec<RoleRow>,
    /// Every organisation's rate limits.
    pub limits: Vec<RateLimitRow>,
}

impl AccessRows {
    /// Reads them.
    pub async fn load(store: &Store) -> Result<AccessRows, mesh_store::StoreError> {
        let now = mesh_core::id::now_ms();
        Ok(AccessRows {
            operator_org: store.operator_org().await?,
            keys: store.active_api_keys(now).await?,
            tokens: store.active_oauth_tokens(now).await?,
            roles: store.all_roles().await?,
            limits: store.all_rate_limits().await?,
        })
    }

    /// Installs them in the key cache and the policies (at start-up and after every change).
    pub fn apply_to(&self, keys: &crate::keys::KeyCache, policies: &Policies) {
        keys.apply(&self.keys, &self.tokens, &self.roles, self.operator_org.as_deref());
        policies.apply(self);
    }
}

/// One rate limit as the relay applies it.
#[derive(Debug, Clone)]
struct Limit {
    id: String,
    scope: LimitScope,
    target: String,
    per_minute: u32,
    burst: u32,
}

#[derive(Default)]
struct Snapshot {
    /// (org, role name) → that role's rules.
    roles: HashMap<(String, String), Layer>,
    /// key id → its policy.
    keys: HashMap<String, (Layer, Option<Scope>)>,
    /// org → its limits.
    limits: HashMap<String, Vec<Limit>>,
}

/// The governor the relay consults: policies and rate limits, from memory.
#[derive(Default)]
pub struct Policies {
    snapshot: RwLock<Arc<Snapshot>>,
    /// `{limit id}|{subject}` → its bucket, with the limit's rate and burst (to prune full ones).
    buckets: Mutex<HashMap<String, (Bucket, u32, u32)>>,
}

/// Most buckets held at once. A bucket exists per limit and subject, and a subject can be a
/// name the caller chose (`tool` limits count `connection/tool` for any tool name sent): without
/// a bound, unique names would grow memory on every call.
const MAX_BUCKETS: usize = 100_000;

impl Policies {
    /// Replaces the snapshot with what the store holds now.
    pub async fn reload(&self, store: &Store) -> Result<(), mesh_store::StoreError> {
        self.apply(&AccessRows::load(store).await?);
        Ok(())
    }

    /// Replaces the snapshot with one built from `rows`.
    pub fn apply(&self, rows: &AccessRows) {
        let mut snap = Snapshot::default();
        for r in &rows.roles {
            let rules: Vec<Rule> = serde_json::from_str(&r.rules).unwrap_or_else(|e| {
                tracing::error!(org = %r.org_id, role = %r.name, error = %e, "stored role rules do not parse; the role gets a deny-all rule");
                vec![Rule { effect: mesh_core::policy::Effect::Deny, connection: None, gateway: None, kind: None, name: None }]
            });
            snap.roles.insert((r.org_id.clone(), r.name.clone()), Layer::new(rules));
        }
        for (k, _) in &rows.keys {
            let p = KeyPolicy::from_stored(&k.id, k.policy.as_deref());
            if p.scope.is_some() || !p.rules.is_empty() {
                snap.keys.insert(k.id.clone(), (Layer::new(p.rules), p.scope));
            }
        }
        for l in &rows.limits {
            let Some(scope) = LimitScope::parse(&l.scope) else { continue };
            let limit = Limit {
                id: l.id.clone(),
                scope,
                target: l.target.clone(),
                per_minute: u32::try_from(l.per_minute).unwrap_or(u32::MAX),
                burst: u32::try_from(l.burst).unwrap_or(u32::MAX),
            };
            snap.limits.entry(l.org_id.clone()).or_default().push(limit);
        }
        // Buckets of limits that no longer exist would only hold memory.
        let live: std::collections::HashSet<String> = snap.limits.values().flatten().map(|l| l.id.clone()).collect();
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| k.split('|').next().is_some_and(|id| live.contains(id)));
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Returns the tokens a refused call took from other limits.
fn give_back(buckets: &mut HashMap<String, (Bucket, u32, u32)>, taken: Vec<(String, u32)>) {
    for (k, burst) in taken {
        if let Some((b, ..)) = buckets.get_mut(&k) {
            b.give_back(burst);
        }
    }
}

impl Policies {
    /// How many rate-limit buckets are held (for tests of the bound).
    pub fn bucket_count(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Governor for Policies {
    fn access(&self, p: &Principal) -> Arc<Access> {
        // The anonymous principal reaches only routes an admin opened to it, whole.
        if p.is_anonymous() {
            return mesh_relay::ports::unrestricted();
        }
        let snap = self.current();
        let role = snap.roles.get(&(p.org_id.clone(), p.role_name().to_string())).cloned().unwrap_or_default();
        let (key_rules, scope) = snap.keys.get(&p.key_id).cloned().unwrap_or_default();
        Arc::new(Access::new(p.role != Role::Viewer, vec![role, key_rules], scope))
    }

    fn admit(&self, p: &Principal, connection: &str, tool: Option<&str>) -> Result<(), Limited> {
        let snap = self.current();
        let Some(limits) = snap.limits.get(&p.org_id) else { return Ok(()) };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut taken: Vec<(String, u32)> = Vec::new();
        for l in limits {
            let subject = match l.scope {
                LimitScope::Key => p.key_id.clone(),
                LimitScope::User => p.user_id.clone(),
                LimitScope::Connection => connection.to_string(),
                LimitScope::Tool => match tool {
                    Some(t) => format!("{connection}/{t}"),
                    None => continue,
                },
            };
            if !mesh_core::policy::glob(&l.target, &subject) {
                continue;
            }
            let key = format!("{}|{subject}", l.id);
            if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&key) {
                // A full bucket is the same as none: drop those first.
                buckets.retain(|_, (b, per_minute, burst)| !b.is_full(*per_minute, *burst, now));
                if buckets.len() >= MAX_BUCKETS {
                    tracing::warn!(org = %p.org_id, "rate-limit buckets at their bound; refusing calls of new subjects");
                    give_back(&mut buckets, taken);
                    let limit = format!("{} limit on {subject} (too many distinct subjects at once)", l.scope.as_str());
                    return Err(Limited { limit, retry_after: std::time::Duration::from_secs(1) });
                }
            }
            let (bucket, ..) =
                buckets.entry(key.clone()).or_insert_with(|| (Bucket::full(l.burst, now), l.per_minute, l.burst));
            if let Err(retry_after) = bucket.take(l.per_minute, l.burst, now) {
                // All or nothing: a refused call must not use up the other limits.
                give_back(&mut buckets, taken);
                let limit = format!("{} limit of {}/min on {subject}", l.scope.as_str(), l.per_minute);
                return Err(Limited { limit, retry_after });
            }
            taken.push((key, l.burst));
        }
        Ok(())
    }
}
