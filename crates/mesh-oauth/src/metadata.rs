//! The two documents a client reads before it can authorize (MCP authorization,
//! "Authorization Server Discovery"): the protected resource metadata of the MCP server (RFC 9728)
//! and the metadata of the authorization server it names (RFC 8414, or OpenID Connect Discovery).
//!
//! Where each is looked for is computed here (pure, table-tested); fetching is in `discover`.

use serde::{Deserialize, Serialize};
use url::Url;

/// Protected resource metadata: the members the flow acts on (the rest is ignored, the document
/// is extensible).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResource {
    /// The resource identifier; must be the server's own (RFC 9728 §3.3).
    pub resource: String,
    /// Issuer identifiers of the authorization servers that can issue tokens for it.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource understands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
}

/// Authorization server metadata: the endpoints and the capabilities the flow branches on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationServer {
    /// Its issuer identifier; must be the one the metadata was looked up for (RFC 8414 §3.3).
    pub issuer: String,
    /// Where the user is sent to authorize.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// Dynamic client registration (RFC 7591), when offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// Scopes it issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// PKCE methods; without S256 the flow refuses to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// How a client authenticates at the token endpoint (RFC 8414 default: `client_secret_basic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Grant types (RFC 8414 default: authorization_code and implicit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// Client ID metadata documents accepted as client ids.
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
    /// RFC 9207: authorization responses carry `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

impl AuthorizationServer {
    /// Whether PKCE with S256 is offered (MCP: a client MUST refuse to proceed otherwise).
    pub fn supports_s256(&self) -> bool {
        self.code_challenge_methods_supported.as_ref().is_some_and(|m| m.iter().any(|m| m == "S256"))
    }

    /// Whether it lists `scope` among the scopes it issues.
    pub fn offers_scope(&self, scope: &str) -> bool {
        self.scopes_supported.as_ref().is_some_and(|s| s.iter().any(|x| x == scope))
    }
}

/// The URLs to try, in order, for the protected resource metadata of the MCP server at
/// `server`, when its challenge named none: the well-known URI inserted before the path
/// (RFC 9728 §3.1), then at the root.
pub fn resource_metadata_urls(server: &Url) -> Vec<Url> {
    well_known(server, "oauth-protected-resource", true)
}

/// The URLs to try, in order, for the metadata of the authorization server with issuer
/// `issuer` (MCP authorization, "Authorization Server Metadata Discovery"): with a path,
/// RFC 8414's path insertion, then OpenID Connect's path insertion, then OpenID Connect's path
/// appending; without one, RFC 8414's then OpenID Connect's at the root.
pub fn authorization_server_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut out = Vec::new();
    let at = |p: String| {
        let mut u = issuer.clone();
        u.set_path(&p);
        u.set_query(None);
        u.set_fragment(None);
        u
    };
    if path.is_empty() {
        out.push(at("/.well-known/oauth-authorization-server".into()));
        out.push(at("/.well-known/openid-configuration".into()));
    } else {
        out.push(at(format!("/.well-known/oauth-authorization-server{path}")));
        out.push(at(format!("/.well-known/openid-configuration{path}")));
        out.push(at(format!("{path}/.well-known/openid-configuration")));
    }
    out
}

/// `/.well-known/{name}{path}` then, when `root_too` and the path is not empty,
/// `/.well-known/{name}`.
fn well_known(base: &Url, name: &str, root_too: bool) -> Vec<Url> {
    let path = base.path().trim_end_matches('/');
    let mut out = Vec::new();
    let mut at = |p: String| {
        let mut u = base.clone();
        u.set_path(&p);
        u.set_query(None);
        u.set_fragment(None);
        if !out.contains(&u) {
            out.push(u);
        }
    };
    at(format!("/.well-known/{name}{path}"));
    if root_too {
        at(format!("/.well-known/{name}"));
    }
    out
}

/// Whether the protected resource metadata's `resource` names the server at `server` (RFC 9728
/// §3.3 requires identity with the URL the metadata was derived from; the MCP spec's canonical
/// form allows a trailing slash and the case of scheme and host to differ). A resource that is
/// a prefix of the server's path on the same origin is accepted too: servers commonly name
/// their origin or base path as the resource for all their endpoints.
pub fn resource_matches(resource: &str, server: &Url) -> bool {
    let (Ok(r), Ok(s)) = (mesh_auth::resource::canonical(resource), mesh_auth::resource::canonical(server.as_str()))
    else {
        return false;
    };
    if r == s {
        return true;
    }
    // Same origin, and the resource's path is a whole-segment prefix of the server's.
    s.strip_prefix(&r).is_some_and(|rest| rest.starts_with('/')) && !r.contains('?')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    fn strs(v: Vec<Url>) -> Vec<String> {
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn resource_metadata_is_looked_for_at_the_path_then_the_root() {
        assert_eq!(
            strs(resource_metadata_urls(&u("https://mcp.example/public/mcp?x=1"))),
            [
                "https://mcp.example/.well-known/oauth-protected-resource/public/mcp",
                "https://mcp.example/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            strs(resource_metadata_urls(&u("http://127.0.0.1:9000/"))),
            ["http://127.0.0.1:9000/.well-known/oauth-protected-resource"]
        );
    }

    #[test]
    fn authorization_server_metadata_in_the_specs_order() {
        assert_eq!(
            strs(authorization_server_urls(&u("https://auth.example/tenant1"))),
            [
                "https://auth.example/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example/.well-known/openid-configuration/tenant1",
                "https://auth.example/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strs(authorization_server_urls(&u("https://auth.example"))),
            [
                "https://auth.example/.well-known/oauth-authorization-server",
                "https://auth.example/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn the_resource_must_be_the_servers_own() {
        let server = u("https://mcp.example/mcp");
        assert!(resource_matches("https://mcp.example/mcp", &server));
        assert!(resource_matches("https://MCP.example/mcp/", &server));
        assert!(resource_matches("https://mcp.example", &server));
        assert!(!resource_matches("https://mcp.example/other", &server));
        assert!(!resource_matches("https://mcp.example/mc", &server));
        assert!(!resource_matches("https://evil.example/mcp", &server));
        assert!(!resource_matches("http://mcp.example/mcp", &server));
        assert!(!resource_matches("not a url", &server));
    }
}
