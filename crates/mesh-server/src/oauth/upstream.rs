//! The browser's side of upstream OAuth (#19): the mesh's authorization link, which only the
//! user it was made for may follow (logged in to the mesh, with the login page when not), and
//! the callback the upstream's authorization server redirects to. Decisions are
//! `mesh_admin::upstream_oauth`'s.

use super::{client_ip, form, pages, read_cookie, see_other, set_cookie, Ctx, Peer, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mesh_admin::oauth::login::LoginError;
use mesh_admin::AdminError;

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_deref().unwrap_or_default().as_bytes()).into_owned().collect()
}

fn refused(e: AdminError) -> Response {
    let status = match &e {
        AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::UpstreamAuth(_) => StatusCode::BAD_GATEWAY,
        AdminError::Store(_) | AdminError::Vault(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    pages::error(status, &e.public_message())
}

async fn session_user(ctx: &Ctx, headers: &HeaderMap) -> Option<String> {
    let cookie = read_cookie(ctx, headers, SESSION_COOKIE)?;
    ctx.admin.login_session(cookie).await.map(|s| s.user_id)
}

fn login_page(ctx: &Ctx, status: StatusCode, login: &str, error: Option<&str>, email: &str) -> Response {
    let csrf = mesh_core::id::random_base62(32);
    let mut resp = pages::login(
        status,
        &pages::Login {
            action: "login",
            request: login,
            csrf: &csrf,
            client_name: "MCP Mesh (to authorize a connection for you)",
            error,
            email,
            sso_label: None,
        },
    );
    set_cookie(&mut resp, ctx, LOGIN_CSRF_COOKIE, &csrf, 3600);
    resp
}

/// GET /oauth/upstream/start?login=…: to the upstream's authorization server, if the browser
/// is logged in to the mesh as the user the link is for; the login page if it is not logged in.
pub(super) async fn start(State(ctx): State<Ctx>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let login = query_pairs(&q).into_iter().find(|(k, _)| k == "login").map(|(_, v)| v).unwrap_or_default();
    let Some(user) = session_user(&ctx, &headers).await else {
        return login_page(&ctx, StatusCode::OK, &login, None, "");
    };
    match ctx.admin.upstream_login_redirect(&login, &user).await {
        Ok(url) => see_other(&url),
        Err(e) => refused(e),
    }
}

/// POST /oauth/upstream/login: the login form of the start page; back to the start on success.
pub(super) async fn login(State(ctx): State<Ctx>, peer: Peer, headers: HeaderMap, body: Bytes) -> Response {
    let Some(f) = form(&body) else { return pages::error(StatusCode::BAD_REQUEST, "the form is malformed") };
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let login = get("request");
    if get("csrf").is_empty() || read_cookie(&ctx, &headers, LOGIN_CSRF_COOKIE) != Some(get("csrf")) {
        return login_page(&ctx, StatusCode::FORBIDDEN, login, Some("The form expired; please try again."), "");
    }
    let ip = client_ip(&ctx, peer.0, &headers);
    let email = get("email");
    match ctx.admin.password_login(email, get("password"), ip).await {
        Ok(new) => {
            let back =
                format!("start?login={}", url::form_urlencoded::byte_serialize(login.as_bytes()).collect::<String>());
            let mut resp = see_other(&back);
            let ttl = mesh_admin::oauth::login::SESSION_TTL.as_secs();
            set_cookie(&mut resp, &ctx, SESSION_COOKIE, &new.cookie, ttl);
            set_cookie(&mut resp, &ctx, LOGIN_CSRF_COOKIE, "", 0);
            resp
        }
        Err(LoginError::Invalid) => {
            login_page(&ctx, StatusCode::UNAUTHORIZED, login, Some("Wrong e-mail or password."), email)
        }
        Err(LoginError::Throttled(wait)) => {
            let secs = wait.as_secs().max(1);
            let msg = format!("Too many failed attempts. Try again in {secs} s.");
            let mut resp = login_page(&ctx, StatusCode::TOO_MANY_REQUESTS, login, Some(&msg), email);
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
    }
}

/// GET /oauth/upstream/callback: the authorization server's redirect, in the browser of the user
/// who started it (its mesh login cookie is sent on this top-level navigation, SameSite=Lax).
pub(super) async fn callback(State(ctx): State<Ctx>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let params = query_pairs(&q);
    let Some(user) = session_user(&ctx, &headers).await else {
        return pages::error(
            StatusCode::UNAUTHORIZED,
            "Your MCP Mesh login expired during the authorization; open the link from your application again.",
        );
    };
    match ctx.admin.upstream_callback(&params, &user).await {
        Ok(connection) => pages::upstream_done(&connection),
        Err(e) => refused(e),
    }
}

/// GET /oauth/upstream/client.json: the mesh's client ID metadata document, which authorization
/// servers that accept them fetch instead of being registered at. Public by nature; only
/// published when the mesh's public URL is https (the document's URL is the client id).
pub(super) async fn client_document(State(ctx): State<Ctx>) -> Response {
    match ctx.admin.upstream_metadata_document() {
        Some(doc) => {
            let mut resp = axum::Json(doc).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
            resp
        }
        None => pages::error(
            StatusCode::NOT_FOUND,
            "this mesh publishes no client metadata document: its public URL (MESH_PUBLIC_URL) is not https",
        ),
    }
}
