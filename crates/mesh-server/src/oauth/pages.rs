//! The authorization server's pages: login, consent, and errors. Server-rendered HTML with no
//! script, so they work in any browser and in a headless test driving the forms.
//!
//! Every value from a request or the database goes through [`esc`]. Form actions are relative
//! (`login`, not `/oauth/login`): behind a proxy that serves the mesh under a path prefix, the
//! browser stays under it. Hidden fields are written
//! one per line as `<input type="hidden" name="…" value="…">`, which scripts that drive the
//! pages headlessly rely on (docs/OAUTH.md).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// `s` escaped for HTML text and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn hidden(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(n, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">\n", esc(n), esc(v))).collect()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;color:#1d2330}\
main{max-width:26rem;margin:8vh auto;background:#fff;border-radius:10px;padding:2rem;box-shadow:0 2px 12px #0002}\
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:.8rem 0 .3rem;font-weight:600}\
input[type=email],input[type=password],select{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #bbc;border-radius:6px}\
button{margin-top:1.2rem;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#2f5bea;color:#fff;font-size:1rem;cursor:pointer}\
button.secondary{background:#e6e8ee;color:#1d2330}.err{background:#fde8e8;color:#8a1c1c;padding:.6rem;border-radius:6px}\
.muted{color:#667;font-size:.9rem}dl{margin:1rem 0}dt{font-weight:600}dd{margin:0 0 .6rem 0;word-break:break-all}\
.warn{background:#fff6dd;padding:.6rem;border-radius:6px;font-size:.9rem}";

/// A whole page, with headers that keep it out of caches and frames.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{} · MCP Mesh</title><style>{STYLE}</style></head><body><main>\n{body}\n</main></body></html>\n",
        esc(title)
    );
    let mut resp = (status, Html(html)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'",
        ),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// What the login page shows.
pub(crate) struct Login<'a> {
    /// Where the form posts (relative).
    pub action: &'a str,
    pub request: &'a str,
    pub csrf: &'a str,
    pub client_name: &'a str,
    pub error: Option<&'a str>,
    pub email: &'a str,
    pub sso_label: Option<&'a str>,
}

/// The login page (status 200, or 401/429 after a failed attempt).
pub(crate) fn login(status: StatusCode, l: &Login<'_>) -> Response {
    let error = l.error.map(|e| format!("<p class=\"err\">{}</p>\n", esc(e))).unwrap_or_default();
    let sso = l
        .sso_label
        .map(|label| {
            format!(
                "<form id=\"sso\" method=\"post\" action=\"sso/start\">\n{}<button class=\"secondary\" type=\"submit\">{}</button>\n</form>\n",
                hidden(&[("request", l.request), ("csrf", l.csrf)]),
                esc(label)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Log in to MCP Mesh</h1>\n<p class=\"muted\"><b>{}</b> wants to connect to your MCP Mesh account.</p>\n{error}\
         <form id=\"login\" method=\"post\" action=\"{}\">\n{}\
         <label for=\"email\">E-mail</label><input id=\"email\" type=\"email\" name=\"email\" value=\"{}\" autocomplete=\"username\" required autofocus>\n\
         <label for=\"password\">Password</label><input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"current-password\" required>\n\
         <button type=\"submit\">Log in</button>\n</form>\n{sso}",
        esc(l.client_name),
        esc(l.action),
        hidden(&[("request", l.request), ("csrf", l.csrf)]),
        esc(l.email),
    );
    page(status, "Log in", &body)
}

/// The page after an upstream authorization: done, or why not.
pub(crate) fn upstream_done(connection: &str) -> Response {
    let body = format!(
        "<h1>Authorized</h1>\n<p>MCP Mesh can now use <b>{}</b> on your behalf. You can close this window and go back \
         to your application (retry what you were doing).</p>\n",
        esc(connection)
    );
    page(StatusCode::OK, "Authorized", &body)
}

/// What the consent page shows.
pub(crate) struct Consent<'a> {
    pub request: &'a str,
    pub csrf: &'a str,
    pub user_email: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub client_uri: Option<&'a str>,
    pub redirect_host: &'a str,
    pub loopback_only: bool,
    pub resource: &'a str,
    pub what: &'a str,
    pub scope: &'a str,
    /// (id, name, role) of each organisation the token could act in.
    pub orgs: &'a [(String, String, String)],
}

/// The consent page: who asks, for what, where the answer goes.
pub(crate) fn consent(c: &Consent<'_>) -> Response {
    let orgs = match c.orgs {
        [(id, name, role)] => {
            format!("<dt>Organisation</dt><dd>{} (as {})</dd>\n{}", esc(name), esc(role), hidden(&[("org", id)]))
        }
        many => {
            let options: String = many
                .iter()
                .map(|(id, name, role)| {
                    format!("<option value=\"{}\">{} (as {})</option>", esc(id), esc(name), esc(role))
                })
                .collect();
            format!("<dt><label for=\"org\">Organisation</label></dt><dd><select id=\"org\" name=\"org\">{options}</select></dd>\n")
        }
    };
    let client_uri = c.client_uri.map(|u| format!(" · <span>{}</span>", esc(u))).unwrap_or_default();
    let warn = if c.loopback_only {
        "<p class=\"warn\">This client only redirects to programs on the device you use (localhost). \
         Allow it only if you started it yourself.</p>\n"
    } else {
        ""
    };
    let body = format!(
        "<h1>Allow access?</h1>\n<p class=\"muted\">Logged in as {}</p>\n\
         <form id=\"consent\" method=\"post\" action=\"consent\">\n{}<dl>\n\
         <dt>Application</dt><dd><b>{}</b>{client_uri}<br><span class=\"muted\">{}</span></dd>\n\
         <dt>Sends you back to</dt><dd>{}</dd>\n\
         <dt>Wants to use</dt><dd>{}<br><span class=\"muted\">{}</span></dd>\n\
         <dt>Permissions</dt><dd>{}</dd>\n{orgs}</dl>\n{warn}\
         <p class=\"muted\">It acts as you, with your role; you can revoke this at any time (<code>mcp-mesh oauth grant rm</code>).</p>\n\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\n\
         <button class=\"secondary\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n</form>",
        esc(c.user_email),
        hidden(&[("request", c.request), ("csrf", c.csrf)]),
        esc(c.client_name),
        esc(c.client_id),
        esc(c.redirect_host),
        esc(c.what),
        esc(c.resource),
        esc(c.scope),
    );
    page(StatusCode::OK, "Allow access", &body)
}

/// An error the user must see (the client cannot be trusted with a redirect).
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<h1>This request cannot continue</h1>\n<p class=\"err\">{}</p>\n\
         <p class=\"muted\">Go back to the application and try again, or tell whoever runs it.</p>",
        esc(message)
    );
    page(status, "Error", &body)
}

/// The page for a user whose account has no access to the endpoint asked for.
pub(crate) fn no_access(email: &str, resource: &str) -> Response {
    let body = format!(
        "<h1>No access</h1>\n<p class=\"err\">{} has no access to {}.</p>\n\
         <form method=\"post\" action=\"logout\"><button class=\"secondary\" type=\"submit\">Log in as someone else</button></form>",
        esc(email),
        esc(resource)
    );
    page(StatusCode::FORBIDDEN, "No access", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_from_outside_is_escaped() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(
            hidden(&[("request", "a=1&b=\"2\"")]),
            "<input type=\"hidden\" name=\"request\" value=\"a=1&amp;b=&quot;2&quot;\">\n"
        );
    }
}
