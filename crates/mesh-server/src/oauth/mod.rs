//! The OAuth 2.1 authorization server's HTTP side (#17, docs/OAUTH.md): discovery documents,
//! the authorization endpoint with its login and consent pages, and the token, registration
//! and revocation endpoints. Decisions are `mesh_admin::oauth`'s; this module speaks HTTP.

mod metadata;
mod pages;
mod upstream;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_admin::oauth::flow::{params, AuthRequest, AuthorizeError};
use mesh_admin::oauth::login::LoginError;
use mesh_admin::oauth::OAuthError;
use mesh_admin::Admin;
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// The login session's cookie.
const SESSION_COOKIE: &str = "mesh_session";
/// The login form's double-submit anti-CSRF cookie.
const LOGIN_CSRF_COOKIE: &str = "mesh_login_csrf";
/// Largest form or JSON body the endpoints read.
const MAX_FORM: usize = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub admin: Admin,
    /// Where to read the client's address from, behind a proxy (`MESH_CLIENT_IP_HEADER`).
    pub ip_header: Option<header::HeaderName>,
}

pub(crate) fn router(ctx: Ctx) -> Router {
    let meta = metadata::router(ctx.admin.clone());
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/login", post(login))
        .route("/oauth/logout", post(logout))
        .route("/oauth/consent", post(consent))
        .route("/oauth/sso/start", post(sso_start))
        .route("/oauth/sso/callback", get(sso_callback))
        .route("/oauth/token", post(token).options(preflight))
        .route("/oauth/register", post(register).options(preflight))
        .route("/oauth/revoke", post(revoke).options(preflight))
        .route("/oauth/upstream/start", get(upstream::start))
        .route("/oauth/upstream/login", post(upstream::login))
        .route("/oauth/upstream/callback", get(upstream::callback))
        .route(mesh_admin::upstream_oauth::METADATA_DOCUMENT_PATH, get(upstream::client_document))
        .with_state(ctx)
        .merge(meta)
}

/// The peer's address, when the server was started with it (tests may build the router alone).
pub(crate) struct Peer(Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

/// The address a request came from (`MESH_CLIENT_IP_HEADER` behind a proxy).
fn client_ip(ctx: &Ctx, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
    mesh_admin::oauth::client_ip(ctx.ip_header.as_ref(), peer, headers)
}

use mesh_admin::oauth::cookie;

/// This mesh's cookie `base` from the request.
fn read_cookie<'a>(ctx: &Ctx, headers: &'a HeaderMap, base: &str) -> Option<&'a str> {
    cookie(headers, &ctx.admin.oauth.settings.cookie_name(base))
}

fn set_cookie(resp: &mut Response, ctx: &Ctx, base: &str, value: &str, max_age: u64) {
    if let Ok(v) = HeaderValue::from_str(&ctx.admin.oauth.settings.set_cookie(base, value, max_age)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn authorize_error(e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Page(msg) => pages::error(StatusCode::BAD_REQUEST, &msg),
        AuthorizeError::Redirect(url) => see_other(&url),
    }
}

/// GET /oauth/authorize: checks the request, then shows the login page, the consent page, or
/// (consent remembered) redirects back with a code at once.
async fn authorize(State(ctx): State<Ctx>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let query = q.unwrap_or_default();
    let req = match ctx.admin.oauth_authorize_request(&query).await {
        Ok(r) => r,
        Err(e) => return authorize_error(e),
    };
    let session = match read_cookie(&ctx, &headers, SESSION_COOKIE) {
        Some(c) => ctx.admin.login_session(c).await,
        None => None,
    };
    // `prompt=login` wants a login now: a session older than a minute does not count.
    let fresh = |s: &mesh_store::UserSession| {
        !req.prompt.as_deref().is_some_and(|p| p.split(' ').any(|v| v == "login"))
            || mesh_core::id::now_ms() - s.created_at < 60_000
    };
    match session.filter(fresh) {
        None => login_page(&ctx, StatusCode::OK, &query, &req, None, ""),
        Some(s) => consent_or_code(&ctx, &query, &req, &s).await,
    }
}

fn login_page(
    ctx: &Ctx,
    status: StatusCode,
    query: &str,
    req: &AuthRequest,
    error: Option<&str>,
    email: &str,
) -> Response {
    let csrf = mesh_core::id::random_base62(32);
    let sso = ctx.admin.oauth.settings.sso.as_ref().map(|s| s.label.as_str());
    let mut resp = pages::login(
        status,
        &pages::Login {
            action: "login",
            request: query,
            csrf: &csrf,
            client_name: &req.client.name,
            error,
            email,
            sso_label: sso,
        },
    );
    set_cookie(&mut resp, ctx, LOGIN_CSRF_COOKIE, &csrf, 3600);
    resp
}

async fn consent_or_code(ctx: &Ctx, query: &str, req: &AuthRequest, s: &mesh_store::UserSession) -> Response {
    let admin = &ctx.admin;
    let internal = |e: OAuthError| pages::error(StatusCode::INTERNAL_SERVER_ERROR, &e.description);
    let orgs = match admin.oauth_orgs_for(&s.user_id, &req.route).await {
        Ok(o) => o,
        Err(e) => return internal(e),
    };
    match admin.oauth_remembered(&s.user_id, req, &orgs).await {
        Ok(Some(url)) => return see_other(&url),
        Ok(None) => {}
        Err(e) => return authorize_error(e),
    }
    let email = admin.store.get_user(&s.user_id).await.ok().flatten().map(|u| u.email).unwrap_or_default();
    if orgs.is_empty() {
        return pages::no_access(&email, &req.resource);
    }
    let orgs: Vec<(String, String, String)> = orgs.into_iter().map(|(o, role)| (o.id, o.name, role)).collect();
    let redirect = url::Url::parse(&req.redirect_uri).ok();
    let redirect_host = redirect.as_ref().and_then(|u| u.host_str()).unwrap_or("").to_string();
    let what = match req.route.as_str() {
        "" => "the management server: everything your role may manage".to_string(),
        r => match r.strip_prefix("gateway/") {
            Some(g) => format!("the virtual MCP '{g}'"),
            None => format!("the MCP connection '{r}'"),
        },
    };
    pages::consent(&pages::Consent {
        request: query,
        csrf: &s.csrf,
        user_email: &email,
        client_name: &req.client.name,
        client_id: &req.client.id,
        client_uri: req.client.client_uri.as_deref(),
        redirect_host: &redirect_host,
        loopback_only: req.client.redirect_uris.iter().all(|u| mesh_auth::redirect::on_loopback(u)),
        resource: &req.resource,
        what: &what,
        scope: &mesh_auth::scope::format(&req.scope),
        orgs: &orgs,
    })
}

fn form(body: &Bytes) -> Option<HashMap<String, String>> {
    if body.len() > MAX_FORM {
        return None;
    }
    params(std::str::from_utf8(body).ok()?)
}

/// POST /oauth/login: e-mail and password; on success a session cookie and back to the
/// authorization request.
async fn login(State(ctx): State<Ctx>, peer: Peer, headers: HeaderMap, body: Bytes) -> Response {
    let Some(f) = form(&body) else { return pages::error(StatusCode::BAD_REQUEST, "the form is malformed") };
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let query = get("request");
    let req = match ctx.admin.oauth_authorize_request(query).await {
        Ok(r) => r,
        Err(e) => return authorize_error(e),
    };
    if get("csrf").is_empty() || read_cookie(&ctx, &headers, LOGIN_CSRF_COOKIE) != Some(get("csrf")) {
        return login_page(&ctx, StatusCode::FORBIDDEN, query, &req, Some("The form expired; please try again."), "");
    }
    let ip = client_ip(&ctx, peer.0, &headers);
    let email = get("email");
    match ctx.admin.password_login(email, get("password"), ip).await {
        Ok(new) => {
            // Relative, like the forms: under a proxy's path prefix it stays under it.
            let mut resp = see_other(&format!("authorize?{query}"));
            let ttl = mesh_admin::oauth::login::SESSION_TTL.as_secs();
            set_cookie(&mut resp, &ctx, SESSION_COOKIE, &new.cookie, ttl);
            set_cookie(&mut resp, &ctx, LOGIN_CSRF_COOKIE, "", 0);
            resp
        }
        Err(LoginError::Invalid) => {
            login_page(&ctx, StatusCode::UNAUTHORIZED, query, &req, Some("Wrong e-mail or password."), email)
        }
        Err(LoginError::Throttled(wait)) => {
            let secs = wait.as_secs().max(1);
            let msg = format!("Too many failed attempts. Try again in {secs} s.");
            let mut resp = login_page(&ctx, StatusCode::TOO_MANY_REQUESTS, query, &req, Some(&msg), email);
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
    }
}

/// POST /oauth/logout: ends the login session.
async fn logout(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Some(c) = read_cookie(&ctx, &headers, SESSION_COOKIE) {
        ctx.admin.logout(c).await;
    }
    let mut resp = pages::error(StatusCode::OK, "You are logged out. Go back to the application to log in again.");
    set_cookie(&mut resp, &ctx, SESSION_COOKIE, "", 0);
    resp
}

/// POST /oauth/consent: the user's decision, from a logged-in session's own form.
async fn consent(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(f) = form(&body) else { return pages::error(StatusCode::BAD_REQUEST, "the form is malformed") };
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let session = match read_cookie(&ctx, &headers, SESSION_COOKIE) {
        Some(c) => ctx.admin.login_session(c).await,
        None => None,
    };
    let Some(s) = session else {
        return pages::error(
            StatusCode::UNAUTHORIZED,
            "Your login expired; go back to the application and start again.",
        );
    };
    // The form must be this session's own: a page elsewhere cannot consent for the user.
    if get("csrf") != s.csrf {
        return pages::error(StatusCode::FORBIDDEN, "The form expired; go back to the application and start again.");
    }
    let req = match ctx.admin.oauth_authorize_request(get("request")).await {
        Ok(r) => r,
        Err(e) => return authorize_error(e),
    };
    let allow = match get("decision") {
        "allow" => true,
        "deny" => false,
        _ => return pages::error(StatusCode::BAD_REQUEST, "decision must be allow or deny"),
    };
    match ctx.admin.oauth_decide(&s.user_id, &req, get("org"), allow).await {
        Ok(url) => see_other(&url),
        Err(e) => authorize_error(e),
    }
}

/// The SSO login's state, bound to the browser that started it.
const SSO_STATE_COOKIE: &str = "mesh_sso_state";

/// POST /oauth/sso/start: from the login page's SSO button to the provider.
async fn sso_start(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(f) = form(&body) else { return pages::error(StatusCode::BAD_REQUEST, "the form is malformed") };
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    if let Err(e) = ctx.admin.oauth_authorize_request(get("request")).await {
        return authorize_error(e);
    }
    if get("csrf").is_empty() || read_cookie(&ctx, &headers, LOGIN_CSRF_COOKIE) != Some(get("csrf")) {
        return pages::error(StatusCode::FORBIDDEN, "The form expired; go back to the application and start again.");
    }
    match ctx.admin.sso_start(get("request")).await {
        Ok((url, state)) => {
            let mut resp = see_other(&url);
            set_cookie(&mut resp, &ctx, SSO_STATE_COOKIE, &state, 600);
            resp
        }
        Err(e) => pages::error(StatusCode::BAD_GATEWAY, &e.description),
    }
}

/// GET /oauth/sso/callback: the provider sends the browser back; on success a login session
/// and back to the authorization request.
async fn sso_callback(State(ctx): State<Ctx>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let Some(p) = params(&q.unwrap_or_default()) else {
        return pages::error(StatusCode::BAD_REQUEST, "a parameter is given more than once");
    };
    match ctx.admin.sso_finish(&p, read_cookie(&ctx, &headers, SSO_STATE_COOKIE)).await {
        Ok((new, query)) => {
            // Started from the dashboard's login page (no authorization request): back to it.
            let to = if query.is_empty() { "../../".to_string() } else { format!("../authorize?{query}") };
            let mut resp = see_other(&to);
            set_cookie(&mut resp, &ctx, SESSION_COOKIE, &new.cookie, mesh_admin::oauth::login::SESSION_TTL.as_secs());
            set_cookie(&mut resp, &ctx, SSO_STATE_COOKIE, "", 0);
            resp
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            pages::error(
                if status == StatusCode::UNAUTHORIZED { StatusCode::FORBIDDEN } else { status },
                &e.description,
            )
        }
    }
}

/// The client's HTTP Basic credentials (RFC 6749 §2.3.1: each part form-urlencoded).
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let (id, secret) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    let decode = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((decode(id)?, decode(secret)?))
}

/// An OAuth error response (RFC 6749 §5.2).
fn oauth_error(e: &OAuthError, basic_used: bool) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = (status, Json(json!({"error": e.error, "error_description": e.description}))).into_response();
    no_store(&mut resp);
    if status == StatusCode::UNAUTHORIZED && basic_used {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"mcp-mesh\""));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    resp
}

fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    cors(h);
}

/// Browser-based MCP clients call these endpoints from their own origin; no cookie is read
/// here, so any origin may.
pub(crate) fn cors(h: &mut HeaderMap) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
}

async fn preflight() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    cors(h);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, mcp-protocol-version"),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    resp
}

/// POST /oauth/token.
async fn token(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(f) = form(&body) else {
        return oauth_error(
            &OAuthError::new("invalid_request", "the body must be a form without repeated parameters"),
            false,
        );
    };
    let creds = basic(&headers);
    let used = creds.is_some();
    match ctx.admin.oauth_token(&f, creds).await {
        Ok(v) => {
            let mut resp = Json(v).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => {
            tracing::info!(error = e.error, detail = %e.description, "token request refused");
            oauth_error(&e, used)
        }
    }
}

/// POST /oauth/register (RFC 7591).
async fn register(State(ctx): State<Ctx>, peer: Peer, headers: HeaderMap, body: Bytes) -> Response {
    if body.len() > MAX_FORM {
        return oauth_error(&OAuthError::new("invalid_client_metadata", "the body is too large"), false);
    }
    let ip = client_ip(&ctx, peer.0, &headers);
    match ctx.admin.register_oauth_client(ip, &body).await {
        Ok(v) => {
            let mut resp = (StatusCode::CREATED, Json(v)).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => oauth_error(&e, false),
    }
}

/// POST /oauth/revoke (RFC 7009).
async fn revoke(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(f) = form(&body) else {
        return oauth_error(&OAuthError::new("invalid_request", "the body must be a form"), false);
    };
    let creds = basic(&headers);
    let used = creds.is_some();
    match ctx.admin.oauth_revoke(&f, creds).await {
        Ok(()) => {
            let mut resp = StatusCode::OK.into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => oauth_error(&e, used),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        use base64::Engine as _;
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode("my%20client:s%3Acret");
        h.insert(header::AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        assert_eq!(basic(&h), Some(("my client".into(), "s:cret".into())));
        h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(basic(&h), None);
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; mesh_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, "mesh_session"), Some("abc"));
        assert_eq!(cookie(&h, "mesh"), None);
    }
}
