//! The `ROLE_*` and `RATE_LIMIT_*` management tools.

use super::{parse, req_str};
use crate::limits::LimitInput;
use crate::roles::RoleInput;
use crate::{Admin, AdminError};
use mesh_core::Principal;
use serde_json::{json, Map, Value};

const NAMES: [&str; 8] = [
    "ROLE_CREATE",
    "ROLE_LIST",
    "ROLE_GET",
    "ROLE_UPDATE",
    "ROLE_DELETE",
    "RATE_LIMIT_SET",
    "RATE_LIMIT_LIST",
    "RATE_LIMIT_DELETE",
];

/// Whether `name` is one of these tools.
pub(super) fn handles(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Runs a role or limit tool; `None` for a name this family does not have.
pub(super) async fn call(
    a: &Admin,
    p: &Principal,
    name: &str,
    args: Map<String, Value>,
) -> Option<Result<Value, AdminError>> {
    if !handles(name) {
        return None;
    }
    let run = async {
        match name {
            "ROLE_CREATE" => Ok(json!({"item": a.create_role(p, parse::<RoleInput>(args)?).await?})),
            "ROLE_LIST" => Ok(json!({"items": a.list_roles(p).await?})),
            "ROLE_GET" => Ok(json!({"item": a.get_role(p, req_str(&args, "name")?).await?})),
            "ROLE_UPDATE" => Ok(json!({"item": a.update_role(p, parse::<RoleInput>(args)?).await?})),
            "ROLE_DELETE" => Ok(json!({"deleted": true, "name": a.delete_role(p, req_str(&args, "name")?).await?})),
            "RATE_LIMIT_SET" => Ok(json!({"item": a.set_rate_limit(p, parse::<LimitInput>(args)?).await?})),
            "RATE_LIMIT_LIST" => Ok(json!({"items": a.list_rate_limits(p).await?})),
            _ => Ok(json!({"deleted": true, "id": a.delete_rate_limit(p, req_str(&args, "id")?).await?})),
        }
    };
    Some(run.await)
}

fn rule_schema() -> Value {
    json!({"type": "object", "properties": {
        "effect": {"type": "string", "enum": ["allow", "deny"]},
        "connection": {"type": "string", "description": "Glob over connection slugs (direct or as gateway members)."},
        "gateway": {"type": "string", "description": "Glob over gateway slugs; such a rule never matches direct traffic."},
        "kind": {"type": "string", "enum": ["tool", "prompt", "resource"]},
        "name": {"type": "string", "description": "Glob over the tool or prompt name, or resource URI, at the connection."}},
        "required": ["effect"], "additionalProperties": false})
}

/// Their definitions.
pub(super) fn definitions() -> Vec<Value> {
    let rules = json!({"type": "array", "items": rule_schema(),
        "description": "Rules over MCP traffic. A matching deny wins; if there is any allow rule, one must match (an allow-list). A denied tool is left out of lists and answers as unknown."});
    let role_fields = json!({"name": {"type": "string"},
        "base": {"type": "string", "enum": ["admin", "member", "viewer"], "description": "Whose management rights the role has (default member)."},
        "description": {"type": "string"}, "rules": rules});
    let name_only = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": false});
    let empty = json!({"type": "object", "properties": {}, "additionalProperties": false});
    vec![
        json!({"name": "ROLE_CREATE", "description": "Create a custom role with a base role and rules over MCP traffic.",
               "inputSchema": {"type": "object", "properties": role_fields, "required": ["name"], "additionalProperties": false}}),
        json!({"name": "ROLE_LIST", "description": "List built-in and custom roles with their rules and member counts.",
               "inputSchema": empty, "annotations": {"readOnlyHint": true}}),
        json!({"name": "ROLE_GET", "description": "Get one role.", "inputSchema": name_only, "annotations": {"readOnlyHint": true}}),
        json!({"name": "ROLE_UPDATE", "description": "Change a role; rules, when given, replace its rules (built-in roles: rules only). Open sessions are told list_changed when what they see changes.",
               "inputSchema": {"type": "object", "properties": role_fields, "required": ["name"], "additionalProperties": false}}),
        json!({"name": "ROLE_DELETE", "description": "Delete a custom role nobody holds.", "inputSchema": name_only,
               "annotations": {"destructiveHint": true}}),
        json!({"name": "RATE_LIMIT_SET", "description": "Set a token-bucket rate limit on tools/call, prompts/get and resources/read: per key, user, connection, or tool (connection/tool). Targets may be globs; each match is counted separately. Replaces a limit with the same scope and target.",
               "inputSchema": {"type": "object", "properties": {
                   "scope": {"type": "string", "enum": ["key", "user", "connection", "tool"]},
                   "target": {"type": "string", "description": "Key id, user id, connection slug, or connection/tool; '*' for each one."},
                   "perMinute": {"type": "integer", "minimum": 1},
                   "burst": {"type": "integer", "minimum": 1, "description": "Calls allowed at once (default perMinute)."}},
                   "required": ["scope", "target", "perMinute"], "additionalProperties": false}}),
        json!({"name": "RATE_LIMIT_LIST", "description": "List the organisation's rate limits.", "inputSchema": empty,
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "RATE_LIMIT_DELETE", "description": "Delete a rate limit.",
               "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"], "additionalProperties": false},
               "annotations": {"destructiveHint": true}}),
    ]
}
