//! Tool definitions of the management server, with their input schemas.

use serde_json::{json, Value};

fn connection_fields() -> Value {
    json!({
        "slug": {"type": "string", "description": "Unique name in the organisation; the proxy endpoint is /mcp/{slug}. Lowercase letters, digits, '-' and '_'."},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "transport": {"type": "string", "enum": ["http", "sse", "stdio"], "description": "Inferred from url (http) or command (stdio) when absent."},
        "url": {"type": "string", "description": "Endpoint of an http (Streamable HTTP) or sse (legacy HTTP+SSE) server."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Request headers sent upstream, e.g. Authorization. Stored encrypted; write-only."},
        "command": {"type": "string", "description": "Program of a stdio server."},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Environment of a stdio server. Stored encrypted; write-only."},
        "cwd": {"type": "string"},
        "timeoutMs": {"type": "integer", "minimum": 1000, "maximum": 3600000, "description": "Per-request upstream timeout (default 60000)."},
        "status": {"type": "string", "enum": ["active", "disabled"]},
        "anonymous": {"type": "boolean", "description": "Admit callers without credentials to this connection (default false). They can use only this connection, never management."}
    })
}

fn id_only(what: &str) -> Value {
    json!({"type": "object", "properties": {"id": {"type": "string", "description": what}}, "required": ["id"], "additionalProperties": false})
}

/// Every management tool.
pub fn tools() -> Vec<Value> {
    let mut update = connection_fields();
    update["id"] = json!({"type": "string", "description": "Connection id or slug."});
    vec![
        json!({"name": "COLLECTION_CONNECTIONS_CREATE", "description": "Register an upstream MCP server (Streamable HTTP, legacy SSE, or a stdio command).",
               "inputSchema": {"type": "object", "properties": connection_fields(), "required": ["slug"], "additionalProperties": false}}),
        json!({"name": "COLLECTION_CONNECTIONS_LIST", "description": "List the organisation's connections. Secret values are masked.",
               "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "COLLECTION_CONNECTIONS_GET", "description": "Get one connection by id or slug. Secret values are masked.",
               "inputSchema": id_only("Connection id or slug."), "annotations": {"readOnlyHint": true}}),
        json!({"name": "COLLECTION_CONNECTIONS_UPDATE", "description": "Change a connection. Absent fields are kept; headers or env, when given, replace the whole set.",
               "inputSchema": {"type": "object", "properties": update, "required": ["id"], "additionalProperties": false}}),
        json!({"name": "COLLECTION_CONNECTIONS_DELETE", "description": "Delete a connection and its stored secrets.",
               "inputSchema": id_only("Connection id or slug."), "annotations": {"destructiveHint": true}}),
        json!({"name": "CONNECTION_TEST", "description": "Initialise the upstream and report its server info, capabilities and tool count.",
               "inputSchema": id_only("Connection id or slug.")}),
        json!({"name": "VAULT_ROTATE", "description": "Generate a new vault key and re-encrypt every stored secret under it, without downtime. Owner only.",
               "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false}}),
    ]
}
