//! API keys: generation, hashing, and the in-memory cache every request authenticates against.
//!
//! Keys are 40 random base62 characters after a `mesh_` prefix (~238 bits), so a fast hash
//! (SHA-256) is the right tool: there is nothing to brute-force, and authentication stays a
//! hash plus a map lookup with no database round-trip. Passwords, later, get argon2id.

use mesh_core::{Principal, Role};
use mesh_relay::ports::Authenticator;
use mesh_store::{ApiKey, OAuthGrant, OAuthToken, RoleRow, Store};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

/// Characters of a key shown for recognition (`mesh_AbCdEfG`).
pub const PREFIX_LEN: usize = 12;

/// A newly generated key: the full value is shown once and never stored.
pub struct NewKey {
    /// The key itself.
    pub full: mesh_core::Secret<String>,
    /// Its visible prefix.
    pub prefix: String,
    /// Hex SHA-256 of the full key, as stored.
    pub hash: String,
}

/// Makes a new random key.
pub fn generate() -> NewKey {
    let full = format!("mesh_{}", mesh_core::id::random_base62(40));
    let prefix = full[..PREFIX_LEN].to_string();
    let hash = hash(&full);
    NewKey { full: mesh_core::Secret::new(full), prefix, hash }
}

/// A new key for `user_id` in `org_id`: the row to store (never the key itself) and the key.
pub fn issue(
    org_id: &str,
    user_id: &str,
    name: &str,
    now: i64,
    expires_at: Option<i64>,
) -> (mesh_store::ApiKey, NewKey) {
    let k = generate();
    let row = mesh_store::ApiKey {
        id: mesh_core::id::new_id("key"),
        org_id: org_id.to_string(),
        user_id: user_id.to_string(),
        name: name.to_string(),
        prefix: k.prefix.clone(),
        hash: k.hash.clone(),
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
        policy: None,
    };
    (row, k)
}

/// The stored form of a key: its [`digest`] in hex.
pub fn hash(token: &str) -> String {
    hex::encode(digest(token))
}

/// A key's SHA-256, what the cache looks keys up by.
fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Adds an entry under its stored hex hash; a hash that is not hex SHA-256 is skipped, logged.
fn insert(map: &mut foldhash::HashMap<[u8; 32], Entry>, hex_hash: &str, id: &str, entry: Entry) {
    let mut stored = [0u8; 32];
    if hex::decode_to_slice(hex_hash, &mut stored).is_err() {
        tracing::warn!(key = %id, "stored hash is not hex SHA-256; the key or token cannot authenticate");
        return;
    }
    map.insert(stored, entry);
}

#[derive(Clone)]
struct Entry {
    principal: Principal,
    expires_at: Option<i64>,
}

/// Active keys by hash. Reloaded from the store after every key change, so a revocation takes
/// effect on the very next request.
#[derive(Default)]
pub struct KeyCache {
    /// Keyed by the raw SHA-256 (the store keeps it in hex): a request hashes its token and looks
    /// it up without formatting or allocating anything.
    /// foldhash, not SipHash: the keys are SHA-256 digests and key ids, never chosen by a caller.
    by_hash: RwLock<foldhash::HashMap<[u8; 32], Entry>>,
    used: Mutex<foldhash::HashMap<String, i64>>,
    /// Connections open to anonymous callers: id and slug → organisations having it.
    anonymous: RwLock<HashMap<String, Vec<String>>>,
    /// Held while the store is read and the cache replaced, so that two reloads cannot apply
    /// out of order (an older read must never replace a newer one: a token issued, or a key
    /// revoked, in between would be lost).
    pub(crate) reloading: tokio::sync::Mutex<()>,
    /// Short-lived tokens made in memory for the dashboard's playground, never stored; looked
    /// up only when a token is not in `by_hash`, so keys pay nothing for them.
    ephemeral: Mutex<foldhash::HashMap<[u8; 32], Entry>>,
}

impl KeyCache {
    /// Replaces the cache with the store's active keys (two reads; a change that also moves
    /// policies goes through `governance::AccessRows`, which reads rate limits too).
    pub async fn reload(&self, store: &Store) -> Result<usize, mesh_store::StoreError> {
        let _order = self.reloading.lock().await;
        let now = mesh_core::id::now_ms();
        let keys = store.active_api_keys(now).await?;
        let tokens = store.active_oauth_tokens(now).await?;
        let operator_org = store.operator_org().await?;
        Ok(self.apply(&keys, &tokens, &store.all_roles().await?, operator_org.as_deref()))
    }

    /// Replaces the cache with `keys` (active keys with their user's role name) and `tokens`
    /// (live OAuth access tokens with their grant and the user's role name); `roles` give
    /// custom roles their base; owners of `operator_org` are the installation's operators.
    /// Returns how many keys and tokens can authenticate.
    pub fn apply(
        &self,
        keys: &[(ApiKey, String)],
        tokens: &[(OAuthToken, OAuthGrant, String)],
        roles: &[RoleRow],
        operator_org: Option<&str>,
    ) -> usize {
        // A custom role's management rights are its base role's.
        let bases: HashMap<(&str, &str), Role> =
            roles.iter().filter_map(|r| Some(((r.org_id.as_str(), r.name.as_str()), Role::parse(&r.base)?))).collect();
        let role_of = |org: &str, role_name: &str| match Role::parse(role_name) {
            Some(r) => Some((r, None)),
            None => bases.get(&(org, role_name)).map(|base| (*base, Some(role_name.to_string()))),
        };
        let mut map = foldhash::HashMap::with_capacity_and_hasher(keys.len() + tokens.len(), Default::default());
        for (k, role_name) in keys {
            let Some((role, custom_role)) = role_of(&k.org_id, role_name) else {
                tracing::warn!(key = %k.id, role = %role_name, "key's role does not exist; the key cannot authenticate");
                continue;
            };
            let policy = crate::governance::KeyPolicy::from_stored(&k.id, k.policy.as_deref());
            // Any restriction — a scope or rules of its own — makes a key one handed out to do
            // less: never the installation's (issue #16 review).
            let restricted = !policy.rules.is_empty() || policy.scope.as_ref().is_some_and(|s| s.is_narrowing());
            let scope = policy.scope.unwrap_or_default();
            let principal = Principal {
                org_id: k.org_id.clone(),
                user_id: k.user_id.clone(),
                key_id: k.id.clone(),
                role,
                custom_role,
                operator: mesh_core::principal::operator_tier(role, &k.org_id, operator_org, restricted),
                manage: scope.allows_management(),
                key_expires_at: k.expires_at,
                audience: None,
            };
            insert(&mut map, &k.hash, &k.id, Entry { principal, expires_at: k.expires_at });
        }
        for (t, g, role_name) in tokens {
            let Some((role, custom_role)) = role_of(&g.org_id, role_name) else { continue };
            // A token acts for its user at one route (its audience), with the user's role there:
            // never as an operator (a third-party client holds it), and managing only when it
            // was issued for the management server itself. Its family is its key id, so MCP
            // sessions survive a refresh and rate limits per key count the whole authorisation.
            let principal = Principal {
                org_id: g.org_id.clone(),
                user_id: g.user_id.clone(),
                key_id: t.family.clone(),
                role,
                custom_role,
                operator: false,
                manage: g.route.is_empty(),
                key_expires_at: Some(t.expires_at),
                audience: Some(g.route.as_str().into()),
            };
            insert(&mut map, &t.hash, &t.family, Entry { principal, expires_at: Some(t.expires_at) });
        }
        let n = map.len();
        *self.by_hash.write().unwrap_or_else(|p| p.into_inner()) = map;
        n
    }

    /// Reloads which connections admit anonymous callers (after any connection change).
    pub async fn reload_anonymous(&self, store: &Store) -> Result<(), mesh_store::StoreError> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (org, id, slug) in store.anonymous_connections().await? {
            map.entry(id).or_default().push(org.clone());
            map.entry(slug).or_default().push(org);
        }
        *self.anonymous.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    /// Admits `token` as `principal` until `principal.key_expires_at`.
    pub(crate) fn add_ephemeral(&self, token: &str, principal: Principal) {
        let mut map = self.ephemeral.lock().unwrap_or_else(|p| p.into_inner());
        let now = mesh_core::id::now_ms();
        map.retain(|_, e| e.expires_at.is_none_or(|t| t > now));
        map.insert(digest(token), Entry { expires_at: principal.key_expires_at, principal });
    }

    /// Forgets a token of [`KeyCache::add_ephemeral`].
    pub(crate) fn remove_ephemeral(&self, token: &str) {
        self.ephemeral.lock().unwrap_or_else(|p| p.into_inner()).remove(&digest(token));
    }

    /// Writes batched last-used times to the store (called periodically, off the request path).
    pub async fn flush_usage(&self, store: &Store) {
        let used: Vec<(String, i64)> = self.used.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        if used.is_empty() {
            return;
        }
        if let Err(e) = store.touch_api_keys(&used).await {
            tracing::warn!(error = %e, "could not record API key usage");
        }
    }
}

impl Authenticator for KeyCache {
    fn authenticate(&self, token: &str) -> Option<Principal> {
        let d = digest(token);
        let found = self.by_hash.read().unwrap_or_else(|p| p.into_inner()).get(&d).cloned();
        let now = mesh_core::id::now_ms();
        let entry = match found {
            Some(e) => e,
            None => {
                let e = self.ephemeral.lock().unwrap_or_else(|p| p.into_inner()).get(&d).cloned()?;
                // Not a key: nothing to mark used.
                return e.expires_at.is_none_or(|t| t > now).then_some(e.principal);
            }
        };
        if entry.expires_at.is_some_and(|t| t <= now) {
            return None;
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        // A key calling again before the next flush only moves its time: no new String per call.
        match used.get_mut(&entry.principal.key_id) {
            Some(t) => *t = now,
            None => {
                used.insert(entry.principal.key_id.clone(), now);
            }
        }
        drop(used);
        Some(entry.principal)
    }

    fn anonymous(&self, route: &str) -> Option<Principal> {
        let map = self.anonymous.read().unwrap_or_else(|p| p.into_inner());
        match map.get(route).map(Vec::as_slice) {
            // A slug open in two organisations is ambiguous without credentials: refuse rather
            // than guess (the id, unique everywhere, still works).
            Some([org]) => Some(Principal::anonymous(org)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert_ne!(a.full.expose(), b.full.expose());
        assert!(a.full.expose().starts_with("mesh_") && a.full.expose().len() == 45);
        assert_eq!(a.prefix, a.full.expose()[..12]);
        assert_eq!(a.hash, hash(a.full.expose()));
        assert_eq!(a.hash.len(), 64);
    }
}
