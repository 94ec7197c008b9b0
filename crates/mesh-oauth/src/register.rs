//! Who the mesh is at an upstream's authorization server, in the MCP spec's order: a client
//! registered by hand (id and secret given by the operator), a client ID metadata document the
//! mesh publishes (when the server accepts them), or dynamic client registration (RFC 7591).

use crate::error::{failed, OAuthError};
use crate::flow::{AuthMethod, Client};
use crate::metadata::AuthorizationServer;
use crate::net::Net;
use serde::{Deserialize, Serialize};

/// What the mesh can offer to become a client.
#[derive(Clone, Default)]
pub struct Options {
    /// A client registered by hand at this server.
    pub preregistered: Option<(String, Option<String>)>,
    /// The URL of the mesh's client ID metadata document, when it publishes one (an https URL
    /// with a path, served by the mesh).
    pub metadata_document: Option<String>,
    /// The redirect URI the mesh receives authorization responses at.
    pub redirect_uri: String,
    /// `client_name` for dynamic registration.
    pub client_name: String,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("preregistered", &self.preregistered.as_ref().map(|(id, _)| id))
            .field("metadata_document", &self.metadata_document)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// How the client came to be (kept with it: a registered one is reused, a metadata document is
/// not registered anywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Given by the operator.
    Preregistered,
    /// The mesh's client ID metadata document.
    MetadataDocument,
    /// Registered dynamically.
    Registered,
}

/// The client to use at `server`: by hand, else a metadata document, else dynamic registration.
pub async fn client(net: &Net, server: &AuthorizationServer, opts: &Options) -> Result<(Client, Origin), OAuthError> {
    if let Some((id, secret)) = &opts.preregistered {
        let auth_method = AuthMethod::for_server(server, secret.is_some());
        return Ok((
            Client { client_id: id.clone(), client_secret: secret.clone(), auth_method },
            Origin::Preregistered,
        ));
    }
    if let (true, Some(url)) = (server.client_id_metadata_document_supported, &opts.metadata_document) {
        return Ok((
            Client { client_id: url.clone(), client_secret: None, auth_method: AuthMethod::None },
            Origin::MetadataDocument,
        ));
    }
    if let Some(endpoint) = &server.registration_endpoint {
        return register(net, server, endpoint, opts).await.map(|c| (c, Origin::Registered));
    }
    Err(OAuthError::Registration(format!(
        "{} offers neither client ID metadata documents nor dynamic registration; register a client there and give its id",
        server.issuer
    )))
}

#[derive(Deserialize)]
struct Registered {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// The body of a registration request for `opts` at `server` (RFC 7591 §2): a confidential
/// client where the server takes secrets (the mesh keeps them in its vault), a public one where
/// it only takes `none`.
pub fn registration_request(server: &AuthorizationServer, opts: &Options) -> serde_json::Value {
    let method = match &server.token_endpoint_auth_methods_supported {
        Some(m) if m.iter().all(|m| m == "none") => AuthMethod::None,
        _ => AuthMethod::for_server(server, true),
    };
    let loopback = url::Url::parse(&opts.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(|h| matches!(h, "127.0.0.1" | "[::1]" | "localhost")))
        .unwrap_or(false);
    let mut grant_types = vec!["authorization_code"];
    let refresh_offered = server.grant_types_supported.as_ref().is_none_or(|g| g.iter().any(|g| g == "refresh_token"));
    if refresh_offered {
        grant_types.push("refresh_token");
    }
    serde_json::json!({
        "client_name": opts.client_name,
        "redirect_uris": [opts.redirect_uri],
        "grant_types": grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": method.as_str(),
        // OpenID Connect Registration: a server-side client is `web`; a loopback redirect is a
        // native one's (a `web` client may not redirect to localhost there).
        "application_type": if loopback { "native" } else { "web" },
    })
}

async fn register(
    net: &Net,
    server: &AuthorizationServer,
    endpoint: &str,
    opts: &Options,
) -> Result<Client, OAuthError> {
    let body = registration_request(server, opts);
    let resp = net
        .client
        .post(net.check(endpoint)?)
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .map_err(|e| failed("registration endpoint", e))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| failed("registration endpoint", e))?;
    if !status.is_success() {
        let why = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?.as_str()?.to_string();
                Some(match v.get("error_description").and_then(|d| d.as_str()) {
                    Some(d) => format!("{e} ({d})"),
                    None => e,
                })
            })
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        return Err(OAuthError::Registration(format!("{endpoint} refused the registration: {why}")));
    }
    let r: Registered = serde_json::from_slice(&bytes)
        .map_err(|_| OAuthError::Registration(format!("{endpoint} answered without a client_id")))?;
    let auth_method = match (r.token_endpoint_auth_method.as_deref(), r.client_secret.is_some()) {
        (Some("client_secret_post"), true) => AuthMethod::ClientSecretPost,
        (Some("client_secret_basic"), true) => AuthMethod::ClientSecretBasic,
        (Some("none"), _) | (_, false) => AuthMethod::None,
        (_, true) => AuthMethod::for_server(server, true),
    };
    Ok(Client { client_id: r.client_id, client_secret: r.client_secret, auth_method })
}

/// The client ID metadata document the mesh publishes at `opts.metadata_document` (the
/// draft-ietf-oauth-client-id-metadata-document fields an authorization server reads): a public
/// client, identified by the document's own URL, redirecting only to the mesh's callback.
pub fn metadata_document(opts: &Options, client_uri: &str) -> Option<serde_json::Value> {
    let url = opts.metadata_document.as_ref()?;
    Some(serde_json::json!({
        "client_id": url,
        "client_name": opts.client_name,
        "client_uri": client_uri,
        "redirect_uris": [opts.redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }))
}
