//! The HTTP side every page shares: cookies, forms, who is logged in, CSRF, and running a
//! management operation as the viewer with its audit row.

use crate::Dashboard;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mesh_admin::browser::BrowserUser;
use mesh_admin::AdminError;
use mesh_core::audit::{AuditSink, CallRecord, Origin, Outcome};
use mesh_store::UserSession;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// The login session's cookie, shared with the authorization server's pages: one login serves
/// both.
pub(crate) const SESSION_COOKIE: &str = "mesh_session";
/// The organisation the viewer acts in.
const ORG_COOKIE: &str = "mesh_org";
/// A one-shot message for the next page.
const FLASH_COOKIE: &str = "mesh_flash";
/// The login form's double-submit anti-CSRF cookie (before there is a session to hold one).
pub(crate) const LOGIN_CSRF_COOKIE: &str = "mesh_login_csrf";
/// The SSO round trip's state, shared with `/oauth/sso/callback`.
pub(crate) const SSO_STATE_COOKIE: &str = "mesh_sso_state";
/// Largest form body read.
pub(crate) const MAX_FORM: usize = 256 * 1024;

use mesh_admin::oauth::cookie;

impl Dashboard {
    /// This mesh's cookie `base` from the request (names shared with the OAuth pages).
    pub(crate) fn read_cookie<'a>(&self, headers: &'a HeaderMap, base: &str) -> Option<&'a str> {
        cookie(headers, &self.admin.oauth.settings.cookie_name(base))
    }

    /// Adds a `Set-Cookie` (the OAuth pages' attributes); `max_age` 0 deletes it.
    pub(crate) fn set_cookie(&self, resp: &mut Response, base: &str, value: &str, max_age: u64) {
        if let Ok(v) = HeaderValue::from_str(&self.admin.oauth.settings.set_cookie(base, value, max_age)) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    /// A redirect after a form, carrying `flash` to the next page.
    pub(crate) fn after(&self, location: &str, flash: Flash) -> Response {
        let mut resp = see_other(location);
        let value: String = url::form_urlencoded::byte_serialize(flash.encode().as_bytes()).collect();
        self.set_cookie(&mut resp, FLASH_COOKIE, &value, 60);
        resp
    }
}

/// A `303 See Other` to `location`.
pub(crate) fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A message shown once on the next page: a success, or what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Flash {
    Ok(String),
    Err(String),
}

impl Flash {
    fn encode(&self) -> String {
        match self {
            Flash::Ok(m) => format!("ok:{}", clip(m)),
            Flash::Err(m) => format!("err:{}", clip(m)),
        }
    }

    fn decode(raw: &str) -> Option<Flash> {
        let text: String = url::form_urlencoded::parse(format!("x={raw}").as_bytes()).next()?.1.into_owned();
        match text.split_once(':')? {
            ("ok", m) => Some(Flash::Ok(m.to_string())),
            ("err", m) => Some(Flash::Err(m.to_string())),
            _ => None,
        }
    }
}

/// At most 600 characters (a cookie stays well under browsers' 4 KB).
fn clip(s: &str) -> String {
    s.chars().take(600).collect()
}

/// A submitted form: every field, in order (checkboxes repeat a name).
#[derive(Debug, Default)]
pub(crate) struct Form(pub Vec<(String, String)>);

impl Form {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub(crate) fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, trimmed ("" when absent).
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).unwrap_or("")
    }

    /// The value of `name` when present and not blank.
    pub(crate) fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name)).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// Every value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// Whether a form carries `session`'s anti-CSRF value (forms not bound to an organisation:
/// logout, switching organisations).
pub(crate) fn session_csrf_ok(session: &UserSession, form: &Form) -> bool {
    let given = form.get("csrf");
    !given.is_empty() && same(given, &session.csrf)
}

/// Whether two strings are equal, in time that does not depend on where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    // Comparing digests: equal length, and a difference found byte by byte says nothing about
    // the secret's own bytes.
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

/// The peer's address, when the server was started with it.
pub(crate) struct Peer(pub Option<std::net::SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0)))
    }
}

/// The logged-in viewer of a page: their session, organisations and principal, and the flash
/// message of the previous form.
pub(crate) struct Viewer {
    /// The mesh's base URL as clients reach it.
    pub base: String,
    pub session: UserSession,
    pub who: BrowserUser,
    pub flash: Option<Flash>,
}

impl Viewer {
    /// Whether the viewer may change the organisation's configuration (controls are shown only
    /// then; the services refuse anyway).
    pub(crate) fn manages(&self) -> bool {
        self.who.principal.role.can_manage()
    }

    /// Whether the viewer runs the installation.
    pub(crate) fn operator(&self) -> bool {
        self.who.principal.is_operator()
    }

    /// The organisation acted in.
    pub(crate) fn org(&self) -> &mesh_store::Org {
        let id = &self.who.principal.org_id;
        self.who.orgs.iter().map(|(o, _)| o).find(|o| &o.id == id).unwrap_or(&self.who.orgs[0].0)
    }
}

/// Why there is no viewer: where the browser should go instead.
pub(crate) struct NoViewer(Response);

impl IntoResponse for NoViewer {
    fn into_response(self) -> Response {
        self.0
    }
}

impl FromRequestParts<Arc<Dashboard>> for Viewer {
    type Rejection = NoViewer;

    async fn from_request_parts(parts: &mut Parts, d: &Arc<Dashboard>) -> Result<Viewer, NoViewer> {
        let to_login = || {
            let next: String = url::form_urlencoded::byte_serialize(
                parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").as_bytes(),
            )
            .collect();
            NoViewer(see_other(&format!("/login?next={next}")))
        };
        let Some(cookie) = d.read_cookie(&parts.headers, SESSION_COOKIE) else { return Err(to_login()) };
        let Some(session) = d.admin.login_session(cookie).await else { return Err(to_login()) };
        let org = d.read_cookie(&parts.headers, ORG_COOKIE).map(str::to_string);
        let who = match d.admin.browser_user(&session, org.as_deref()).await {
            Ok(w) => w,
            // The organisation in the cookie is no longer theirs: their first one.
            Err(_) if org.is_some() => match d.admin.browser_user(&session, None).await {
                Ok(w) => w,
                Err(_) => return Err(NoViewer(crate::pages::login::no_org(&session.csrf))),
            },
            Err(_) => return Err(NoViewer(crate::pages::login::no_org(&session.csrf))),
        };
        let flash = d.read_cookie(&parts.headers, FLASH_COOKIE).and_then(Flash::decode);
        let base = d.public_url.clone().unwrap_or_else(|| {
            let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            format!("http://{host}")
        });
        Ok(Viewer { base, session, who, flash })
    }
}

impl Dashboard {
    /// Sets the organisation cookie.
    pub(crate) fn choose_org(&self, resp: &mut Response, org_id: &str) {
        self.set_cookie(resp, ORG_COOKIE, org_id, mesh_admin::oauth::login::SESSION_TTL.as_secs());
    }

    /// Clears the organisation cookie (at logout).
    pub(crate) fn forget_org(&self, resp: &mut Response) {
        self.set_cookie(resp, ORG_COOKIE, "", 0);
    }

    /// Clears the flash cookie once a page has shown it.
    pub(crate) fn shown(&self, resp: &mut Response, v: &Viewer) {
        if v.flash.is_some() {
            self.set_cookie(resp, FLASH_COOKIE, "", 0);
        }
    }

    /// Checks a form's anti-CSRF field against the viewer's session (the value lives server-side
    /// with the session; a page on another site cannot read it), and that the form was made for
    /// the organisation the viewer acts in now: a page left open in another tab before switching
    /// organisations must not act in the new one.
    pub(crate) fn csrf_ok(v: &Viewer, form: &Form) -> bool {
        session_csrf_ok(&v.session, form) && form.get("_org") == v.who.principal.org_id
    }

    /// Runs management tool `tool` with `args` as the viewer: the one path every page's
    /// data and every form's change take, deciding exactly as the MCP tools do. A change is
    /// recorded in the audit trail (route kind `dashboard`, method `tools/call`, the tool's
    /// name and arguments, which the audit writer redacts); reads are not.
    pub(crate) async fn run(&self, v: &Viewer, tool: &str, args: Value, change: bool) -> Result<Value, AdminError> {
        let started = Instant::now();
        let args = match args {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let logged = change.then(|| Value::Object(args.clone()).to_string());
        let r = match self.tools.invoke(&v.who.principal, tool, args).await {
            Some(r) => r,
            None => Err(AdminError::Invalid(format!("unknown operation {tool}"))),
        };
        if let Some(arguments) = logged {
            self.record(v, tool, arguments, r.as_ref().err(), started);
        }
        r
    }

    /// The audit row of a change made in the dashboard (`name`: the management tool, or the
    /// service a page called directly).
    pub(crate) fn record(
        &self,
        v: &Viewer,
        name: &str,
        arguments: String,
        error: Option<&AdminError>,
        started: Instant,
    ) {
        let (outcome, error) = match error {
            None => (Outcome::Ok, None),
            Some(e @ AdminError::Forbidden(_)) => (Outcome::Denied, Some(e.public_message())),
            Some(e) => (Outcome::ToolError, Some(e.public_message())),
        };
        self.admin.audit.record(CallRecord {
            time_ms: mesh_core::id::now_ms() - started.elapsed().as_millis() as i64,
            origin: Arc::new(Origin {
                principal: v.who.principal.clone(),
                session_id: String::new(),
                client: None,
                route_kind: "dashboard",
                route: "dashboard".into(),
            }),
            method: "tools/call".into(),
            name: Some(name.to_string()),
            arguments: Some(arguments),
            outcome,
            error,
            latency_us: started.elapsed().as_micros() as u64,
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
    fn flash_round_trips_through_its_cookie_encoding() {
        for f in [Flash::Ok("Saved 'x' & done".into()), Flash::Err("a: b; c=d".into())] {
            let raw: String = url::form_urlencoded::byte_serialize(f.encode().as_bytes()).collect();
            assert!(!raw.contains(';') && !raw.contains(' '));
            assert_eq!(Flash::decode(&raw), Some(f));
        }
        assert_eq!(Flash::decode("bogus"), None);
    }

    #[test]
    fn forms_keep_repeated_fields_and_compare_secrets_whole() {
        let f = Form::parse(b"a=1&t=x&t=y&b=+2+");
        assert_eq!(f.all("t"), ["x", "y"]);
        assert_eq!(f.get("b"), "2");
        assert_eq!(f.opt("c"), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
