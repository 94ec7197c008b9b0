//! The authorization code flow (OAuth 2.1 §4.1) with PKCE S256, resource indicators (RFC 8707)
//! and `iss` in the response (RFC 9207); the token endpoint (codes and rotating refresh
//! tokens); revocation (RFC 7009).

use super::clients::Client;
use super::{clip, secret, Event, OAuthError, SCOPES};
use crate::Admin;
use mesh_core::audit::Outcome;
use mesh_store::{OAuthCode, OAuthGrant, OAuthToken, Org};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

/// How long an authorization code may wait for its exchange.
const CODE_TTL_MS: i64 = 60_000;

/// A checked authorization request: everything the login and consent pages carry along.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The client.
    pub client: Client,
    /// The redirect URI, exactly as requested (one of the client's).
    pub redirect_uri: String,
    /// The client's `state`, returned as given.
    pub state: Option<String>,
    /// The PKCE S256 challenge.
    pub challenge: String,
    /// The canonical resource URI.
    pub resource: String,
    /// The route it names (`OAuth::route_of`).
    pub route: String,
    /// The scopes granted if the user agrees.
    pub scope: BTreeSet<String>,
    /// `prompt`: `login` asks for a fresh login, `consent` for the consent page again.
    pub prompt: Option<String>,
}

/// Why an authorization request fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted with a redirect: the user is shown this
    /// (OAuth 2.1 §4.1.2.1).
    Page(String),
    /// Sent back to the client at this URL (with `error`, `state` and `iss`).
    Redirect(String),
}

/// The parameters of a query string or form; `None` if one is given twice (RFC 6749 §3.1).
pub fn params(raw: &str) -> Option<HashMap<String, String>> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if map.insert(k.into_owned(), v.into_owned()).is_some() {
            return None;
        }
    }
    Some(map)
}

impl Admin {
    /// Checks an authorization request (its query string). The client and redirect URI are
    /// checked first: until both are known good, nothing is redirected anywhere.
    pub async fn oauth_authorize_request(&self, query: &str) -> Result<AuthRequest, AuthorizeError> {
        let p = params(query).ok_or_else(|| AuthorizeError::Page("a parameter is given more than once".into()))?;
        let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let client_id = get("client_id").ok_or_else(|| AuthorizeError::Page("client_id is missing".into()))?;
        let client = match self.oauth_client(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(AuthorizeError::Page(format!("unknown client '{}'", clip(client_id)))),
            Err(e) => return Err(AuthorizeError::Page(e.description)),
        };
        let redirect_uri = get("redirect_uri").ok_or_else(|| AuthorizeError::Page("redirect_uri is missing".into()))?;
        if !client.redirects_to(redirect_uri) {
            return Err(AuthorizeError::Page(format!(
                "redirect_uri '{}' is not registered for client '{}'",
                clip(redirect_uri),
                clip(&client.name)
            )));
        }
        let state = get("state").map(str::to_string);
        // A client anyone could have registered (RFC 7591, or a metadata document) gets its
        // errors on a page, not in a redirect: otherwise the mesh would send browsers to any
        // URL such a client names, with no one ever logging in (RFC 9700 §4.11.2).
        let trusted = client.kind == super::clients::ClientKind::Static;
        let back = |error: &str, description: &str| {
            if !trusted {
                return AuthorizeError::Page(format!("{error}: {description}"));
            }
            AuthorizeError::Redirect(self.oauth_redirect(
                redirect_uri,
                state.as_deref(),
                &[("error", error), ("error_description", description)],
            ))
        };
        if get("response_type") != Some("code") {
            return Err(back("unsupported_response_type", "response_type must be code"));
        }
        let challenge =
            get("code_challenge").ok_or_else(|| back("invalid_request", "code_challenge is required (PKCE)"))?;
        mesh_auth::pkce::check_challenge(challenge, get("code_challenge_method"))
            .map_err(|e| back("invalid_request", &e.to_string()))?;
        let raw_resource = get("resource").ok_or_else(|| {
            back("invalid_target", "resource is required: the URL of the MCP endpoint the token is for (RFC 8707)")
        })?;
        let resource =
            mesh_auth::resource::canonical(raw_resource).map_err(|e| back("invalid_target", &e.to_string()))?;
        let route = self
            .oauth
            .route_of(&resource)
            .ok_or_else(|| back("invalid_target", "resource is not an MCP endpoint of this mesh"))?;
        let scope = granted_scope(get("scope")).map_err(|e| back("invalid_scope", &e))?;
        Ok(AuthRequest {
            redirect_uri: redirect_uri.to_string(),
            state,
            challenge: challenge.to_string(),
            resource,
            route,
            scope,
            prompt: get("prompt").map(str::to_string),
            client,
        })
    }

    /// A redirect back to the client with `params`, its `state`, and `iss` (RFC 9207).
    pub fn oauth_redirect(&self, redirect_uri: &str, state: Option<&str>, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(redirect_uri).expect("redirect URIs are checked URLs");
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if let Some(s) = state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", &self.oauth.settings.issuer);
        }
        url.to_string()
    }

    /// The organisations where `user_id` is a member and `route` exists: where a token for it
    /// could act. Usually one.
    pub async fn oauth_orgs_for(&self, user_id: &str, route: &str) -> Result<Vec<(Org, String)>, OAuthError> {
        let mut out = Vec::new();
        for (org, role) in self.store.orgs_of_user(user_id).await? {
            let exists = match route.strip_prefix("gateway/") {
                _ if route.is_empty() => true,
                Some(g) => self.store.get_gateway(&org.id, g).await?.is_some(),
                None => self.store.get_connection(&org.id, route).await?.is_some(),
            };
            if exists {
                out.push((org, role));
            }
        }
        Ok(out)
    }

    /// A consent given before that covers this request, where `orgs` (`oauth_orgs_for`) holds
    /// the only organisation it could mean: the consent page is skipped, and the answer is the
    /// redirect back with a new code.
    pub async fn oauth_remembered(
        &self,
        user_id: &str,
        req: &AuthRequest,
        orgs: &[(Org, String)],
    ) -> Result<Option<String>, AuthorizeError> {
        if req.prompt.as_deref().is_some_and(|p| p.split(' ').any(|v| v == "consent" || v == "login")) {
            return Ok(None);
        }
        // A client that redirects to this device (loopback) can be any program on it posing as
        // the one the user approved: it is asked every time (RFC 8252 §8.6).
        if req.client.secret_hash.is_none() && mesh_auth::redirect::is_loopback(&req.redirect_uri) {
            return Ok(None);
        }
        let [(org, _)] = orgs else { return Ok(None) };
        let found = self.store.find_oauth_grant(&org.id, user_id, &req.client.id, &req.resource).await;
        let Some(grant) = found.map_err(|e| page(e.into()))? else { return Ok(None) };
        let granted: BTreeSet<String> = grant.scope.split(' ').map(str::to_string).collect();
        if !req.scope.is_subset(&granted) {
            return Ok(None);
        }
        self.grant_and_code(user_id, req, &org.id).await.map(Some)
    }

    /// The user's answer on the consent page (or a remembered one): on `allow`, the grant is
    /// recorded and a code issued; either way, the redirect back to the client.
    pub async fn oauth_decide(
        &self,
        user_id: &str,
        req: &AuthRequest,
        org_id: &str,
        allow: bool,
    ) -> Result<String, AuthorizeError> {
        let back = |params: &[(&str, &str)]| self.oauth_redirect(&req.redirect_uri, req.state.as_deref(), params);
        // The organisation comes from the form: checked before anything is written in its name.
        let orgs = self.oauth_orgs_for(user_id, &req.route).await.map_err(|e| AuthorizeError::Page(e.description))?;
        if !orgs.iter().any(|(o, _)| o.id == org_id) {
            return Err(AuthorizeError::Page("that organisation has no such endpoint for you".into()));
        }
        if !allow {
            self.audit_consent(org_id, user_id, "", req, Outcome::Denied, Some("the user declined"));
            return Ok(back(&[("error", "access_denied"), ("error_description", "the user declined")]));
        }
        self.grant_and_code(user_id, req, org_id).await
    }

    /// The audit row of a consent (given, remembered or declined).
    fn audit_consent(
        &self,
        org_id: &str,
        user_id: &str,
        family: &str,
        req: &AuthRequest,
        outcome: Outcome,
        error: Option<&str>,
    ) {
        self.audit_oauth(Event {
            org_id,
            user_id,
            family,
            method: "oauth/consent",
            client_id: Some(&req.client.id),
            outcome,
            error: error.map(str::to_string),
            details: json!({"resource": req.resource, "scope": mesh_auth::scope::format(&req.scope)}),
        });
    }

    /// Records the grant (or widens it to this request's scope) and issues a code: the redirect
    /// back to the client. `org_id` must be one of `oauth_orgs_for`'s.
    async fn grant_and_code(&self, user_id: &str, req: &AuthRequest, org_id: &str) -> Result<String, AuthorizeError> {
        let back = |params: &[(&str, &str)]| self.oauth_redirect(&req.redirect_uri, req.state.as_deref(), params);
        let now = mesh_core::id::now_ms();
        let grant = OAuthGrant {
            id: mesh_core::id::new_id("grant"),
            org_id: org_id.to_string(),
            user_id: user_id.to_string(),
            client_id: req.client.id.clone(),
            client_name: req.client.name.clone(),
            resource: req.resource.clone(),
            route: req.route.clone(),
            scope: mesh_auth::scope::format(&req.scope),
            created_at: now,
        };
        let stored = self.store.upsert_oauth_grant(&grant).await.map_err(|e| page(e.into()))?;
        let code = secret("mac_");
        let family = mesh_core::id::new_id("oat");
        self.store
            .create_oauth_code(&OAuthCode {
                hash: crate::keys::hash(&code),
                grant_id: stored.id.clone(),
                client_id: req.client.id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                challenge: req.challenge.clone(),
                scope: stored.scope.clone(),
                family: family.clone(),
                expires_at: now + CODE_TTL_MS,
                used_at: None,
            })
            .await
            .map_err(|e| page(e.into()))?;
        self.audit_consent(org_id, user_id, &family, req, Outcome::Ok, None);
        tracing::info!(org = %org_id, user = %user_id, client = %req.client.id, resource = %req.resource, "OAuth consent given; code issued");
        Ok(back(&[("code", &code)]))
    }

    /// The token endpoint (OAuth 2.1 §3.2.3): `form` is the request body, `basic` the client's
    /// HTTP Basic credentials if it sent them. The answer is the token response body.
    pub async fn oauth_token(
        &self,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
    ) -> Result<Value, OAuthError> {
        let client = self.token_client(form, basic).await?;
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => self.exchange_code(&client, form).await,
            Some("refresh_token") => self.refresh(&client, form).await,
            Some(other) => Err(OAuthError::new("unsupported_grant_type", format!("grant_type '{}'", clip(other)))),
            None => Err(OAuthError::new("invalid_request", "grant_type is missing")),
        }
    }

    /// Authenticates the client at the token or revocation endpoint: a confidential client by
    /// its secret (Basic or in the body), a public one by its id alone.
    async fn token_client(
        &self,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
    ) -> Result<Client, OAuthError> {
        let body_id = form.get("client_id").filter(|s| !s.is_empty());
        let (id, given) = match &basic {
            Some((id, secret)) => {
                if body_id.is_some_and(|b| b != id) {
                    return Err(OAuthError::new("invalid_request", "client_id differs from the Basic credentials"));
                }
                (id.clone(), Some(secret.clone()))
            }
            None => (
                body_id
                    .cloned()
                    .ok_or_else(|| OAuthError::new("invalid_client", "client authentication is missing"))?,
                form.get("client_secret").cloned(),
            ),
        };
        let unknown = || OAuthError::new("invalid_client", "unknown client or wrong secret");
        let client = self.oauth_client(&id).await?.ok_or_else(unknown)?;
        match (&client.secret_hash, given.as_deref().filter(|s| !s.is_empty())) {
            (Some(_), Some(s)) if client.secret_matches(s) => Ok(client),
            (None, _) => Ok(client),
            _ => Err(unknown()),
        }
    }

    async fn exchange_code(&self, client: &Client, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
        let code = form
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OAuthError::new("invalid_request", "code is missing"))?;
        let now = mesh_core::id::now_ms();
        let bad = || OAuthError::new("invalid_grant", "the code is invalid, expired or used");
        let (stored, first) = self.store.use_oauth_code(&crate::keys::hash(code), now).await?.ok_or_else(bad)?;
        let grant = self.store.get_oauth_grant(&stored.grant_id).await?.ok_or_else(bad)?;
        let refuse = |why: &str| {
            self.audit_oauth(Event {
                org_id: &grant.org_id,
                user_id: &grant.user_id,
                family: &stored.family,
                method: "oauth/token",
                client_id: Some(&client.id),
                outcome: Outcome::Denied,
                error: Some(why.to_string()),
                details: json!({"grant_type": "authorization_code"}),
            });
        };
        if !first {
            // A replayed code: whoever holds it may have the tokens of its first use too
            // (OAuth 2.1 §4.1.3), so they end now.
            self.store.revoke_oauth_family(&stored.family, now).await?;
            self.reload_access().await?;
            tracing::warn!(client = %client.id, family = %stored.family, "authorization code reused; its tokens are revoked");
            refuse("authorization code reused; tokens of its first use revoked");
            return Err(bad());
        }
        if stored.expires_at <= now || stored.client_id != client.id {
            refuse("code expired or issued to another client");
            return Err(bad());
        }
        // OAuth 2.1 §4.1.3: with PKCE the redirect URI need not be repeated; if it is, it must
        // be the authorization request's.
        if form.get("redirect_uri").is_some_and(|r| *r != stored.redirect_uri) {
            refuse("redirect_uri differs from the authorization request's");
            return Err(OAuthError::new("invalid_grant", "redirect_uri differs from the authorization request's"));
        }
        let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
        if let Err(e) = mesh_auth::pkce::verify(verifier, &stored.challenge) {
            refuse("PKCE verification failed");
            return Err(OAuthError::new("invalid_grant", e.to_string()));
        }
        self.check_resource(form, &grant)?;
        self.mint(client, &grant, &stored.family, &stored.scope, "authorization_code").await
    }

    async fn refresh(&self, client: &Client, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
        let given = form
            .get("refresh_token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing"))?;
        let now = mesh_core::id::now_ms();
        let bad = || OAuthError::new("invalid_grant", "the refresh token is invalid, expired or revoked");
        let hash = crate::keys::hash(given);
        let (token, grant) = self.store.get_oauth_token(&hash).await?.ok_or_else(bad)?;
        if token.kind != "refresh" || grant.client_id != client.id {
            return Err(bad());
        }
        let refused = |why: &str| {
            self.audit_oauth(Event {
                org_id: &grant.org_id,
                user_id: &grant.user_id,
                family: &token.family,
                method: "oauth/token",
                client_id: Some(&client.id),
                outcome: Outcome::Denied,
                error: Some(why.to_string()),
                details: json!({"grant_type": "refresh_token"}),
            })
        };
        if token.revoked_at.is_some() || token.expires_at <= now {
            refused("refresh token revoked or expired");
            return Err(bad());
        }
        self.check_resource(form, &grant)?;
        // Used before, or used by a concurrent request just now: one of the two holders is not
        // the client (OAuth 2.1 §4.3.1), so the whole family ends.
        if token.rotated_at.is_some() || !self.store.rotate_oauth_refresh(&hash, now).await? {
            self.store.revoke_oauth_family(&token.family, now).await?;
            self.reload_access().await?;
            tracing::warn!(client = %client.id, family = %token.family, "refresh token reused; its family is revoked");
            refused("refresh token reused; every token of its authorisation revoked");
            return Err(bad());
        }
        let scope = match form.get("scope").filter(|s| !s.is_empty()) {
            None => token.scope.clone(),
            Some(asked) => {
                let had: BTreeSet<String> = token.scope.split(' ').map(str::to_string).collect();
                let asked = mesh_auth::scope::parse(Some(asked)).map_err(|e| OAuthError::new("invalid_scope", e.0))?;
                if !asked.is_subset(&had) {
                    return Err(OAuthError::new("invalid_scope", "a refresh cannot widen the scope"));
                }
                mesh_auth::scope::format(&asked)
            }
        };
        self.mint(client, &grant, &token.family, &scope, "refresh_token").await
    }

    /// A `resource` sent to the token endpoint must be the grant's (RFC 8707 §2.2).
    fn check_resource(&self, form: &HashMap<String, String>, grant: &OAuthGrant) -> Result<(), OAuthError> {
        let Some(raw) = form.get("resource").filter(|r| !r.is_empty()) else { return Ok(()) };
        let asked =
            mesh_auth::resource::canonical(raw).map_err(|e| OAuthError::new("invalid_target", e.to_string()))?;
        if asked != grant.resource {
            return Err(OAuthError::new("invalid_target", "the token was granted for another resource"));
        }
        Ok(())
    }

    /// Issues an access token (and a refresh token, if the client refreshes) in `family`,
    /// stores their hashes and puts the access token in the in-memory cache before answering.
    async fn mint(
        &self,
        client: &Client,
        grant: &OAuthGrant,
        family: &str,
        scope: &str,
        how: &'static str,
    ) -> Result<Value, OAuthError> {
        let s = &self.oauth.settings;
        let now = mesh_core::id::now_ms();
        let access = secret("mat_");
        let access_ttl = s.access_ttl.as_millis() as i64;
        let mut rows = vec![OAuthToken {
            hash: crate::keys::hash(&access),
            kind: "access".into(),
            family: family.to_string(),
            grant_id: grant.id.clone(),
            scope: scope.to_string(),
            created_at: now,
            expires_at: now + access_ttl,
            rotated_at: None,
            revoked_at: None,
        }];
        let refresh = client.may_refresh().then(|| secret("mrt_"));
        if let Some(r) = &refresh {
            rows.push(OAuthToken {
                hash: crate::keys::hash(r),
                kind: "refresh".into(),
                expires_at: now + s.refresh_ttl.as_millis() as i64,
                ..rows[0].clone()
            });
        }
        self.store.create_oauth_tokens(&rows).await?;
        self.reload_access().await?;
        self.audit_oauth(Event {
            org_id: &grant.org_id,
            user_id: &grant.user_id,
            family,
            method: "oauth/token",
            client_id: Some(&client.id),
            outcome: Outcome::Ok,
            error: None,
            details: json!({"grant_type": how, "resource": grant.resource, "scope": scope}),
        });
        tracing::info!(org = %grant.org_id, user = %grant.user_id, client = %client.id, family, how, "OAuth tokens issued");
        let mut out = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": access_ttl / 1000,
            "scope": scope,
        });
        if let Some(r) = refresh {
            out["refresh_token"] = json!(r);
        }
        Ok(out)
    }

    /// Revocation (RFC 7009): a refresh token ends its whole family, an access token itself.
    /// Unknown tokens, and other clients' tokens, are answered the same (§2.2: 200).
    pub async fn oauth_revoke(
        &self,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
    ) -> Result<(), OAuthError> {
        let client = self.token_client(form, basic).await?;
        let Some(given) = form.get("token").filter(|t| !t.is_empty()) else {
            return Err(OAuthError::new("invalid_request", "token is missing"));
        };
        let hash = crate::keys::hash(given);
        let Some((token, grant)) = self.store.get_oauth_token(&hash).await? else { return Ok(()) };
        if grant.client_id != client.id {
            return Ok(());
        }
        let now = mesh_core::id::now_ms();
        if token.kind == "refresh" {
            self.store.revoke_oauth_family(&token.family, now).await?;
        } else {
            self.store.revoke_oauth_token(&hash, now).await?;
        }
        self.reload_access().await?;
        self.audit_oauth(Event {
            org_id: &grant.org_id,
            user_id: &grant.user_id,
            family: &token.family,
            method: "oauth/revoke",
            client_id: Some(&client.id),
            outcome: Outcome::Ok,
            error: None,
            details: json!({"kind": token.kind}),
        });
        Ok(())
    }
}

/// The scopes granted for a requested `scope`: the mesh's own ones asked for, and always `mcp`
/// (the one that uses the resource). Other scopes are ignored (RFC 6749 §3.3 lets the server
/// grant less), so a client asking for `openid profile` out of habit still connects.
fn granted_scope(raw: Option<&str>) -> Result<BTreeSet<String>, String> {
    let asked = mesh_auth::scope::parse(raw).map_err(|e| e.0)?;
    let mut out: BTreeSet<String> = asked.into_iter().filter(|s| SCOPES.contains(&s.as_str())).collect();
    out.insert("mcp".into());
    Ok(out)
}

fn page(e: OAuthError) -> AuthorizeError {
    AuthorizeError::Page(e.description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_parameters_are_refused() {
        assert!(params("a=1&b=2").is_some());
        assert!(params("a=1&a=2").is_none());
        assert_eq!(params("redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb").unwrap()["redirect_uri"], "http://127.0.0.1/cb");
    }

    #[test]
    fn scopes_granted_are_the_mesh_ones_and_always_mcp() {
        let f = |raw| granted_scope(raw).map(|s| mesh_auth::scope::format(&s));
        assert_eq!(f(None).as_deref(), Ok("mcp"));
        assert_eq!(f(Some("mcp offline_access")).as_deref(), Ok("mcp offline_access"));
        assert_eq!(f(Some("openid profile")).as_deref(), Ok("mcp"));
    }
}
