//! The `OAUTH_*` management tools — the clients the mesh's authorization server knows and the
//! grants users gave them — and `USER_PASSWORD_SET`, the password its login page checks.
//!
//! Secrets pass here in both directions: a confidential client's secret in a result (shown once,
//! never stored in clear) and a password in the arguments. Results are not audited; arguments
//! are, and the audit writer redacts `password` (and any `…secret…`) by name (mesh-audit).

use super::{opt_str, parse, req_str};
use crate::oauth::manage::ClientInput;
use crate::{Admin, AdminError};
use mesh_core::Principal;
use serde_json::{json, Map, Value};

/// Whether `name` is one of these tools.
pub(super) fn handles(name: &str) -> bool {
    name.starts_with("OAUTH_") || name == "USER_PASSWORD_SET"
}

/// Runs an OAuth or password tool; `None` for a name this family does not have.
pub(super) async fn call(
    a: &Admin,
    p: &Principal,
    name: &str,
    args: Map<String, Value>,
) -> Option<Result<Value, AdminError>> {
    let run = async move {
        match name {
            "OAUTH_CLIENT_CREATE" => {
                let (item, secret) = a.create_oauth_client(p, parse::<ClientInput>(args)?).await?;
                Ok(match secret {
                    Some(s) => json!({"item": item, "clientSecret": s,
                                      "note": "The client secret is shown only now; store it safely."}),
                    None => json!({"item": item}),
                })
            }
            "OAUTH_CLIENT_LIST" => Ok(json!({"items": a.list_oauth_clients(p).await?})),
            "OAUTH_CLIENT_DELETE" => {
                let id = req_str(&args, "clientId")?;
                a.delete_oauth_client(p, id).await?;
                Ok(json!({"deleted": true, "clientId": id}))
            }
            "OAUTH_GRANT_LIST" => Ok(json!({"items": a.list_oauth_grants(p, opt_str(&args, "user")?).await?})),
            "OAUTH_GRANT_REVOKE" => Ok(json!({"item": a.revoke_oauth_grant(p, req_str(&args, "id")?).await?})),
            "USER_PASSWORD_SET" => {
                a.set_password(p, opt_str(&args, "user")?, req_str(&args, "password")?).await?;
                Ok(json!({"passwordSet": true}))
            }
            _ => Err(AdminError::NotFound(String::new())),
        }
    };
    match name {
        "OAUTH_CLIENT_CREATE"
        | "OAUTH_CLIENT_LIST"
        | "OAUTH_CLIENT_DELETE"
        | "OAUTH_GRANT_LIST"
        | "OAUTH_GRANT_REVOKE"
        | "USER_PASSWORD_SET" => Some(run.await),
        _ => None,
    }
}

/// Their definitions.
pub(super) fn definitions() -> Vec<Value> {
    let read = json!({"readOnlyHint": true});
    let object = |properties: Value, required: &[&str]| json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});
    vec![
        json!({"name": "OAUTH_CLIENT_CREATE", "description": "Pre-register an OAuth client (installation operators only), so an MCP client can sign in to the mesh's endpoints with OAuth 2.1 instead of an API key. A public client (the default) proves itself with PKCE alone; a confidential one also gets a client secret, shown once in clientSecret.",
               "inputSchema": object(json!({
                   "name": {"type": "string", "description": "Shown to users on the consent page (1 to 200 characters)."},
                   "redirectUris": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 20,
                                    "description": "Where codes may be sent: https, or http on loopback (a loopback URI matches any port)."},
                   "confidential": {"type": "boolean", "description": "Give the client a secret (default false: a public client)."},
                   "clientUri": {"type": "string", "description": "The client's home page."},
                   "clientId": {"type": "string", "description": "A chosen client id: 1 to 100 letters, digits, '-', '_' or '.' (default: generated)."}}),
                   &["name", "redirectUris"])}),
        json!({"name": "OAUTH_CLIENT_LIST", "description": "List the OAuth clients, pre-registered and dynamically registered (owners and admins). Never shows a secret.",
               "inputSchema": object(json!({}), &[]), "annotations": read}),
        json!({"name": "OAUTH_CLIENT_DELETE", "description": "Remove an OAuth client (operators only): every grant given to it ends, and its tokens stop working.",
               "inputSchema": object(json!({"clientId": {"type": "string"}}), &["clientId"]),
               "annotations": {"destructiveHint": true}}),
        json!({"name": "OAUTH_GRANT_LIST", "description": "List OAuth grants (the consents users gave clients) in the organisation: your own, or everyone's for owners and admins.",
               "inputSchema": object(json!({"user": {"type": "string", "description": "Only this member's grants, by user id or email."}}), &[]),
               "annotations": read}),
        json!({"name": "OAUTH_GRANT_REVOKE", "description": "Revoke an OAuth grant: its tokens fail from the next request on, and the client must ask for consent again. Members revoke their own; owners and admins anyone's.",
               "inputSchema": object(json!({"id": {"type": "string", "description": "The grant id (see OAUTH_GRANT_LIST)."}}), &["id"]),
               "annotations": {"destructiveHint": true}}),
        json!({"name": "USER_PASSWORD_SET", "description": "Set the password a user logs in with when an OAuth client asks the mesh for consent: your own, or (installation operators only) anyone's. Stored as an argon2id hash.",
               "inputSchema": object(json!({
                   "password": {"type": "string", "description": "At least 12 characters, at most 1,024 bytes."},
                   "user": {"type": "string", "description": "Whose password, by user id or email (default: yours)."}}),
                   &["password"])}),
    ]
}
