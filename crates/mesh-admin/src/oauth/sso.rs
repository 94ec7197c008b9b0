//! Single sign-on through an external OpenID Connect provider (settings `MESH_OIDC_*`): the
//! mesh is a confidential client of the provider (authorization code + PKCE + nonce), and a
//! user it vouches for is matched by e-mail, or provisioned into the configured organisation
//! with the configured role.
//!
//! The ID token comes straight from the provider's token endpoint over a connection the mesh
//! opened and verified, so its signature is not checked (OpenID Connect Core §3.1.3.7, item 6
//! allows TLS server validation instead); its issuer, audience, expiry and nonce are.

use super::{clip, secret, OAuthError};
use crate::Admin;
use base64::Engine as _;
use mesh_core::audit::Outcome;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long a user may take at the provider.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// SSO logins under way at once (each is a few hundred bytes).
const MAX_PENDING: usize = 10_000;
/// How long the provider's discovery document is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);
/// Provider requests' time limit.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the SSO callback needs of the login it completes.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The authorization request (query string) the user was on when they chose SSO.
    pub authorize_query: String,
    /// The OpenID Connect nonce sent to the provider.
    pub nonce: String,
    /// The PKCE verifier of the mesh's own request to the provider.
    pub verifier: String,
}

/// The parts of the provider's discovery document the mesh uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
}

impl Admin {
    fn sso(&self) -> Result<&super::login::SsoSettings, OAuthError> {
        self.oauth
            .settings
            .sso
            .as_ref()
            .ok_or_else(|| OAuthError::new("invalid_request", "single sign-on is not configured"))
    }

    /// The mesh's own callback at the provider.
    pub fn sso_callback_url(&self) -> String {
        format!("{}/oauth/sso/callback", self.oauth.settings.issuer)
    }

    async fn provider(&self) -> Result<Provider, OAuthError> {
        let sso = self.sso()?;
        // One discovery fetch per few minutes, not one per login: logins cannot be turned into a
        // flood of requests at the provider.
        if let Some((p, at)) = self.oauth.sso_discovery.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(p.clone());
            }
        }
        let url = format!("{}/.well-known/openid-configuration", sso.issuer.trim_end_matches('/'));
        let unavailable = |why: String| {
            tracing::warn!(provider = %sso.issuer, why = %why, "single sign-on provider unavailable");
            OAuthError::new("temporarily_unavailable", "the single sign-on provider cannot be reached")
        };
        let http = self.http.for_reach(mesh_relay::Reach::Any);
        let resp = http.get(&url).timeout(PROVIDER_TIMEOUT).send().await.map_err(|e| unavailable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("discovery answered {}", resp.status())));
        }
        let p: Provider = resp.json().await.map_err(|e| unavailable(format!("discovery document: {e}")))?;
        if p.issuer.trim_end_matches('/') != sso.issuer.trim_end_matches('/') {
            return Err(unavailable(format!("discovery names issuer {}", p.issuer)));
        }
        *self.oauth.sso_discovery.lock().unwrap_or_else(|e| e.into_inner()) = Some((p.clone(), Instant::now()));
        Ok(p)
    }

    /// Starts an SSO login from the authorization request `authorize_query`: the URL to send
    /// the browser to, and the `state` to bind to the browser (a cookie).
    pub async fn sso_start(&self, authorize_query: &str) -> Result<(String, String), OAuthError> {
        let sso = self.sso()?;
        let provider = self.provider().await?;
        let (state, nonce, verifier) = (secret(""), secret(""), secret(""));
        let challenge = mesh_auth::pkce::challenge_s256(&verifier);
        {
            let now = Instant::now();
            let mut pending = self.oauth.sso_pending.0.lock().unwrap_or_else(|p| p.into_inner());
            pending.retain(|_, (_, at)| now.duration_since(*at) < PENDING_TTL);
            if pending.len() >= MAX_PENDING {
                return Err(OAuthError::new("temporarily_unavailable", "too many logins under way; try again shortly"));
            }
            let p = Pending { authorize_query: authorize_query.to_string(), nonce: nonce.clone(), verifier };
            pending.insert(state.clone(), (p, now));
        }
        let mut url = url::Url::parse(&provider.authorization_endpoint).map_err(|_| {
            OAuthError::new("temporarily_unavailable", "the provider's authorization endpoint is not a URL")
        })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &sso.client_id)
            .append_pair("redirect_uri", &self.sso_callback_url())
            .append_pair("scope", "openid email profile")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok((url.to_string(), state))
    }

    /// Completes an SSO login: `params` are the callback's query, `bound_state` the state the
    /// browser's cookie holds. Returns the new login session and the authorization request to
    /// go back to.
    pub async fn sso_finish(
        &self,
        params: &std::collections::HashMap<String, String>,
        bound_state: Option<&str>,
    ) -> Result<(super::login::NewSession, String), OAuthError> {
        let sso = self.sso()?.clone();
        let state = params.get("state").map(String::as_str).unwrap_or("");
        // The state must be the one this browser started: otherwise someone could log the
        // user in as themselves (login CSRF).
        if state.is_empty() || bound_state != Some(state) {
            return Err(OAuthError::new(
                "invalid_request",
                "this sign-in was not started in this browser; start again",
            ));
        }
        let pending = self.oauth.sso_pending.0.lock().unwrap_or_else(|p| p.into_inner()).remove(state);
        let Some((pending, at)) = pending.filter(|(_, at)| at.elapsed() < PENDING_TTL) else {
            return Err(OAuthError::new("invalid_request", "this sign-in expired; start again"));
        };
        let _ = at;
        if let Some(err) = params.get("error") {
            return Err(OAuthError::new("access_denied", format!("the provider refused the sign-in ({})", clip(err))));
        }
        let provider = self.provider().await?;
        if let Some(iss) = params.get("iss") {
            if iss.trim_end_matches('/') != provider.issuer.trim_end_matches('/') {
                return Err(OAuthError::new("invalid_request", "the answer came from another provider"));
            }
        }
        let code = params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OAuthError::new("invalid_request", "no code"))?;
        let http = self.http.for_reach(mesh_relay::Reach::Any);
        let failed = |why: String| {
            tracing::warn!(provider = %sso.issuer, why = %why, "single sign-on failed");
            OAuthError::new("access_denied", "the single sign-on provider did not confirm the sign-in")
        };
        let resp = http
            .post(&provider.token_endpoint)
            .basic_auth(form_encode(&sso.client_id), Some(form_encode(sso.client_secret.expose())))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", &self.sso_callback_url()),
                ("code_verifier", &pending.verifier),
            ])
            .timeout(PROVIDER_TIMEOUT)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(failed(format!("token endpoint answered {}", resp.status())));
        }
        let tokens: Value = resp.json().await.map_err(|e| failed(e.to_string()))?;
        let claims = id_token_claims(tokens["id_token"].as_str().unwrap_or(""))
            .ok_or_else(|| failed("no readable id_token".into()))?;
        check_claims(&claims, &provider.issuer, &sso.client_id, &pending.nonce).map_err(|w| failed(w.into()))?;
        let mut email = claims["email"].as_str().map(str::to_string);
        let mut verified = claims.get("email_verified").cloned();
        if email.is_none() {
            if let (Some(userinfo), Some(at)) = (&provider.userinfo_endpoint, tokens["access_token"].as_str()) {
                let info: Value = http
                    .get(userinfo)
                    .bearer_auth(at)
                    .timeout(PROVIDER_TIMEOUT)
                    .send()
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .json()
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                if info["sub"] != claims["sub"] {
                    return Err(failed("userinfo is about someone else".into()));
                }
                email = info["email"].as_str().map(str::to_string);
                verified = info.get("email_verified").cloned();
            }
        }
        let email = email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| e.contains('@'))
            .ok_or_else(|| failed("no e-mail".into()))?;
        // Only an address the provider verified identifies anyone here (some providers send
        // the claim as a string).
        if !matches!(&verified, Some(Value::Bool(true))) && verified.as_ref().and_then(Value::as_str) != Some("true") {
            return Err(OAuthError::new("access_denied", "the provider has not verified this e-mail address"));
        }
        if !sso.domains.is_empty() && !sso.domains.iter().any(|d| email.rsplit_once('@').is_some_and(|(_, h)| h == d)) {
            return Err(OAuthError::new("access_denied", "single sign-on is not open to this e-mail domain"));
        }
        let user_id = self.sso_user(&sso, &email, claims["name"].as_str()).await?;
        let session = self.start_session(&user_id, "sso").await?;
        self.audit_login(Some(&user_id), &email, Outcome::Ok, None).await;
        tracing::info!(user = %user_id, provider = %sso.issuer, "logged in through single sign-on");
        Ok((session, pending.authorize_query))
    }

    /// The user with this e-mail; a new one is created and added to the configured
    /// organisation with the configured role.
    async fn sso_user(
        &self,
        sso: &super::login::SsoSettings,
        email: &str,
        name: Option<&str>,
    ) -> Result<String, OAuthError> {
        if let Some(u) = self.store.get_user_by_email(email).await? {
            // An e-mail match is only as good as the provider: an account that has a password
            // of its own, or an operator's, is not handed to whoever the provider vouches for.
            let operator_org = self.store.operator_org().await?;
            let operator = match &operator_org {
                Some(org) => self.store.get_membership(org, &u.id).await?.is_some_and(|m| m.role == "owner"),
                None => false,
            };
            if operator || u.password_hash.is_some() {
                return Err(OAuthError::new(
                    "access_denied",
                    "this account signs in with its password, not through single sign-on",
                ));
            }
            return Ok(u.id);
        }
        // Nobody is added anywhere unless an operator named the organisation.
        let Some(slug) = &sso.org else {
            return Err(OAuthError::new(
                "access_denied",
                "there is no account for this e-mail address here; ask an administrator to add you",
            ));
        };
        let org = self.store.get_org_by_slug(slug).await?.map(|o| o.id).ok_or_else(|| {
            OAuthError::new("server_error", "the organisation for single sign-on users does not exist")
        })?;
        let now = mesh_core::id::now_ms();
        let user = mesh_store::User {
            id: mesh_core::id::new_id("usr"),
            email: email.to_string(),
            name: name.map(|n| n.chars().take(200).collect()).unwrap_or_else(|| email.to_string()),
            password_hash: None,
            created_at: now,
        };
        self.store.create_user(&user).await?;
        self.store
            .add_member(&mesh_store::Membership {
                org_id: org.clone(),
                user_id: user.id.clone(),
                role: sso.role.clone(),
                created_at: now,
            })
            .await?;
        self.access_changed(&org).await?;
        tracing::info!(user = %user.id, org = %org, role = %sso.role, "single sign-on user provisioned");
        Ok(user.id)
    }
}

/// The payload of a JWT, unverified (see the module's note on why that is enough here).
fn id_token_claims(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// OpenID Connect Core §3.1.3.7: issuer, audience, expiry and nonce.
fn check_claims(claims: &Value, issuer: &str, client_id: &str, nonce: &str) -> Result<(), &'static str> {
    if claims["iss"].as_str().map(|i| i.trim_end_matches('/')) != Some(issuer.trim_end_matches('/')) {
        return Err("id_token from another issuer");
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == client_id,
        Value::Array(list) => list.iter().any(|a| a == client_id),
        _ => false,
    };
    if !aud_ok {
        return Err("id_token for another client");
    }
    let now = mesh_core::id::now_ms() / 1000;
    if claims["exp"].as_i64().is_none_or(|exp| exp + 60 < now) {
        return Err("id_token expired");
    }
    if claims["nonce"].as_str() != Some(nonce) {
        return Err("id_token nonce differs");
    }
    Ok(())
}

/// RFC 6749 §2.3.1: Basic credentials are form-encoded before base64.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_token_claims_are_checked() {
        let exp = mesh_core::id::now_ms() / 1000 + 300;
        let good = json!({"iss": "https://idp.example", "aud": "mesh", "exp": exp, "nonce": "n1"});
        assert_eq!(check_claims(&good, "https://idp.example/", "mesh", "n1"), Ok(()));
        let with = |k: &str, v: Value| {
            let mut c = good.clone();
            c[k] = v;
            check_claims(&c, "https://idp.example", "mesh", "n1")
        };
        assert!(with("iss", json!("https://evil.example")).is_err());
        assert!(with("aud", json!("other")).is_err());
        assert_eq!(with("aud", json!(["other", "mesh"])), Ok(()));
        assert!(with("exp", json!(1)).is_err());
        assert!(with("nonce", json!("n2")).is_err());
        let jwt = format!("h.{}.s", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(good.to_string()));
        assert_eq!(id_token_claims(&jwt), Some(good));
    }
}
