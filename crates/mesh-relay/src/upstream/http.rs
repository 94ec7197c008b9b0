//! The Streamable HTTP transport, as a client of the upstream (MCP 2025-11-25 basic/transports).
//!
//! One POST per message over a process-wide connection pool (`wire`: a pool of the mesh's own
//! for plain-HTTP upstreams, reqwest's otherwise): no per-call handshake.
//! A POST may be answered with one JSON message or an SSE stream of related messages ending with
//! the reply; the stream's messages are delivered with the request's id as `related`. If a stream
//! ends before the reply, it is resumed with GET + `Last-Event-ID` when the upstream gave event ids
//! (the server may close early after sending `retry`), else the request fails as `StreamLost`.
//! After `notifications/initialized` the link opens the standalone GET stream for unsolicited
//! messages (list_changed, resources/updated, server requests), reconnecting while the session lives.

use super::wire::{self, Answer};
use super::{header_map, Inbound, InboundSink, Transport};
use crate::RelayError;
use bytes::Bytes;
use futures_util::StreamExt;
use mesh_protocol::{sse, Kind, Message};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use reqwest::StatusCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{SESSION_HEADER, VERSION_HEADER};
/// The largest single JSON reply accepted from an upstream.
const MAX_JSON_BODY: usize = 64 * 1024 * 1024;
/// The most a request's SSE stream may carry in all (its messages and the reply). One event is
/// bounded by the decoder (`sse::MAX_EVENT`); this bounds an upstream that streams related
/// messages for ever (progress resets the request's deadline). The standalone GET stream is
/// long-lived by design and has no total, only the per-event bound.
pub(super) const MAX_REQUEST_STREAM: u64 = 256 * 1024 * 1024;
/// How often a stream that ended early is resumed before the request is failed.
const MAX_RESUMES: u32 = 5;

/// A link to a Streamable HTTP upstream.
pub struct HttpLink {
    name: String,
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    client: reqwest::Client,
    url: url::Url,
    /// Where POSTs go over the fast path, when the URL allows it (`wire::fast`).
    fast: Option<wire::Fast>,
    headers: HeaderMap,
    /// A bearer token that may change between requests (`UpstreamSpec::credential`).
    credential: Option<Arc<dyn crate::Credential>>,
    sink: Arc<dyn InboundSink>,
    session: Mutex<SessionState>,
    closed: AtomicBool,
    /// Cancelled when the link closes or is dropped: every stream reader (request streams being
    /// followed, the GET stream) ends with it, so no upstream stream outlives its session.
    stop: tokio_util::sync::CancellationToken,
}

#[derive(Default)]
struct SessionState {
    id: Option<HeaderValue>,
    version: Option<HeaderValue>,
    get_task: Option<tokio::task::JoinHandle<()>>,
    /// The client's initialize and whether initialized followed: replayed when the upstream
    /// forgets our session (it restarted), so the downstream session carries on.
    handshake: Option<Message>,
    initialized: bool,
    reinits: u64,
    /// The headers of a POST, with the session id and version they were built for: built again
    /// only when those change, so a call clones one map (or one `Bytes`) instead of building it.
    post_headers: Option<PostHeaders>,
}

struct PostHeaders {
    id: Option<HeaderValue>,
    version: Option<HeaderValue>,
    /// The credential's token they carry.
    token: Option<Arc<str>>,
    map: HeaderMap,
    /// The same, serialised for the fast path (`wire::head`); empty without one.
    head: Bytes,
}

impl HttpLink {
    /// A link; nothing is sent until the first message.
    pub fn new(
        name: &str,
        client: reqwest::Client,
        url: url::Url,
        reach: crate::Reach,
        headers: &[(String, mesh_core::Secret<String>)],
        credential: Option<Arc<dyn crate::Credential>>,
        sink: Arc<dyn InboundSink>,
    ) -> Result<HttpLink, RelayError> {
        let mut headers = header_map(name, headers)?;
        if credential.is_some() {
            // The live credential is the one Authorization.
            headers.remove(AUTHORIZATION);
        }
        let shared = Shared {
            name: name.to_string(),
            client,
            fast: wire::fast(&url, reach),
            url,
            headers,
            credential,
            sink,
            session: Mutex::new(SessionState::default()),
            closed: AtomicBool::new(false),
            stop: tokio_util::sync::CancellationToken::new(),
        };
        Ok(HttpLink { name: name.to_string(), shared: Arc::new(shared) })
    }
}

/// `Authorization: Bearer {token}`, marked sensitive (kept out of debug output and HPACK tables).
fn bearer_value(token: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection's headers plus the upstream session's id and protocol version.
    fn headers(&self) -> HeaderMap {
        self.session_headers(&self.state())
    }

    fn session_headers(&self, st: &SessionState) -> HeaderMap {
        let token = self.credential.as_ref().and_then(|c| c.bearer());
        self.session_headers_with(st, token.as_deref())
    }

    fn session_headers_with(&self, st: &SessionState, token: Option<&str>) -> HeaderMap {
        let mut headers = self.headers.clone();
        if let Some(v) = token.and_then(bearer_value) {
            headers.insert(AUTHORIZATION, v);
        }
        if let Some(id) = &st.id {
            headers.insert(SESSION_HEADER, id.clone());
        }
        if let Some(v) = &st.version {
            headers.insert(VERSION_HEADER, v.clone());
        }
        headers
    }

    /// `headers()` plus what every POST carries (Accept, Content-Type), given to `f`.
    fn with_post_headers<R>(&self, f: impl FnOnce(&PostHeaders) -> R) -> R {
        // Read before the lock: a credential may take its own lock.
        let token = self.credential.as_ref().and_then(|c| c.bearer());
        let mut st = self.state();
        let same_token = |p: &PostHeaders| match (&p.token, &token) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            _ => false,
        };
        let fresh = st.post_headers.as_ref().is_some_and(|p| p.id == st.id && p.version == st.version && same_token(p));
        if !fresh {
            let mut headers = self.session_headers_with(&st, token.as_deref());
            headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            // reqwest adds these by itself; the fast path (`wire::post`) needs them here.
            headers.insert(USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
            if let Some(fast) = &self.fast {
                // A Host configured on the connection wins, as with reqwest (virtual hosts).
                headers.entry(HOST).or_insert_with(|| fast.host.clone());
            }
            let head = self.fast.as_ref().map(|fast| wire::head(fast, &headers)).unwrap_or_default();
            let (id, version) = (st.id.clone(), st.version.clone());
            st.post_headers = Some(PostHeaders { id, version, token, map: headers, head });
        }
        f(st.post_headers.as_ref().expect("built above"))
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        self.client.request(method, self.url.clone()).headers(self.headers())
    }

    async fn post(&self, msg: &Message, traceparent: Option<&str>) -> Result<Answer, RelayError> {
        match &self.fast {
            Some(fast) => {
                let mut head = self.with_post_headers(|p| p.head.clone());
                if let Some(tp) = traceparent.filter(|t| http::HeaderValue::from_str(t).is_ok()) {
                    // A traced request's own header, after the session's cached ones.
                    let mut traced = Vec::with_capacity(head.len() + tp.len() + 15);
                    traced.extend_from_slice(&head);
                    traced.extend_from_slice(b"traceparent: ");
                    traced.extend_from_slice(tp.as_bytes());
                    traced.extend_from_slice(b"\r\n");
                    head = traced.into();
                }
                wire::post(fast, &head, msg.bytes()).await.map_err(|f| RelayError::UpstreamFailed {
                    cause: f.cause,
                    detail: format!("{}: {}", self.name, f.detail),
                })
            }
            None => self
                .client
                .post(self.url.clone())
                .headers(self.with_post_headers(|p| {
                    let mut map = p.map.clone();
                    if let Some(v) = traceparent.and_then(|t| http::HeaderValue::from_str(t).ok()) {
                        map.insert("traceparent", v);
                    }
                    map
                }))
                .body(msg.bytes().clone())
                .send()
                .await
                .map(Answer::from_reqwest)
                .map_err(|e| self.unreachable(e)),
        }
    }

    /// Opens a new upstream session by replaying the client's initialize (and initialized).
    async fn reinitialize(self: Arc<Self>) -> Result<(), RelayError> {
        let (init, initialized, n) = {
            let mut st = self.state();
            st.id = None;
            st.reinits += 1;
            (st.handshake.clone(), st.initialized, st.reinits)
        };
        let Some(init) = init else {
            return Err(RelayError::UpstreamUnavailable(format!("{}: session lost", self.name)));
        };
        let id = format!("\"mesh-reinit-{n}\"");
        let resp = self.post(&init.with_id(&id), None).await?;
        if !resp.status.is_success() {
            return Err(RelayError::UpstreamUnavailable(format!(
                "{}: re-initialising after a lost session failed (HTTP {})",
                self.name, resp.status
            )));
        }
        if let Some(sid) = resp.headers.get(SESSION_HEADER) {
            self.state().id = Some(sid.clone());
        }
        let reply =
            tokio::time::timeout(Duration::from_secs(30), self.read_reply(resp, &id)).await.map_err(|_| {
                RelayError::UpstreamUnavailable(format!("{}: no answer to the replayed initialize", self.name))
            })??;
        if reply.kind() != Kind::Response {
            return Err(RelayError::UpstreamUnavailable(format!(
                "{}: the upstream refused the replayed initialize",
                self.name
            )));
        }
        self.note_version(&reply);
        if initialized {
            let note = Message::notification("notifications/initialized", None);
            let resp = self.post(&note, None).await?;
            if !resp.status.is_success() {
                return Err(RelayError::UpstreamUnavailable(format!(
                    "{}: initialized refused after re-init",
                    self.name
                )));
            }
            let task = tokio::spawn(self.clone().listen());
            if let Some(old) = self.state().get_task.replace(task) {
                old.abort();
            }
            if self.closed.load(Ordering::Acquire) {
                // Closed meanwhile: `close` may have run before the task was stored.
                self.state().get_task.take().inspect(|t| t.abort());
            }
        }
        tracing::info!(connection = %self.name, "the upstream had lost our session; re-initialised it with the client's handshake");
        crate::stats::upstream_reconnected();
        Ok(())
    }

    /// The reply with `id` from a JSON or SSE response; anything else on the stream is delivered.
    async fn read_reply(&self, resp: Answer, id: &str) -> Result<Message, RelayError> {
        let protocol = |e: String| RelayError::UpstreamProtocol(format!("{}: {e}", self.name));
        if is_json(&resp.headers) {
            let body = resp.bytes(MAX_JSON_BODY).await.map_err(protocol)?;
            return Message::parse(body).map_err(|e| protocol(e.to_string()));
        }
        let mut decoder = sse::Decoder::new();
        let mut body = resp.stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(protocol)?;
            for ev in decoder.push(&chunk).map_err(|e| protocol(e.to_string()))? {
                let Ok(msg) = Message::parse(Bytes::from(ev.data)) else { continue };
                if msg.kind().is_reply() && msg.id() == Some(id) {
                    return Ok(msg);
                }
                self.sink.deliver(Inbound::Message { msg, related: None });
            }
        }
        Err(protocol("the stream ended before the reply".into()))
    }

    fn unreachable(&self, e: reqwest::Error) -> RelayError {
        unreachable(&self.name, e)
    }

    fn note_version(&self, reply: &Message) {
        #[derive(serde::Deserialize)]
        struct Init<'a> {
            #[serde(rename = "protocolVersion", borrow)]
            protocol_version: std::borrow::Cow<'a, str>,
        }
        if let Some(init) = reply.result::<Init<'_>>() {
            if let Ok(v) = HeaderValue::from_str(&init.protocol_version) {
                self.state().version = Some(v);
            }
        }
    }

    /// Reads an SSE body, delivering messages related to `request` (or unsolicited when `None`),
    /// until it ends, the reply to `request` is seen, the link stops, or the upstream breaks a
    /// bound (`Pumped::refused`).
    async fn pump(&self, resp: Answer, request: Option<&str>, is_init: bool) -> Pumped {
        let mut decoder = sse::Decoder::new();
        let mut body = resp.stream();
        let mut replied = false;
        let mut error = None;
        let mut refused = false;
        let mut total = 0u64;
        let stop = self.stop.cancelled();
        tokio::pin!(stop);
        loop {
            let chunk = tokio::select! {
                biased;
                _ = &mut stop => break,
                chunk = body.next() => match chunk {
                    Some(c) => c,
                    None => break,
                },
            };
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            total += chunk.len() as u64;
            let events = match decoder.push(&chunk) {
                Ok(_) if request.is_some() && total > MAX_REQUEST_STREAM => {
                    Err(format!("a response stream longer than {MAX_REQUEST_STREAM} bytes"))
                }
                Ok(ev) => Ok(ev),
                Err(e) => Err(e.to_string()),
            };
            let events = match events {
                Ok(ev) => ev,
                Err(e) => {
                    // A hostile or broken upstream: never resumed, the stream is closed here.
                    tracing::warn!(connection = %self.name, error = %e, "upstream SSE stream refused: it broke a size bound");
                    error = Some(format!("refused {e}"));
                    refused = true;
                    break;
                }
            };
            for ev in events {
                if !(ev.event.is_empty() || ev.event == "message") {
                    continue;
                }
                let msg = match Message::parse(Bytes::from(ev.data)) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(connection = %self.name, error = %e, "upstream sent a non-JSON-RPC SSE event; dropped");
                        continue;
                    }
                };
                if let Some(req) = request {
                    if msg.kind().is_reply() && msg.id() == Some(req) {
                        replied = true;
                        if is_init {
                            self.note_version(&msg);
                        }
                    }
                }
                let related = request.map(Into::into);
                self.sink.deliver(Inbound::Message { msg, related });
            }
            if replied {
                break;
            }
        }
        Pumped {
            last_id: decoder.last_event_id().map(str::to_string),
            retry: decoder.retry_ms(),
            replied,
            error,
            refused,
        }
    }

    /// Follows a request's SSE stream to its reply, resuming it if the upstream closes early.
    async fn follow(self: Arc<Self>, mut resp: Answer, request: String, is_init: bool) {
        let mut resumes = 0;
        loop {
            let Pumped { last_id, retry, replied, error, refused } = self.pump(resp, Some(&request), is_init).await;
            if replied || self.closed.load(Ordering::Acquire) || self.stop.is_cancelled() {
                return;
            }
            let reason = error.unwrap_or_else(|| "the upstream closed the response stream before answering".into());
            let Some(last_id) = last_id.filter(|_| resumes < MAX_RESUMES && !refused) else {
                self.sink.deliver(Inbound::StreamLost { request: request.into(), reason });
                return;
            };
            resumes += 1;
            tokio::time::sleep(Duration::from_millis(retry.unwrap_or(200).min(10_000))).await;
            match self.open_get(Some(&last_id)).await {
                Ok(Some(r)) => resp = r,
                Ok(None) | Err(_) => {
                    self.sink.deliver(Inbound::StreamLost { request: request.into(), reason });
                    return;
                }
            }
        }
    }

    /// GET the endpoint for an event stream. `Ok(None)` when the upstream offers none (405).
    async fn open_get(&self, last_event_id: Option<&str>) -> Result<Option<Answer>, RelayError> {
        let mut req = self.request(reqwest::Method::GET).header(ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        match resp.status() {
            s if s.is_success() && is_sse(resp.headers()) => Ok(Some(Answer::from_reqwest(resp))),
            StatusCode::METHOD_NOT_ALLOWED => Ok(None),
            s => Err(RelayError::UpstreamProtocol(format!("{}: GET stream answered HTTP {s}", self.name))),
        }
    }

    /// The standalone GET stream: unsolicited server messages, reconnected while the session lives.
    async fn listen(self: Arc<Self>) {
        let mut last_id: Option<String> = None;
        let mut failures = 0u32;
        while !self.closed.load(Ordering::Acquire) {
            match self.open_get(last_id.as_deref()).await {
                Ok(Some(resp)) => {
                    failures = 0;
                    let p = self.pump(resp, None, false).await;
                    if p.refused {
                        tracing::warn!(connection = %self.name, "giving up on the upstream's GET stream: it broke a size bound");
                        return;
                    }
                    let (id, retry) = (p.last_id, p.retry);
                    last_id = id.or(last_id);
                    tokio::time::sleep(Duration::from_millis(retry.unwrap_or(500).min(30_000))).await;
                }
                Ok(None) => return,
                Err(e) => {
                    failures += 1;
                    if failures > 8 {
                        tracing::warn!(connection = %self.name, error = %e, "giving up on the upstream's GET stream");
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(250u64 << failures.min(7))).await;
                }
            }
        }
    }
}

/// How a read of an SSE body ended.
struct Pumped {
    /// The last event id seen (for resuming).
    last_id: Option<String>,
    /// The reconnection delay the upstream asked for.
    retry: Option<u64>,
    /// The reply to the request was seen.
    replied: bool,
    /// Why the stream broke off, if it did.
    error: Option<String>,
    /// The upstream broke a size bound: the stream must not be resumed.
    refused: bool,
}

/// A reqwest failure as the link's error, with its cause read from the error's chain.
pub(super) fn unreachable(name: &str, e: reqwest::Error) -> RelayError {
    let cause = super::reach::cause_of(&e);
    if cause == crate::Cause::NotPublic {
        // The resolver or the redirect policy refused every address (reach: public).
        return RelayError::UpstreamFailed { cause, detail: format!("{name}: {}", not_public_story(&e)) };
    }
    // `without_url`: a URL may carry a token in its query string.
    let e = e.without_url();
    let what = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    // The chain's innermost causes say what happened (refused, certificate, name); reqwest's own
    // message ("error sending request") does not.
    let mut detail = e.to_string();
    let mut next = std::error::Error::source(&e);
    while let Some(inner) = next {
        detail = format!("{detail}: {inner}");
        next = inner.source();
    }
    RelayError::UpstreamFailed { cause, detail: format!("{name}: {what} ({detail})") }
}

/// The refusal's own message, found in the error's chain.
fn not_public_story(e: &reqwest::Error) -> String {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(refused) = err.downcast_ref::<super::reach::NotPublic>() {
            return refused.to_string();
        }
        next = err.source();
    }
    "the upstream's addresses are not public".into()
}

fn is_sse(h: &HeaderMap) -> bool {
    h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"))
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

#[async_trait::async_trait]
impl Transport for HttpLink {
    async fn send(&self, msg: Message) -> Result<(), RelayError> {
        self.send_with(msg, None).await
    }

    async fn send_traced(&self, msg: Message, traceparent: &str) -> Result<(), RelayError> {
        self.send_with(msg, Some(traceparent)).await
    }

    async fn close(&self) {
        let sh = &self.shared;
        sh.stop.cancel();
        if sh.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let had_session = {
            let mut st = sh.state();
            if let Some(t) = st.get_task.take() {
                t.abort();
            }
            st.id.is_some()
        };
        if had_session {
            // Best effort (spec: the server MAY answer 405); bounded so shutdown never hangs.
            let req = sh.request(reqwest::Method::DELETE).timeout(Duration::from_secs(2));
            if let Err(e) = req.send().await {
                tracing::debug!(connection = %self.name, error = %e.without_url(), "DELETE of upstream session failed");
            }
        }
    }
}

impl HttpLink {
    async fn send_with(&self, msg: Message, traceparent: Option<&str>) -> Result<(), RelayError> {
        let sh = &self.shared;
        if sh.closed.load(Ordering::Acquire) {
            return Err(RelayError::UpstreamUnavailable("the upstream session was closed".into()));
        }
        let is_init = msg.kind() == Kind::Request && msg.method() == Some("initialize");
        if is_init {
            sh.state().handshake = Some(msg.clone());
        }
        let mut resp = sh.post(&msg, traceparent).await?;
        let resumable = !is_init && {
            let st = sh.state();
            st.id.is_some() && st.handshake.is_some()
        };
        if resumable {
            // Spec (session management): 404 means the upstream ended our session — typically it
            // restarted. Some servers answer an unknown session with 400 instead; the body says so.
            resp = match resp.status {
                StatusCode::NOT_FOUND => {
                    sh.clone().reinitialize().await?;
                    sh.post(&msg, traceparent).await?
                }
                StatusCode::BAD_REQUEST => {
                    let text = resp.text().await;
                    if !text.to_ascii_lowercase().contains("session") {
                        return Err(RelayError::UpstreamFailed {
                            cause: crate::Cause::Status(400),
                            detail: format!("{}: the upstream answered HTTP 400", sh.name),
                        });
                    }
                    sh.clone().reinitialize().await?;
                    sh.post(&msg, traceparent).await?
                }
                _ => resp,
            };
        }
        let status = resp.status;
        if is_init {
            if let Some(id) = resp.headers.get(SESSION_HEADER) {
                sh.state().id = Some(id.clone());
            }
        }
        match status {
            StatusCode::ACCEPTED => {}
            s if s.is_success() && msg.kind() == Kind::Request && is_sse(&resp.headers) => {
                let request = msg.id().unwrap_or_default().to_string();
                tokio::spawn(sh.clone().follow(resp, request, is_init));
            }
            s if s.is_success() && msg.kind() == Kind::Request && is_json(&resp.headers) => {
                let body = resp
                    .bytes(MAX_JSON_BODY)
                    .await
                    .map_err(|e| RelayError::UpstreamProtocol(format!("{}: reading the reply failed: {e}", sh.name)))?;
                let reply = Message::parse(body).map_err(|e| {
                    RelayError::UpstreamProtocol(format!("{}: the reply is not JSON-RPC: {e}", sh.name))
                })?;
                if is_init {
                    sh.note_version(&reply);
                }
                let related = msg.id().map(Into::into);
                sh.sink.deliver(Inbound::Message { msg: reply, related });
            }
            s if s.is_success() && msg.kind() != Kind::Request => {}
            s if s.is_success() => {
                return Err(RelayError::UpstreamProtocol(format!("{}: reply has unexpected Content-Type", sh.name)));
            }
            StatusCode::NOT_FOUND if sh.state().id.is_some() => {
                return Err(RelayError::UpstreamUnavailable(format!("{}: the upstream ended its session", sh.name)));
            }
            StatusCode::FORBIDDEN if super::insufficient_scope(&resp.headers).is_some() => {
                let challenge = super::insufficient_scope(&resp.headers).unwrap_or_default();
                return Err(RelayError::InsufficientScope { connection: sh.name.clone(), challenge });
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(RelayError::UpstreamFailed {
                    cause: crate::Cause::Status(status.as_u16()),
                    detail: format!("{}: the upstream refused the connection's credentials (HTTP {status})", sh.name),
                });
            }
            s => {
                return Err(RelayError::UpstreamFailed {
                    cause: crate::Cause::Status(s.as_u16()),
                    detail: format!("{}: the upstream answered HTTP {s}", sh.name),
                });
            }
        }
        if msg.kind() == Kind::Notification && msg.method() == Some("notifications/initialized") {
            sh.state().initialized = true;
            let task = tokio::spawn(sh.clone().listen());
            if let Some(old) = sh.state().get_task.replace(task) {
                old.abort();
            }
        }
        Ok(())
    }
}

impl Drop for HttpLink {
    /// A link dropped without `close` (its session is gone) still ends its streams: the readers
    /// hold the shared state, so without this they would keep it, and the upstream's streams, alive.
    fn drop(&mut self) {
        let sh = &self.shared;
        sh.closed.store(true, Ordering::Release);
        sh.stop.cancel();
        if let Some(t) = sh.state().get_task.take() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nowhere;
    impl InboundSink for Nowhere {
        fn deliver(&self, _: Inbound) {}
    }

    fn host_of(url: &str, headers: &[(String, mesh_core::Secret<String>)]) -> Option<String> {
        let url = url::Url::parse(url).unwrap();
        let link = HttpLink::new("t", reqwest::Client::new(), url, crate::Reach::Any, headers, None, Arc::new(Nowhere))
            .unwrap();
        link.shared.with_post_headers(|p| p.map.get(HOST).map(|v| v.to_str().unwrap().to_string()))
    }

    #[tokio::test]
    async fn the_fast_path_sends_host_and_a_configured_host_wins() {
        if wire::fast(&url::Url::parse("http://127.0.0.1:9/mcp").unwrap(), crate::Reach::Any).is_none() {
            return; // a proxy in the environment: reqwest carries the POST and writes Host itself
        }
        assert_eq!(host_of("http://127.0.0.1:9/mcp", &[]).as_deref(), Some("127.0.0.1:9"));
        let configured = [("Host".to_string(), mesh_core::Secret::new("tools.internal".to_string()))];
        assert_eq!(host_of("http://127.0.0.1:9/mcp", &configured).as_deref(), Some("tools.internal"));
        assert_eq!(host_of("https://example.com/mcp", &[]), None, "reqwest writes Host for TLS upstreams");
    }
}
