//! An OAuth access token for the measured mesh, obtained the way an MCP client would: a member
//! with a password, a client registered through RFC 7591, the login and consent pages, the
//! code exchanged with PKCE. The token then drives the `/mcp/{connection}, OAuth` row, so that
//! calls authorised by a token are measured beside calls authorised by an API key.

use crate::processes::MeshProcess;
use anyhow::Context;
use serde_json::{json, Value};

const EMAIL: &str = "bench-oauth@localhost";
const PASSWORD: &str = "bench oauth password";
const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// A token for `resource` (a URL of the mesh), or why this mesh cannot give one (an older
/// build without OAuth: its row is then "n/a").
pub async fn token(mesh: &MeshProcess, resource: &str) -> anyhow::Result<Result<String, String>> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let base = mesh.url("/").to_string().trim_end_matches('/').to_string();
    let reg = http
        .post(format!("{base}/oauth/register"))
        .json(&json!({"client_name": "mesh-bench", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}))
        .send()
        .await?;
    if reg.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(Err("n/a (this mesh has no OAuth authorization server)".into()));
    }
    let client: Value = reg.json().await.context("OAuth registration")?;
    let client_id = client["client_id"].as_str().context("registration gave no client_id")?.to_string();
    mesh.manage("ORGANIZATION_MEMBER_ADD", json!({"email": EMAIL, "role": "member", "password": PASSWORD}))
        .await
        .context("a member to log in as")?;

    let verifier = mesh_core::id::random_base62(64);
    let challenge = mesh_auth::pkce::challenge_s256(&verifier);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", resource)
        .append_pair("state", "bench")
        .finish();
    let mut cookies: Vec<String> = Vec::new();
    let page = get(&http, &format!("{base}/oauth/authorize?{query}"), &mut cookies).await?;
    let mut fields = hidden(&page.1, "login");
    fields.push(("email".into(), EMAIL.into()));
    fields.push(("password".into(), PASSWORD.into()));
    let (status, _, location) = post(&http, &format!("{base}/oauth/login"), &fields, &mut cookies).await?;
    anyhow::ensure!(status == 303, "login answered {status}");
    let after_login = url::Url::parse(&format!("{base}/oauth/login"))?.join(&location.context("login redirect")?)?;
    let consent = get(&http, after_login.as_str(), &mut cookies).await?;
    let mut fields = hidden(&consent.1, "consent");
    fields.push(("decision".into(), "allow".into()));
    let (status, _, location) = post(&http, &format!("{base}/oauth/consent"), &fields, &mut cookies).await?;
    anyhow::ensure!(status == 303, "consent answered {status}");
    let back = url::Url::parse(&location.context("consent redirect")?)?;
    let code = back.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).context("no code")?;
    let t: Value = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
            ("client_id", &client_id),
        ])
        .send()
        .await?
        .json()
        .await?;
    Ok(Ok(t["access_token"].as_str().context("no access token")?.to_string()))
}

fn keep_cookies(resp: &reqwest::Response, cookies: &mut Vec<String>) {
    for v in resp.headers().get_all(reqwest::header::SET_COOKIE) {
        if let Some(pair) = v.to_str().ok().and_then(|v| v.split(';').next()) {
            let name = pair.split('=').next().unwrap_or("").to_string();
            cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            cookies.push(pair.to_string());
        }
    }
}

async fn get(http: &reqwest::Client, url: &str, cookies: &mut Vec<String>) -> anyhow::Result<(u16, String)> {
    let resp = http.get(url).header("cookie", cookies.join("; ")).send().await?;
    keep_cookies(&resp, cookies);
    Ok((resp.status().as_u16(), resp.text().await?))
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    fields: &[(String, String)],
    cookies: &mut Vec<String>,
) -> anyhow::Result<(u16, String, Option<String>)> {
    let resp = http.post(url).header("cookie", cookies.join("; ")).form(fields).send().await?;
    keep_cookies(&resp, cookies);
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    Ok((resp.status().as_u16(), resp.text().await?, location))
}

/// The hidden inputs of form `id`, as the mesh writes them.
fn hidden(html: &str, id: &str) -> Vec<(String, String)> {
    let Some(start) = html.find(&format!("<form id=\"{id}\"")) else { return Vec::new() };
    let form = &html[start..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    form.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|s| {
            let (name, rest) = s.split_once("\" value=\"")?;
            let value = rest.split('"').next()?;
            let un = |v: &str| {
                v.replace("&quot;", "\"")
                    .replace("&#39;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&")
            };
            Some((un(name), un(value)))
        })
        .collect()
}
