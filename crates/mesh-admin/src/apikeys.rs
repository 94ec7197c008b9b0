//! API keys as a management surface: create (shown once), list (never the secret), revoke.
//!
//! Anyone may manage their own keys; owners and admins manage everyone's in their organisation.
//! A revocation reloads the in-memory key cache before answering, so it holds on the very next
//! request — and the key's open MCP sessions die with it, since every request re-authenticates.

use crate::governance::KeyPolicy;
use crate::{keys, Admin, AdminError};
use mesh_core::policy::{Rule, Scope};
use mesh_core::{id, Principal};
use mesh_store::ApiKey;
use serde::{Deserialize, Serialize};

/// The longest a key may live, in days.
const MAX_DAYS: i64 = 3650;

/// Most active keys one member holds in an organisation: each key may hold its own share of
/// sessions, so unlimited keys would make the per-key session cap no cap at all.
const MAX_KEYS_PER_MEMBER: usize = 100;

/// What a caller may ask for when creating a key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyInput {
    /// A name to recognise it by ("ci", "cursor on laptop").
    pub name: String,
    /// Days until it expires; none means it does not.
    pub expires_in_days: Option<i64>,
    /// The member it is for, by user id or email (owner/admin only); default: the caller.
    pub user_id: Option<String>,
    /// Narrowing to chosen connections, gateways and tools.
    pub scope: Option<Scope>,
    /// Rules on top of the user's role (they can only take away).
    pub rules: Option<Vec<Rule>>,
}

/// A key as shown: everything but the secret and its hash.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The first characters of the key, for recognition.
    pub prefix: String,
    /// Its user.
    pub user_id: String,
    /// Created, ms since epoch.
    pub created_at: i64,
    /// Expires, ms since epoch.
    pub expires_at: Option<i64>,
    /// Revoked, ms since epoch.
    pub revoked_at: Option<i64>,
    /// Last used (written in batches), ms since epoch.
    pub last_used_at: Option<i64>,
    /// Its narrowing, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Its own rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        let policy = KeyPolicy::from_stored(&k.id, k.policy.as_deref());
        KeyView {
            scope: policy.scope,
            rules: policy.rules,
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            user_id: k.user_id,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

impl Admin {
    /// Creates a key; returns it with the secret, which is never shown again.
    pub async fn create_api_key(&self, p: &Principal, input: KeyInput) -> Result<(KeyView, String), AdminError> {
        crate::trust::Trust::check_not_delegated(
            p,
            "an OAuth client cannot create API keys: a key would outlive the grant and carry more than the token",
        )?;
        let name = input.name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(AdminError::Invalid("name must be 1 to 100 characters".into()));
        }
        let user_id = match input.user_id {
            // A member may be named by email too (`mcp-mesh key create --user ada@example.com`).
            Some(u) if u.contains('@') => self.find_member(p, &u).await?.user_id,
            Some(u) => u,
            None => p.user_id.clone(),
        };
        if user_id != p.user_id && !p.role.can_manage() {
            return Err(AdminError::Forbidden("creating keys for others needs the owner or admin role"));
        }
        let Some(member) = self.store.get_membership(&p.org_id, &user_id).await? else {
            return Err(AdminError::NotFound(format!("member '{user_id}'")));
        };
        // A key carries its user's rights: an admin minting one for an owner would become one.
        if user_id != p.user_id && member.role == "owner" && p.role != mesh_core::Role::Owner {
            return Err(AdminError::Forbidden("only owners can create keys for owners"));
        }
        let now = id::now_ms();
        let mut expires_at = match input.expires_in_days {
            Some(d) if (1..=MAX_DAYS).contains(&d) => Some(now + d * 86_400_000),
            Some(_) => return Err(AdminError::Invalid(format!("expiresInDays must be between 1 and {MAX_DAYS}"))),
            None => None,
        };
        let mut policy = KeyPolicy { scope: input.scope, rules: input.rules.unwrap_or_default() };
        if let Some(scope) = &policy.scope {
            scope.validate().map_err(AdminError::Invalid)?;
        }
        crate::roles::validate_rules(&policy.rules)?;
        // One read serves both checks: the caller's own key and the member's active ones.
        let org_keys = self.store.list_api_keys(&p.org_id).await?;
        let caller = org_keys.iter().find(|k| k.id == p.key_id);
        Self::no_wider_than_caller(p, caller, &mut policy, &mut expires_at)?;
        let active = org_keys
            .iter()
            .filter(|k| k.user_id == user_id && k.revoked_at.is_none() && k.expires_at.is_none_or(|t| t > now))
            .count();
        if active >= MAX_KEYS_PER_MEMBER {
            return Err(AdminError::Invalid(format!(
                "a member holds at most {MAX_KEYS_PER_MEMBER} active API keys here; revoke some first"
            )));
        }
        let policy = (policy != KeyPolicy::default()).then(|| serde_json::to_string(&policy).unwrap_or_default());
        let (mut row, k) = keys::issue(&p.org_id, &user_id, name, now, expires_at);
        row.policy = policy;
        self.store.create_api_key(&row).await?;
        self.access_changed(&p.org_id).await?;
        tracing::info!(org = %p.org_id, key = %row.id, prefix = %row.prefix, "API key created");
        Ok((row.into(), k.full.into_inner()))
    }

    /// No key mints a key wider than itself: a narrowed caller's new key carries the caller's
    /// rules and stays inside its scope (an absent dimension inherits the caller's), and no new
    /// key outlives the caller's. The role is held by `create_api_key` (only owners mint for
    /// owners), so a key never carries more rights than its maker could use.
    fn no_wider_than_caller(
        p: &Principal,
        caller: Option<&ApiKey>,
        policy: &mut KeyPolicy,
        expires_at: &mut Option<i64>,
    ) -> Result<(), AdminError> {
        if let Some(limit) = p.key_expires_at {
            match *expires_at {
                Some(t) if t > limit => {
                    return Err(AdminError::Invalid(
                        "expiresInDays: a key cannot outlive the key that creates it".into(),
                    ))
                }
                Some(_) => {}
                // Unspecified: the new key expires with its maker.
                None => *expires_at = Some(limit),
            }
        }
        let Some(caller) = caller else { return Ok(()) };
        let mine = KeyPolicy::from_stored(&caller.id, caller.policy.as_deref());
        if let Some(parent) = &mine.scope {
            let child = policy.scope.get_or_insert_with(Scope::default);
            for (c, p) in [
                (&mut child.connections, &parent.connections),
                (&mut child.gateways, &parent.gateways),
                (&mut child.tools, &parent.tools),
            ] {
                if c.is_none() {
                    c.clone_from(p);
                }
            }
            if !child.within(parent) {
                return Err(AdminError::Forbidden(
                    "a narrowed key can only create keys within its own scope (its connections, gateways and tools)",
                ));
            }
        }
        // A key's rules are one layer, in which any allow rule makes an allow-list: the child's
        // allows added to the caller's would allow their union. Denies only take away, so they
        // combine; two different allow-lists do not.
        let allows = |rules: &[Rule]| -> Vec<Rule> {
            rules.iter().filter(|r| r.effect == mesh_core::policy::Effect::Allow).cloned().collect()
        };
        let (parent_allows, child_allows) = (allows(&mine.rules), allows(&policy.rules));
        if !parent_allows.is_empty() && !child_allows.is_empty() && parent_allows != child_allows {
            return Err(AdminError::Forbidden(
                "a key with allow rules can only create keys with the same allow rules (or none: they inherit its own)",
            ));
        }
        for rule in mine.rules {
            if !policy.rules.contains(&rule) {
                policy.rules.push(rule);
            }
        }
        Ok(())
    }

    /// The keys the caller may see: all of the organisation's for owners/admins, else their own.
    pub async fn list_api_keys(&self, p: &Principal) -> Result<Vec<KeyView>, AdminError> {
        let all = self.store.list_api_keys(&p.org_id).await?;
        Ok(all.into_iter().filter(|k| p.role.can_manage() || k.user_id == p.user_id).map(KeyView::from).collect())
    }

    /// Revokes a key; it fails from the very next request on.
    pub async fn revoke_api_key(&self, p: &Principal, key_id: &str) -> Result<KeyView, AdminError> {
        let all = self.store.list_api_keys(&p.org_id).await?;
        // Someone else's key is "not found" to a caller who may not manage it.
        let k = all
            .into_iter()
            .find(|k| k.id == key_id && (p.role.can_manage() || k.user_id == p.user_id))
            .ok_or_else(|| AdminError::NotFound(format!("API key '{key_id}'")))?;
        // Owners stay in control: an admin revoking an owner's keys could lock the owners out.
        if k.user_id != p.user_id && p.role != mesh_core::Role::Owner {
            let owner = self.store.get_membership(&p.org_id, &k.user_id).await?.is_some_and(|m| m.role == "owner");
            if owner {
                return Err(AdminError::Forbidden("only owners revoke owners' keys"));
            }
        }
        self.store.revoke_api_key(&p.org_id, &k.id, id::now_ms()).await?;
        self.access_changed(&p.org_id).await?;
        tracing::info!(org = %p.org_id, key = %k.id, "API key revoked");
        let all = self.store.list_api_keys(&p.org_id).await?;
        all.into_iter()
            .find(|x| x.id == k.id)
            .map(KeyView::from)
            .ok_or_else(|| AdminError::NotFound(format!("API key '{key_id}'")))
    }
}
