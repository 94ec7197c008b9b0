//! OAuth clients, in the MCP authorization spec's order of preference: pre-registered by an
//! operator, identified by a Client ID Metadata Document (the `client_id` is an HTTPS URL the
//! mesh fetches), or registered dynamically (RFC 7591, kept for the clients that need it).

use super::{secret, OAuthError};
use crate::Admin;
use mesh_store::OAuthClient;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest metadata document read: the draft's SHOULD is 5 KiB; some clients list many
/// redirect URIs, so a little more, still far from anything that could hurt.
const MAX_DOCUMENT: usize = 16 * 1024;
/// How long a document fetch may take, connect included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Documents cached at most this long, and at least this long (a client sending `no-cache`
/// would otherwise be fetched on each of the three requests of one login).
const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);
const MIN_CACHE: Duration = Duration::from_secs(30);
/// Without cache headers.
const DEFAULT_CACHE: Duration = Duration::from_secs(300);
/// Documents held in memory at once.
const MAX_CACHED: usize = 1_000;
/// A document that could not be used is not fetched again for this long: anyone can name any
/// URL as a client id, and the mesh must not become a fetcher on their behalf.
const FAILED_CACHE: Duration = Duration::from_secs(60);
/// Document fetches under way at once.
const MAX_FETCHING: usize = 16;
/// Clients RFC 7591 may register in all: registration is anonymous, so it is bounded.
const MAX_DYNAMIC: i64 = 10_000;

/// How a client came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Pre-registered by an operator.
    Static,
    /// Registered through RFC 7591.
    Dynamic,
    /// Described by the metadata document at its `client_id` URL.
    Document,
}

/// A client, however it is known.
#[derive(Debug, Clone)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// Shown on the consent page.
    pub name: String,
    /// Its home page, if it said.
    pub client_uri: Option<String>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Hex SHA-256 of its secret, for a confidential client.
    pub secret_hash: Option<String>,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// Where it came from.
    pub kind: ClientKind,
}

impl Client {
    /// Whether `uri` is one of its redirect URIs (exact; a loopback one on any port).
    pub fn redirects_to(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| mesh_auth::redirect::matches(r, uri))
    }

    /// Whether it is issued refresh tokens.
    pub fn may_refresh(&self) -> bool {
        self.grant_types.iter().any(|g| g == "refresh_token")
    }

    /// Whether `secret` is its secret (constant-time on the hashes). A public client has none.
    pub fn secret_matches(&self, secret: &str) -> bool {
        let Some(stored) = &self.secret_hash else { return false };
        let given = crate::keys::hash(secret);
        given.len() == stored.len() && given.bytes().zip(stored.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    fn from_row(c: OAuthClient) -> Client {
        let kind = if c.kind == "static" { ClientKind::Static } else { ClientKind::Dynamic };
        Client {
            id: c.id,
            name: c.name,
            client_uri: c.client_uri,
            redirect_uris: c.redirect_uris,
            secret_hash: c.secret_hash,
            grant_types: c.grant_types,
            kind,
        }
    }
}

/// Fetched metadata documents (or why one could not be used), until their cache lifetime ends,
/// and the fetches under way.
pub struct DocumentCache {
    entries: Mutex<HashMap<String, Cached>>,
    fetching: tokio::sync::Semaphore,
}

/// A document's client (or why it cannot be used), and until when that holds.
type Cached = (Result<Client, OAuthError>, Instant);

impl Default for DocumentCache {
    fn default() -> Self {
        DocumentCache { entries: Mutex::default(), fetching: tokio::sync::Semaphore::new(MAX_FETCHING) }
    }
}

/// RFC 7591 registrations per address in the current hour.
#[derive(Default)]
pub struct RegistrationLimit(Mutex<HashMap<IpAddr, (Instant, u32)>>);

impl RegistrationLimit {
    /// Counts one registration from `ip`; `false` once it made `per_hour` this hour.
    fn take(&self, ip: IpAddr, per_hour: u32, now: Instant) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let hour = Duration::from_secs(3600);
        if map.len() > 10_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < hour);
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= hour {
            *entry = (now, 0);
        }
        if entry.1 >= per_hour {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// What RFC 7591 and a metadata document may say (unknown fields are ignored, as both allow).
#[derive(Debug, Deserialize)]
struct Metadata {
    client_id: Option<String>,
    client_name: Option<String>,
    client_uri: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    client_secret: Option<Value>,
}

impl Metadata {
    /// The checks every way of describing a client shares.
    fn check(&self) -> Result<Vec<String>, OAuthError> {
        if self.redirect_uris.is_empty() {
            return Err(OAuthError::new("invalid_redirect_uri", "redirect_uris must list at least one URI"));
        }
        if self.redirect_uris.len() > 20 {
            return Err(OAuthError::new("invalid_redirect_uri", "at most 20 redirect_uris"));
        }
        for uri in &self.redirect_uris {
            if uri.len() > 2000 {
                return Err(OAuthError::new("invalid_redirect_uri", "a redirect URI is over 2,000 characters"));
            }
            mesh_auth::redirect::check_registered(uri)
                .map_err(|e| OAuthError::new("invalid_redirect_uri", e.to_string()))?;
        }
        if let Some(types) = &self.response_types {
            if types.iter().any(|t| t != "code") {
                return Err(OAuthError::new("invalid_client_metadata", "response_types may only be [\"code\"]"));
            }
        }
        let grants = self.grant_types.clone().unwrap_or_else(|| vec!["authorization_code".into()]);
        if grants.iter().any(|g| g != "authorization_code" && g != "refresh_token") {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "grant_types may only be authorization_code and refresh_token",
            ));
        }
        if let Some(name) = &self.client_name {
            if name.chars().count() > 200 {
                return Err(OAuthError::new("invalid_client_metadata", "client_name is over 200 characters"));
            }
        }
        if let Some(uri) = &self.client_uri {
            let ok = url::Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "https" | "http")) && uri.len() <= 2000;
            if !ok {
                return Err(OAuthError::new("invalid_client_metadata", "client_uri must be an http(s) URL"));
            }
        }
        Ok(grants)
    }
}

/// Whether a `client_id` is a metadata-document URL (the draft: https, a path, nothing else).
pub fn is_document_url(client_id: &str) -> bool {
    let Ok(u) = url::Url::parse(client_id) else { return false };
    // Only a URL already in its normal form: the parser removes dot segments and lower-cases
    // the host, and a client id that changes when parsed would name one document and show
    // another spelling.
    u.as_str() == client_id
        && u.scheme() == "https"
        && u.host_str().is_some()
        && u.path() != "/"
        && u.fragment().is_none()
        && u.username().is_empty()
        && u.password().is_none()
        && !u.path().split('/').any(|s| s == "." || s == "..")
}

impl Admin {
    /// The client with this id: a registered one, or the one its metadata document describes.
    /// `Ok(None)` for an unknown id; an error when a document cannot be used (the message is
    /// the mesh's own, never the document server's bytes).
    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<Client>, OAuthError> {
        if client_id.is_empty() || client_id.len() > 2000 {
            return Ok(None);
        }
        if is_document_url(client_id) {
            return self.document_client(client_id).await.map(Some);
        }
        Ok(self.store.get_oauth_client(client_id).await?.map(Client::from_row))
    }

    async fn document_client(&self, url: &str) -> Result<Client, OAuthError> {
        let now = Instant::now();
        let cache = &self.oauth.documents;
        if let Some((c, until)) = cache.entries.lock().unwrap_or_else(|p| p.into_inner()).get(url) {
            if *until > now {
                return c.clone();
            }
        }
        let Ok(_fetching) = cache.fetching.try_acquire() else {
            return Err(OAuthError::new(
                "temporarily_unavailable",
                "too many client metadata documents are being fetched; try again",
            ));
        };
        let (result, ttl) = match self.fetch_document(url).await {
            Ok((client, ttl)) => (Ok(client), ttl),
            Err(e) => (Err(e), FAILED_CACHE),
        };
        let mut map = cache.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED {
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= MAX_CACHED {
                map.clear();
            }
        }
        map.insert(url.to_string(), (result.clone(), now + ttl));
        result
    }

    /// Fetches a metadata document with the outbound guards of an organisation's upstream
    /// (internal addresses refused unless an operator allowed them), a time limit and a size
    /// limit, and checks it (draft-ietf-oauth-client-id-metadata-document §4).
    async fn fetch_document(&self, url: &str) -> Result<(Client, Duration), OAuthError> {
        let refuse = |why: &str| {
            tracing::info!(client_id = %url, why, "client metadata document refused");
            OAuthError::new("invalid_client", format!("the client's metadata document at {url} {why}"))
        };
        let parsed = url::Url::parse(url).map_err(|_| refuse("is not a URL"))?;
        let reach = self.oauth.settings.document_reach;
        mesh_relay::upstream::reach::check_url("client metadata", &parsed, reach)
            .map_err(|_| refuse("is on an internal address"))?;
        let http = self.http.for_reach(reach);
        let resp = http
            .get(parsed)
            .header(http::header::ACCEPT, "application/json")
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                tracing::info!(client_id = %url, error = %e, "client metadata document fetch failed");
                refuse("could not be fetched")
            })?;
        // Exactly 200 from exactly that URL: a redirect would let a document elsewhere speak
        // for the URL the consent page shows.
        if resp.url().as_str() != url {
            return Err(refuse("redirects elsewhere; a client metadata document is served at its own URL"));
        }
        if resp.status() != reqwest::StatusCode::OK {
            return Err(refuse(&format!("answered HTTP {}", resp.status().as_u16())));
        }
        let ttl = cache_lifetime(resp.headers());
        let body = read_limited(resp, MAX_DOCUMENT).await.map_err(refuse)?;
        let meta: Metadata =
            serde_json::from_slice(&body).map_err(|_| refuse("is not a JSON client metadata document"))?;
        if meta.client_id.as_deref() != Some(url) {
            return Err(refuse("names another client_id than its own URL"));
        }
        if meta.client_secret.is_some() {
            return Err(refuse("must not hold a client secret"));
        }
        match meta.token_endpoint_auth_method.as_deref() {
            None | Some("none") => {}
            Some(_) => return Err(refuse("asks for a token endpoint authentication method other than none")),
        }
        let name =
            meta.client_name.clone().filter(|n| !n.trim().is_empty()).ok_or_else(|| refuse("has no client_name"))?;
        let grant_types = meta.check().map_err(|e| refuse(&format!("is invalid: {}", e.description)))?;
        let client = Client {
            id: url.to_string(),
            name,
            client_uri: meta.client_uri,
            redirect_uris: meta.redirect_uris,
            secret_hash: None,
            grant_types,
            kind: ClientKind::Document,
        };
        Ok((client, ttl))
    }

    /// Registers a client (RFC 7591 §3), if registration is open and `ip` has not registered
    /// too many this hour. Returns the registration response (with the secret, shown once).
    pub async fn register_oauth_client(&self, ip: IpAddr, body: &[u8]) -> Result<Value, OAuthError> {
        let settings = &self.oauth.settings;
        if !settings.dynamic_registration {
            return Err(OAuthError::new(
                "access_denied",
                "dynamic client registration is off on this mesh; ask an operator for a client id",
            ));
        }
        if !self.oauth.registrations.take(super::network_of(ip), settings.registrations_per_hour, Instant::now()) {
            tracing::warn!(%ip, "OAuth client registrations from this address exceed the hourly limit");
            return Err(OAuthError::new("slow_down", "too many registrations from this address; try again later"));
        }
        if self.store.count_dynamic_clients().await? >= MAX_DYNAMIC {
            tracing::error!("the mesh holds the most dynamically registered OAuth clients it allows");
            return Err(OAuthError::new("temporarily_unavailable", "registration is full; ask an operator"));
        }
        let meta: Metadata = serde_json::from_slice(body)
            .map_err(|e| OAuthError::new("invalid_client_metadata", format!("the body is not client metadata: {e}")))?;
        let grant_types = meta.check()?;
        // RFC 7591 §2: the default method is client_secret_basic.
        let method = meta.token_endpoint_auth_method.clone().unwrap_or_else(|| "client_secret_basic".into());
        if !matches!(method.as_str(), "none" | "client_secret_basic" | "client_secret_post") {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post",
            ));
        }
        let now = mesh_core::id::now_ms();
        let client_secret = (method != "none").then(|| secret("mcs_"));
        let row = OAuthClient {
            id: mesh_core::id::new_id("mcc"),
            kind: "dynamic".into(),
            name: meta.client_name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "Unnamed client".into()),
            client_uri: meta.client_uri.clone(),
            redirect_uris: meta.redirect_uris.clone(),
            secret_hash: client_secret.as_deref().map(crate::keys::hash),
            grant_types: grant_types.clone(),
            created_by: "register".into(),
            created_at: now,
        };
        self.store.create_oauth_client(&row).await?;
        tracing::info!(client = %row.id, name = %row.name, %ip, "OAuth client registered (RFC 7591)");
        let mut out = json!({
            "client_id": row.id,
            "client_id_issued_at": now / 1000,
            "client_name": row.name,
            "redirect_uris": row.redirect_uris,
            "grant_types": grant_types,
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
        });
        if let Some(uri) = &row.client_uri {
            out["client_uri"] = json!(uri);
        }
        if let Some(s) = client_secret {
            out["client_secret"] = json!(s);
            out["client_secret_expires_at"] = json!(0);
        }
        Ok(out)
    }
}

/// How long a fetched document may be used: its `Cache-Control: max-age`, within bounds.
fn cache_lifetime(headers: &http::HeaderMap) -> Duration {
    let Some(cc) = headers.get(http::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()) else {
        return DEFAULT_CACHE;
    };
    let mut ttl = DEFAULT_CACHE;
    for part in cc.split(',').map(str::trim) {
        if part.eq_ignore_ascii_case("no-store") || part.eq_ignore_ascii_case("no-cache") {
            ttl = MIN_CACHE;
        } else if let Some(secs) = part.strip_prefix("max-age=").and_then(|s| s.parse::<u64>().ok()) {
            ttl = Duration::from_secs(secs);
        }
    }
    ttl.clamp(MIN_CACHE, MAX_CACHE)
}

/// The body, refused past `limit` bytes without reading further.
async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, &'static str> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err("is larger than the mesh reads");
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|_| "could not be read")? {
        if body.len() + chunk.len() > limit {
            return Err("is larger than the mesh reads");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_urls_are_https_with_a_path() {
        assert!(is_document_url("https://app.example.com/oauth/client.json"));
        assert!(is_document_url("https://127.0.0.1:8443/client.json"));
        for no in [
            "http://app.example.com/client.json",
            "https://app.example.com/",
            "https://app.example.com",
            "https://app.example.com/a#b",
            "https://u:p@app.example.com/c",
            "https://app.example.com/a/../c",
            "mcc_abc",
        ] {
            assert!(!is_document_url(no), "{no}");
        }
    }

    #[test]
    fn cache_lifetimes_follow_max_age_within_bounds() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(http::header::CACHE_CONTROL, v.parse().unwrap());
            cache_lifetime(&m)
        };
        assert_eq!(cache_lifetime(&http::HeaderMap::new()), DEFAULT_CACHE);
        assert_eq!(h("public, max-age=600"), Duration::from_secs(600));
        assert_eq!(h("max-age=1"), MIN_CACHE);
        assert_eq!(h("max-age=99999999"), MAX_CACHE);
        assert_eq!(h("no-store"), MIN_CACHE);
    }

    #[test]
    fn registrations_per_address_are_bounded_per_hour() {
        let limit = RegistrationLimit::default();
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t = Instant::now();
        assert!((0..3).all(|_| limit.take(a, 3, t)));
        assert!(!limit.take(a, 3, t));
        assert!(limit.take(b, 3, t), "another address is not affected");
        assert!(limit.take(a, 3, t + Duration::from_secs(3601)), "a new hour");
    }
}
