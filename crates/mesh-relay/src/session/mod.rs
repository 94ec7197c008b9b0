//! One downstream MCP session and the upstream session it owns.
//!
//! Ids: the client's request ids are replaced by integers unique within the upstream session, so
//! two clients can never collide and a late reply can never reach the wrong request; ids of
//! server→client requests are minted by the mesh in the same way in the other direction. Progress
//! tokens pass unchanged: each upstream session serves exactly one downstream session.
//!
//! Where an upstream message goes (in order): the stream of the request it is related to (known
//! for Streamable HTTP POST streams and progress tokens); else the stream of the newest request
//! still in flight (stdio has no other relation, and a tool's logging belongs to the tool call);
//! else the standalone GET stream, queued until the client opens it.

pub mod registry;
pub mod streams;

use crate::audit::{AuditSink, CallRecord, Outcome};
use crate::upstream::{Inbound, InboundSink, Link};
use crate::RelayError;
use mesh_core::Principal;
use mesh_protocol::{Kind, Message};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use streams::{Event, Streams};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A downstream session: who opened it, where it goes, and everything in flight.
pub struct Session {
    /// The `Mcp-Session-Id`.
    pub id: String,
    /// The principal that created it; only the same API key may use it.
    pub principal: Principal,
    /// The route it was opened on (connection id; empty for the management server).
    pub route: String,
    /// A human name for logs (the connection slug, or "management").
    pub label: String,
    /// `connection` or `management`, for audit records.
    pub route_kind: &'static str,
    audit: Arc<dyn AuditSink>,
    client: OnceLock<(String, String)>,
    version: Mutex<String>,
    link: OnceLock<Link>,
    state: Mutex<State>,
    next_up: AtomicU64,
    next_down: AtomicU64,
    timeout: Duration,
    last_active_ms: AtomicI64,
    me: Weak<Session>,
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, Pending>,
    server_requests: HashMap<u64, ServerRequest>,
    progress: HashMap<String, u64>,
    streams: Streams,
    down: Option<String>,
}

struct Pending {
    down_id: Box<str>,
    stream: u64,
    progress: Option<String>,
    deadline: Instant,
    /// False for `initialize`, which the spec forbids cancelling (lifecycle: cancellation).
    cancellable: bool,
    /// What the audit record of this request needs.
    call: Call,
}

/// The request's side of its audit record.
struct Call {
    time_ms: i64,
    started: std::time::Instant,
    method: Box<str>,
    name: Option<String>,
    arguments: Option<String>,
    bytes_in: u64,
}

impl Call {
    fn of(msg: &Message) -> Call {
        #[derive(serde::Deserialize)]
        struct Params<'a> {
            #[serde(borrow)]
            name: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            uri: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            arguments: Option<&'a serde_json::value::RawValue>,
        }
        let p: Option<Params<'_>> = msg.params();
        let (name, arguments) = match p {
            Some(p) => (p.name.or(p.uri).map(|n| n.into_owned()), p.arguments.map(|a| a.get().to_string())),
            None => (None, None),
        };
        Call {
            time_ms: mesh_core::id::now_ms(),
            started: std::time::Instant::now(),
            method: msg.method().unwrap_or("").into(),
            name,
            arguments,
            bytes_in: msg.bytes().len() as u64,
        }
    }
}

struct ServerRequest {
    up_id: Box<str>,
    stream: u64,
}

struct Sink(Weak<Session>);

impl InboundSink for Sink {
    fn deliver(&self, inbound: Inbound) {
        if let Some(s) = self.0.upgrade() {
            s.on_inbound(inbound);
        }
    }
}

impl Session {
    /// A new session with a fresh, cryptographically random id.
    pub fn new(
        principal: Principal,
        route: &str,
        label: &str,
        timeout: Duration,
        route_kind: &'static str,
        audit: Arc<dyn AuditSink>,
    ) -> Arc<Session> {
        Arc::new_cyclic(|me| Session {
            id: mesh_core::id::random_base62(32),
            principal,
            route: route.to_string(),
            label: label.to_string(),
            route_kind,
            audit,
            client: OnceLock::new(),
            version: Mutex::new(mesh_protocol::version::DEFAULT_WITHOUT_HEADER.to_string()),
            link: OnceLock::new(),
            state: Mutex::new(State::default()),
            next_up: AtomicU64::new(1),
            next_down: AtomicU64::new(1),
            timeout,
            last_active_ms: AtomicI64::new(mesh_core::id::now_ms()),
            me: me.clone(),
        })
    }

    /// The sink to build this session's link with (holds the session weakly: no cycle).
    pub fn sink(&self) -> Arc<dyn InboundSink> {
        Arc::new(Sink(self.me.clone()))
    }

    /// Installs the upstream link (once).
    pub fn set_link(&self, link: Link) {
        let _ = self.link.set(link);
    }

    fn link(&self) -> Result<&Link, RelayError> {
        self.link.get().ok_or_else(|| RelayError::Internal("session has no upstream link".into()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The protocol revision negotiated with the downstream client.
    pub fn version(&self) -> String {
        self.version.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Records the negotiated revision.
    pub fn set_version(&self, v: &str) {
        if let Ok(mut g) = self.version.lock() {
            *g = v.to_string();
        }
    }

    /// Milliseconds since the epoch of the last client activity.
    pub fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    /// Whether the session has nothing in flight and nobody listening.
    pub fn is_idle(&self) -> bool {
        let st = self.lock();
        st.pending.is_empty() && !st.streams.any_live()
    }

    /// Forwards a client request. Returns its stream: events end with the reply.
    pub async fn request(&self, msg: &Message) -> Result<(u64, mpsc::Receiver<Event>), RelayError> {
        self.last_active_ms.store(mesh_core::id::now_ms(), Ordering::Relaxed);
        let link = self.link()?.clone();
        let down_id: Box<str> = msg.id().unwrap_or("null").into();
        let up = self.next_up.fetch_add(1, Ordering::Relaxed);
        let progress = msg.progress_token();
        let deadline = Instant::now() + self.timeout;
        let (stream, rx) = {
            let mut st = self.lock();
            let (stream, rx) = st.streams.open();
            if let Some(t) = &progress {
                st.progress.insert(t.clone(), up);
            }
            let cancellable = msg.method() != Some("initialize");
            let call = Call::of(msg);
            if msg.method() == Some("initialize") {
                self.note_client(msg);
            }
            st.pending.insert(up, Pending { down_id, stream, progress, deadline, cancellable, call });
            (stream, rx)
        };
        // Registered before sending: a transport may deliver the reply before `send` returns.
        if let Err(e) = link.send(msg.with_id(&up.to_string())).await {
            let p = {
                let mut st = self.lock();
                st.streams.end(stream);
                let p = st.pending.remove(&up);
                if let Some(t) = p.as_ref().and_then(|p| p.progress.as_ref()) {
                    st.progress.remove(t);
                }
                p
            };
            if let Some(p) = p {
                self.audit_end(p, outcome_of(&e), Some(e.to_string()), 0);
            }
            return Err(e);
        }
        self.watch_deadline(up, deadline);
        Ok((stream, rx))
    }

    /// Forwards a client notification; a cancellation is mapped to the upstream's id.
    pub async fn notify(&self, msg: &Message) -> Result<(), RelayError> {
        self.last_active_ms.store(mesh_core::id::now_ms(), Ordering::Relaxed);
        let link = self.link()?.clone();
        if msg.method() != Some("notifications/cancelled") {
            return link.send(msg.clone()).await;
        }
        let Some(target) = msg.cancelled_request_id() else {
            return Ok(());
        };
        let found = {
            let mut st = self.lock();
            let up = st.pending.iter().find(|(_, p)| *p.down_id == target).map(|(k, _)| *k);
            up.and_then(|up| st.pending.remove(&up).map(|p| (up, p))).map(|(up, p)| {
                if let Some(t) = &p.progress {
                    st.progress.remove(t);
                }
                // Spec: no response is sent for a cancelled request; its stream just ends.
                st.streams.end(p.stream);
                (up, p)
            })
        };
        let found = found.map(|(up, p)| {
            self.audit_end(p, Outcome::Cancelled, None, 0);
            up
        });
        // Unknown or already answered: the spec lets receivers ignore it.
        let Some(up) = found else { return Ok(()) };
        let mut params: serde_json::Value = msg.params().unwrap_or_else(|| serde_json::json!({}));
        params["requestId"] = serde_json::json!(up);
        link.send(Message::notification("notifications/cancelled", Some(&params))).await
    }

    /// Forwards the client's reply to a server→client request back to the upstream's id.
    pub async fn reply(&self, msg: &Message) -> Result<(), RelayError> {
        self.last_active_ms.store(mesh_core::id::now_ms(), Ordering::Relaxed);
        let link = self.link()?.clone();
        let Some(down) = msg.id().and_then(|i| i.parse::<u64>().ok()) else {
            tracing::debug!(session = %self.id, "reply with an id the mesh never sent; ignored");
            return Ok(());
        };
        let Some(req) = self.lock().server_requests.remove(&down) else {
            tracing::debug!(session = %self.id, "reply to an unknown or cancelled server request; ignored");
            return Ok(());
        };
        link.send(msg.with_id(&req.up_id)).await
    }

    /// Attaches a GET stream (standalone, or resuming `last_event_id`).
    pub fn listen(&self, last_event_id: Option<&str>) -> Option<(Vec<Event>, Option<mpsc::Receiver<Event>>)> {
        self.last_active_ms.store(mesh_core::id::now_ms(), Ordering::Relaxed);
        let mut st = self.lock();
        match last_event_id {
            None => {
                let (queued, rx) = st.streams.attach_standalone();
                Some((queued, Some(rx)))
            }
            Some(id) => match st.streams.resume(id) {
                streams::Resume::Replay { events, live } => Some((events, live)),
                streams::Resume::Unknown => None,
            },
        }
    }

    /// Ends the upstream session.
    pub async fn close(&self) {
        if let Some(link) = self.link.get() {
            link.close().await;
        }
    }

    fn on_inbound(&self, inbound: Inbound) {
        match inbound {
            Inbound::Message { msg, related } => match msg.kind() {
                Kind::Response | Kind::Error => self.on_reply(msg),
                Kind::Request => self.on_server_request(msg, related.as_deref()),
                Kind::Notification => self.on_notification(msg, related.as_deref()),
            },
            Inbound::StreamLost { request, reason } => {
                if let Ok(up) = request.parse::<u64>() {
                    self.fail(up, &RelayError::UpstreamUnavailable(reason));
                }
            }
            Inbound::Down { reason } => {
                let ups: Vec<u64> = {
                    let mut st = self.lock();
                    st.down = Some(reason.clone());
                    st.server_requests.clear();
                    st.pending.keys().copied().collect()
                };
                let err = RelayError::UpstreamUnavailable(reason);
                for up in ups {
                    self.fail(up, &err);
                }
            }
            Inbound::Up => self.lock().down = None,
        }
    }

    fn on_reply(&self, msg: Message) {
        let Some(up) = msg.id().and_then(|i| i.parse::<u64>().ok()) else {
            tracing::warn!(session = %self.id, route = %self.label, "upstream sent a reply without a usable id; dropped");
            return;
        };
        let mut st = self.lock();
        let Some(p) = st.pending.remove(&up) else {
            tracing::debug!(session = %self.id, up, "reply to a request no longer pending (timed out or cancelled)");
            return;
        };
        if let Some(t) = &p.progress {
            st.progress.remove(t);
        }
        let out = msg.with_id(&p.down_id);
        st.streams.push(p.stream, out.bytes().clone(), true);
        drop(st);
        let (outcome, error) = reply_outcome(&p.call, &msg);
        self.audit_end(p, outcome, error, msg.bytes().len() as u64);
    }

    fn on_server_request(&self, msg: Message, related: Option<&str>) {
        let down = self.next_down.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        let stream = target_stream(&st, related);
        let up_id: Box<str> = msg.id().unwrap_or("null").into();
        st.server_requests.insert(down, ServerRequest { up_id, stream });
        let out = msg.with_id(&down.to_string());
        st.streams.push(stream, out.bytes().clone(), false);
    }

    fn on_notification(&self, msg: Message, related: Option<&str>) {
        let mut st = self.lock();
        match msg.method() {
            Some("notifications/progress") => {
                let owner = msg.progress_notification_token().and_then(|t| st.progress.get(&t).copied());
                if let Some(p) = owner.and_then(|up| st.pending.get_mut(&up)) {
                    // Progress shows the upstream is alive: the request's timeout starts over.
                    p.deadline = Instant::now() + self.timeout;
                    let stream = p.stream;
                    st.streams.push(stream, msg.bytes().clone(), false);
                    return;
                }
            }
            Some("notifications/cancelled") => {
                // The upstream withdrew one of its own requests to the client: map its id.
                let Some(target) = msg.cancelled_request_id() else {
                    return;
                };
                let found = st.server_requests.iter().find(|(_, r)| *r.up_id == target).map(|(d, r)| (*d, r.stream));
                let Some((down, stream)) = found else { return };
                st.server_requests.remove(&down);
                let mut params: serde_json::Value = msg.params().unwrap_or_else(|| serde_json::json!({}));
                params["requestId"] = serde_json::json!(down);
                let out = Message::notification("notifications/cancelled", Some(&params));
                st.streams.push(stream, out.bytes().clone(), false);
                return;
            }
            _ => {}
        }
        let stream = target_stream(&st, related);
        st.streams.push(stream, msg.bytes().clone(), false);
    }

    fn fail(&self, up: u64, err: &RelayError) {
        let mut st = self.lock();
        let Some(p) = st.pending.remove(&up) else {
            return;
        };
        if let Some(t) = &p.progress {
            st.progress.remove(t);
        }
        let out = err.to_message(Some(&p.down_id));
        st.streams.push(p.stream, out.bytes().clone(), true);
        drop(st);
        self.audit_end(p, outcome_of(err), Some(err.to_string()), out.bytes().len() as u64);
    }

    fn note_client(&self, init: &Message) {
        #[derive(serde::Deserialize)]
        struct Info {
            name: Option<String>,
            version: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Init {
            #[serde(rename = "clientInfo")]
            client_info: Option<Info>,
        }
        if let Some(info) = init.params::<Init>().and_then(|i| i.client_info) {
            let _ = self.client.set((info.name.unwrap_or_default(), info.version.unwrap_or_default()));
        }
    }

    fn audit_end(&self, p: Pending, outcome: Outcome, error: Option<String>, bytes_out: u64) {
        let c = p.call;
        self.audit.record(CallRecord {
            time_ms: c.time_ms,
            principal: self.principal.clone(),
            session_id: self.id.clone(),
            client: self.client.get().cloned(),
            route_kind: self.route_kind,
            route: self.label.clone(),
            method: c.method.into(),
            name: c.name,
            arguments: c.arguments,
            outcome,
            error,
            latency_us: c.started.elapsed().as_micros() as u64,
            bytes_in: c.bytes_in,
            bytes_out,
            request_id: p.down_id.into(),
        });
    }

    fn watch_deadline(&self, up: u64, first: Instant) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let mut deadline = first;
            loop {
                tokio::time::sleep_until(deadline).await;
                let Some(s) = me.upgrade() else { return };
                let current = s.lock().pending.get(&up).map(|p| p.deadline);
                match current {
                    None => return,
                    Some(d) if d > Instant::now() => deadline = d,
                    Some(_) => {
                        s.expire(up).await;
                        return;
                    }
                }
            }
        });
    }

    async fn expire(&self, up: u64) {
        let Some(link) = self.link.get().cloned() else {
            return;
        };
        let note = link.diagnostics().map(|d| format!("; {d}")).unwrap_or_default();
        let cancellable = self.lock().pending.get(&up).is_some_and(|p| p.cancellable);
        tracing::warn!(session = %self.id, route = %self.label, up, "upstream request timed out");
        self.fail(up, &RelayError::UpstreamTimeout(self.timeout, note));
        if cancellable {
            let params = serde_json::json!({"requestId": up, "reason": "timed out in MCP Mesh"});
            let _ = link.send(Message::notification("notifications/cancelled", Some(&params))).await;
        }
    }
}

fn target_stream(st: &State, related: Option<&str>) -> u64 {
    if let Some(p) = related.and_then(|r| r.parse::<u64>().ok()).and_then(|up| st.pending.get(&up)) {
        return p.stream;
    }
    st.pending.iter().max_by_key(|(up, _)| **up).map(|(_, p)| p.stream).unwrap_or(streams::STANDALONE)
}

/// The audit outcome of a relay error.
fn outcome_of(e: &RelayError) -> Outcome {
    match e {
        RelayError::UpstreamTimeout(..) => Outcome::Timeout,
        RelayError::Unauthorized | RelayError::Forbidden(_) => Outcome::Denied,
        _ => Outcome::UpstreamDown,
    }
}

/// The audit outcome of a reply: tool results are inspected for `isError`; the mesh's own
/// upstream error codes are told apart from the upstream's protocol errors.
fn reply_outcome(call: &Call, reply: &Message) -> (Outcome, Option<String>) {
    #[derive(serde::Deserialize)]
    struct ToolResult {
        #[serde(rename = "isError")]
        is_error: Option<bool>,
    }
    #[derive(serde::Deserialize)]
    struct ErrReply {
        error: ErrBody,
    }
    #[derive(serde::Deserialize)]
    struct ErrBody {
        code: i64,
        message: String,
    }
    match reply.kind() {
        Kind::Error => match serde_json::from_slice::<ErrReply>(reply.bytes()) {
            Ok(e) => {
                let outcome = match e.error.code {
                    mesh_protocol::codes::UPSTREAM_UNAVAILABLE | mesh_protocol::codes::UPSTREAM_PROTOCOL => {
                        Outcome::UpstreamDown
                    }
                    mesh_protocol::codes::UPSTREAM_TIMEOUT => Outcome::Timeout,
                    _ => Outcome::ProtocolError,
                };
                (outcome, Some(e.error.message))
            }
            Err(_) => (Outcome::ProtocolError, None),
        },
        _ if &*call.method == "tools/call" => match reply.result::<ToolResult>() {
            Some(ToolResult { is_error: Some(true) }) => (Outcome::ToolError, None),
            _ => (Outcome::Ok, None),
        },
        _ => (Outcome::Ok, None),
    }
}
