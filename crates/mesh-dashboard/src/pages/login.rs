//! Logging in and out (the local accounts and single sign-on of docs/OAUTH.md), and choosing
//! the organisation to act in.

use crate::web::{Flash, Form, Viewer, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SSO_STATE_COOKIE};
use crate::{web, Dashboard};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use mesh_admin::oauth::login::{LoginError, SESSION_TTL};
use serde::Deserialize;
use std::sync::Arc;

/// A page outside the shell (no navigation): login and its errors.
fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (crate::layout::head(title, false))
            body.bare { main #main { (body) } }
        }
    };
    (status, markup).into_response()
}

/// Where to go after logging in: a path of this site only — never `//host`, a URL, or anything
/// with a character a browser would drop or reinterpret (`/\t/host` becomes `//host`).
fn local(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/') && !n.starts_with("//") && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n
        }
        _ => "/",
    }
}

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

fn login_page(d: &Dashboard, status: StatusCode, next: &str, email: &str, error: Option<&str>) -> Response {
    let csrf = mesh_core::id::random_base62(32);
    let sso = d.admin.oauth.settings.sso.as_ref().map(|s| s.label.clone());
    let body = html! {
        h1 { "Log in to MCP Mesh" }
        @if let Some(e) = error { p.flash.err role="alert" { (e) } }
        form #login method="post" action="/login" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            label for="email" { "E-mail" }
            input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            button type="submit" { "Log in" }
        }
        @if let Some(label) = sso {
            form #sso method="post" action="/login/sso" {
                input type="hidden" name="csrf" value=(csrf);
                button.secondary type="submit" { (label) }
            }
        }
    };
    let mut resp = bare(status, "Log in", body);
    d.set_cookie(&mut resp, LOGIN_CSRF_COOKIE, &csrf, 3600);
    resp
}

/// GET /login.
pub(crate) async fn page(State(d): State<Arc<Dashboard>>, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    // A link from another site may bring the login page, not where to go after it: that would
    // pass the cross-site guard (lib.rs) on the way back.
    let foreign =
        headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site" || v.as_bytes() == b"same-site");
    let next = if foreign { "/" } else { local(q.next.as_deref()) };
    if let Some(c) = d.read_cookie(&headers, SESSION_COOKIE) {
        if let Some(session) = d.admin.login_session(c).await {
            // Only when the dashboard can serve them: a user without an organisation would
            // bounce between here and the page saying so.
            if d.admin.browser_user(&session, None).await.is_ok() {
                return web::see_other(next);
            }
        }
    }
    login_page(&d, StatusCode::OK, next, "", None)
}

/// POST /login: e-mail and password, under the authorization server's backoff.
pub(crate) async fn submit(
    State(d): State<Arc<Dashboard>>,
    peer: web::Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let next = local(Some(f.get("next"))).to_string();
    let csrf = d.read_cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if f.get("csrf").is_empty() || !web::same(f.get("csrf"), csrf) {
        return login_page(
            &d,
            StatusCode::FORBIDDEN,
            &next,
            f.get("email"),
            Some("The form expired; please try again."),
        );
    }
    let ip = mesh_admin::oauth::client_ip(d.ip_header.as_ref(), peer.0, &headers);
    match d.admin.password_login(f.get("email"), f.get("password"), ip).await {
        Ok(new) => {
            let mut resp = web::see_other(&next);
            d.set_cookie(&mut resp, SESSION_COOKIE, &new.cookie, SESSION_TTL.as_secs());
            d.set_cookie(&mut resp, LOGIN_CSRF_COOKIE, "", 0);
            resp
        }
        Err(LoginError::Invalid) => {
            login_page(&d, StatusCode::UNAUTHORIZED, &next, f.get("email"), Some("Wrong e-mail or password."))
        }
        Err(LoginError::Throttled(wait)) => {
            let secs = wait.as_secs().max(1);
            let msg = format!("Too many failed attempts. Try again in {secs} s.");
            let mut resp = login_page(&d, StatusCode::TOO_MANY_REQUESTS, &next, f.get("email"), Some(&msg));
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
    }
}

/// POST /login/sso: off to the OpenID provider; `/oauth/sso/callback` brings the browser back
/// here (an SSO login started without an authorization request returns to the dashboard).
pub(crate) async fn sso(State(d): State<Arc<Dashboard>>, headers: HeaderMap, body: Bytes) -> Response {
    let f = Form::parse(&body);
    let csrf = d.read_cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if f.get("csrf").is_empty() || !web::same(f.get("csrf"), csrf) {
        return login_page(&d, StatusCode::FORBIDDEN, "/", "", Some("The form expired; please try again."));
    }
    match d.admin.sso_start("").await {
        Ok((url, state)) => {
            let mut resp = web::see_other(&url);
            d.set_cookie(&mut resp, SSO_STATE_COOKIE, &state, 600);
            resp
        }
        Err(e) => login_page(&d, StatusCode::BAD_GATEWAY, "/", "", Some(&e.description)),
    }
}

/// POST /logout: ends the login session (everywhere it was used: the dashboard and the
/// authorization server's pages).
/// Needs only the session (not an organisation): a user who lost theirs can still log out.
pub(crate) async fn logout(State(d): State<Arc<Dashboard>>, headers: HeaderMap, body: Bytes) -> Response {
    let f = Form::parse(&body);
    let Some(cookie) = d.read_cookie(&headers, SESSION_COOKIE) else { return web::see_other("/login") };
    let Some(session) = d.admin.login_session(cookie).await else { return web::see_other("/login") };
    if !web::session_csrf_ok(&session, &f) {
        return forbidden_form();
    }
    d.admin.logout_session(&session.hash).await;
    crate::pages::playground::end_session(&d, &session.hash).await;
    let mut resp = web::see_other("/login");
    d.set_cookie(&mut resp, SESSION_COOKIE, "", 0);
    d.forget_org(&mut resp);
    resp
}

/// POST /org: act in another of the viewer's organisations.
pub(crate) async fn switch_org(State(d): State<Arc<Dashboard>>, v: Viewer, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if !web::session_csrf_ok(&v.session, &f) {
        return forbidden_form();
    }
    let want = f.get("org");
    match v.who.orgs.iter().find(|(o, _)| o.id == want) {
        Some((o, _)) => {
            let mut resp = d.after("/", Flash::Ok(format!("Now acting in {}.", o.name)));
            d.choose_org(&mut resp, &o.id);
            resp
        }
        None => d.after("/", Flash::Err("That organisation is not one of yours.".into())),
    }
}

/// The answer to a state change whose anti-CSRF field is missing or wrong: refused, nothing done.
pub(crate) fn forbidden_form() -> Response {
    tracing::warn!("dashboard form refused: missing or wrong anti-CSRF token");
    bare(
        StatusCode::FORBIDDEN,
        "Refused",
        html! {
            h1 { "Refused" }
            p.flash.err role="alert" { "This form is missing its security token or it has expired. Nothing was changed." }
            p { a href="/" { "Back to the dashboard" } }
        },
    )
}

/// The page for a user who belongs to no organisation (they can still log out).
pub(crate) fn no_org(csrf: &str) -> Response {
    bare(
        StatusCode::FORBIDDEN,
        "No organisation",
        html! {
            h1 { "No organisation" }
            p { "Your account does not belong to any organisation yet. Ask an admin to add you." }
            form method="post" action="/logout" {
                input type="hidden" name="csrf" value=(csrf);
                button.secondary type="submit" { "Log out" }
            }
        },
    )
}
