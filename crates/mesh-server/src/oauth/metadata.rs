//! Discovery: Protected Resource Metadata (RFC 9728) for the mesh and each MCP endpoint, and
//! Authorization Server Metadata (RFC 8414), also at the OpenID Connect discovery path for the
//! clients that look there first. Served directly (200, no redirect: clients do not follow
//! redirects across discovery), to anyone (they are public documents).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mesh_admin::Admin;
use serde_json::{json, Value};

pub(super) fn router(admin: Admin) -> Router {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(server))
        .route("/.well-known/oauth-authorization-server/{*issuer_path}", get(server_at))
        .route("/.well-known/openid-configuration", get(server))
        .route("/.well-known/openid-configuration/{*issuer_path}", get(server_at))
        .route("/.well-known/oauth-protected-resource", get(mesh_resource))
        .route("/.well-known/oauth-protected-resource/{*path}", get(resource))
        .with_state(admin)
}

fn public(v: Value) -> Response {
    let mut resp = Json(v).into_response();
    super::cors(resp.headers_mut());
    resp.headers_mut().insert(axum::http::header::CACHE_CONTROL, "public, max-age=300".parse().expect("valid"));
    resp
}

fn not_found() -> Response {
    let mut resp = (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response();
    super::cors(resp.headers_mut());
    resp
}

/// The authorization server's metadata (RFC 8414 §2).
fn server_metadata(admin: &Admin) -> Value {
    let s = &admin.oauth.settings;
    let i = &s.issuer;
    let mut m = json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/oauth/authorize"),
        "token_endpoint": format!("{i}/oauth/token"),
        "revocation_endpoint": format!("{i}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "scopes_supported": mesh_admin::oauth::SCOPES,
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
        "service_documentation": "https://github.com/mcp-mesh/mcp-mesh/blob/main/docs/OAUTH.md",
    });
    if s.dynamic_registration {
        m["registration_endpoint"] = json!(format!("{i}/oauth/register"));
    }
    m
}

/// `/.well-known/oauth-authorization-server` (and the OpenID path): for an issuer without a path.
async fn server(State(admin): State<Admin>) -> Response {
    if issuer_path(&admin).is_empty() {
        public(server_metadata(&admin))
    } else {
        not_found()
    }
}

/// The same with the issuer's path appended (RFC 8414 §3.1), for a mesh behind a path prefix.
async fn server_at(State(admin): State<Admin>, Path(p): Path<String>) -> Response {
    let want = issuer_path(&admin);
    if !want.is_empty() && format!("/{}", p.trim_end_matches('/')) == want {
        public(server_metadata(&admin))
    } else {
        not_found()
    }
}

fn issuer_path(admin: &Admin) -> String {
    url::Url::parse(&admin.oauth.settings.issuer)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default()
}

fn resource_metadata(admin: &Admin, resource: &str, name: &str) -> Value {
    let issuer = &admin.oauth.settings.issuer;
    json!({
        "resource": resource,
        "authorization_servers": [issuer],
        // `offline_access` is the authorization server's to list, not a resource's (MCP 2026-07-28).
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
        "resource_name": name,
        "resource_documentation": "https://github.com/mcp-mesh/mcp-mesh/blob/main/docs/OAUTH.md",
    })
}

/// `/.well-known/oauth-protected-resource`: the mesh as a whole. Tokens are issued per MCP
/// endpoint; clients find an endpoint's own document first (path form, or the 401's header).
async fn mesh_resource(State(admin): State<Admin>) -> Response {
    let issuer = admin.oauth.settings.issuer.clone();
    public(resource_metadata(&admin, &issuer, "MCP Mesh"))
}

/// `/.well-known/oauth-protected-resource/mcp/…`: one MCP endpoint (RFC 9728 §3.1), whose
/// `resource` is the endpoint's canonical URL. Served for any well-formed endpoint path:
/// whether it exists depends on who asks, which a public document cannot know.
async fn resource(State(admin): State<Admin>, Path(p): Path<String>) -> Response {
    // The path after the well-known prefix is the resource's whole path (the issuer's own
    // path, behind a proxy prefix, included), so it goes after the issuer's origin.
    let origin = url::Url::parse(&admin.oauth.settings.issuer).map(|u| u.origin().ascii_serialization());
    let Ok(canonical) = origin.map(|o| mesh_auth::resource::canonical(&format!("{o}/{p}"))) else { return not_found() };
    let Ok(canonical) = canonical else { return not_found() };
    let Some(route) = admin.oauth.route_of(&canonical) else { return not_found() };
    let name = match route.as_str() {
        "" => "MCP Mesh management".to_string(),
        r => match r.strip_prefix("gateway/") {
            Some(g) => format!("MCP Mesh virtual MCP {g}"),
            None => format!("MCP Mesh connection {r}"),
        },
    };
    public(resource_metadata(&admin, &canonical, &name))
}
