//! Tool definitions of the management server, with their input schemas.

use serde_json::{json, Value};

fn connection_fields() -> Value {
    json!({
        "slug": {"type": "string", "description": "Unique name in the organisation; the proxy endpoint is /mcp/{slug}. Lowercase letters, digits, '-' and '_'."},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "transport": {"type": "string", "enum": ["http", "sse", "stdio", "capability"], "description": "Inferred from url (http), command (stdio) or selector (capability) when absent."},
        "selector": {"type": "object", "description": "A capability connection: every healthy agent registered with the mesh (docs/REGISTRY.md) that offers this capability, tags and version, each call balanced over them (fewest outstanding requests) with failover.",
            "properties": {
                "capability": {"type": "string"},
                "tags": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}, "description": "A tag the provider must have; '+tag' preferred, '-tag' excluded; a list: one of them."},
                "version": {"type": "string", "description": "A version constraint: '>=1.2', '~1.2', '^2', '1.5.0'."}
            },
            "required": ["capability"]},
        "url": {"type": "string", "description": "Endpoint of an http (Streamable HTTP) or sse (legacy HTTP+SSE) server."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Request headers sent upstream, e.g. Authorization. Stored encrypted; write-only."},
        "template": {"type": "string", "description": "Make a stdio server from the installation's catalogue (COLLECTION_TEMPLATES_LIST): its command and arguments are the template's; env may set only the variables it names. The way for organisation admins to add stdio servers."},
        "command": {"type": "string", "description": "Program of a stdio server (installation operators only, unless MESH_STDIO=admins)."},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Environment of a stdio server. Stored encrypted; write-only."},
        "cwd": {"type": "string"},
        "timeoutMs": {"type": "integer", "minimum": 1000, "maximum": 3600000, "description": "Per-request upstream timeout (default 60000)."},
        "status": {"type": "string", "enum": ["active", "disabled"]},
        "anonymous": {"type": "boolean", "description": "Admit callers without credentials to this connection (default false). They can use only this connection, never management."},
        "auth": {"type": "string", "enum": ["none", "headers", "oauth"], "description": "How the mesh authenticates upstream: its configured headers (default), or OAuth (http/sse only): each user authorizes once (a link the client shows, or `mcp-mesh connection login`), and the mesh keeps and refreshes their token."},
        "oauthShared": {"type": "boolean", "description": "With auth oauth: one grant for the whole connection (a service account, authorized by an admin) instead of one per user."},
        "oauthClientId": {"type": "string", "description": "With auth oauth: a client registered by hand at the server's authorization server (for servers without dynamic registration or client ID metadata documents). An empty string removes it. Changing it ends the connection's grants."},
        "oauthClientSecret": {"type": "string", "description": "With oauthClientId: its secret, for a confidential client. Stored encrypted; write-only."}
    })
}

fn selection(what: &str) -> Value {
    json!({"description": format!("\"all\" (default), or the list of {what} to expose; [] exposes none."),
           "anyOf": [{"type": "string", "const": "all"}, {"type": "array", "items": {"type": "string"}}]})
}

fn gateway_fields() -> Value {
    let member = json!({
        "type": "object",
        "properties": {
            "connection": {"type": "string", "description": "Connection slug or id."},
            "prefix": {"type": "string", "description": "Prefix of this member's tool and prompt names, joined with '_' (github_create_issue), and of its resource URIs as a scheme (my_fs → my-fs+file:///…). Absent: the connection slug. Empty: no prefix. A letter, then at most 31 letters, digits, '_' or '-'."},
            "tools": selection("original tool names"),
            "resources": selection("resource URIs and URI templates"),
            "prompts": selection("original prompt names"),
            "renames": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Original tool or prompt name → the name to expose instead (the prefix is still added)."},
            "descriptions": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Original tool or prompt name → the description to show instead."}
        },
        "required": ["connection"],
        "additionalProperties": false
    });
    json!({
        "slug": {"type": "string", "description": "Unique name in the organisation; the endpoint is /mcp/gateway/{slug}. Lowercase letters, digits, '-' and '_'."},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "members": {"type": "array", "items": member, "description": "The connections behind the gateway, each once, in order (earlier members list first). Two members exposing the same final name are refused when saving, naming both."},
        "mode": {"type": "string", "enum": ["degrade", "strict"], "description": "When a member fails: degrade (default) serves the others and says so in a log message; strict fails the session."},
        "pageSize": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Items per page of merged lists (default 100)."},
        "strategy": {"type": "string", "enum": ["passthrough", "smart", "code"], "description": "What clients see of the tools: passthrough (default) lists them all; smart lists three meta-tools instead (search_tools, describe_tools, call_tool) for catalogues too big for a model's context; code lists one tool, run_code, whose description is the catalogue as a typed API: the model writes JavaScript that calls the tools, run in a sandbox."},
        "status": {"type": "string", "enum": ["active", "disabled"], "description": "A disabled gateway answers 404."},
        "allConnections": {"type": "boolean", "description": "Serve every active connection of the organisation, each under its slug, as connections come and go (the default gateway does). Excludes members."}
    })
}

fn id_only(what: &str) -> Value {
    json!({"type": "object", "properties": {"id": {"type": "string", "description": what}}, "required": ["id"], "additionalProperties": false})
}

/// Every management tool.
pub fn tools() -> Vec<Value> {
    let mut update = connection_fields();
    update["id"] = json!({"type": "string", "description": "Connection id or slug."});
    let mut gateway_update = gateway_fields();
    gateway_update["id"] = json!({"type": "string", "description": "Gateway id or slug."});
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
        json!({"name": "CONNECTION_TOOLS", "description": "One page of a connection's tools with their input schemas, as the upstream lists them (fetched live, reused for 30 s), filtered by a search over names, titles and descriptions. Owners and admins: for choosing what a gateway exposes.",
               "inputSchema": {"type": "object", "properties": {
                   "id": {"type": "string", "description": "Connection id or slug."},
                   "query": {"type": "string", "description": "Words that must all occur in the name, title or description (any case)."},
                   "offset": {"type": "integer", "minimum": 0},
                   "limit": {"type": "integer", "minimum": 1, "maximum": 200, "description": "Default 50."}},
                   "required": ["id"], "additionalProperties": false},
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "COLLECTION_GATEWAYS_CREATE", "description": "Create a gateway (virtual MCP): several connections behind /mcp/gateway/{slug}, with per-member allow-lists, prefixes and renames. Members are contacted to refuse name collisions; one that cannot be reached is reported in warnings.",
               "inputSchema": {"type": "object", "properties": gateway_fields(), "required": ["slug"], "additionalProperties": false}}),
        json!({"name": "GATEWAY_CHECK", "description": "Check a gateway as COLLECTION_GATEWAYS_CREATE would, without saving it: refuses name collisions between members (naming both) and reports unreachable members in warnings. For editors that show collisions before saving.",
               "inputSchema": {"type": "object", "properties": gateway_fields(), "required": ["slug"], "additionalProperties": false},
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "COLLECTION_GATEWAYS_LIST", "description": "List the organisation's gateways with their members.",
               "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "COLLECTION_GATEWAYS_GET", "description": "Get one gateway by id or slug.",
               "inputSchema": id_only("Gateway id or slug."), "annotations": {"readOnlyHint": true}}),
        json!({"name": "COLLECTION_GATEWAYS_UPDATE", "description": "Change a gateway. Absent fields are kept; members, when given, replace the whole list and are checked as on create.",
               "inputSchema": {"type": "object", "properties": gateway_update, "required": ["id"], "additionalProperties": false}}),
        json!({"name": "COLLECTION_GATEWAYS_DELETE", "description": "Delete a gateway (its connections stay).",
               "inputSchema": id_only("Gateway id or slug."), "annotations": {"destructiveHint": true}}),
        json!({"name": "CONNECTION_GRANT_LIST", "description": "Your authorizations at OAuth connections' servers (an admin's include the connections' shared ones): issuer, scope, expiry; never a token.",
               "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "CONNECTION_GRANT_REVOKE", "description": "Forget your authorization at an OAuth connection (its shared one: admins); the next use asks for a new one.",
               "inputSchema": id_only("Connection id or slug."), "annotations": {"destructiveHint": true}}),
        json!({"name": "VAULT_ROTATE", "description": "Generate a new vault key and re-encrypt every stored secret under it, without downtime. Owner only.",
               "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false}}),
    ]
    .into_iter()
    .chain(super::audit::tools())
    .collect()
}
