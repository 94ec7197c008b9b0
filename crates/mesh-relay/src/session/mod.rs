//! One downstream MCP session and the upstream session(s) it owns.
//!
//! A connection's session has one member (index 0); a virtual MCP's session has one member per
//! connection in the gateway (see `gateway.rs`, which decides where each request goes). Everything
//! below is the same for both.
//!
//! Ids: the client's request ids are replaced by integers unique within the session (across all
//! members), so two clients can never collide and a late reply can never reach the wrong request;
//! ids of server→client requests are minted by the mesh in the same way in the other direction,
//! and remember which member asked. Progress tokens pass unchanged: each upstream session serves
//! exactly one downstream session.
//!
//! Where an upstream message goes (in order): the stream of the request it is related to (known
//! for Streamable HTTP POST streams and progress tokens); else the stream of the newest request
//! still in flight (stdio has no other relation, and a tool's logging belongs to the tool call);
//! else the standalone GET stream, queued until the client opens it.

mod call;
pub mod caps;
mod catalog;
mod code;
mod deadline;
mod elicit;
mod exposed;
pub mod gateway;
mod gateway_lifecycle;
mod governance;
mod inbound;
mod inflight;
mod record;
pub mod registry;
mod routing;
mod smart;
pub mod streams;
mod trace;

use crate::ports::AuditSink;
use crate::upstream::{Inbound, InboundSink, Link};
use crate::RelayError;
pub use governance::Use;
use inbound::target_stream;
use mesh_core::audit::{Origin, Outcome};
use mesh_core::Principal;
use mesh_protocol::{codes, Message};
pub use record::Audited;
use record::Call;
pub(crate) use record::{method_name, outcome_of};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;
use streams::{Event, Streams};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The kind of endpoint a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `/mcp`: the mesh's management server.
    Management,
    /// `/mcp/{connection}`.
    Connection,
    /// `/mcp/gateway/{gateway}`: a virtual MCP.
    Gateway,
}

impl RouteKind {
    /// The name audit records use.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Management => "management",
            RouteKind::Connection => "connection",
            RouteKind::Gateway => "gateway",
        }
    }
}

/// The step-up hook of a session (`Session::on_step_up`).
type StepUp = Box<dyn Fn(String) -> futures_util::future::BoxFuture<'static, Option<RelayError>> + Send + Sync>;

/// A downstream session: who opened it, where it goes, and everything in flight.
pub struct Session {
    /// The `Mcp-Session-Id`.
    pub id: String,
    /// The principal that created it; only the same API key may use it.
    pub principal: Principal,
    /// The route it was opened on (connection or gateway id; empty for the management server).
    pub route: String,
    /// A human name for logs (the connection or gateway slug, or "management").
    pub label: String,
    /// What kind of endpoint it was opened on.
    pub route_kind: RouteKind,
    audit: Arc<dyn AuditSink>,
    client: OnceLock<(String, String)>,
    origin: OnceLock<Arc<Origin>>,
    version: Mutex<String>,
    links: RwLock<Vec<Option<Link>>>,
    gateway: Option<gateway::Gateway>,
    governance: OnceLock<governance::Governance>,
    dead: AtomicBool,
    /// Told when the upstream refuses the session's credentials (`call.rs`), once.
    on_refused: OnceLock<Box<dyn Fn(String) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>>,
    on_step_up: OnceLock<StepUp>,
    /// Waits for an authorization the client was sent to (`elicit.rs`).
    on_authorized: OnceLock<elicit::Authorized>,
    /// The client declared URL-mode elicitation at `initialize`.
    url_elicitation: AtomicBool,
    /// Serves stateless (2026-07-28) requests of one principal; never addressed by its id.
    pooled: AtomicBool,
    state: Mutex<State>,
    next_up: AtomicU64,
    next_down: AtomicU64,
    timeout: Duration,
    last_active_ms: AtomicI64,
    /// When it opened, and whether its end was reported (`close` may run more than once).
    opened: std::time::Instant,
    ended: AtomicBool,
    me: Weak<Session>,
}

#[derive(Default)]
struct State {
    /// Keyed by the session's own counters (foldhash: no caller picks these keys).
    pending: foldhash::HashMap<u64, Pending>,
    server_requests: foldhash::HashMap<u64, ServerRequest>,
    /// Keyed by the client's progress tokens: SipHash, which chosen keys cannot degrade.
    progress: HashMap<String, u64>,
    streams: Streams,
    /// Requests the mesh answers itself (merged lists, smart search, scripts), by stream: what a
    /// cancellation finds them by, and how it stops them.
    local: foldhash::HashMap<u64, Local>,
}

/// A request being answered by the mesh itself.
struct Local {
    /// The client's id for it, as written.
    down_id: Box<str>,
    /// Stops its work (dropping it: a script is told to stop).
    cancel: tokio_util::sync::CancellationToken,
}

/// Where the reply to a forwarded request goes.
enum Target {
    /// To the client, on this stream.
    Stream(u64),
    /// To the mesh itself (a gateway fetching a member's list, initialising a member).
    Internal(oneshot::Sender<Message>),
}

struct Pending {
    down_id: Box<str>,
    target: Target,
    member: usize,
    progress: Option<String>,
    deadline: Instant,
    /// False for `initialize`, which the spec forbids cancelling (lifecycle: cancellation).
    cancellable: bool,
    /// What the audit record needs; `None` for internal requests, which are not the client's.
    call: Option<Call>,
    /// Whether the user was asked in-band to authorize more scope for this call (`elicit.rs`):
    /// once per call.
    asked: bool,
    /// The task enforcing the deadline; aborted when the request ends, so that per-call state
    /// never outlives the call (a sleeping timer per finished call would pile up under load).
    timer: Option<tokio::task::AbortHandle>,
}

impl Pending {
    /// Stops the deadline task: the request has ended.
    fn stop_timer(&mut self) {
        if let Some(t) = self.timer.take() {
            t.abort();
        }
    }
}

struct ServerRequest {
    up_id: Box<str>,
    stream: u64,
    member: usize,
    /// Set when the mesh itself asked (`elicit.rs`): the client's answer goes here.
    mesh: Option<tokio::sync::oneshot::Sender<Message>>,
}

struct Sink(Weak<Session>, usize);

impl InboundSink for Sink {
    fn deliver(&self, inbound: Inbound) {
        if let Some(s) = self.0.upgrade() {
            s.on_inbound(self.1, inbound);
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
        route_kind: RouteKind,
        audit: Arc<dyn AuditSink>,
    ) -> Arc<Session> {
        Self::build(principal, route, label, timeout, route_kind, audit, None)
    }

    fn build(
        principal: Principal,
        route: &str,
        label: &str,
        timeout: Duration,
        route_kind: RouteKind,
        audit: Arc<dyn AuditSink>,
        gateway: Option<gateway::Gateway>,
    ) -> Arc<Session> {
        Arc::new_cyclic(|me| Session {
            id: mesh_core::id::random_base62(32),
            principal,
            route: route.to_string(),
            label: label.to_string(),
            route_kind,
            audit,
            client: OnceLock::new(),
            origin: OnceLock::new(),
            version: Mutex::new(mesh_protocol::version::DEFAULT_WITHOUT_HEADER.to_string()),
            links: RwLock::new(Vec::new()),
            gateway,
            governance: OnceLock::new(),
            dead: AtomicBool::new(false),
            on_refused: OnceLock::new(),
            on_step_up: OnceLock::new(),
            on_authorized: OnceLock::new(),
            url_elicitation: AtomicBool::new(false),
            pooled: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            next_up: AtomicU64::new(1),
            next_down: AtomicU64::new(1),
            timeout,
            last_active_ms: AtomicI64::new(mesh_core::id::now_ms()),
            opened: std::time::Instant::now(),
            ended: AtomicBool::new(false),
            me: me.clone(),
        })
    }

    /// The sink for member 0's link (holds the session weakly: no cycle).
    pub fn sink(&self) -> Arc<dyn InboundSink> {
        self.member_sink(0)
    }

    fn member_sink(&self, member: usize) -> Arc<dyn InboundSink> {
        Arc::new(Sink(self.me.clone(), member))
    }

    /// Installs the upstream link of a connection's session.
    pub fn set_link(&self, link: Link) {
        self.set_member_link(0, link);
    }

    fn set_member_link(&self, member: usize, link: Link) {
        let mut links = self.links.write().unwrap_or_else(|p| p.into_inner());
        if links.len() <= member {
            links.resize(member + 1, None);
        }
        links[member] = Some(link);
    }

    fn link(&self, member: usize) -> Result<Link, RelayError> {
        let links = self.links.read().unwrap_or_else(|p| p.into_inner());
        links
            .get(member)
            .cloned()
            .flatten()
            .ok_or_else(|| RelayError::UpstreamUnavailable("member is not connected".into()))
    }

    fn all_links(&self) -> Vec<Link> {
        self.links.read().unwrap_or_else(|p| p.into_inner()).iter().flatten().cloned().collect()
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
        st.pending.is_empty() && st.local.is_empty() && !st.streams.any_live()
    }

    /// For a gateway session: each member and whether it is healthy now.
    pub fn gateway_health(&self) -> Vec<(String, bool)> {
        self.gateway.as_ref().map(|g| g.member_health()).unwrap_or_default()
    }

    /// Whether the session has failed as a whole (a strict gateway lost a member).
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// What to do when an upstream (the connection of the given id) refuses the credentials this
    /// session was opened with: a direct session then ends (the next one is opened with renewed
    /// ones, or asks the user); a gateway's goes on with its other members.
    pub fn on_refused(
        &self,
        f: impl Fn(String) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync + 'static,
    ) {
        let _ = self.on_refused.set(Box::new(f));
    }

    /// What to do when the upstream refuses one request for want of scope (its challenge): the
    /// error to answer that request with instead (an authorization request for more scope).
    pub fn on_step_up(
        &self,
        f: impl Fn(String) -> futures_util::future::BoxFuture<'static, Option<RelayError>> + Send + Sync + 'static,
    ) {
        let _ = self.on_step_up.set(Box::new(f));
    }

    /// The error to answer a request the upstream refused for want of scope with.
    pub(crate) async fn step_up(&self, e: RelayError) -> RelayError {
        let RelayError::InsufficientScope { challenge, .. } = &e else { return e };
        match self.on_step_up.get() {
            Some(f) if self.gateway.is_none() => f(challenge.clone()).await.unwrap_or(e),
            _ => e,
        }
    }

    /// What the session does when the upstream of `member` refuses a request (from a failed
    /// send, or a link's `Inbound::Refused`): a 401 gives up the credentials, an insufficient
    /// scope becomes the user's authorization request. The error the call ends with.
    pub(crate) async fn upstream_refused(&self, member: usize, e: RelayError) -> RelayError {
        if matches!(e, RelayError::UpstreamFailed { cause: crate::Cause::Status(401), .. }) {
            self.credentials_refused(member).await;
        }
        self.step_up(e).await
    }

    /// The upstream of `member` answered 401: the credentials the session holds will not work
    /// again, and whoever gave them is told — before the refusal reaches the client, so that the
    /// session it opens next gets new ones (or asks the user), never the refused ones again. A
    /// direct session ends (its client gets 404 and opens a new one); a gateway's goes on with its
    /// other members, and the refused member's credential is renewed in the background.
    pub(crate) async fn credentials_refused(&self, member: usize) {
        let Some(f) = self.on_refused.get() else { return };
        if let Some(gw) = &self.gateway {
            let id = gw.members().get(member).map(|m| m.connection_id.clone());
            if let Some(id) = id {
                tracing::info!(session = %self.id, route = %self.label, connection = %id, "a member refused the session's credentials");
                f(id).await;
            }
            return;
        }
        if self.dead.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(session = %self.id, route = %self.label, "the upstream refused the session's credentials; the session ends");
        f(self.route.clone()).await;
    }

    /// Marks the session as one the stateless ingress shares between requests: no client may
    /// name it in `Mcp-Session-Id`, and notifications not about one request wait for a listener.
    pub fn set_pooled(&self) {
        self.pooled.store(true, Ordering::Release);
    }

    /// Whether the tasks its upstreams create live in the session itself and end with it: a
    /// virtual MCP's (its members' sessions, and its own record of which member has which) and a
    /// stdio child's. An HTTP upstream keeps its tasks whichever session asks.
    pub fn holds_its_tasks(&self) -> bool {
        self.gateway.is_some() || self.link(0).is_ok_and(|l| l.transport_kind() == "pipe")
    }

    /// Whether member `k`'s link speaks the stateless revision to its upstream (a
    /// `ModernLink`): only such a link's marks in an `initialize` result are the mesh's own; any
    /// other's came from the upstream.
    pub(crate) fn speaks_stateless(&self, k: usize) -> bool {
        self.link(k).is_ok_and(|l| l.reads_mesh_keys())
    }

    /// Whether the session serves stateless requests (see [`Session::set_pooled`]).
    pub fn is_pooled(&self) -> bool {
        self.pooled.load(Ordering::Acquire)
    }

    /// Counts as activity: a pooled session holding live tasks is not reaped as idle.
    pub fn keep_alive(&self) {
        self.touch();
    }

    fn touch(&self) {
        self.last_active_ms.store(mesh_core::id::now_ms(), Ordering::Relaxed);
    }

    /// Forwards a client notification: a cancellation is mapped to the upstream's id; anything
    /// else goes to every member (initialized, roots/list_changed).
    pub async fn notify(&self, msg: &Message) -> Result<(), RelayError> {
        self.touch();
        if msg.method() != Some("notifications/cancelled") {
            if self.gateway.is_some() && msg.method() == Some("notifications/initialized") {
                if let Some(gw) = &self.gateway {
                    gw.initialized();
                }
            }
            let mut last = Ok(());
            for link in self.all_links() {
                if let Err(e) = link.send(msg.clone()).await {
                    last = Err(e);
                }
            }
            return last;
        }
        let Some(target) = msg.cancelled_request_id() else { return Ok(()) };
        if self.cancel_local(|down_id, _| down_id == target) {
            return Ok(());
        }
        let params: serde_json::Value = msg.params().unwrap_or_else(|| serde_json::json!({}));
        let which = |p: &Pending| *p.down_id == target && matches!(p.target, Target::Stream(_));
        self.cancel_where(which, params, (Outcome::Cancelled, None)).await
    }

    /// Stops the request the mesh answers itself that `which` picks (by client id and stream);
    /// its stream ends without a reply, as the spec has it for a cancelled request, and the
    /// task answering it audits it as cancelled. False when there is none.
    fn cancel_local(&self, which: impl Fn(&str, u64) -> bool) -> bool {
        let mut st = self.lock();
        let Some(stream) = st.local.iter().find(|(s, l)| which(&l.down_id, **s)).map(|(s, _)| *s) else {
            return false;
        };
        if let Some(local) = st.local.remove(&stream) {
            local.cancel.cancel();
        }
        st.streams.end(stream);
        true
    }

    /// Cancels the request on `stream` (a stateless client left, or gave up on a call waiting for
    /// its answers): the upstream is told, the audit row says cancelled. Nothing if it has ended.
    pub async fn cancel_stream(&self, stream: u64) {
        if self.cancel_local(|_, s| s == stream) {
            return;
        }
        let params = serde_json::json!({"reason": "the client went away"});
        let ending = (Outcome::Cancelled, None);
        let _ = self.cancel_where(|p| matches!(p.target, Target::Stream(s) if s == stream), params, ending).await;
    }

    /// Gives up the request on `stream` because it may no longer be made (a stateless call that
    /// waited for its answers, refused on its retry): ended here, before an upstream answer can
    /// end it otherwise, with its audit row saying `outcome`, and why. Its upstream is then told,
    /// off the caller's path (a client that leaves must not stop that): the questions the call
    /// still had open are answered as withdrawn (an upstream may ignore a cancellation), then the
    /// call is cancelled.
    pub fn refuse_stream(&self, stream: u64, outcome: Outcome, why: &str) {
        let which = |p: &Pending| matches!(p.target, Target::Stream(s) if s == stream);
        let Some((up, member, open)) = self.end_where(which, (outcome, Some(why.to_string()))) else { return };
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            for (m, up_id) in open {
                let no =
                    Message::error(Some(&up_id), codes::INTERNAL_ERROR, "the request it was asked for has ended", None);
                if let Ok(link) = me.link(m) {
                    let _ = link.send(no).await;
                }
            }
            let params = serde_json::json!({"requestId": up, "reason": "it may no longer be made"});
            if let Ok(link) = me.link(member) {
                let _ = link.send(Message::notification("notifications/cancelled", Some(&params))).await;
            }
        });
    }

    /// Ends the first pending request `which` picks: the upstream is told with `params`, the
    /// audit row ends as `ending` (outcome, error).
    async fn cancel_where(
        &self,
        which: impl Fn(&Pending) -> bool,
        mut params: serde_json::Value,
        ending: (Outcome, Option<String>),
    ) -> Result<(), RelayError> {
        // Unknown or already answered: the spec lets receivers ignore it.
        let Some((up, member, _)) = self.end_where(which, ending) else { return Ok(()) };
        params["requestId"] = serde_json::json!(up);
        self.link(member)?.send(Message::notification("notifications/cancelled", Some(&params))).await
    }

    /// Takes the first pending request `which` picks out of the session — its stream ended, its
    /// questions withdrawn from the client, its audit row written as `ending` — and says which
    /// it was (its upstream id and member) and which of the upstream's questions it had open,
    /// for the upstream to be told.
    fn end_where(
        &self,
        which: impl Fn(&Pending) -> bool,
        (outcome, error): (Outcome, Option<String>),
    ) -> Option<(u64, usize, Vec<inbound::Asked>)> {
        let found = {
            let mut st = self.lock();
            let up = st.pending.iter().find(|(_, p)| which(p)).map(|(k, _)| *k);
            up.and_then(|up| st.pending.remove(&up).map(|p| (up, p))).map(|(up, mut p)| {
                p.stop_timer();
                if let Some(t) = &p.progress {
                    st.progress.remove(t);
                }
                let mut open = Vec::new();
                if let Target::Stream(s) = p.target {
                    // Spec: no response is sent for a cancelled request; its stream just ends
                    // (after withdrawing the questions it still had open).
                    open = inbound::withdraw_questions(&mut st, |r| r.stream == s);
                    st.streams.end(s);
                }
                (up, p.member, p.down_id, p.call, open)
            })
        };
        let (up, member, down_id, call, open) = found?;
        if let Some(c) = call {
            self.audit_end(c, down_id, outcome, error, 0);
        }
        Some((up, member, open))
    }

    /// Forwards the client's reply to a server→client request back to the member that asked.
    pub async fn reply(&self, msg: &Message) -> Result<(), RelayError> {
        self.touch();
        let Some(down) = msg.id().and_then(|i| i.parse::<u64>().ok()) else {
            tracing::debug!(session = %self.id, "reply with an id the mesh never sent; ignored");
            return Ok(());
        };
        let Some(req) = self.lock().server_requests.remove(&down) else {
            tracing::debug!(session = %self.id, "reply to an unknown or cancelled server request; ignored");
            return Ok(());
        };
        if let Some(mesh) = req.mesh {
            let _ = mesh.send(msg.clone());
            return Ok(());
        }
        self.link(req.member)?.send(msg.with_id(&req.up_id)).await
    }

    /// Drops a finished stream whose reply went out as a JSON body (it cannot be resumed).
    pub fn forget_stream(&self, stream: u64) {
        self.lock().streams.end(stream);
    }

    /// Attaches a GET stream (standalone, or resuming `last_event_id`).
    pub fn listen(&self, last_event_id: Option<&str>) -> Option<(Vec<Event>, Option<mpsc::Receiver<Event>>)> {
        self.touch();
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

    /// Streams a client is attached to (for the metrics, read at scrape time).
    pub fn live_streams(&self) -> usize {
        self.lock().streams.live_count()
    }

    /// Whether the session has been closed.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Ends every upstream session, then every request still waiting for one.
    pub async fn close(&self) {
        futures_util::future::join_all(self.all_links().iter().map(|l| l.close())).await;
        self.end_pending();
        if !self.ended.swap(true, Ordering::AcqRel) {
            self.audit.session_ended(self.route_kind.as_str(), self.opened.elapsed());
        }
    }

    /// Pushes a message of the mesh's own to the client (a list_changed, a warning).
    fn notify_client(&self, msg: &Message) {
        let mut st = self.lock();
        let stream = if self.is_pooled() { streams::STANDALONE } else { target_stream(&st, None) };
        st.streams.push(stream, msg.bytes().clone());
    }
}
