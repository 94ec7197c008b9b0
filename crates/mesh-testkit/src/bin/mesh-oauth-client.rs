//! An MCP client whose authorization is the mesh's upstream OAuth client (`mesh-oauth`), for the
//! official conformance suite's client auth scenarios (`conformance client --suite auth`, and
//! `--requirements 2025-11-25|2026-07-28`).
//!
//! Every OAuth request the suite's mock authorization server sees — metadata, registration,
//! authorization, token — is made by `mesh_oauth::Grant`. The driver plays the user-agent and the
//! MCP transport around it: it sends the scenario's MCP requests (session-based or stateless, as
//! `MCP_CONFORMANCE_PROTOCOL_VERSION` says), hands each 401/403 challenge to the grant, follows the
//! authorization URL without following its redirect (the mock approves at once), and hands the
//! redirect's query back.
//!
//! usage: `mesh-oauth-client URL` (the suite appends the URL), with `MCP_CONFORMANCE_CONTEXT` for
//! a pre-registered client.

use anyhow::{anyhow, bail, Context};
use mesh_oauth::register::Options;
use mesh_oauth::{challenge, Grant};
use serde_json::{json, Value};
use std::time::Duration;
use url::Url;

/// The client ID metadata document URL the suite's authorization server expects (a client
/// publishing one would serve it there; the mock never fetches it).
const METADATA_DOCUMENT: &str = "https://conformance-test.local/client-metadata.json";
/// Where the mock redirects with the code (never listened on: the redirect is read, not followed).
const REDIRECT_URI: &str = "http://localhost:3000/callback";
/// Authorizations one request may trigger: one on its 401, one step-up on a 403.
const MAX_AUTHORIZATIONS: usize = 2;

struct Mcp {
    http: reqwest::Client,
    net: mesh_oauth::Net,
    url: Url,
    version: String,
    grant: Grant,
    opts: Options,
    next_id: u64,
}

impl Mcp {
    fn stateless(&self) -> bool {
        self.version.as_str() >= "2026-07-28"
    }

    /// Sends one request (or notification, without `id`), authorizing as the server asks.
    async fn send(&mut self, method: &str, params: Value, notification: bool) -> anyhow::Result<Value> {
        let mut params = params;
        if self.stateless() {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": self.version,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "mesh-oauth-client", "version": env!("CARGO_PKG_VERSION")},
            });
        }
        let mut body = json!({"jsonrpc": "2.0", "method": method, "params": params});
        let id = self.next_id;
        if !notification {
            self.next_id += 1;
            body["id"] = id.into();
        }
        let mut authorized = 0;
        loop {
            let mut req = self
                .http
                .post(self.url.clone())
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .json(&body);
            if self.stateless() || method != "initialize" {
                req = req.header("mcp-protocol-version", &self.version);
            }
            if self.stateless() {
                req = req.header("mcp-method", method);
                if let Some(name) = body["params"]["name"].as_str() {
                    req = req.header("mcp-name", name);
                }
            }
            if let Some(token) = self.grant.access_token() {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await.with_context(|| format!("POST {method}"))?;
            let status = resp.status().as_u16();
            if status == 401 || status == 403 {
                let found = challenge::of_response(resp.headers());
                if status == 403 && !found.as_ref().is_some_and(|c| c.insufficient_scope()) {
                    bail!("{method}: forbidden, and not for a scope");
                }
                if status == 403 {
                    // A step-up for scopes already granted would never succeed.
                    let asked = found.as_ref().and_then(|c| c.scope.clone()).unwrap_or_default();
                    let granted = self.grant.tokens.as_ref().and_then(|t| t.scope.clone()).unwrap_or_default();
                    if !asked.is_empty() && mesh_oauth::scope::covers(&granted, &asked) {
                        bail!("{method}: the server asks for scopes already granted ({asked}); giving up");
                    }
                }
                if authorized >= MAX_AUTHORIZATIONS {
                    bail!("{method}: still refused ({status}) after {authorized} authorizations");
                }
                authorized += 1;
                self.authorize(found.as_ref()).await?;
                continue;
            }
            if notification {
                return Ok(Value::Null);
            }
            if !(200..300).contains(&status) {
                let text = resp.text().await.unwrap_or_default();
                bail!("{method}: HTTP {status}: {text}");
            }
            let sse = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("text/event-stream"));
            let text = resp.text().await?;
            let reply = if sse { from_sse(&text, id)? } else { serde_json::from_str(&text)? };
            if let Some(e) = reply.get("error") {
                bail!("{method}: {e}");
            }
            return Ok(reply["result"].clone());
        }
    }

    /// One authorization: the grant's request, approved by the mock at once; the redirect's query
    /// back to the grant.
    async fn authorize(&mut self, found: Option<&mesh_oauth::Challenge>) -> anyhow::Result<()> {
        let pending = self.grant.begin(&self.net, &self.url, found, &self.opts).await?;
        let resp = self.http.get(&pending.url).send().await.context("GET the authorization endpoint")?;
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("the authorization endpoint did not redirect (HTTP {})", resp.status()))?;
        let back = Url::parse(location).context("the redirect is not a URL")?;
        let params: Vec<(String, String)> = back.query_pairs().into_owned().collect();
        self.grant.finish(&self.net, &pending, &params).await?;
        Ok(())
    }
}

/// The reply with `id` among the SSE events of `text`.
fn from_sse(text: &str, id: u64) -> anyhow::Result<Value> {
    let mut data = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            let msg: Value = serde_json::from_str(&data)?;
            if msg["id"] == json!(id) {
                return Ok(msg);
            }
            data.clear();
        }
    }
    bail!("no reply with id {id} in the event stream")
}

async fn run() -> anyhow::Result<()> {
    let url = std::env::args().next_back().ok_or_else(|| anyhow!("usage: mesh-oauth-client URL"))?;
    let url = Url::parse(&url).context("the last argument is the server URL")?;
    let version = std::env::var("MCP_CONFORMANCE_PROTOCOL_VERSION").unwrap_or_else(|_| "2025-11-25".into());
    let preregistered = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|c| serde_json::from_str::<Value>(&c).ok())
        .and_then(|c| Some((c["client_id"].as_str()?.to_string(), c["client_secret"].as_str().map(str::to_string))));
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    let opts = Options {
        preregistered,
        metadata_document: Some(METADATA_DOCUMENT.into()),
        redirect_uri: REDIRECT_URI.into(),
        client_name: "mesh-oauth-client".into(),
    };
    let net = mesh_oauth::Net::new(http.clone());
    let mut mcp = Mcp { http, net, url, version, grant: Grant::default(), opts, next_id: 1 };
    if !mcp.stateless() {
        let init = json!({
            "protocolVersion": mcp.version,
            "capabilities": {},
            "clientInfo": {"name": "mesh-oauth-client", "version": env!("CARGO_PKG_VERSION")},
        });
        mcp.send("initialize", init, false).await?;
        mcp.send("notifications/initialized", json!({}), true).await?;
    }
    let tools = mcp.send("tools/list", json!({}), false).await?;
    let name = tools["tools"][0]["name"].as_str().unwrap_or("test-tool").to_string();
    mcp.send("tools/call", json!({"name": name, "arguments": {}}), false).await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("mesh-oauth-client: {e:#}");
        std::process::exit(1);
    }
}
