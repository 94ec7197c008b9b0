//! The web dashboard (docs/DASHBOARD.md): server-rendered pages for every admin task, served by
//! the `mcp-mesh` binary at `/` next to the MCP routes.
//!
//! Pages are HTML written with `maud` (compiled into the binary, escaped by construction) and
//! one small stylesheet and script embedded with `include_str!`; nothing is built by Node.
//! Every read and every change goes through the management tools' own dispatcher
//! (`ManagementServer::invoke`) as the logged-in user's principal, so the dashboard cannot
//! decide differently from the MCP tools, REST or the CLI. The playground calls tools through
//! the relay itself, governed like any client.
#![forbid(unsafe_code)]

mod layout;
pub mod pages;
mod web;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use mesh_admin::tools::ManagementServer;
use mesh_admin::Admin;
use std::sync::Arc;

/// What the data plane tells the overview about one organisation: open sessions, open streams,
/// upstream links up and down.
pub type LiveCounts = Arc<dyn Fn(&str) -> (usize, usize, usize, usize) + Send + Sync>;

/// Everything the pages need.
pub struct Dashboard {
    /// The services.
    pub admin: Admin,
    /// The management tools, which every page and form goes through.
    pub tools: Arc<ManagementServer>,
    /// The MCP routes, called in-process by the playground (with a token for that route only).
    pub mcp: Router,
    /// The relay's live counts.
    pub live: LiveCounts,
    /// How clients reach the mesh (`MESH_PUBLIC_URL`), for endpoint URLs and client
    /// configurations; without it, `http://` and the Host the browser used.
    pub public_url: Option<String>,
    /// Where a proxy in front names the client's address (`MESH_CLIENT_IP_HEADER`), for the
    /// login backoff.
    pub ip_header: Option<axum::http::HeaderName>,
    /// Playground conversations kept open between requests.
    pub playground: pages::playground::Warm,
}

/// The dashboard's routes.
pub fn router(d: Dashboard) -> Router {
    let d = Arc::new(d);
    pages::playground::spawn_reaper(Arc::downgrade(&d));
    Router::new()
        .route("/", get(pages::overview::show))
        .route("/login", get(pages::login::page).post(pages::login::submit))
        .route("/login/sso", post(pages::login::sso))
        .route("/logout", post(pages::login::logout))
        .route("/org", post(pages::login::switch_org))
        .route("/connections", get(pages::connections::list).post(pages::connections::create))
        .route("/connections/new", get(pages::connections::new))
        .route("/connections/{id}", get(pages::connections::detail).post(pages::connections::act))
        .route("/gateways", get(pages::gateways::list).post(pages::gateways::save))
        .route("/gateways/new", get(pages::gateways::editor))
        .route("/gateways/check", post(pages::gateways::check))
        .route("/gateways/{id}", get(pages::gateways::detail).post(pages::gateways::act))
        .route("/playground", get(pages::playground::page).post(pages::playground::call))
        .route("/members", get(pages::access::members).post(pages::access::members_act))
        .route("/roles", get(pages::access::roles).post(pages::access::roles_act))
        .route("/keys", get(pages::access::keys).post(pages::access::keys_act))
        .route("/oauth", get(pages::access::oauth).post(pages::access::oauth_act))
        .route("/limits", get(pages::access::limits).post(pages::access::limits_act))
        .route("/audit", get(pages::audit::show))
        .route("/audit/verify", post(pages::audit::verify))
        .route("/audit/export", get(pages::audit::export))
        .route("/settings", get(pages::settings::show).post(pages::settings::act))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .layer(axum::middleware::from_fn(headers))
        .layer(axum::extract::DefaultBodyLimit::max(web::MAX_FORM))
        .with_state(d)
}

/// The Content Security Policy of every page: scripts and styles from this origin only (no
/// inline code, no eval), nothing framed, forms posting here only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Paths another site may link to: they only read the mesh's own database.
fn linkable(path: &str) -> bool {
    matches!(path, "/" | "/login") || path.starts_with("/assets/")
}

/// Security headers on every dashboard response; and a navigation from another site to a page
/// that reaches upstreams or exports (the playground, the tool pickers, the audit export) lands
/// on the overview instead, so a link elsewhere cannot make a logged-in admin's browser start
/// servers or downloads. (Changes need the form's anti-CSRF value anyway.)
async fn headers(req: Request, next: Next) -> Response {
    let foreign = req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site" || v.as_bytes() == b"same-site");
    if foreign && req.method() == axum::http::Method::GET && !linkable(req.uri().path()) {
        return web::see_other("/");
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

const APP_CSS: &str = include_str!("../assets/app.css");
const APP_JS: &str = include_str!("../assets/app.js");

async fn css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut resp = Response::new(axum::body::Body::from(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    resp
}
