//! The `API_KEY_*` management tools.

use crate::apikeys::KeyInput;
use crate::{Admin, AdminError};
use mesh_core::Principal;
use serde_json::{json, Map, Value};

/// Whether `name` is one of these tools.
pub(super) fn handles(name: &str) -> bool {
    name.starts_with("API_KEY_")
}

/// Runs a key tool; `None` for a name this family does not have.
pub(super) async fn call(
    a: &Admin,
    p: &Principal,
    name: &str,
    args: Map<String, Value>,
) -> Option<Result<Value, AdminError>> {
    Some(match name {
        "API_KEY_CREATE" => match serde_json::from_value::<KeyInput>(Value::Object(args)) {
            Ok(i) => a.create_api_key(p, i).await.map(
                |(item, key)| json!({"item": item, "key": key, "note": "The key is shown only now; store it safely."}),
            ),
            Err(e) => Err(AdminError::Invalid(format!("invalid arguments: {e}"))),
        },
        "API_KEY_LIST" => a.list_api_keys(p).await.map(|v| json!({"items": v})),
        "API_KEY_REVOKE" => match args.get("id").and_then(Value::as_str) {
            Some(id) => a.revoke_api_key(p, id).await.map(|v| json!({"item": v})),
            None => Err(AdminError::Invalid("argument 'id' (the key id) is required".into())),
        },
        _ => return None,
    })
}

/// Their definitions.
pub(super) fn definitions() -> Vec<Value> {
    vec![
        json!({"name": "API_KEY_CREATE", "description": "Create an API key (shown once). Owners and admins may create keys for other members. No key creates a key wider than itself: a narrowed key's keys are narrowed within its scope and rules, and none outlives it.",
               "inputSchema": {"type": "object", "properties": {
                   "name": {"type": "string"},
                   "expiresInDays": {"type": "integer", "minimum": 1, "maximum": 3650},
                   "userId": {"type": "string", "description": "The member the key is for, by user id or email (default: you)."},
                   "scope": {"type": "object", "description": "Narrow the key: it may open /mcp/{connection} only for listed connections and /mcp/gateway/{gateway} only for listed gateways (a scope without one of the lists reaches none of that kind), and see only the listed tools everywhere. Globs allowed.",
                             "properties": {"connections": {"type": "array", "items": {"type": "string"}},
                                            "gateways": {"type": "array", "items": {"type": "string"}},
                                            "tools": {"type": "array", "items": {"type": "string"}},
                                            "management": {"type": "boolean", "description": "Let a narrowed key also use management tools with its user's role (default false: a narrowed key manages nothing)."}}, "additionalProperties": false},
                   "rules": {"type": "array", "items": {"type": "object"}, "description": "Allow/deny rules (as for roles) on top of the user's role; they can only take away."}},
                   "required": ["name"], "additionalProperties": false}}),
        json!({"name": "API_KEY_LIST", "description": "List API keys (never the secret): all of the organisation's for owners and admins, else your own.",
               "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false}, "annotations": {"readOnlyHint": true}}),
        json!({"name": "API_KEY_REVOKE", "description": "Revoke an API key; it fails from the very next request on.",
               "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"], "additionalProperties": false},
               "annotations": {"destructiveHint": true}}),
    ]
}
