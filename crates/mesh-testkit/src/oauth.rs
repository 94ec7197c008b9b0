//! Driving the mesh's OAuth authorization server the way a person in a browser would, without
//! a browser: a cookie-keeping HTTP client that follows no redirect by itself, reads the login
//! and consent forms' hidden fields, and submits them.

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use std::collections::BTreeMap;

/// A headless "browser" for the mesh's pages (and, for SSO, an identity provider's).
pub struct Browser {
    http: reqwest::Client,
    /// Cookies by host:port, then name.
    cookies: BTreeMap<String, BTreeMap<String, String>>,
}

/// One response, read whole.
#[derive(Debug, Clone)]
pub struct Page {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub body: String,
    /// The absolute URL it came from.
    pub url: String,
}

impl Page {
    /// The `Location` header, made absolute against the page's URL.
    pub fn location(&self) -> Option<String> {
        let raw = self.headers.get(LOCATION)?.to_str().ok()?;
        url::Url::parse(&self.url).ok()?.join(raw).ok().map(|u| u.to_string())
    }

    /// The hidden inputs of the form with `id` (as the mesh writes them), in order.
    pub fn hidden(&self, form_id: &str) -> Vec<(String, String)> {
        let Some(start) = self.body.find(&format!("<form id=\"{form_id}\"")) else { return Vec::new() };
        let form = &self.body[start..];
        let form = &form[..form.find("</form>").unwrap_or(form.len())];
        let mut out = Vec::new();
        for line in form.split("<input type=\"hidden\" name=\"").skip(1) {
            let Some((name, rest)) = line.split_once("\" value=\"") else { continue };
            let Some((value, _)) = rest.split_once('"') else { continue };
            out.push((unescape(name), unescape(value)));
        }
        out
    }

    /// Whether the body has a form with `id`.
    pub fn has_form(&self, form_id: &str) -> bool {
        self.body.contains(&format!("<form id=\"{form_id}\""))
    }

    /// The first `<option value="…">` of a select named `name`, if any.
    pub fn first_option(&self, name: &str) -> Option<String> {
        let start = self.body.find(&format!("<select id=\"{name}\" name=\"{name}\">"))?;
        let rest = &self.body[start..];
        let v = rest.split("<option value=\"").nth(1)?;
        Some(unescape(v.split('"').next()?))
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn origin_key(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| format!("{}:{}", u.host_str().unwrap_or(""), u.port_or_known_default().unwrap_or(0)))
        .unwrap_or_default()
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with no cookies.
    pub fn new() -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Browser { http, cookies: BTreeMap::new() }
    }

    fn cookie_header(&self, url: &str) -> Option<String> {
        let jar = self.cookies.get(&origin_key(url))?;
        let pairs: Vec<String> = jar.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={v}")).collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    async fn read(&mut self, url: &str, resp: reqwest::Response) -> Page {
        let jar = self.cookies.entry(origin_key(url)).or_default();
        for v in resp.headers().get_all(SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let first = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = first.split_once('=') {
                let expired = v.to_ascii_lowercase().contains("max-age=0");
                if expired {
                    jar.remove(k.trim());
                } else {
                    jar.insert(k.trim().to_string(), val.trim().to_string());
                }
            }
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Page { status, headers, body, url: url.to_string() }
    }

    /// GET `url` with this browser's cookies.
    pub async fn get(&mut self, url: &str) -> Page {
        let mut req = self.http.get(url);
        if let Some(c) = self.cookie_header(url) {
            req = req.header(COOKIE, c);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.read(url, resp).await
    }

    /// POST a form to `url` with this browser's cookies.
    pub async fn post_form(&mut self, url: &str, fields: &[(String, String)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let mut req = self.http.post(url).header("content-type", "application/x-www-form-urlencoded").body(body);
        if let Some(c) = self.cookie_header(url) {
            req = req.header(COOKIE, c);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        self.read(url, resp).await
    }

    /// Submits the form `form_id` of `page` with its hidden fields plus `extra`, to its action
    /// (relative to the page).
    pub async fn submit(&mut self, page: &Page, form_id: &str, extra: &[(&str, &str)]) -> Page {
        let start = page
            .body
            .find(&format!("<form id=\"{form_id}\""))
            .unwrap_or_else(|| panic!("no form {form_id}: {}", page.body));
        let action =
            page.body[start..].split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("form action");
        let url =
            url::Url::parse(&page.url).expect("page URL").join(&unescape(action)).expect("action URL").to_string();
        let mut fields = page.hidden(form_id);
        fields.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.post_form(&url, &fields).await
    }

    /// Follows redirects from `page` until one leaves for `stop_prefix` (returned, not fetched)
    /// or a page that is not a redirect arrives (returned as an error with that page).
    pub async fn follow(&mut self, mut page: Page, stop_prefix: &str) -> Result<String, Page> {
        for _ in 0..10 {
            let Some(next) = page.location().filter(|_| (300..400).contains(&page.status)) else { return Err(page) };
            if next.starts_with(stop_prefix) {
                return Ok(next);
            }
            page = self.get(&next).await;
        }
        Err(page)
    }

    /// The whole authorization as a person would do it: open `authorize_url`, log in with
    /// `email`/`password` if asked, allow on the consent page if shown, and return the URL
    /// the mesh sends the browser back to (starting with `redirect_prefix`).
    pub async fn authorize(
        &mut self,
        authorize_url: &str,
        email: &str,
        password: &str,
        redirect_prefix: &str,
    ) -> Result<String, Page> {
        let mut page = self.get(authorize_url).await;
        for _ in 0..4 {
            if let Some(loc) = page.location().filter(|l| l.starts_with(redirect_prefix)) {
                return Ok(loc);
            }
            if page.has_form("login") {
                let after = self.submit(&page, "login", &[("email", email), ("password", password)]).await;
                page = match self.follow(after, redirect_prefix).await {
                    Ok(done) => return Ok(done),
                    Err(p) => p,
                };
            } else if page.has_form("consent") {
                let org = page.first_option("org");
                let mut extra = vec![("decision", "allow")];
                if let Some(o) = org.as_deref() {
                    extra.push(("org", o));
                }
                let after = self.submit(&page, "consent", &extra).await;
                return self.follow(after, redirect_prefix).await;
            } else {
                return self.follow(page, redirect_prefix).await;
            }
        }
        Err(page)
    }
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    /// The verifier (sent to the token endpoint).
    pub verifier: String,
    /// Its challenge (sent to the authorization endpoint).
    pub challenge: String,
}

/// A fresh PKCE pair.
pub fn pkce() -> Pkce {
    let verifier = mesh_core::id::random_base62(64);
    let challenge = mesh_auth::pkce::challenge_s256(&verifier);
    Pkce { verifier, challenge }
}

/// A query parameter of a URL.
pub fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// An authorization URL of the mesh at `base` for a public client.
pub fn authorize_url(
    base: &str,
    client_id: &str,
    redirect_uri: &str,
    resource: &str,
    pkce: &Pkce,
    state: &str,
) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", resource)
        .append_pair("state", state)
        .finish();
    format!("{base}/oauth/authorize?{q}")
}

/// POSTs a form to the token endpoint: `(status, body as JSON, headers)`.
pub async fn token(base: &str, fields: &[(&str, &str)]) -> (u16, serde_json::Value, HeaderMap) {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let resp = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let v = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, v, headers)
}

/// Exchanges an authorization code at the token endpoint as public client `client_id`.
pub async fn exchange(
    base: &str,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> (u16, serde_json::Value, HeaderMap) {
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
        ("client_id", client_id),
    ];
    token(base, &fields).await
}

/// GETs `url` and reads its body as JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    let resp = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    resp.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}
