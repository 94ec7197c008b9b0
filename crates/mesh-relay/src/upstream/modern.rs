//! A link to an upstream of the stateless revision (MCP 2026-07-28), over Streamable HTTP or a
//! child's stdio (`modern_stdio`).
//!
//! To the session above it this link looks like any other: it takes an `initialize`, requests,
//! notifications and the client's replies, and reports replies, notifications and server
//! requests through the sink. Underneath there is no session: `initialize` is answered from the
//! upstream's `server/discover` (fetched when the link was made), and every request is one POST
//! carrying the envelope the handshake would have set once (protocol revision, the client's
//! capabilities and name, its log level) and the mirrored routing headers.
//!
//! The revision's input-required results are turned into what the session already relays: each
//! input request becomes a server→client request on the request's stream; when the client has
//! answered them all, the link retries the upstream request with the answers and the upstream's
//! `requestState`, which never leaves the mesh. The key the upstream chose travels with the
//! server request in `_meta["mcp-mesh/inputKey"]`, so that a stateless client of the mesh is
//! asked under the same key. List changes come from one `subscriptions/listen` stream per link.

use super::{header_map, Inbound, InboundSink, Transport};
use crate::RelayError;
use bytes::Bytes;
use futures_util::StreamExt;
use mesh_protocol::{codes, modern, sse, version, Kind, Message};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use super::mesh_keys::{without_mesh_keys, EXTENSIONS, INPUT_KEY, PARAM_HEADERS, SERVES_STATELESS};

mod input;
mod listen;

/// The extension this link relays to stateless clients (`ingress::modern::tasks`).
const TASKS: &str = "io.modelcontextprotocol/tasks";
/// The largest JSON reply read from a stateless upstream (as for session-based ones).
const MAX_JSON_BODY: usize = 64 * 1024 * 1024;
/// The revision spoken to stateless upstreams.
pub(super) const REVISION: &str = "2026-07-28";

/// One stateless upstream, as a link.
pub struct ModernLink {
    name: String,
    wire: Wire,
    sink: Arc<dyn InboundSink>,
    discover: Arc<Value>,
    /// Serves stateless clients (a pooled session): the same revision on both sides, so the
    /// tasks extension can be relayed; a session-based client has no wire for it.
    stateless_clients: bool,
    state: Mutex<State>,
    closed: CancellationToken,
    /// Reopens the listen stream with what it should now carry (`listen.rs`).
    relisten: Arc<tokio::sync::Notify>,
    /// When the link last listed the tools itself to learn their annotations (`learn_tools`);
    /// held while it lists, so that calls arriving meanwhile wait for what it learns.
    learnt: tokio::sync::Mutex<Option<std::time::Instant>>,
    me: Weak<ModernLink>,
}

/// How requests reach the upstream: one POST each, or one line each to a child process.
enum Wire {
    Http {
        http: reqwest::Client,
        url: url::Url,
        headers: HeaderMap,
        /// A bearer token that may change between requests (`UpstreamSpec::credential`).
        credential: Option<Arc<dyn crate::Credential>>,
    },
    Stdio(super::modern_stdio::StdioWire),
}

#[derive(Default)]
struct State {
    /// The client's capabilities and name, from its `initialize`.
    capabilities: Value,
    client_info: Option<Value>,
    /// `logging/setLevel`, sent on with every later request.
    log_level: Option<String>,
    /// Requests on their way, by the session's id: dropping one closes its stream, which is
    /// how the stateless revision cancels.
    inflight: HashMap<String, tokio::task::AbortHandle>,
    /// Server requests the link made from input requests, waiting for the client's reply.
    waiting: HashMap<String, oneshot::Sender<Message>>,
    /// Per tool: the arguments the upstream wants mirrored in `Mcp-Param-*` headers, as
    /// (argument, header token), from the `tools/list` results this link relayed.
    mirrored: HashMap<String, Vec<(String, String)>>,
    /// The resources the session subscribed to, which the listen stream watches (`listen.rs`),
    /// and their URIs' bytes together.
    resources: std::collections::BTreeSet<String>,
    watched_bytes: usize,
    /// The upstream answered a listen with "method not found": subscriptions are refused.
    no_listen: bool,
    next: u64,
}

impl ModernLink {
    /// A link to `spec`'s URL (an HTTP upstream), whose `server/discover` said `discover`.
    pub fn new(
        spec: &crate::UpstreamSpec,
        http: reqwest::Client,
        sink: Arc<dyn InboundSink>,
        discover: Arc<Value>,
        stateless_clients: bool,
    ) -> Result<Arc<ModernLink>, RelayError> {
        let crate::TransportSpec::Http { url, headers } = &spec.transport else {
            return Err(RelayError::Internal(format!("{}: not an HTTP upstream", spec.name)));
        };
        let mut headers = header_map(&spec.name, headers)?;
        let credential = spec.credential.clone();
        if credential.is_some() {
            // The live credential is the one Authorization.
            headers.remove(AUTHORIZATION);
        }
        let wire = Wire::Http { http, url: url.clone(), headers, credential };
        Ok(Self::build(&spec.name, wire, sink, discover, stateless_clients))
    }

    /// A link over a child process that answered `server/discover` with `discover`.
    pub(super) fn over_stdio(
        name: &str,
        wire: super::modern_stdio::StdioWire,
        sink: Arc<dyn InboundSink>,
        discover: Arc<Value>,
        stateless_clients: bool,
    ) -> Arc<ModernLink> {
        Self::build(name, Wire::Stdio(wire), sink, discover, stateless_clients)
    }

    fn build(
        name: &str,
        wire: Wire,
        sink: Arc<dyn InboundSink>,
        discover: Arc<Value>,
        stateless_clients: bool,
    ) -> Arc<ModernLink> {
        Arc::new_cyclic(|me| ModernLink {
            name: name.to_string(),
            wire,
            sink,
            discover,
            stateless_clients,
            state: Mutex::new(State::default()),
            closed: CancellationToken::new(),
            relisten: Arc::default(),
            learnt: tokio::sync::Mutex::new(None),
            me: me.clone(),
        })
    }

    /// The link as a session holds it: dropping the last handle closes it ([`Owned`]).
    pub fn owned(self: Arc<Self>) -> super::Link {
        Arc::new(Owned(self))
    }

    /// Ends the listen and the requests on their way; later sends fail.
    fn stop(&self) {
        self.closed.cancel();
        self.end_exchanges();
    }

    /// Ends the requests on their way and forgets the questions they put to the client: their
    /// calls are over (the link stops, or the session failed them when the child under a stdio
    /// link went down). A question's withdrawal is the session's, which knows the client's id.
    fn end_exchanges(&self) {
        let mut st = self.lock();
        // Forgotten first: an exchange ended while it waits on an answer finds its question gone
        // and tells nobody.
        st.waiting.clear();
        for (_, t) in st.inflight.drain() {
            t.abort();
        }
    }

    /// The child under this (stdio) link went down. Its successor never saw the requests on
    /// their way: a retry of one, with the dead child's `requestState`, must not reach it. The
    /// session fails those calls; their exchanges end here.
    pub(super) fn child_down(&self) {
        self.end_exchanges();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deliver(&self, msg: Message, related: Option<&str>) {
        self.sink.deliver(Inbound::Message { msg, related: related.map(Into::into) });
    }

    /// The `initialize` result the session expects, made from `server/discover`.
    fn initialized(&self, msg: &Message) {
        #[derive(serde::Deserialize)]
        struct Init {
            #[serde(rename = "protocolVersion")]
            version: Option<String>,
            capabilities: Option<Value>,
            #[serde(rename = "clientInfo")]
            client_info: Option<Value>,
            #[serde(rename = "_meta")]
            meta: Option<Value>,
        }
        let init: Init =
            msg.params().unwrap_or(Init { version: None, capabilities: None, client_info: None, meta: None });
        {
            let mut st = self.lock();
            st.capabilities = init.capabilities.unwrap_or_else(|| json!({}));
            // Of the client's extensions only tasks goes upstream, and only for stateless clients,
            // whose task requests the ingress keeps to their creator; an extension the mesh does
            // not know might change what a governed call means.
            let tasks = init.meta.as_ref().and_then(|m| m.get(EXTENSIONS)).and_then(|e| e.get(TASKS)).cloned();
            if let Some(c) = st.capabilities.as_object_mut() {
                c.remove("extensions");
                if let (true, Some(t)) = (self.stateless_clients, tasks) {
                    c.insert("extensions".into(), json!({ TASKS: t }));
                }
            }
            st.client_info = init.client_info;
        }
        let asked = init.version.filter(|v| version::is_supported(v)).unwrap_or_else(|| version::LATEST.into());
        let mut capabilities = self.discover.get("capabilities").cloned().unwrap_or_else(|| json!({}));
        if let Some(c) = capabilities.as_object_mut() {
            let tasks = c.get("extensions").and_then(|e| e.get(TASKS)).cloned();
            c.remove("extensions");
            if let (true, Some(t)) = (self.stateless_clients, tasks) {
                c.insert("extensions".into(), json!({ TASKS: t }));
            }
            if let Some(r) = c.get_mut("resources").and_then(Value::as_object_mut) {
                // A session's `resources/subscribe` is carried by the listen stream's
                // `resourceSubscriptions` (`listen.rs`), where the upstream says it takes them.
                if r.get("subscribe").and_then(Value::as_bool) != Some(true) {
                    r.remove("subscribe");
                }
            }
        }
        let server_info = self
            .discover
            .get("_meta")
            .and_then(|m| m.get(modern::META_SERVER_INFO))
            .or_else(|| self.discover.get("serverInfo"))
            .cloned()
            .unwrap_or_else(|| json!({"name": self.name, "version": "unknown"}));
        let mut result = json!({"protocolVersion": asked, "capabilities": capabilities, "serverInfo": server_info});
        if self.stateless_clients {
            result["_meta"] = json!({ SERVES_STATELESS: true });
        }
        if let Some(i) = self.discover.get("instructions") {
            result["instructions"] = i.clone();
        }
        self.deliver(Message::response(msg.id().unwrap_or("null"), &result), None);
        self.listen();
    }

    /// The request's params with the envelope added to its `_meta` (the client's own keys kept).
    fn enveloped(&self, msg: &Message) -> Value {
        let mut params: Value = msg.params().unwrap_or_else(|| json!({}));
        if !params.is_object() {
            params = json!({});
        }
        let st = self.lock();
        let meta = params.as_object_mut().and_then(|p| {
            let m = p.entry("_meta").or_insert_with(|| json!({}));
            if !m.is_object() {
                *m = json!({});
            }
            m.as_object_mut()
        });
        if let Some(m) = meta {
            m.insert(modern::META_VERSION.into(), REVISION.into());
            m.insert(modern::META_CAPABILITIES.into(), st.capabilities.clone());
            if let Some(info) = &st.client_info {
                m.insert(modern::META_CLIENT_INFO.into(), info.clone());
            }
            if let Some(level) = &st.log_level {
                m.insert(modern::META_LOG_LEVEL.into(), level.clone().into());
            }
        }
        params
    }

    /// One request of `method` with `params`, to its final reply; notifications on the way go to
    /// the session, tied to the request `related` when the wire tells.
    async fn post(
        &self,
        id: &str,
        method: &str,
        params: &Value,
        related: Option<&str>,
        custom: &HeaderMap,
    ) -> Result<Message, RelayError> {
        let (http, url, headers, credential) = match &self.wire {
            Wire::Http { http, url, headers, credential } => (http, url, headers, credential),
            Wire::Stdio(w) => return w.request(&self.name, id, method, params).await,
        };
        let body = Message::request(id, method, Some(params));
        let mut headers = headers.clone();
        for (k, v) in custom {
            headers.insert(k.clone(), v.clone());
        }
        headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("mcp-protocol-version", HeaderValue::from_static(REVISION));
        // The trace context the request carries in `_meta` (the mesh's span, when tracing is on)
        // as the HTTP header too, for an upstream instrumented at the HTTP layer.
        let traceparent = params.get("_meta").and_then(|m| m.get("traceparent")).and_then(Value::as_str);
        if let Some(tp) = traceparent.filter(|t| mesh_protocol::meta::is_traceparent(t)) {
            if let Ok(v) = HeaderValue::from_str(tp) {
                headers.insert("traceparent", v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(method) {
            headers.insert("mcp-method", v);
        }
        if let Some(token) = credential.as_ref().and_then(|c| c.bearer()) {
            if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {token}")) {
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
        }
        let name = match method {
            "tools/call" | "prompts/get" => params.get("name"),
            "resources/read" => params.get("uri"),
            "tasks/get" | "tasks/update" | "tasks/cancel" => params.get("taskId"),
            _ => None,
        };
        if let Some(n) = name.and_then(Value::as_str) {
            headers.insert("mcp-name", header_value(n));
        }
        let resp = http
            .post(url.clone())
            .headers(headers)
            .body(body.bytes().clone())
            .send()
            .await
            .map_err(|e| RelayError::UpstreamUnavailable(format!("{}: {}", self.name, e.without_url())))?;
        let status = resp.status();
        if status == reqwest::StatusCode::FORBIDDEN {
            if let Some(challenge) = super::insufficient_scope(resp.headers()) {
                return Err(RelayError::InsufficientScope { connection: self.name.clone(), challenge });
            }
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(RelayError::UpstreamFailed {
                cause: crate::Cause::Status(status.as_u16()),
                detail: format!("{}: the upstream refused the connection's credentials (HTTP {status})", self.name),
            });
        }
        let sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !sse {
            let bytes = limited(resp, MAX_JSON_BODY)
                .await
                .map_err(|why| RelayError::UpstreamUnavailable(format!("{}: {why}", self.name)))?;
            return match Message::parse(bytes) {
                Ok(m) if m.kind().is_reply() => Ok(m),
                _ => {
                    Err(RelayError::UpstreamProtocol(format!("{}: HTTP {status} without a JSON-RPC reply", self.name)))
                }
            };
        }
        let mut decoder = sse::Decoder::new();
        let mut stream = resp.bytes_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| RelayError::UpstreamUnavailable(format!("{}: {}", self.name, e.without_url())))?;
            // Bounded in all, as a session-based upstream's request stream is: each event is
            // (the decoder's bound), but progress keeps a call alive however long it streams.
            total += chunk.len() as u64;
            if total > super::http::MAX_REQUEST_STREAM {
                let why = format!("a response stream longer than {} bytes", super::http::MAX_REQUEST_STREAM);
                tracing::warn!(connection = %self.name, "upstream SSE stream refused: {why}");
                // As a session-based upstream's stream that breaks a bound (-31010, the limit named).
                return Err(RelayError::UpstreamUnavailable(format!("{}: refused {why}", self.name)));
            }
            let events = decoder
                .push(&chunk)
                .map_err(|_| RelayError::UpstreamUnavailable(format!("{}: an SSE event is too large", self.name)))?;
            for ev in events {
                let Ok(m) = Message::parse(Bytes::from(ev.data)) else { continue };
                match m.kind() {
                    Kind::Response | Kind::Error => return Ok(m),
                    Kind::Notification if m.method() == Some("notifications/subscriptions/acknowledged") => {}
                    // Progress and log lines of this request; list changes of a listen stream.
                    Kind::Notification => self.deliver(m, related),
                    // The revision forbids requests on a response stream.
                    Kind::Request => {}
                }
            }
        }
        Err(RelayError::UpstreamUnavailable(format!("{}: the response stream ended without a reply", self.name)))
    }

    /// Remembers which arguments of each listed tool travel in `Mcp-Param-*` headers, and takes
    /// the tools whose annotations are invalid out of `result`; whether it took any out.
    fn learn_mirrored(&self, result: &mut Value) -> bool {
        let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else { return false };
        let before = tools.len();
        let mut st = self.lock();
        tools.retain(|tool| {
            let Some(name) = tool.get("name").and_then(Value::as_str) else { return true };
            let Some(annotated) = annotations(tool) else {
                tracing::info!(link = %self.name, tool = %name, "a tool with invalid x-mcp-header annotations is left out");
                return false;
            };
            if st.mirrored.len() < 10_000 || st.mirrored.contains_key(name) {
                st.mirrored.insert(name.to_string(), annotated);
            }
            true
        });
        tools.len() != before
    }

    /// Lists the upstream's tools to learn their `x-mcp-header` annotations, when the tool
    /// `params` calls has not been seen listed on this link and the list was not asked for in
    /// the last minute (an HTTP upstream only: the headers are HTTP's). Failures leave it
    /// unlearnt: the call then goes without headers, and the upstream says what it misses.
    async fn learn_tools(&self, params: &Value) {
        const RELEARN_AFTER: Duration = Duration::from_secs(60);
        let name = params.get("name").and_then(Value::as_str).unwrap_or_default();
        let known = || self.lock().mirrored.contains_key(name);
        if !matches!(self.wire, Wire::Http { .. }) || known() {
            return;
        }
        let mut learnt = self.learnt.lock().await;
        // Another call may have learnt it while this one waited.
        if known() || learnt.is_some_and(|at| at.elapsed() < RELEARN_AFTER) {
            return;
        }
        // Bounded: the calls waiting for it have deadlines of their own.
        let _ = tokio::time::timeout(Duration::from_secs(10), self.list_annotations()).await;
        *learnt = Some(std::time::Instant::now());
    }

    /// Every page of the upstream's tools/list, its annotations learnt (`learn_mirrored`).
    async fn list_annotations(&self) {
        let mut cursor: Option<String> = None;
        for page in 0..100 {
            let mut list = json!({});
            if let Some(c) = &cursor {
                list["cursor"] = c.clone().into();
            }
            let list = self.enveloped(&Message::request("0", "tools/list", Some(&list)));
            let id = format!("\"mesh-learn-{page}\"");
            let Ok(reply) = self.post(&id, "tools/list", &list, None, &HeaderMap::new()).await else { return };
            let Some(mut result) = reply.result::<Value>() else { return };
            self.learn_mirrored(&mut result);
            cursor = result.get("nextCursor").and_then(Value::as_str).map(str::to_string);
            if cursor.is_none() {
                return;
            }
        }
    }

    /// The `Mcp-Param-*` headers of a `tools/call` with `params`, for a tool whose annotations
    /// were listed: each annotated argument with a value (not null), as a header value.
    fn mirror(&self, params: &Value) -> HeaderMap {
        let mut out = HeaderMap::new();
        let Some(name) = params.get("name").and_then(Value::as_str) else { return out };
        let Some(annotated) = self.lock().mirrored.get(name).cloned() else { return out };
        for (argument, token) in annotated {
            let value = match params.pointer(&format!("/arguments/{}", argument.replace('~', "~0").replace('/', "~1")))
            {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => continue,
            };
            if let Ok(header) = reqwest::header::HeaderName::from_bytes(format!("mcp-param-{token}").as_bytes()) {
                out.insert(header, header_value(&value));
            }
        }
        out
    }
}

impl Drop for ModernLink {
    /// The listen task waits for a subscription without holding the link: it stops with it.
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// What a session holds of a [`ModernLink`]. The link's own tasks hold the link too (its listen
/// while a stream is open, a request while it is on its way), so the link itself would not be
/// dropped while its listen stream stays open: the last handle going stops them, as `close`
/// does, when a session is dropped without closing its links (as `HttpLink`'s drop does for its
/// streams).
struct Owned(Arc<ModernLink>);

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[async_trait::async_trait]
impl Transport for Owned {
    async fn send(&self, msg: Message) -> Result<(), RelayError> {
        self.0.send(msg).await
    }

    async fn send_traced(&self, msg: Message, traceparent: &str) -> Result<(), RelayError> {
        self.0.send_traced(msg, traceparent).await
    }

    fn reads_mesh_keys(&self) -> bool {
        self.0.reads_mesh_keys()
    }

    fn transport_kind(&self) -> &'static str {
        self.0.transport_kind()
    }

    async fn close(&self) {
        self.0.close().await;
    }

    fn diagnostics(&self) -> Option<String> {
        self.0.diagnostics()
    }
}

#[async_trait::async_trait]
impl Transport for ModernLink {
    fn reads_mesh_keys(&self) -> bool {
        true
    }

    fn transport_kind(&self) -> &'static str {
        match self.wire {
            Wire::Http { .. } => "tcp",
            Wire::Stdio(_) => "pipe",
        }
    }

    async fn send(&self, msg: Message) -> Result<(), RelayError> {
        if self.closed.is_cancelled() {
            return Err(RelayError::UpstreamUnavailable(format!("{}: the link is closed", self.name)));
        }
        let id = msg.id().unwrap_or("null").to_string();
        match (msg.kind(), msg.method()) {
            (Kind::Request, Some("initialize")) => self.initialized(&msg),
            (Kind::Request, Some("ping")) => self.deliver(Message::response(&id, &json!({})), None),
            (Kind::Request, Some("logging/setLevel")) => {
                #[derive(serde::Deserialize)]
                struct Level {
                    level: String,
                }
                self.lock().log_level = msg.params::<Level>().map(|l| l.level);
                self.deliver(Message::response(&id, &json!({})), None);
            }
            // A session-based client has no tasks of this revision: the mesh could not keep its
            // task requests to the tasks it created, since the upstream sees one client.
            (Kind::Request, Some("tasks/get" | "tasks/update" | "tasks/cancel")) if !self.stateless_clients => {
                let why = "tasks are not available on this route to session-based clients";
                self.deliver(Message::error(Some(&id), codes::METHOD_NOT_FOUND, why, None), None);
            }
            (Kind::Request, Some(m @ ("resources/subscribe" | "resources/unsubscribe")))
                if self.takes_subscriptions() =>
            {
                let answer = self.subscription(&id, m, &msg);
                self.deliver(answer, None);
            }
            (Kind::Request, Some(m)) if modern::REMOVED.contains(&m) => {
                let why = format!("{m} is not available: the upstream speaks the stateless revision (2026-07-28)");
                self.deliver(Message::error(Some(&id), codes::METHOD_NOT_FOUND, &why, None), None);
            }
            (Kind::Request, _) => {
                let Some(me) = self.me.upgrade() else { return Ok(()) };
                // Registered under the lock the task needs to deregister: a fast exchange
                // cannot finish before its entry exists.
                let mut st = self.lock();
                let task = tokio::spawn(me.clone().exchange_then_forget(msg));
                st.inflight.insert(id, task.abort_handle());
            }
            (Kind::Notification, Some("notifications/cancelled")) => {
                if let Some(target) = msg.cancelled_request_id() {
                    if let Some(task) = self.lock().inflight.remove(&target) {
                        // Closing the request's stream is the stateless revision's cancellation.
                        task.abort();
                    }
                }
            }
            (Kind::Notification, _) => {}
            (Kind::Response | Kind::Error, _) => {
                if let Some(tx) = self.lock().waiting.remove(&id) {
                    let _ = tx.send(msg);
                }
            }
        }
        Ok(())
    }

    async fn close(&self) {
        self.stop();
        if let Wire::Stdio(w) = &self.wire {
            w.close().await;
        }
    }

    fn diagnostics(&self) -> Option<String> {
        match &self.wire {
            Wire::Stdio(w) => w.diagnostics(),
            Wire::Http { .. } => None,
        }
    }
}

/// The body of `resp`, refused beyond `limit` bytes.
async fn limited(resp: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("the reply exceeds {limit} bytes"));
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.without_url().to_string())?;
        if body.len() + chunk.len() > limit {
            return Err(format!("the reply exceeds {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// Takes the client's `Mcp-Param-*` headers, which the ingress carried in `_meta`, out of it:
/// whether there were any. Their values are never sent on (the link makes its own, `mirror`).
fn took_param_headers(params: &mut Value) -> bool {
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else { return false };
    let Some(Value::Object(carried)) = meta.remove(PARAM_HEADERS) else { return false };
    carried.keys().any(|k| k.starts_with("mcp-param-"))
}

/// A tool's `x-mcp-header` annotations as (argument, header token), or `None` when one is
/// invalid: not a non-empty token, on an argument that is not a string, integer or boolean, or
/// the same header twice (case-insensitively).
fn annotations(tool: &Value) -> Option<Vec<(String, String)>> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let mut out: Vec<(String, String)> = Vec::new();
    let props = tool.pointer("/inputSchema/properties").and_then(Value::as_object);
    for (arg, schema) in props.into_iter().flatten() {
        let Some(h) = schema.get("x-mcp-header") else { continue };
        let token = h.as_str().filter(|t| !t.is_empty() && t.bytes().all(tchar))?;
        let kind = schema.get("type").and_then(Value::as_str);
        if kind.is_some_and(|k| !matches!(k, "string" | "integer" | "boolean")) {
            return None;
        }
        if out.iter().any(|(_, t)| t.eq_ignore_ascii_case(token)) {
            return None;
        }
        out.push((arg.clone(), token.to_string()));
    }
    Some(out)
}

/// A header value for `s`: as is when it is plain visible ASCII, else the `=?base64?…?=` form.
fn header_value(s: &str) -> HeaderValue {
    let plain = !s.is_empty()
        && s.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !s.starts_with([' ', '\t'])
        && !s.ends_with([' ', '\t'])
        && !s.starts_with("=?");
    if plain {
        if let Ok(v) = HeaderValue::from_str(s) {
            return v;
        }
    }
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    HeaderValue::from_str(&format!("=?base64?{encoded}?=")).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Asks `url` for its `server/discover`: the result when the upstream speaks the stateless
/// revision, `None` when it does not (any refusal, any non-MCP answer) or cannot be reached in
/// `within`.
///
/// One refusal is not the end: a `-32022` (unsupported protocol version) whose `data.supported`
/// names this revision comes from a server of the revision turning down the first attempt, and
/// the spec's answer to it is to ask again at a listed revision (basic/versioning; the suite's
/// `request-metadata` client scenario refuses every first request so). The probe asks once more;
/// a second refusal, a `-32022` that does not list the revision, or any other error still means
/// "not stateless" (the fallback is keyed to no single code).
pub async fn probe(
    http: &reqwest::Client,
    url: &url::Url,
    configured: &[(String, mesh_core::Secret<String>)],
    within: Duration,
) -> Option<Value> {
    let mut headers = header_map("probe", configured).ok()?;
    headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("mcp-protocol-version", HeaderValue::from_static(REVISION));
    headers.insert("mcp-method", HeaderValue::from_static("server/discover"));
    let params = json!({"_meta": {
        modern::META_VERSION: REVISION,
        modern::META_CAPABILITIES: {},
        modern::META_CLIENT_INFO: {"name": "mcp-mesh", "version": env!("CARGO_PKG_VERSION")},
    }});
    let exchange = async {
        for attempt in 1..=2 {
            // A retry is a new request, with a new id.
            let body = Message::request(&attempt.to_string(), "server/discover", Some(&params));
            let resp = http.post(url.clone()).headers(headers.clone()).body(body.bytes().clone()).send().await.ok()?;
            match discovered(resp).await? {
                Discovered::Speaks(result) => return Some(result),
                Discovered::AskAgain => continue,
            }
        }
        None
    };
    tokio::time::timeout(within, exchange).await.ok().flatten()
}

/// What one `server/discover` POST said, when it said something of the stateless revision.
enum Discovered {
    /// A discover result listing this revision.
    Speaks(Value),
    /// `-32022` with this revision among `data.supported`: ask again.
    AskAgain,
}

/// Reads one answer to the probe; `None` for anything that is not the stateless revision.
async fn discovered(resp: reqwest::Response) -> Option<Discovered> {
    let ok = resp.status().is_success();
    let bytes = limited(resp, 1024 * 1024).await.ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    // JSON, or the last `data:` line of an SSE body.
    let json = if text.trim_start().starts_with('{') {
        text.to_string()
    } else {
        let mut d = sse::Decoder::new();
        d.push(text.as_bytes()).ok()?.into_iter().last()?.data
    };
    let v: Value = serde_json::from_str(&json).ok()?;
    let lists_us = |versions: Option<&Value>| {
        versions.and_then(Value::as_array).is_some_and(|vs| vs.iter().any(|s| s.as_str() == Some(REVISION)))
    };
    if let Some(error) = v.get("error") {
        // The revision sends this refusal with HTTP 400 (basic/transports: -32022 is a 400).
        let refused = error.get("code").and_then(Value::as_i64) == Some(codes::UNSUPPORTED_PROTOCOL_VERSION);
        return (refused && lists_us(error.get("data").and_then(|d| d.get("supported"))))
            .then_some(Discovered::AskAgain);
    }
    let result = v.get("result").filter(|_| ok)?;
    lists_us(result.get("supportedVersions")).then(|| Discovered::Speaks(result.clone()))
}
