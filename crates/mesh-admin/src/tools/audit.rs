//! The `AUDIT_*` management tools (query the audit trail, verify its hash chain) and
//! `USAGE_QUERY` (usage summed from the same records).
//!
//! Export is `AUDIT_QUERY` paged with `order: "asc"` (what `mcp-mesh audit export` does) or
//! `GET /api/v1/audit/export`; a tool answering megabytes in one result would help nobody.

use crate::audit::AuditQuery;
use crate::usage::UsageRequest;
use crate::{Admin, AdminError};
use mesh_core::Principal;
use serde_json::{json, Map, Value};

/// Whether `name` is one of these tools.
pub(super) fn handles(name: &str) -> bool {
    matches!(name, "AUDIT_QUERY" | "AUDIT_VERIFY" | "USAGE_QUERY")
}

/// Runs an audit tool; `None` for a name this family does not have.
pub(super) async fn call(
    a: &Admin,
    p: &Principal,
    name: &str,
    args: Map<String, Value>,
) -> Option<Result<Value, AdminError>> {
    Some(match name {
        "AUDIT_QUERY" => match serde_json::from_value::<AuditQuery>(Value::Object(args)) {
            Ok(q) => a.query_audit(p, q).await,
            Err(e) => Err(AdminError::Invalid(format!("invalid arguments: {e}"))),
        },
        "AUDIT_VERIFY" => a.verify_audit(p).await.map(|r| json!(r)),
        "USAGE_QUERY" => match serde_json::from_value::<UsageRequest>(Value::Object(args)) {
            Ok(q) => a.query_usage(p, q).await,
            Err(e) => Err(AdminError::Invalid(format!("invalid arguments: {e}"))),
        },
        _ => return None,
    })
}

/// Their definitions, for `tools/list`.
pub(super) fn tools() -> Vec<Value> {
    let text = |d: &str| json!({"type": "string", "description": d});
    let time = |d: &str| {
        json!({"anyOf": [{"type": "string"}, {"type": "integer"}],
               "description": format!("{d}: unix milliseconds, RFC 3339 (2025-06-15T10:00:00Z), or an age (30m, 2h, 7d).")})
    };
    let filters = json!({
        "from": time("Arrived at or after"),
        "to": time("Arrived before"),
        "user": text("User id. Members and viewers may only ask for themselves (and get only their own calls)."),
        "key": text("API key id."),
        "route": text("Connection or gateway slug, or \"management\"."),
        "routeKind": {"type": "string", "enum": ["connection", "gateway", "management", "rest", "dashboard", "oauth", "audit"]},
        "method": text("JSON-RPC method, e.g. tools/call."),
        "name": text("Tool, prompt or resource name (alias: tool)."),
        "tool": text("Alias of name."),
        "outcome": {"type": "string", "enum": ["ok", "tool_error", "protocol_error", "denied", "rate_limited", "upstream_down", "timeout", "cancelled", "client_gone", "dropped"]},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Rows per page (default 100)."},
        "cursor": text("nextCursor of the previous page."),
        "order": {"type": "string", "enum": ["desc", "asc"], "description": "desc: newest first (default); asc: oldest first."}
    });
    vec![
        json!({"name": "AUDIT_QUERY", "description": "Search the audit trail: every request through the mesh and every management operation, with who, what, outcome, latency and size. Secret-looking arguments are stored redacted. Owners and admins see the whole organisation; members and viewers their own calls. Answers {items, nextCursor}.",
               "inputSchema": {"type": "object", "properties": filters, "additionalProperties": false},
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "AUDIT_VERIFY", "description": "Recompute the organisation's audit hash chain and report the first edited or deleted row, if any. Owner or admin. Keep the reported headSeq/headHash elsewhere to detect a wholesale rewrite later.",
               "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "USAGE_QUERY", "description": "Usage over time: calls, errors, bytes in and out, mean and largest latency, grouped by user, key, route (connection or virtual MCP), tool, method and/or time bucket. Kept in minute buckets for 2 days, hours for 60 days, days for 400. Owners and admins see the whole organisation; members and viewers their own use. Answers {from, to, bucket, by, items}.",
               "inputSchema": {"type": "object", "properties": {
                   "from": time("From (default: 24 hours ago)"),
                   "to": time("Until (default: now)"),
                   "by": text("Group by, comma-separated: user, key, route (alias connection), tool, method, time. None: one total."),
                   "bucket": {"type": "string", "enum": ["minute", "hour", "day"], "description": "Bucket size (default: the finest still kept for `from`); with by=time, the step of the series."},
                   "user": text("Only this user id. Members and viewers may only ask for themselves."),
                   "key": text("Only this API key id."),
                   "route": text("Only this connection or virtual MCP slug (alias: connection)."),
                   "connection": text("Alias of route."),
                   "tool": text("Only this tool, prompt or resource."),
                   "method": text("Only this JSON-RPC method, e.g. tools/call."),
                   "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "Groups to answer (default 100)."}
               }, "additionalProperties": false},
               "annotations": {"readOnlyHint": true}}),
    ]
}
