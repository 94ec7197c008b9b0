//! Rate limits: token buckets per key, user, connection or tool, configured per organisation
//! and counted in memory by [`crate::governance::Policies`].

use crate::orgs::require_manage;
use crate::{Admin, AdminError};
use mesh_core::ratelimit::LimitScope;
use mesh_core::{id, Principal};
use mesh_store::RateLimitRow;
use serde::{Deserialize, Serialize};

/// Highest accepted rate and burst.
const MAX_RATE: i64 = 1_000_000;

/// A limit as given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitInput {
    /// key, user, connection or tool.
    pub scope: String,
    /// Key id, user id, connection slug, or `connection/tool`; globs allowed, each match
    /// counted separately (`*` on key scope: every key gets its own bucket).
    pub target: String,
    /// Calls per minute, refilled continuously.
    pub per_minute: i64,
    /// Calls that may arrive at once (default: `per_minute`).
    pub burst: Option<i64>,
}

/// A limit as shown.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitView {
    /// Id.
    pub id: String,
    /// What it counts against.
    pub scope: String,
    /// Which ones.
    pub target: String,
    /// Calls per minute.
    pub per_minute: i64,
    /// Calls at once.
    pub burst: i64,
    /// Created, ms since epoch.
    pub created_at: i64,
    /// Last changed, ms since epoch.
    pub updated_at: i64,
}

impl From<RateLimitRow> for LimitView {
    fn from(r: RateLimitRow) -> Self {
        LimitView {
            id: r.id,
            scope: r.scope,
            target: r.target,
            per_minute: r.per_minute,
            burst: r.burst,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl Admin {
    /// Sets a limit (replacing one with the same scope and target).
    pub async fn set_rate_limit(&self, p: &Principal, input: LimitInput) -> Result<LimitView, AdminError> {
        require_manage(p)?;
        let scope = LimitScope::parse(&input.scope).ok_or_else(|| {
            AdminError::Invalid(format!("scope must be key, user, connection or tool, not '{}'", input.scope))
        })?;
        let target = input.target.trim();
        if target.is_empty() || target.len() > mesh_core::policy::MAX_PATTERN {
            return Err(AdminError::Invalid("target must be 1 to 256 characters".into()));
        }
        if scope == LimitScope::Tool && !target.contains('/') && target != "*" {
            return Err(AdminError::Invalid(
                "a tool limit's target is connection/tool (globs allowed), e.g. github/delete_*".into(),
            ));
        }
        let burst = input.burst.unwrap_or(input.per_minute);
        if !(1..=MAX_RATE).contains(&input.per_minute) || !(1..=MAX_RATE).contains(&burst) {
            return Err(AdminError::Invalid(format!("perMinute and burst must be between 1 and {MAX_RATE}")));
        }
        let now = id::now_ms();
        let row = RateLimitRow {
            id: id::new_id("lim"),
            org_id: p.org_id.clone(),
            scope: scope.as_str().to_string(),
            target: target.to_string(),
            per_minute: input.per_minute,
            burst,
            created_at: now,
            updated_at: now,
        };
        let stored = self.store.upsert_rate_limit(&row).await?;
        self.policies.reload(&self.store).await?;
        tracing::info!(org = %p.org_id, limit = %stored.id, scope = %stored.scope, target = %stored.target, per_minute = stored.per_minute, "rate limit set");
        Ok(stored.into())
    }

    /// The organisation's limits.
    pub async fn list_rate_limits(&self, p: &Principal) -> Result<Vec<LimitView>, AdminError> {
        if p.is_anonymous() {
            return Err(AdminError::Forbidden("anonymous callers cannot list limits"));
        }
        Ok(self.store.list_rate_limits(&p.org_id).await?.into_iter().map(LimitView::from).collect())
    }

    /// Deletes a limit.
    pub async fn delete_rate_limit(&self, p: &Principal, limit_id: &str) -> Result<String, AdminError> {
        require_manage(p)?;
        if !self.store.delete_rate_limit(&p.org_id, limit_id).await? {
            return Err(AdminError::NotFound(format!("rate limit '{limit_id}'")));
        }
        self.policies.reload(&self.store).await?;
        tracing::info!(org = %p.org_id, limit = %limit_id, "rate limit deleted");
        Ok(limit_id.to_string())
    }
}
