//! The authorization code grant with PKCE (OAuth 2.1, RFC 7636 S256), resource indicators
//! (RFC 8707) on every request, and issuer identification of the response (RFC 9207).

use crate::error::{failed, OAuthError};
use crate::metadata::AuthorizationServer;
use crate::net::Net;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

/// How the client authenticates at the token endpoint (RFC 7591 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client: `client_id` in the body, no secret.
    None,
    /// HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the body.
    ClientSecretPost,
}

impl AuthMethod {
    /// The method for a client with (or without) a secret at `server`: none without one; with
    /// one, Basic where offered (and where the server lists nothing: RFC 8414's default), else
    /// the body.
    pub fn for_server(server: &AuthorizationServer, has_secret: bool) -> AuthMethod {
        if !has_secret {
            return AuthMethod::None;
        }
        match &server.token_endpoint_auth_methods_supported {
            None => AuthMethod::ClientSecretBasic,
            Some(m) if m.iter().any(|m| m == "client_secret_basic") => AuthMethod::ClientSecretBasic,
            Some(m) if m.iter().any(|m| m == "client_secret_post") => AuthMethod::ClientSecretPost,
            Some(_) => AuthMethod::ClientSecretBasic,
        }
    }

    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
        }
    }
}

/// Who the mesh is at one authorization server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The client id (a URL for a client ID metadata document).
    pub client_id: String,
    /// Its secret, for a confidential client.
    pub client_secret: Option<String>,
    /// How it authenticates at the token endpoint.
    pub auth_method: AuthMethod,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("auth_method", &self.auth_method)
            .finish()
    }
}

/// An authorization request on its way: what the callback is checked against and the code
/// exchanged with. Kept server-side only (the verifier never leaves the mesh but to the token
/// endpoint).
#[derive(Clone, Serialize, Deserialize)]
pub struct Pending {
    /// Where to send the user.
    pub url: String,
    /// The `state` the response must carry back.
    pub state: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// The redirect URI used (sent again with the code).
    pub redirect_uri: String,
    /// The resource indicator.
    pub resource: String,
    /// The scope asked for, if any.
    pub scope: Option<String>,
    /// The issuer whose response this must be.
    pub issuer: String,
    /// The server promised `iss` in its responses (RFC 9207): one without it is refused.
    pub iss_required: bool,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("issuer", &self.issuer).field("scope", &self.scope).finish_non_exhaustive()
    }
}

/// Tokens from a token response.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token, if one was issued.
    pub refresh_token: Option<String>,
    /// Seconds since the epoch when the access token expires, if the server said.
    pub expires_at: Option<u64>,
    /// Its lifetime in seconds (`expires_in`), which decides how early it is renewed.
    #[serde(default)]
    pub lifetime: Option<u64>,
    /// The granted scope (as the server said, else as asked).
    pub scope: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "<redacted>"))
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Whether the access token expires within `margin` of `now` (seconds since the epoch).
    pub fn expires_within(&self, now: u64, margin: Duration) -> bool {
        self.expires_at.is_some_and(|at| at <= now.saturating_add(margin.as_secs()))
    }

    /// When to renew it (seconds since the epoch): a minute before it expires, or a quarter of
    /// its lifetime before for a short-lived one (a one-minute token renewed at once would be
    /// renewed for ever). `None` when the server gave no expiry.
    pub fn renew_at(&self) -> Option<u64> {
        let margin = self.lifetime.map(|l| (l / 4).min(60)).unwrap_or(60);
        self.expires_at.map(|at| at.saturating_sub(margin))
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `n` random bytes, base64url without padding.
fn random(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Starts an authorization: the URL to send the user to, with PKCE S256, a fresh `state`,
/// `resource` and `scope`. Refused when the server does not offer S256.
pub fn authorize(
    server: &AuthorizationServer,
    client: &Client,
    redirect_uri: &str,
    resource: &str,
    scope: Option<&str>,
) -> Result<Pending, OAuthError> {
    if !server.supports_s256() {
        return Err(OAuthError::NoPkce);
    }
    let mut url = Url::parse(&server.authorization_endpoint)
        .map_err(|_| OAuthError::Metadata("authorization_endpoint is not a URL".into()))?;
    // 32 random bytes: a 43-character verifier (RFC 7636 §4.1 allows 43 to 128).
    let verifier = random(32);
    let state = random(24);
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", &mesh_auth::pkce::challenge_s256(&verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("resource", resource);
        if let Some(s) = scope {
            q.append_pair("scope", s);
        }
    }
    Ok(Pending {
        url: url.into(),
        state,
        verifier,
        redirect_uri: redirect_uri.into(),
        resource: resource.into(),
        scope: scope.map(str::to_string),
        issuer: server.issuer.clone(),
        iss_required: server.authorization_response_iss_parameter_supported,
    })
}

impl Pending {
    /// The code of the authorization response with `params` (the redirect's query), once it is
    /// shown to answer this request (`state`) from this server (`iss`, RFC 9207 §2.4: compared
    /// as a simple string, required when the server promised it).
    pub fn code(&self, params: &[(String, String)]) -> Result<String, OAuthError> {
        let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if get("state") != Some(self.state.as_str()) {
            return Err(OAuthError::Response("state does not match the request".into()));
        }
        match get("iss") {
            Some(iss) if iss != self.issuer => {
                return Err(OAuthError::Response(format!("iss {iss:?} is not the issuer {:?}", self.issuer)))
            }
            None if self.iss_required => {
                return Err(OAuthError::Response("iss is missing, and the server promised it (RFC 9207)".into()))
            }
            _ => {}
        }
        if let Some(error) = get("error") {
            return Err(OAuthError::Denied {
                error: error.to_string(),
                description: get("error_description").map(str::to_string),
            });
        }
        get("code").map(str::to_string).ok_or_else(|| OAuthError::Response("no code in the response".into()))
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Exchanges the code of `pending` for tokens.
pub async fn exchange(
    net: &Net,
    server: &AuthorizationServer,
    client: &Client,
    pending: &Pending,
    code: &str,
) -> Result<Tokens, OAuthError> {
    let form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.to_string()),
        ("redirect_uri", pending.redirect_uri.clone()),
        ("code_verifier", pending.verifier.clone()),
        ("resource", pending.resource.clone()),
    ];
    token_request(net, server, client, form, pending.scope.as_deref()).await
}

/// Refreshes with `refresh_token`, for `resource`. A server that issues no new refresh token
/// leaves the old one in force (RFC 6749 §6), so it is kept.
pub async fn refresh(
    net: &Net,
    server: &AuthorizationServer,
    client: &Client,
    refresh_token: &str,
    resource: &str,
    scope: Option<&str>,
) -> Result<Tokens, OAuthError> {
    let form = vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", refresh_token.to_string()),
        ("resource", resource.to_string()),
    ];
    let mut t = token_request(net, server, client, form, scope).await?;
    if t.refresh_token.is_none() {
        t.refresh_token = Some(refresh_token.to_string());
    }
    Ok(t)
}

async fn token_request(
    net: &Net,
    server: &AuthorizationServer,
    client: &Client,
    mut form: Vec<(&'static str, String)>,
    scope: Option<&str>,
) -> Result<Tokens, OAuthError> {
    let endpoint = net.check(&server.token_endpoint)?;
    let mut req = net.client.post(endpoint).header("accept", "application/json");
    match (client.auth_method, &client.client_secret) {
        (AuthMethod::ClientSecretBasic, Some(secret)) => {
            // RFC 6749 §2.3.1: each part form-encoded before joining.
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(&client.client_id), enc(secret));
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            req = req.header("authorization", format!("Basic {basic}"));
        }
        (AuthMethod::ClientSecretPost, Some(secret)) => {
            form.push(("client_id", client.client_id.clone()));
            form.push(("client_secret", secret.clone()));
        }
        _ => form.push(("client_id", client.client_id.clone())),
    }
    let resp = req.form(&form).send().await.map_err(|e| failed("token endpoint", e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| failed("token endpoint", e))?;
    if !status.is_success() {
        let (error, description) = match serde_json::from_slice::<TokenError>(&body) {
            Ok(e) => (e.error, e.error_description),
            Err(_) => (format!("HTTP {}", status.as_u16()), None),
        };
        return Err(OAuthError::Token { endpoint: server.token_endpoint.clone(), error, description });
    }
    let t: TokenResponse = serde_json::from_slice(&body).map_err(|_| OAuthError::Token {
        endpoint: server.token_endpoint.clone(),
        error: "the token response is not valid JSON with an access_token".into(),
        description: None,
    })?;
    if t.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(OAuthError::Token {
            endpoint: server.token_endpoint.clone(),
            error: "unsupported token_type (only Bearer is used)".into(),
            description: None,
        });
    }
    // Some servers send expires_in as a string.
    let expires_in = match t.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(Tokens {
        access_token: t.access_token,
        refresh_token: t.refresh_token,
        expires_at: expires_in.map(|s| now().saturating_add(s)),
        lifetime: expires_in,
        scope: t.scope.or_else(|| scope.map(str::to_string)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(methods: Option<&[&str]>, iss: bool) -> AuthorizationServer {
        AuthorizationServer {
            issuer: "https://auth.example".into(),
            authorization_endpoint: "https://auth.example/authorize?tenant=1".into(),
            token_endpoint: "https://auth.example/token".into(),
            registration_endpoint: None,
            scopes_supported: None,
            code_challenge_methods_supported: Some(vec!["S256".into()]),
            token_endpoint_auth_methods_supported: methods.map(|m| m.iter().map(|x| x.to_string()).collect()),
            grant_types_supported: None,
            client_id_metadata_document_supported: false,
            authorization_response_iss_parameter_supported: iss,
        }
    }

    fn public() -> Client {
        Client { client_id: "mesh".into(), client_secret: None, auth_method: AuthMethod::None }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn the_request_carries_pkce_state_resource_and_keeps_the_endpoints_query() {
        let p =
            authorize(&server(None, false), &public(), "http://127.0.0.1:1/cb", "https://mcp.example/mcp", Some("a b"))
                .expect("starts");
        let url = Url::parse(&p.url).expect("url");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "1");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], mesh_auth::pkce::challenge_s256(&p.verifier));
        assert_eq!(q["resource"], "https://mcp.example/mcp");
        assert_eq!(q["scope"], "a b");
        assert_eq!(q["state"], p.state);
        assert_eq!(p.verifier.len(), 43);
        let none = authorize(&server(None, false), &public(), "http://x/cb", "https://r", None).expect("starts");
        assert!(!Url::parse(&none.url).expect("url").query_pairs().any(|(k, _)| k == "scope"));
    }

    #[test]
    fn no_s256_no_flow() {
        let mut s = server(None, false);
        s.code_challenge_methods_supported = Some(vec!["plain".into()]);
        assert_eq!(authorize(&s, &public(), "http://x/cb", "https://r", None).err(), Some(OAuthError::NoPkce));
        s.code_challenge_methods_supported = None;
        assert_eq!(authorize(&s, &public(), "http://x/cb", "https://r", None).err(), Some(OAuthError::NoPkce));
    }

    #[test]
    fn the_response_must_be_this_requests_and_this_servers() {
        let p = authorize(&server(None, false), &public(), "http://x/cb", "https://r", None).expect("starts");
        let st = p.state.clone();
        assert_eq!(p.code(&pairs(&[("code", "c"), ("state", &st)])).as_deref(), Ok("c"));
        assert_eq!(
            p.code(&pairs(&[("code", "c"), ("state", &st), ("iss", "https://auth.example")])).as_deref(),
            Ok("c")
        );
        assert!(p.code(&pairs(&[("code", "c"), ("state", "other")])).is_err());
        assert!(p.code(&pairs(&[("code", "c")])).is_err());
        // RFC 9207 §2.4: simple string comparison, no normalisation.
        assert!(p.code(&pairs(&[("code", "c"), ("state", &st), ("iss", "https://auth.example/")])).is_err());
        assert!(p.code(&pairs(&[("code", "c"), ("state", &st), ("iss", "https://evil.example")])).is_err());
        let denied = p.code(&pairs(&[("error", "access_denied"), ("state", &st)]));
        assert!(matches!(denied, Err(OAuthError::Denied { ref error, .. }) if error == "access_denied"));
        let promised = authorize(&server(None, true), &public(), "http://x/cb", "https://r", None).expect("starts");
        let st = promised.state.clone();
        assert!(promised.code(&pairs(&[("code", "c"), ("state", &st)])).is_err());
    }

    #[test]
    fn client_authentication_follows_the_servers_list() {
        assert_eq!(AuthMethod::for_server(&server(None, false), false), AuthMethod::None);
        assert_eq!(AuthMethod::for_server(&server(None, false), true), AuthMethod::ClientSecretBasic);
        let post = server(Some(&["client_secret_post", "none"]), false);
        assert_eq!(AuthMethod::for_server(&post, true), AuthMethod::ClientSecretPost);
        let both = server(Some(&["client_secret_post", "client_secret_basic"]), false);
        assert_eq!(AuthMethod::for_server(&both, true), AuthMethod::ClientSecretBasic);
    }

    #[test]
    fn short_tokens_are_renewed_a_quarter_of_their_life_early() {
        let t = |expires_at, lifetime| Tokens {
            access_token: String::new(),
            refresh_token: None,
            expires_at: Some(expires_at),
            lifetime,
            scope: None,
        };
        assert_eq!(t(10_000, Some(3600)).renew_at(), Some(9_940));
        assert_eq!(t(10_000, Some(60)).renew_at(), Some(9_985));
        assert_eq!(t(10_000, None).renew_at(), Some(9_940));
        assert_eq!(Tokens { expires_at: None, ..t(0, None) }.renew_at(), None);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = Client {
            client_id: "id".into(),
            client_secret: Some("s3cret".into()),
            auth_method: AuthMethod::ClientSecretPost,
        };
        let t = Tokens {
            access_token: "at-123".into(),
            refresh_token: Some("rt-456".into()),
            expires_at: None,
            lifetime: None,
            scope: None,
        };
        let p = authorize(&server(None, false), &c, "http://x/cb", "https://r", None).expect("starts");
        let shown = format!("{c:?} {t:?} {p:?}");
        for secret in ["s3cret", "at-123", "rt-456", &p.verifier, &p.state] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
