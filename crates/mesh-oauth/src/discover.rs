//! Fetching the metadata documents, in the order `metadata` computes, with the checks that
//! make them trustworthy: the protected resource names this server, the authorization server's
//! metadata names the issuer it was looked up for.

use crate::challenge::Challenge;
use crate::error::{failed, OAuthError};
use crate::metadata::{self, AuthorizationServer, ProtectedResource};
use crate::net::Net;
use serde::{Deserialize, Serialize};
use url::Url;

/// Largest metadata document read (real ones are a few KiB).
const MAX_DOCUMENT: usize = 256 * 1024;

/// What discovery found for one MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    /// The protected resource metadata.
    pub resource: ProtectedResource,
    /// The chosen authorization server's metadata.
    pub server: AuthorizationServer,
}

impl Discovery {
    /// The resource indicator to send on every authorization, token and refresh request: the
    /// protected resource's identifier as it gave it.
    pub fn resource_indicator(&self) -> &str {
        &self.resource.resource
    }
}

/// Discovers the authorization of the MCP server at `server` from its challenge (if it sent one).
pub async fn discover(net: &Net, server: &Url, challenge: Option<&Challenge>) -> Result<Discovery, OAuthError> {
    let resource = protected_resource(net, server, challenge).await?;
    let Some(issuer) = resource.authorization_servers.first() else {
        return Err(OAuthError::Metadata("the protected resource metadata names no authorization server".into()));
    };
    let server = authorization_server(net, issuer).await?;
    Ok(Discovery { resource, server })
}

/// The protected resource metadata: at the challenge's `resource_metadata` when it gave one,
/// else at the well-known URIs.
pub async fn protected_resource(
    net: &Net,
    server: &Url,
    challenge: Option<&Challenge>,
) -> Result<ProtectedResource, OAuthError> {
    let candidates = match challenge.and_then(|c| c.resource_metadata.as_deref()) {
        Some(u) => vec![Url::parse(u).map_err(|_| OAuthError::Discovery("resource_metadata is not a URL".into()))?],
        None => metadata::resource_metadata_urls(server),
    };
    let mut tried = Vec::new();
    for url in candidates {
        match fetch::<ProtectedResource>(net, &url).await? {
            Some(doc) => {
                if !metadata::resource_matches(&doc.resource, server) {
                    return Err(OAuthError::Metadata(format!(
                        "the protected resource metadata at {url} is for {:?}, not for {server}",
                        doc.resource
                    )));
                }
                return Ok(doc);
            }
            None => tried.push(url.to_string()),
        }
    }
    Err(OAuthError::Discovery(format!("no protected resource metadata at {}", tried.join(", "))))
}

/// The metadata of the authorization server `issuer`, whose `issuer` must be exactly that.
pub async fn authorization_server(net: &Net, issuer: &str) -> Result<AuthorizationServer, OAuthError> {
    let issuer_url = Url::parse(issuer).map_err(|_| OAuthError::Metadata(format!("issuer {issuer:?} is not a URL")))?;
    if !matches!(issuer_url.scheme(), "http" | "https")
        || issuer_url.query().is_some()
        || issuer_url.fragment().is_some()
    {
        return Err(OAuthError::Metadata(format!("issuer {issuer:?} is not an http(s) URL without query or fragment")));
    }
    let mut tried = Vec::new();
    for url in metadata::authorization_server_urls(&issuer_url) {
        if let Some(doc) = fetch::<AuthorizationServer>(net, &url).await? {
            // RFC 8414 §3.3 (and OpenID Discovery §4.3): identical, or the document is refused.
            if doc.issuer != issuer {
                return Err(OAuthError::Metadata(format!(
                    "the metadata at {url} names issuer {:?}, not {issuer:?}",
                    doc.issuer
                )));
            }
            return Ok(doc);
        }
        tried.push(url.to_string());
    }
    Err(OAuthError::Discovery(format!("no authorization server metadata at {}", tried.join(", "))))
}

/// A JSON document at `url`: `None` when there is none there (4xx), an error when the server
/// fails or the document does not read.
async fn fetch<T: for<'de> Deserialize<'de>>(net: &Net, url: &Url) -> Result<Option<T>, OAuthError> {
    let url = &net.check(url.as_str())?;
    let resp = net
        .client
        .get(url.clone())
        .header("accept", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .map_err(|e| failed(&format!("GET {url}"), e))?;
    let status = resp.status();
    if status.is_client_error() {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(OAuthError::Discovery(format!("GET {url}: HTTP {}", status.as_u16())));
    }
    if resp.content_length().is_some_and(|n| n as usize > MAX_DOCUMENT) {
        return Err(OAuthError::Discovery(format!("GET {url}: the document is too large")));
    }
    let body = resp.bytes().await.map_err(|e| failed(&format!("GET {url}"), e))?;
    if body.len() > MAX_DOCUMENT {
        return Err(OAuthError::Discovery(format!("GET {url}: the document is too large")));
    }
    // A page that is not the document (an HTML 200 from a catch-all route) is passed over like
    // a 404: the next candidate may have it.
    match serde_json::from_slice(&body) {
        Ok(doc) => Ok(Some(doc)),
        Err(e) => {
            tracing::debug!(%url, error = %e, "not a metadata document");
            Ok(None)
        }
    }
}
