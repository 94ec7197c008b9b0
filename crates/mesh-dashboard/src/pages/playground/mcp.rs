//! The playground's MCP conversations: requests through the relay's own router, in process,
//! with a token bound to one route, kept open for a minute between requests of the same login
//! session, organisation and route.

use crate::layout::text;
use crate::web::Viewer;
use crate::Dashboard;
use axum::body::{Body, Bytes};
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// The largest answer read from the relay.
const MAX_ANSWER: usize = 8 * 1024 * 1024;
/// How long a conversation stays open for the next request (within its token's two minutes): a
/// stdio upstream is not restarted, nor a big catalogue listed again, on every click.
const KEEP: Duration = Duration::from_secs(60);
/// Conversations kept at most, over all users; past it, a finished one is closed at once.
const MAX_KEPT: usize = 256;
/// A kept list of tools larger than this is listed again next time rather than held.
const MAX_KEPT_TOOLS: usize = 1024 * 1024;

/// (login session hash, organisation, route): a conversation acts for one user in one
/// organisation, so switching organisations never reuses another's.
type Key = (String, String, String);

/// Conversations kept open between requests.
#[derive(Default)]
pub struct Warm(Mutex<HashMap<Key, Kept>>);

/// A conversation between two requests.
pub(crate) struct Kept {
    path: String,
    host: String,
    session: String,
    token: String,
    tools: Option<Value>,
    since: Instant,
}

impl Warm {
    fn take(&self, pick: impl Fn(&Key, &Kept) -> bool) -> Vec<Kept> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<Key> = map.iter().filter(|(k, v)| pick(k, v)).map(|(k, _)| k.clone()).collect();
        keys.into_iter().filter_map(|k| map.remove(&k)).collect()
    }
}

/// Ends kept conversations: their relay sessions (a stdio child with them) and their tokens.
pub(crate) async fn end(d: &Dashboard, kept: Vec<Kept>) {
    for k in kept {
        let req = Request::builder()
            .method(Method::DELETE)
            .uri(&k.path)
            .header(header::HOST, &k.host)
            .header(header::AUTHORIZATION, format!("Bearer {}", k.token))
            .header("mcp-session-id", &k.session)
            .body(Body::empty());
        if let Ok(req) = req {
            let _ = d.mcp.clone().oneshot(req).await;
        }
        d.admin.drop_playground_token(&k.token);
    }
}

/// Ends the conversations of a login session (at logout).
pub(crate) async fn end_session(d: &Dashboard, session_hash: &str) {
    let kept = d.playground.take(|k, _| k.0 == session_hash);
    end(d, kept).await;
}

/// Every 15 s, ends conversations kept past their minute, while their tokens still work; stops
/// when the dashboard is dropped.
pub(crate) fn spawn_reaper(d: Weak<Dashboard>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tick.tick().await;
            let Some(d) = d.upgrade() else { return };
            let stale = d.playground.take(|_, k| k.since.elapsed() >= KEEP);
            end(&d, stale).await;
        }
    });
}

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The relay answered with an HTTP error: the request never reached a tool.
    Http(StatusCode, String),
    /// Anything else: a JSON-RPC error, a malformed reply, a tool's own failure.
    Other(String),
}

impl Failure {
    /// Whether the request failed before it reached a session (unknown session, expired token):
    /// then it is safe to try again with a new conversation.
    pub(crate) fn before_session(&self) -> bool {
        matches!(self, Failure::Http(s, _) if *s == StatusCode::NOT_FOUND || *s == StatusCode::UNAUTHORIZED)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Http(s, m) => write!(f, "{s} {m}"),
            Failure::Other(m) => f.write_str(m),
        }
    }
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Other(s)
    }
}

/// A playground token, forgotten when dropped — also when the browser goes away mid-call and
/// the handler is cancelled — unless its conversation is kept.
struct Token<'a> {
    d: &'a Dashboard,
    value: String,
    kept: bool,
}

impl Drop for Token<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.d.admin.drop_playground_token(&self.value);
        }
    }
}

/// A short MCP conversation with one route, as the viewer.
pub(crate) struct Conversation<'a> {
    d: &'a Dashboard,
    key: Key,
    path: String,
    token: Token<'a>,
    host: String,
    session: Option<String>,
    tools: Option<Value>,
    since: Instant,
}

impl<'a> Conversation<'a> {
    /// The kept conversation of this viewer and route, or a new one (initialised).
    pub(crate) async fn open(
        d: &'a Dashboard,
        v: &Viewer,
        route: &str,
        host: &str,
    ) -> Result<Conversation<'a>, Failure> {
        if route.is_empty() {
            return Err(Failure::Other("choose a connection or virtual MCP".into()));
        }
        let key = (v.session.hash.clone(), v.who.principal.org_id.clone(), route.to_string());
        let stale = d.playground.take(|_, k| k.since.elapsed() >= KEEP);
        end(d, stale).await;
        let warm = d.playground.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        if let Some(k) = warm {
            return Ok(Conversation {
                d,
                key,
                path: k.path,
                token: Token { d, value: k.token, kept: false },
                host: host.to_string(),
                session: Some(k.session),
                tools: k.tools,
                since: k.since,
            });
        }
        let token = Token { d, value: d.admin.playground_token(&v.who.principal, route), kept: false };
        let mut c = Conversation {
            d,
            key,
            path: format!("/mcp/{route}"),
            token,
            host: host.to_string(),
            session: None,
            tools: None,
            since: Instant::now(),
        };
        let init = json!({"protocolVersion": "2025-11-25", "capabilities": {},
                          "clientInfo": {"name": "mcp-mesh-playground", "version": env!("CARGO_PKG_VERSION")}});
        match c.request("initialize", init).await {
            Ok(_) => {
                c.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await.ok();
                Ok(c)
            }
            Err(e) => {
                c.close().await;
                Err(e)
            }
        }
    }

    async fn post(&mut self, msg: Value) -> Result<(Bytes, bool), Failure> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&self.path)
            .header(header::HOST, &self.host)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token.value))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        let req = req.body(Body::from(msg.to_string())).map_err(|e| Failure::Other(e.to_string()))?;
        let resp = self.d.mcp.clone().oneshot(req).await.map_err(|e| Failure::Other(e.to_string()))?;
        let status = resp.status();
        let session = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let sse = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let body =
            axum::body::to_bytes(resp.into_body(), MAX_ANSWER).await.map_err(|e| Failure::Other(e.to_string()))?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().or(v["error"].as_str()).map(str::to_string))
                .unwrap_or_default();
            return Err(Failure::Http(status, detail));
        }
        if self.session.is_none() {
            self.session = session;
        }
        Ok((body, sse))
    }

    /// A request and its result (or the JSON-RPC error's message).
    pub(crate) async fn request(&mut self, method: &str, params: Value) -> Result<Value, Failure> {
        let (body, sse) = self.post(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})).await?;
        let reply: Value = if sse {
            // The reply is the event whose message has our id; others are notifications.
            String::from_utf8_lossy(&body)
                .split("\n\n")
                .filter_map(|ev| {
                    let data: Vec<&str> =
                        ev.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                    serde_json::from_str::<Value>(&data.join("\n")).ok()
                })
                // Our reply, not a request of the server's that happens to use id 1.
                .find(|m| m.get("id") == Some(&json!(1)) && m.get("method").is_none())
                .ok_or_else(|| Failure::Other("the stream ended without a reply".into()))?
        } else {
            serde_json::from_slice(&body).map_err(|e| Failure::Other(format!("malformed reply: {e}")))?
        };
        match (reply.get("result"), reply.get("error")) {
            (Some(r), _) => Ok(r.clone()),
            (None, Some(e)) => Err(Failure::Other(text(&e["message"]))),
            _ => Err(Failure::Other("a reply without result or error".into())),
        }
    }

    /// The route's tools (listed once per kept conversation).
    pub(crate) async fn tools(&mut self) -> Result<Value, Failure> {
        if let Some(t) = &self.tools {
            return Ok(t.clone());
        }
        let t = self.request("tools/list", json!({})).await?;
        self.tools = Some(t.clone());
        Ok(t)
    }

    /// Keeps the conversation for the next request, or closes it (old enough, or too many kept).
    pub(crate) async fn keep(mut self) {
        let Some(session) = self.session.clone() else { return self.close().await };
        if self.since.elapsed() >= KEEP {
            return self.close().await;
        }
        let tools = self.tools.take().filter(|t| t.to_string().len() <= MAX_KEPT_TOOLS);
        let kept = Kept {
            path: self.path.clone(),
            host: self.host.clone(),
            session,
            token: self.token.value.clone(),
            tools,
            since: self.since,
        };
        let replaced = {
            let mut map = self.d.playground.0.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= MAX_KEPT && !map.contains_key(&self.key) {
                None
            } else {
                self.token.kept = true;
                Some(map.insert(self.key.clone(), kept))
            }
        };
        match replaced {
            None => self.close().await,
            Some(Some(old)) => end(self.d, vec![old]).await,
            Some(None) => {}
        }
    }

    /// Ends the relay session and drops the token.
    pub(crate) async fn close(self) {
        if let Some(s) = &self.session {
            let kept = Kept {
                path: self.path.clone(),
                host: self.host.clone(),
                session: s.clone(),
                token: self.token.value.clone(),
                tools: None,
                since: self.since,
            };
            // `end` drops the token too; the guard's drop afterwards finds it gone.
            end(self.d, vec![kept]).await;
        }
    }
}
