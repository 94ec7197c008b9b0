//! The mesh as an OAuth 2.1 authorization server for its MCP endpoints (#17, docs/OAUTH.md).
//!
//! The HTTP side (metadata documents, the login and consent pages, the token endpoint) lives in
//! `mesh-server`; this module decides everything: which clients exist (`clients`), what an
//! authorization request may ask for and what a code or refresh token is worth (`flow`), who
//! logged in (`login`), and who may list and revoke clients and grants (`manage`). The protocol
//! rules that are pure functions are in `mesh-auth`.
//!
//! An access token acts as its user in the organisation of the resource it was issued for, with
//! that user's role, and only at that resource: it enters the same in-memory cache as API keys
//! (`keys::KeyCache`), with the route as its audience, so a call authorised by a token costs what
//! one authorised by a key does, and a revocation reloads the cache before it is answered.

pub mod clients;
pub mod flow;
pub mod login;
pub mod manage;
pub mod sso;

use crate::{Admin, AdminError};
use mesh_core::audit::{AuditSink, CallRecord, Origin, Outcome};
use std::sync::Arc;
use std::time::Duration;

/// Scopes the mesh grants: `mcp` uses the resource with the user's role; `offline_access`
/// (listed in the authorization server's metadata only) asks for a refresh token.
pub const SCOPES: [&str; 2] = ["mcp", "offline_access"];

/// How the authorization server behaves (settings, docs/config.md).
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The issuer and base of every resource URI: `MESH_PUBLIC_URL`, else the listen address;
    /// no trailing slash.
    pub issuer: String,
    /// Access-token lifetime (`MESH_OAUTH_ACCESS_TTL_SECS`, one hour).
    pub access_ttl: Duration,
    /// Refresh-token lifetime, renewed with each rotation (`MESH_OAUTH_REFRESH_TTL_DAYS`, 30).
    pub refresh_ttl: Duration,
    /// Whether RFC 7591 registration is open (`MESH_OAUTH_DCR`, on).
    pub dynamic_registration: bool,
    /// Registrations one address may make per hour (`MESH_OAUTH_DCR_PER_HOUR`, 20).
    pub registrations_per_hour: u32,
    /// Which addresses a client metadata document may be fetched from
    /// (`MESH_OAUTH_CIMD_PRIVATE`: public only unless an operator allows internal ones).
    pub document_reach: mesh_relay::Reach,
    /// Single sign-on through an OpenID Connect provider, if configured.
    pub sso: Option<login::SsoSettings>,
}

impl OAuthSettings {
    /// Defaults for an issuer.
    pub fn new(issuer: &str) -> OAuthSettings {
        OAuthSettings {
            issuer: issuer.trim_end_matches('/').to_string(),
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            dynamic_registration: true,
            registrations_per_hour: 20,
            document_reach: mesh_relay::Reach::Public,
            sso: None,
        }
    }

    /// Whether cookies must be `Secure` (the issuer is served over HTTPS).
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// A cookie's full name: over https with the `__Host-` prefix, which browsers accept only
    /// from this very host, `Secure`, for path `/` — so a sibling subdomain cannot plant one (and
    /// defeat a double-submit check, or fix a session). The OAuth pages and the dashboard share
    /// their cookies, so they share this.
    pub fn cookie_name(&self, base: &str) -> String {
        if self.secure_cookies() {
            format!("__Host-{base}")
        } else {
            base.to_string()
        }
    }

    /// The `Set-Cookie` value for cookie `base`: HttpOnly, SameSite=Lax, path `/`, `Secure`
    /// behind TLS; `max_age` 0 deletes it.
    pub fn set_cookie(&self, base: &str, value: &str, max_age: u64) -> String {
        let secure = if self.secure_cookies() { "; Secure" } else { "" };
        format!("{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}", self.cookie_name(base))
    }
}

/// The authorization server's settings and its in-memory state.
pub struct OAuth {
    /// Settings.
    pub settings: OAuthSettings,
    pub(crate) throttle: login::Throttle,
    pub(crate) registrations: clients::RegistrationLimit,
    pub(crate) documents: clients::DocumentCache,
    pub(crate) sso_pending: login::SsoPending,
    /// Password checks (argon2id) running at once.
    pub(crate) hashing: tokio::sync::Semaphore,
    /// The SSO provider's discovery document, and when it was fetched.
    pub(crate) sso_discovery: std::sync::Mutex<Option<(sso::Provider, std::time::Instant)>>,
    /// Upstream grants being refreshed (`upstream_oauth`).
    pub(crate) upstream: crate::upstream_oauth::Refreshing,
    /// The live tokens of open sessions at OAuth connections, by grant.
    pub(crate) live: crate::upstream_oauth::LiveTokens,
}

impl OAuth {
    /// An authorization server with these settings.
    pub fn new(settings: OAuthSettings) -> OAuth {
        OAuth {
            settings,
            throttle: Default::default(),
            registrations: Default::default(),
            documents: Default::default(),
            sso_pending: Default::default(),
            hashing: tokio::sync::Semaphore::new(4),
            sso_discovery: Default::default(),
            upstream: Default::default(),
            live: Default::default(),
        }
    }

    /// The route a resource URI names, if it is one of this mesh's MCP endpoints: `""` for the
    /// management server, a connection's slug or id, or `gateway/{gateway}`. The URI must be
    /// canonical already (`mesh_auth::resource::canonical`).
    pub fn route_of(&self, resource: &str) -> Option<String> {
        let path = resource.strip_prefix(&self.settings.issuer)?;
        if path.contains(['?', '#']) {
            return None;
        }
        let rest = match path {
            "/mcp" => return Some(String::new()),
            p => p.strip_prefix("/mcp/")?,
        };
        let decode = |s: &str| -> Option<String> {
            let d = percent_decode(s)?;
            (!d.is_empty() && !d.contains('/') && d.len() <= 200).then_some(d)
        };
        match rest.strip_prefix("gateway/") {
            Some(g) => Some(format!("gateway/{}", decode(g)?)),
            None => decode(rest),
        }
    }
}

/// The unit per-address limits count: an IPv4 address, or an IPv6 /64 (one host commonly holds a
/// whole /64, so counting single IPv6 addresses would be no limit).
pub(crate) fn network_of(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// `%XX` escapes decoded (UTF-8); `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// An OAuth error as the protocol spells it (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 8707 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The error code (`invalid_request`, `invalid_grant`, …).
    pub error: &'static str,
    /// Human-readable detail; never a secret.
    pub description: String,
}

impl OAuthError {
    /// An error with a description.
    pub fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError { error, description: description.into() }
    }

    /// The HTTP status the token, registration and revocation endpoints answer it with.
    pub fn status(&self) -> u16 {
        match self.error {
            "invalid_client" => 401,
            "server_error" => 500,
            "temporarily_unavailable" | "slow_down" => 429,
            _ => 400,
        }
    }
}

impl From<AdminError> for OAuthError {
    fn from(e: AdminError) -> Self {
        OAuthError::new("server_error", e.public_message())
    }
}

impl From<mesh_store::StoreError> for OAuthError {
    fn from(e: mesh_store::StoreError) -> Self {
        AdminError::from(e).into()
    }
}

/// The address a request came from: the peer, or behind a proxy the last address the proxy
/// appended to the configured header `ip_header` (the one a client cannot forge).
pub fn client_ip(
    ip_header: Option<&http::HeaderName>,
    peer: Option<std::net::SocketAddr>,
    headers: &http::HeaderMap,
) -> std::net::IpAddr {
    if let Some(name) = ip_header {
        // The last entry, whatever it is: skipping one the proxy wrote in another form
        // (`ip:port`, `unknown`) would let an earlier, client-written entry count instead.
        let last =
            headers.get_all(name).iter().next_back().and_then(|v| v.to_str().ok()).and_then(|v| v.rsplit(',').next());
        if let Some(ip) = last.and_then(|s| s.trim().parse::<std::net::IpAddr>().ok()) {
            return ip;
        }
    }
    peer.map(|p| p.ip()).unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}

/// A cookie's value from a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// At most 100 characters of something a client or provider sent, for a message.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(100).collect()
}

/// A random secret of 43 base62 characters (~256 bits) after `prefix`.
pub(crate) fn secret(prefix: &str) -> String {
    format!("{prefix}{}", mesh_core::id::random_base62(43))
}

/// What an OAuth event was, for its audit row.
pub(crate) struct Event<'a> {
    pub org_id: &'a str,
    pub user_id: &'a str,
    pub family: &'a str,
    pub method: &'static str,
    pub client_id: Option<&'a str>,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub details: serde_json::Value,
}

impl Admin {
    /// Records an OAuth event (login, consent, token issued or refused, revocation) in the
    /// organisation's audit trail, as route kind `oauth`.
    pub(crate) fn audit_oauth(&self, e: Event<'_>) {
        let principal = mesh_core::Principal {
            user_id: e.user_id.to_string(),
            key_id: e.family.to_string(),
            ..mesh_core::Principal::anonymous(e.org_id)
        };
        self.audit.record(CallRecord {
            time_ms: mesh_core::id::now_ms(),
            origin: Arc::new(Origin {
                principal,
                session_id: String::new(),
                client: None,
                route_kind: "oauth",
                route: "oauth".into(),
            }),
            method: e.method.into(),
            name: e.client_id.map(str::to_string),
            arguments: (!e.details.is_null()).then(|| e.details.to_string()),
            outcome: e.outcome,
            error: e.error,
            latency_us: 0,
            bytes_in: 0,
            bytes_out: 0,
            request_id: "null".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_name_routes_of_this_mesh_only() {
        let oauth = OAuth::new(OAuthSettings::new("https://mesh.example/"));
        let cases = [
            ("https://mesh.example/mcp", Some("")),
            ("https://mesh.example/mcp/github", Some("github")),
            ("https://mesh.example/mcp/gateway/dev", Some("gateway/dev")),
            ("https://mesh.example/mcp/gateway", Some("gateway")),
            ("https://mesh.example/mcp/a%20b", Some("a b")),
            ("https://mesh.example/mcp/a%2Fb", None),
            ("https://mesh.example/mcp/a/b", None),
            ("https://mesh.example/mcp/gateway/a/b", None),
            ("https://mesh.example/mcp/", None),
            ("https://mesh.example/api/v1", None),
            ("https://mesh.example", None),
            ("https://other.example/mcp/github", None),
            ("https://mesh.example.evil/mcp/github", None),
            ("https://mesh.example/mcp/github?x=1", None),
            ("https://mesh.example/mcp/%ZZ", None),
        ];
        for (resource, want) in cases {
            assert_eq!(oauth.route_of(resource).as_deref(), want, "{resource}");
        }
    }
}
