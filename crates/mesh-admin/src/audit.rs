//! Reading the audit trail: query and verification, shared by the `AUDIT_*` management tools,
//! `GET /api/v1/audit` and the CLI (through the tools), so they cannot disagree about who sees
//! what.
//!
//! Who may read what:
//! - owners and admins see every row of their organisation;
//! - members and viewers see only their own calls (the `user` filter is forced to themselves;
//!   asking for someone else's is refused, not silently narrowed);
//! - anonymous callers see nothing;
//! - verification (it reads every row) needs owner or admin.
//!
//! No caller ever sees another organisation's rows: the organisation comes from the principal,
//! never from the request.

use crate::{Admin, AdminError};
use mesh_core::Principal;
use mesh_store::{AuditFilter, AuditOrder};
use serde::Deserialize;
use serde_json::{json, Value};

/// Rows per page unless asked otherwise, and the most a page may hold.
pub const DEFAULT_LIMIT: i64 = 100;
/// See [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: i64 = 1000;

/// A time bound: unix milliseconds, or text (`2025-06-15T10:00:00Z`, `2h`, `7d`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TimeArg {
    /// Unix milliseconds.
    Ms(i64),
    /// RFC 3339, an age such as `30m`, or milliseconds as text (query strings).
    Text(String),
}

/// What a caller may ask for; every field optional. The same names in tool arguments and in the
/// REST query string.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditQuery {
    /// Arrived at or after.
    pub from: Option<TimeArg>,
    /// Arrived before.
    pub to: Option<TimeArg>,
    /// User id.
    pub user: Option<String>,
    /// API key id.
    pub key: Option<String>,
    /// Route: a connection or gateway slug, or `management`.
    pub route: Option<String>,
    /// `connection`, `gateway`, `management`, `rest` or `audit`.
    pub route_kind: Option<String>,
    /// JSON-RPC method, e.g. `tools/call`.
    pub method: Option<String>,
    /// Tool, prompt or resource name.
    #[serde(alias = "tool")]
    pub name: Option<String>,
    /// Outcome, e.g. `ok`, `tool_error`, `denied`.
    pub outcome: Option<String>,
    /// Rows per page (default 100, at most 1000).
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc` (oldest first, for exports).
    pub order: Option<AuditOrder>,
}

/// Every outcome an audit row can carry (what the `outcome` filter accepts).
pub const OUTCOMES: &[&str] = &[
    "ok",
    "tool_error",
    "protocol_error",
    "denied",
    "rate_limited",
    "upstream_down",
    "timeout",
    "cancelled",
    "client_gone",
    "dropped",
];

impl Admin {
    /// One page of the caller's organisation's audit trail: `{items, nextCursor}`; `nextCursor`
    /// is null on the last page.
    pub async fn query_audit(&self, p: &Principal, q: AuditQuery) -> Result<Value, AdminError> {
        let f = self.audit_filter(p, q)?;
        // Read-your-writes: calls that ended before this query are in the database first.
        self.flush_audit().await;
        let rows = self.store.query_audit(&f).await?;
        let next = (rows.len() as i64 == f.limit).then(|| rows.last().map(|r| r.seq.to_string())).flatten();
        let items: Vec<Value> = rows.iter().map(mesh_audit::view::row_json).collect();
        Ok(json!({"items": items, "nextCursor": next}))
    }

    /// Recomputes the caller's organisation's hash chain. Owner or admin.
    pub async fn verify_audit(&self, p: &Principal) -> Result<mesh_audit::VerifyReport, AdminError> {
        if p.is_anonymous() || !p.role.can_manage() {
            return Err(AdminError::Forbidden("verifying the audit trail needs the owner or admin role"));
        }
        self.flush_audit().await;
        Ok(mesh_audit::verify(&self.store, &p.org_id).await?)
    }

    /// Waits (briefly: a database that is down must not hang the query too) until calls that
    /// ended before now are written.
    pub(crate) async fn flush_audit(&self) {
        if tokio::time::timeout(std::time::Duration::from_secs(2), self.audit.flush()).await.is_err() {
            tracing::warn!("audit writer is behind; the answer may miss the latest calls");
        }
    }

    /// Turns a request into a store filter, applying who-may-see-what.
    pub fn audit_filter(&self, p: &Principal, q: AuditQuery) -> Result<AuditFilter, AdminError> {
        if p.is_anonymous() {
            return Err(AdminError::Forbidden("the audit trail needs an API key"));
        }
        let user_id = if p.role.can_manage() {
            q.user
        } else {
            match q.user {
                Some(u) if u != p.user_id => {
                    return Err(AdminError::Forbidden("members and viewers may only read their own calls"))
                }
                _ => Some(p.user_id.clone()),
            }
        };
        let now = mesh_core::id::now_ms();
        let time = |t: Option<TimeArg>, which: &str| -> Result<Option<i64>, AdminError> {
            match t {
                None => Ok(None),
                Some(TimeArg::Ms(ms)) => Ok(Some(ms)),
                Some(TimeArg::Text(s)) => mesh_audit::view::parse_time(&s, now)
                    .map(Some)
                    .map_err(|e| AdminError::Invalid(format!("{which}: {e}"))),
            }
        };
        if let Some(o) = q.outcome.as_deref().filter(|o| !OUTCOMES.contains(o)) {
            return Err(AdminError::Invalid(format!("outcome '{o}' is not one of {}", OUTCOMES.join(", "))));
        }
        let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => {
                Some(c.parse::<i64>().map_err(|_| AdminError::Invalid("cursor is not one this API returned".into()))?)
            }
        };
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AdminError::Invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        Ok(AuditFilter {
            org_id: p.org_id.clone(),
            from_ms: time(q.from, "from")?,
            to_ms: time(q.to, "to")?,
            user_id,
            key_id: q.key,
            route: q.route,
            route_kind: q.route_kind,
            method: q.method,
            name: q.name,
            outcome: q.outcome,
            cursor,
            order: q.order.unwrap_or_default(),
            limit,
        })
    }
}
