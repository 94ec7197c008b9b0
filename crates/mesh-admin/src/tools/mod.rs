//! The management MCP server at `/mcp`: every admin operation is a tool.
//!
//! Tool names follow the seed (`COLLECTION_CONNECTIONS_*`, `CONNECTION_TEST`) and its collection
//! convention: LIST answers `{items}`, GET/CREATE/UPDATE answer `{item}`. A failed operation is a
//! tool result with `isError: true` and a message safe to show; only an unknown tool or malformed
//! call is a protocol error.

mod access;
mod apikeys;
mod audit;
mod gateways;
mod oauth;
mod orgs;
mod schema;
mod templates;

use crate::connections::ConnectionInput;
use crate::{Admin, AdminError};
use mesh_core::Principal;
use mesh_protocol::{codes, version, Message};
use mesh_relay::ports::LocalService;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The management server.
pub struct ManagementServer {
    admin: Admin,
}

impl ManagementServer {
    /// Serves `admin`'s operations.
    pub fn new(admin: Admin) -> Self {
        ManagementServer { admin }
    }

    /// Runs management tool `name` as `p`: what the dashboard's pages and forms call, so that they
    /// decide and refuse exactly as the tools do. `None`: no such tool.
    pub async fn invoke(
        &self,
        p: &Principal,
        name: &str,
        args: Map<String, Value>,
    ) -> Option<Result<Value, AdminError>> {
        self.call(p, name, args).await
    }

    async fn call(&self, p: &Principal, name: &str, args: Map<String, Value>) -> Option<Result<Value, AdminError>> {
        let a = &self.admin;
        // A narrowed key was handed out to do less (docs/ACCESS.md, "Narrowing a key").
        if let Err(e) = crate::trust::Trust::check_management(p) {
            return Some(Err(e));
        }
        Some(match name {
            "COLLECTION_CONNECTIONS_CREATE" => match input(args) {
                Ok(i) => a.create_connection(p, i).await.map(|v| json!({"item": v})),
                Err(e) => Err(e),
            },
            "COLLECTION_CONNECTIONS_LIST" => a.list_connections(p).await.map(|v| json!({"items": v})),
            "COLLECTION_CONNECTIONS_GET" => match id_arg(&args) {
                Ok(id) => a.get_connection(p, &id).await.map(|v| json!({"item": v})),
                Err(e) => Err(e),
            },
            "COLLECTION_CONNECTIONS_UPDATE" => {
                let mut args = args;
                match (id_arg(&args), args.remove("id")) {
                    (Ok(id), _) => match input(args) {
                        Ok(i) => a.update_connection(p, &id, i).await.map(|v| json!({"item": v})),
                        Err(e) => Err(e),
                    },
                    (Err(e), _) => Err(e),
                }
            }
            "COLLECTION_CONNECTIONS_DELETE" => match id_arg(&args) {
                Ok(id) => a.delete_connection(p, &id).await.map(|id| json!({"deleted": true, "id": id})),
                Err(e) => Err(e),
            },
            "CONNECTION_TEST" => match id_arg(&args) {
                Ok(id) => a.test_connection(p, &id).await,
                Err(e) => Err(e),
            },
            "CONNECTION_TOOLS" => match id_arg(&args) {
                Ok(id) => {
                    let num = |k: &str, d: usize| args.get(k).and_then(Value::as_u64).map_or(d, |n| n as usize);
                    match opt_str(&args, "query") {
                        Ok(q) => a.connection_tools(p, &id, q, num("offset", 0), num("limit", 50)).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
            "CONNECTION_GRANT_LIST" => a.upstream_grants(p).await.map(|v| json!({"items": v})),
            "CONNECTION_GRANT_REVOKE" => match id_arg(&args) {
                Ok(id) => a.revoke_upstream_grant(p, &id).await.map(|gone| json!({"revoked": gone})),
                Err(e) => Err(e),
            },
            "VAULT_ROTATE" => a.rotate_vault(p).await,
            n if gateways::handles(n) => return gateways::call(a, p, n, args).await,
            n if audit::handles(n) => return audit::call(a, p, n, args).await,
            n if apikeys::handles(n) => return apikeys::call(a, p, n, args).await,
            n if orgs::handles(n) => return orgs::call(a, p, n, args).await,
            n if access::handles(n) => return access::call(a, p, n, args).await,
            n if templates::handles(n) => return templates::call(a, p, n, args).await,
            n if oauth::handles(n) => return oauth::call(a, p, n, args).await,
            _ => return None,
        })
    }
}

fn input(args: Map<String, Value>) -> Result<ConnectionInput, AdminError> {
    serde_json::from_value(Value::Object(args)).map_err(|e| AdminError::Invalid(format!("invalid arguments: {e}")))
}

/// Arguments as a typed input.
fn parse<T: serde::de::DeserializeOwned>(args: Map<String, Value>) -> Result<T, AdminError> {
    serde_json::from_value(Value::Object(args)).map_err(|e| AdminError::Invalid(format!("invalid arguments: {e}")))
}

/// A required string argument.
fn req_str<'a>(args: &'a Map<String, Value>, name: &str) -> Result<&'a str, AdminError> {
    opt_str(args, name)?.ok_or_else(|| AdminError::Invalid(format!("argument '{name}' is required")))
}

/// An optional string argument; present but not a string is an error.
fn opt_str<'a>(args: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, AdminError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AdminError::Invalid(format!("argument '{name}' must be a string"))),
    }
}

fn id_arg(args: &Map<String, Value>) -> Result<String, AdminError> {
    args.get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| AdminError::Invalid("argument 'id' (connection id or slug) is required".into()))
}

fn tool_result(r: Result<Value, AdminError>) -> Value {
    match r {
        Ok(v) => {
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            json!({"content": [{"type": "text", "text": text}], "structuredContent": v})
        }
        Err(e) => {
            json!({"content": [{"type": "text", "text": e.public_message()}], "isError": true})
        }
    }
}

#[async_trait::async_trait]
impl LocalService for ManagementServer {
    async fn handle(&self, principal: &Principal, req: &Message) -> Message {
        let id = req.id().unwrap_or("null");
        match req.method().unwrap_or("") {
            "initialize" => {
                #[derive(Deserialize)]
                struct Init {
                    #[serde(rename = "protocolVersion")]
                    protocol_version: Option<String>,
                }
                let asked = req.params::<Init>().and_then(|i| i.protocol_version).unwrap_or_default();
                let v = if version::is_supported(&asked) { asked } else { version::LATEST.to_string() };
                Message::response(
                    id,
                    &json!({
                        "protocolVersion": v,
                        "capabilities": {"tools": {"listChanged": false}},
                        "serverInfo": {"name": "mcp-mesh", "title": "MCP Mesh management", "version": env!("CARGO_PKG_VERSION")},
                        "instructions": "Manage the MCP Mesh: register upstream MCP servers as connections, test them, rotate the vault key.",
                    }),
                )
            }
            "ping" => Message::response(id, &json!({})),
            "tools/list" => {
                let mut tools = schema::tools();
                tools.extend(apikeys::definitions());
                tools.extend(orgs::definitions());
                tools.extend(access::definitions());
                tools.extend(templates::definitions());
                tools.extend(oauth::definitions());
                Message::response(id, &json!({"tools": tools}))
            }
            "tools/call" => {
                #[derive(Deserialize)]
                struct Call {
                    name: String,
                    #[serde(default)]
                    arguments: Option<Map<String, Value>>,
                }
                let Some(call) = req.params::<Call>() else {
                    return Message::error(Some(id), codes::INVALID_PARAMS, "tools/call needs params.name", None);
                };
                match self.call(principal, &call.name, call.arguments.unwrap_or_default()).await {
                    Some(r) => Message::response(id, &tool_result(r)),
                    None => {
                        Message::error(Some(id), codes::INVALID_PARAMS, &format!("Unknown tool: {}", call.name), None)
                    }
                }
            }
            m => Message::error(Some(id), codes::METHOD_NOT_FOUND, &format!("Method not found: {m}"), None),
        }
    }
}
