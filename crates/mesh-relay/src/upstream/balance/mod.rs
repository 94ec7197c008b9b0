//! A link over every healthy provider of a capability (#22): a virtual MCP member, or a route,
//! that names a capability instead of one server.
//!
//! To the session above it is one upstream session. Below, it keeps one link per provider,
//! opened when a request first goes there and initialised with the client's own `initialize`
//! (so each provider sees the real client's capabilities). Each request goes to the provider
//! with the fewest requests outstanding, ties taken in turn, so an even load spreads evenly and
//! a slow provider gets less. Requests that carry a provider's own state (list pages, resource
//! subscriptions, the log level: [`rules::sticky`]) stay with the provider that answered the
//! handshake while it serves. Providers come from [`Providers`], a snapshot the control plane
//! keeps current from the registry's heartbeats: no database on a call.
//!
//! Failover: a request that never reached its provider (nothing listening, no route, the
//! handshake failed, the provider refused the mesh) goes to another provider, whatever its
//! method; one that may have reached it goes again only if the method is safe to repeat (lists,
//! reads, `ping`, completion; never `tools/call`, which may have done its work). A provider that
//! failed so is left out for a while ([`EJECT_FOR`]), before the registry has even noticed it is
//! gone.
//!
//! Tools: the link lists only the tools that serve the capability (a provider's other tools are
//! not what the selector asked for), and a `tools/call` goes only to providers that have the tool.
//!
//! Ids: the session's request ids pass unchanged (they are unique in the session). Requests a
//! provider sends the client get an id that names the provider, so the client's answer finds its
//! way back to the one that asked, even after it left rotation.

mod rules;

use super::{Inbound, InboundSink, Link, Transport, UpstreamClients};
use crate::{ProviderSet, Providers, RelayError, UpstreamSpec};
use mesh_protocol::{Kind, Message};
use rules::{asked_by, asked_id, for_session, only_tools, safe_to_repeat, sick, sticky, tool_name, undelivered};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a provider that failed is left out (unless no other is left).
const EJECT_FOR: Duration = Duration::from_secs(2);
/// Most providers one request is tried on.
const MAX_TRIES: usize = 3;
/// Longest a provider's handshake may take (its connection's timeout if shorter): well within
/// the request it opens for, so that a provider that accepts and never answers is left out and
/// the request goes elsewhere before the client's deadline.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// Longest a request sent again after a lost stream may take, in a task of its own.
const RETRY_FOR: Duration = Duration::from_secs(60);
/// The id of the `initialize` the link sends each provider; the session's ids are integers, so
/// it never meets one of theirs.
const INIT_ID: &str = "\"mesh-balance-init\"";

/// A link balanced over the providers of a capability.
pub struct BalancedLink {
    sh: Arc<Shared>,
}

struct Shared {
    name: String,
    selector: String,
    providers: Arc<dyn Providers>,
    clients: UpstreamClients,
    sink: Arc<dyn InboundSink>,
    state: Mutex<State>,
    closed: AtomicBool,
    /// Where the next search for the least loaded provider starts: ties go round.
    turn: AtomicUsize,
    next_serial: AtomicU64,
    born: Instant,
}

#[derive(Default)]
struct State {
    /// The version of the provider set `subs` reflects.
    version: Option<u64>,
    /// The providers in rotation.
    subs: Vec<Arc<Sub>>,
    /// Every provider link still alive, in rotation or not: a client's answer finds the provider
    /// that asked, and `close` ends them all.
    by_serial: HashMap<u64, Weak<Sub>>,
    /// Requests sent and not yet answered, by the session's id.
    flights: HashMap<Box<str>, Flight>,
    /// The client's `initialize`, replayed to each provider.
    handshake: Option<Message>,
    /// The provider that sticky requests go to while it serves.
    home: Option<Arc<str>>,
}

/// A request in flight: where it went, and what to send again should its stream be lost.
struct Flight {
    sub: Arc<Sub>,
    again: Option<Again>,
    /// A `tools/list`, whose reply is cut to the capability's tools.
    lists_tools: bool,
}

#[derive(Clone)]
struct Again {
    msg: Message,
    traceparent: Option<String>,
    /// Providers it was tried on.
    tried: Vec<Arc<str>>,
}

/// One provider, and the link to it once opened.
struct Sub {
    serial: u64,
    key: Arc<str>,
    revision: i64,
    spec: UpstreamSpec,
    /// The provider's tools that serve the capability.
    tools: Arc<[String]>,
    link: tokio::sync::OnceCell<Link>,
    /// Where the reply to its `initialize` goes while the handshake runs.
    init_wait: Mutex<Option<oneshot::Sender<Message>>>,
    init_reply: OnceLock<Message>,
    outstanding: AtomicUsize,
    /// Milliseconds since the link was made until which the provider is left out.
    ejected_until: AtomicU64,
    /// Its upstream session is gone: the next pick opens a new one.
    dead: AtomicBool,
}

impl BalancedLink {
    /// A link over `providers`; nothing is opened until the client's `initialize`.
    pub fn new(
        name: &str,
        selector: &str,
        providers: Arc<dyn Providers>,
        clients: UpstreamClients,
        sink: Arc<dyn InboundSink>,
    ) -> Arc<BalancedLink> {
        Arc::new(BalancedLink {
            sh: Arc::new(Shared {
                name: name.to_string(),
                selector: selector.to_string(),
                providers,
                clients,
                sink,
                state: Mutex::new(State::default()),
                closed: AtomicBool::new(false),
                turn: AtomicUsize::new(0),
                next_serial: AtomicU64::new(1),
                born: Instant::now(),
            }),
        })
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn none_left(&self) -> RelayError {
        RelayError::UpstreamUnavailable(format!("{}: no healthy provider of {}", self.name, self.selector))
    }

    fn closed_error() -> RelayError {
        RelayError::UpstreamUnavailable("the upstream session was closed".into())
    }

    /// Brings `st.subs` in line with the provider set: kept where the provider is unchanged,
    /// new where it is new or was changed, dropped where it left.
    fn refresh(&self, st: &mut State) {
        let set: Arc<ProviderSet> = self.providers.current();
        if st.version == Some(set.version) {
            return;
        }
        let mut old: HashMap<Arc<str>, Arc<Sub>> = st.subs.drain(..).map(|s| (s.key.clone(), s)).collect();
        for p in &set.providers {
            let sub = match old.remove(&p.key).filter(|s| s.revision == p.revision && *s.tools == *p.tools) {
                Some(kept) => kept,
                None => self.sub(st, p.key.clone(), p.revision, p.spec.clone(), p.tools.clone().into()),
            };
            st.subs.push(sub);
        }
        for (_, gone) in old {
            close_when_idle(gone);
        }
        st.by_serial.retain(|_, s| s.strong_count() > 0);
        st.version = Some(set.version);
    }

    fn sub(&self, st: &mut State, key: Arc<str>, revision: i64, spec: UpstreamSpec, tools: Arc<[String]>) -> Arc<Sub> {
        let sub = Arc::new(Sub {
            serial: self.next_serial.fetch_add(1, Ordering::Relaxed),
            key,
            revision,
            spec,
            tools,
            link: tokio::sync::OnceCell::new(),
            init_wait: Mutex::new(None),
            init_reply: OnceLock::new(),
            outstanding: AtomicUsize::new(0),
            ejected_until: AtomicU64::new(0),
            dead: AtomicBool::new(false),
        });
        st.by_serial.retain(|_, s| s.strong_count() > 0);
        st.by_serial.insert(sub.serial, Arc::downgrade(&sub));
        sub
    }

    /// The provider for the next request: not one of `tried`, offering `tool` if named; `home`
    /// when it qualifies and is in rotation; else in rotation before left out, then the fewest
    /// outstanding requests, ties in turn. `count`: the request is counted as outstanding there
    /// at once, under the same lock, so a provider leaving meanwhile is not closed under it.
    fn pick(&self, tried: &[Arc<str>], tool: Option<&str>, home: Option<&str>, count: bool) -> Option<Arc<Sub>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let mut st = self.state();
        self.refresh(&mut st);
        for i in 0..st.subs.len() {
            if st.subs[i].dead.load(Ordering::Acquire) {
                // A new session to the same provider, after a pause.
                let s = st.subs[i].clone();
                let fresh = self.sub(&mut st, s.key.clone(), s.revision, s.spec.clone(), s.tools.clone());
                fresh.ejected_until.store(s.ejected_until.load(Ordering::Relaxed), Ordering::Relaxed);
                st.subs[i] = fresh;
            }
        }
        let now = self.now_ms();
        let n = st.subs.len();
        let eligible = |s: &Sub| !tried.contains(&s.key) && tool.is_none_or(|t| s.tools.iter().any(|have| have == t));
        let in_rotation = |s: &Sub| s.ejected_until.load(Ordering::Relaxed) <= now;
        let chosen = match home.and_then(|h| st.subs.iter().find(|s| &*s.key == h)) {
            Some(s) if eligible(s) && in_rotation(s) => Some(s.clone()),
            _ if n == 0 => None,
            _ => {
                let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
                let mut best: Option<(usize, (bool, usize))> = None;
                for step in 0..n {
                    let i = (start + step) % n;
                    let s = &st.subs[i];
                    if !eligible(s) {
                        continue;
                    }
                    let rank = (!in_rotation(s), s.outstanding.load(Ordering::Relaxed));
                    if best.is_none_or(|(_, r)| rank < r) {
                        best = Some((i, rank));
                    }
                }
                best.map(|(i, _)| st.subs[i].clone())
            }
        };
        if let (Some(s), true) = (&chosen, count) {
            s.outstanding.fetch_add(1, Ordering::Relaxed);
        }
        chosen
    }

    /// Records request `id` as in flight at `sub` (already counted there by `pick`): new when
    /// `from` is `None`, else moved from provider `from`, in one step, so that a cancellation
    /// always finds it. `false` when it was no longer at `from` (answered or cancelled): the
    /// count taken at `sub` is given back and the request must not be sent.
    fn place(&self, id: &str, sub: &Arc<Sub>, from: Option<u64>, again: Option<Again>, lists_tools: bool) -> bool {
        let mut st = self.state();
        if let Some(from) = from {
            if st.flights.get(id).is_none_or(|f| f.sub.serial != from) {
                sub.outstanding.fetch_sub(1, Ordering::Relaxed);
                return false;
            }
        }
        if let Some(old) = st.flights.insert(id.into(), Flight { sub: sub.clone(), again, lists_tools }) {
            old.sub.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
        true
    }

    /// Whether request `id` is still in flight at provider `serial` (not answered, cancelled or
    /// moved).
    fn flying(&self, id: &str, serial: u64) -> bool {
        self.state().flights.get(id).is_some_and(|f| f.sub.serial == serial)
    }

    /// Ends the flight of `id` if it is still with `serial` (or with anyone, for `None`).
    fn land(&self, id: &str, serial: Option<u64>) -> Option<Flight> {
        let mut st = self.state();
        if serial.is_some_and(|s| st.flights.get(id).is_none_or(|f| f.sub.serial != s)) {
            return None;
        }
        let f = st.flights.remove(id)?;
        f.sub.outstanding.fetch_sub(1, Ordering::Relaxed);
        Some(f)
    }

    /// Whether some provider now offers tool `name`.
    fn offered(&self, name: &str) -> bool {
        let mut st = self.state();
        self.refresh(&mut st);
        st.subs.iter().any(|s| s.tools.iter().any(|t| t == name))
    }

    fn eject(&self, sub: &Sub, why: &RelayError) {
        sub.ejected_until.store(self.now_ms() + EJECT_FOR.as_millis() as u64, Ordering::Relaxed);
        if matches!(why, RelayError::UpstreamUnavailable(_)) {
            sub.dead.store(true, Ordering::Release);
        }
        tracing::info!(connection = %self.name, provider = %sub.key, error = %why, "provider left out of rotation for a while");
    }

    /// Sends request `msg` to a provider, and to another when that one could not take it.
    /// `from`: the provider it is in flight at already (a retry after a lost stream).
    async fn dispatch(
        self: &Arc<Self>,
        msg: Message,
        traceparent: Option<String>,
        mut tried: Vec<Arc<str>>,
        mut from: Option<u64>,
    ) -> Result<(), RelayError> {
        let id: Box<str> = msg.id().unwrap_or("null").into();
        let method = msg.method().unwrap_or("");
        let (safe, stick) = (safe_to_repeat(method), sticky(method));
        let tool = match method {
            "tools/call" => {
                Some(tool_name(&msg).ok_or_else(|| RelayError::InvalidParams("tools/call needs params.name".into()))?)
            }
            _ => None,
        };
        if let Some(t) = &tool {
            if !self.offered(t) {
                return Err(RelayError::InvalidParams(format!("Unknown tool: {t}")));
            }
        }
        if self.state().handshake.is_none() {
            // The client's mistake, not any provider's.
            return Err(RelayError::UpstreamProtocol(format!("{}: a request before initialize", self.name)));
        }
        let mut last = None;
        while tried.len() < MAX_TRIES && !self.closed.load(Ordering::Acquire) {
            let home = if stick { self.state().home.clone() } else { None };
            let Some(sub) = self.pick(&tried, tool.as_deref(), home.as_deref(), true) else { break };
            tried.push(sub.key.clone());
            let again =
                safe.then(|| Again { msg: msg.clone(), traceparent: traceparent.clone(), tried: tried.clone() });
            // Recorded before the send (the reply may come before `send` returns), and moved
            // rather than dropped and recorded again, so a cancellation is never missed.
            if !self.place(&id, &sub, from, again, method == "tools/list") {
                return Ok(()); // answered or cancelled meanwhile
            }
            from = Some(sub.serial);
            let link = match sub.ready(self).await {
                Ok(link) => link,
                // Nothing was sent (the provider is left out by `ready`): the next one may have it.
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            if !self.flying(&id, sub.serial) {
                return Ok(()); // cancelled during the provider's handshake: never sent
            }
            if self.closed.load(Ordering::Acquire) {
                link.close().await; // opened after the link was closed
                break;
            }
            if stick {
                self.state().home = Some(sub.key.clone());
            }
            let sent = match &traceparent {
                Some(t) => link.send_traced(msg.clone(), t).await,
                None => link.send(msg.clone()).await,
            };
            let Err(e) = sent else { return Ok(()) };
            if !self.flying(&id, sub.serial) {
                return Ok(()); // answered or cancelled meanwhile: decided elsewhere
            }
            if sick(&e) {
                self.eject(&sub, &e);
            }
            if undelivered(&e) || (safe && sick(&e)) {
                last = Some(e);
                continue;
            }
            self.land(&id, Some(sub.serial));
            return Err(for_session(e, &self.name));
        }
        if let Some(at) = from {
            self.land(&id, Some(at));
        }
        let last = match self.closed.load(Ordering::Acquire) {
            true => Self::closed_error(),
            false => last.unwrap_or_else(|| self.none_left()),
        };
        Err(for_session(last, &self.name))
    }

    /// The client's `initialize`: answered by the first provider that completes it.
    async fn initialize(self: &Arc<Self>, msg: Message) -> Result<(), RelayError> {
        self.state().handshake = Some(msg.clone());
        let mut tried = Vec::new();
        let mut last = None;
        while tried.len() < MAX_TRIES {
            let Some(sub) = self.pick(&tried, None, None, false) else { break };
            tried.push(sub.key.clone());
            match sub.ready(self).await {
                Ok(_) => {
                    let id = msg.id().unwrap_or("null");
                    let reply = sub.init_reply.get().map(|r| r.with_id(id)).ok_or_else(|| self.none_left())?;
                    self.state().home = Some(sub.key.clone());
                    self.sink.deliver(Inbound::Message { msg: reply, related: Some(id.into()) });
                    return Ok(());
                }
                Err(e) => last = Some(e), // left out by `ready`
            }
        }
        Err(for_session(last.unwrap_or_else(|| self.none_left()), &self.name))
    }

    /// The client's answer to a provider's request: to the provider that asked.
    async fn answer(&self, msg: Message) -> Result<(), RelayError> {
        let Some((serial, original)) = msg.id().and_then(asked_by) else {
            return Err(RelayError::UpstreamProtocol(format!("{}: an answer to nothing a provider asked", self.name)));
        };
        let sub = self.state().by_serial.get(&serial).and_then(Weak::upgrade);
        let Some((sub, link)) = sub.and_then(|s| s.link.get().cloned().map(|l| (s, l))) else {
            return Err(RelayError::UpstreamUnavailable(format!("{}: the provider that asked has left", self.name)));
        };
        self.provider_said(&sub, link.send(msg.with_id(&original)).await)
    }

    /// A notification from the client: a cancellation to the provider of that request, the
    /// end of the handshake nowhere (each provider had its own), anything else to every
    /// provider in use.
    async fn notify(&self, msg: Message) -> Result<(), RelayError> {
        match msg.method() {
            Some("notifications/initialized") => Ok(()),
            Some("notifications/cancelled") => {
                // Landed here, so a dispatch still in the provider's handshake never sends it.
                let Some(f) = msg.cancelled_request_id().and_then(|id| self.land(&id, None)) else { return Ok(()) };
                match f.sub.link.get().cloned() {
                    Some(link) => self.provider_said(&f.sub, link.send(msg).await),
                    None => Ok(()),
                }
            }
            _ => {
                let links: Vec<Link> = self.state().subs.iter().filter_map(|s| s.link.get().cloned()).collect();
                for link in links {
                    if let Err(e) = link.send(msg.clone()).await {
                        tracing::debug!(connection = %self.name, error = %e, "a notification did not reach a provider");
                    }
                }
                Ok(())
            }
        }
    }

    /// What the session hears of a provider's answer to a send that is not a request: a
    /// provider that refuses or fails is left out, and its refusal is its own.
    fn provider_said(&self, sub: &Sub, sent: Result<(), RelayError>) -> Result<(), RelayError> {
        sent.map_err(|e| {
            if sick(&e) {
                self.eject(sub, &e);
            }
            for_session(e, &self.name)
        })
    }

    /// A provider lost the stream of request `id`: sent again elsewhere when that is safe (the
    /// request stays recorded at the provider that lost it until it moves, so a cancellation
    /// meanwhile stops it), else the session hears of it.
    fn lost(self: &Arc<Self>, sub: &Sub, request: Box<str>, reason: String) {
        let again = match self.state().flights.get(&request) {
            Some(f) if f.sub.serial == sub.serial => f.again.clone(),
            // Not in flight here (answered, cancelled, moved): the session decides.
            _ => return self.sink.deliver(Inbound::StreamLost { request, reason }),
        };
        match again.filter(|a| a.tried.len() < MAX_TRIES && !self.closed.load(Ordering::Acquire)) {
            Some(a) => {
                let (sh, from) = (self.clone(), sub.serial);
                tokio::spawn(async move {
                    let retried =
                        tokio::time::timeout(RETRY_FOR, sh.dispatch(a.msg, a.traceparent, a.tried, Some(from)));
                    let failed = match retried.await {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => format!("no provider answered within {} s", RETRY_FOR.as_secs()),
                    };
                    sh.land(&request, None);
                    sh.sink.deliver(Inbound::StreamLost { request, reason: format!("{reason}; then {failed}") });
                });
            }
            None => {
                self.land(&request, Some(sub.serial));
                self.sink.deliver(Inbound::StreamLost { request, reason });
            }
        }
    }

    /// A provider's session went down: it is left out, and its requests fail or go elsewhere.
    fn down(self: &Arc<Self>, sub: &Sub, reason: String) {
        self.eject(sub, &RelayError::UpstreamUnavailable(reason.clone()));
        let ids: Vec<Box<str>> =
            self.state().flights.iter().filter(|(_, f)| f.sub.serial == sub.serial).map(|(id, _)| id.clone()).collect();
        for id in ids {
            self.lost(sub, id, reason.clone());
        }
    }
}

impl Sub {
    /// The link to this provider, opened and initialised with the client's handshake on first
    /// use. The opening runs in a task of its own: a caller that gives up (its deadline) does not
    /// stop it halfway, and a provider that fails it is left out all the same.
    async fn ready(self: &Arc<Self>, sh: &Arc<Shared>) -> Result<Link, RelayError> {
        if let Some(link) = self.link.get() {
            return Ok(link.clone());
        }
        let (sub, shared) = (self.clone(), sh.clone());
        let opening = tokio::spawn(async move {
            let opened = sub.link.get_or_try_init(|| sub.open(&shared)).await.cloned();
            if let Err(e) = &opened {
                shared.eject(&sub, e);
            }
            opened
        });
        opening.await.map_err(|e| RelayError::Internal(format!("opening a provider failed: {e}")))?
    }

    /// Connects to the provider and completes the client's handshake there.
    async fn open(self: &Arc<Self>, sh: &Arc<Shared>) -> Result<Link, RelayError> {
        let handshake = sh
            .state()
            .handshake
            .clone()
            .ok_or_else(|| RelayError::UpstreamProtocol(format!("{}: a request before initialize", sh.name)))?;
        let sink = Arc::new(SubSink { sub: Arc::downgrade(self), sh: Arc::downgrade(sh) });
        let link = super::connect(&self.spec, &sh.clients, sink).await?;
        match self.handshake(&link, &handshake).await {
            Ok(()) => Ok(link),
            Err(e) => {
                link.close().await;
                Err(e)
            }
        }
    }

    /// Sends `handshake` on `link`, waits for the reply and completes the handshake.
    async fn handshake(&self, link: &Link, handshake: &Message) -> Result<(), RelayError> {
        let (tx, rx) = oneshot::channel();
        *self.init_wait.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        link.send(handshake.with_id(INIT_ID)).await?;
        let timeout = self.spec.timeout.min(HANDSHAKE_LIMIT);
        let reply = tokio::time::timeout(timeout, rx)
            .await
            .map_err(|_| RelayError::UpstreamTimeout(timeout, " (initialize at a provider)".into()))?
            .map_err(|_| RelayError::UpstreamUnavailable(format!("{}: the provider went away", self.spec.name)))?;
        if reply.kind() != Kind::Response {
            return Err(RelayError::UpstreamUnavailable(format!(
                "{}: the provider refused the initialize",
                self.spec.name
            )));
        }
        link.send(Message::notification("notifications/initialized", None)).await?;
        let _ = self.init_reply.set(reply);
        Ok(())
    }
}

/// Receives what one provider's link reads and passes it on as the balanced link's.
struct SubSink {
    sub: Weak<Sub>,
    sh: Weak<Shared>,
}

impl InboundSink for SubSink {
    fn deliver(&self, inbound: Inbound) {
        let (Some(sub), Some(sh)) = (self.sub.upgrade(), self.sh.upgrade()) else { return };
        match inbound {
            Inbound::Message { msg, related } => match msg.kind() {
                Kind::Response | Kind::Error if msg.id() == Some(INIT_ID) => {
                    if let Some(tx) = sub.init_wait.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        let _ = tx.send(msg);
                    }
                }
                Kind::Response | Kind::Error => {
                    // Every request is recorded before it is sent: a reply to nothing in flight
                    // here is a late one from a provider the request has moved away from.
                    let Some(flight) = msg.id().and_then(|id| sh.land(id, Some(sub.serial))) else {
                        tracing::debug!(connection = %sh.name, provider = %sub.key, "late reply dropped");
                        return;
                    };
                    let msg = match flight.lists_tools && msg.kind() == Kind::Response {
                        true => only_tools(&msg, &sub.tools),
                        false => msg,
                    };
                    sh.sink.deliver(Inbound::Message { msg, related });
                }
                Kind::Request => {
                    let id = asked_id(sub.serial, msg.id().unwrap_or("null"));
                    sh.sink.deliver(Inbound::Message { msg: msg.with_id(&id), related });
                }
                Kind::Notification if msg.method() == Some("notifications/cancelled") => {
                    // The provider gives up a request of its own: named as the client knows it.
                    let msg = rules::cancelled_as_asked(&msg, sub.serial);
                    sh.sink.deliver(Inbound::Message { msg, related });
                }
                Kind::Notification => sh.sink.deliver(Inbound::Message { msg, related }),
            },
            // The handshake's own stream: its wait fails now rather than at its timeout.
            Inbound::StreamLost { request, .. } if *request == *INIT_ID => {
                sub.init_wait.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
            Inbound::StreamLost { request, reason } => sh.lost(&sub, request, reason),
            // A replica's refusal is that replica's: another may still answer.
            Inbound::Refused { request, error, .. } => sh.lost(&sub, request, error.to_string()),
            Inbound::Down { reason } => sh.down(&sub, reason),
            Inbound::Up => {}
        }
    }
}

#[async_trait::async_trait]
impl Transport for BalancedLink {
    async fn send(&self, msg: Message) -> Result<(), RelayError> {
        self.send_with(msg, None).await
    }

    async fn send_traced(&self, msg: Message, traceparent: &str) -> Result<(), RelayError> {
        self.send_with(msg, Some(traceparent.to_string())).await
    }

    async fn close(&self) {
        self.sh.closed.store(true, Ordering::Release);
        let links: Vec<Link> = {
            let mut guard = self.sh.state();
            let st = &mut *guard;
            let mut seen = std::collections::HashSet::new();
            let all: Vec<Arc<Sub>> =
                st.subs.drain(..).chain(st.by_serial.drain().filter_map(|(_, s)| s.upgrade())).collect();
            all.into_iter().filter(|s| seen.insert(s.serial)).filter_map(|s| s.link.get().cloned()).collect()
        };
        futures_util::future::join_all(links.iter().map(|l| l.close())).await;
    }

    fn diagnostics(&self) -> Option<String> {
        let st = self.sh.state();
        let now = self.sh.now_ms();
        let out = st.subs.iter().filter(|s| s.ejected_until.load(Ordering::Relaxed) > now).count();
        Some(format!("{} providers of {}, {out} left out after failing", st.subs.len(), self.sh.selector))
    }
}

impl BalancedLink {
    async fn send_with(&self, msg: Message, traceparent: Option<String>) -> Result<(), RelayError> {
        if self.sh.closed.load(Ordering::Acquire) {
            return Err(Shared::closed_error());
        }
        match msg.kind() {
            Kind::Request if msg.method() == Some("initialize") => self.sh.initialize(msg).await,
            Kind::Request => self.sh.dispatch(msg, traceparent, Vec::new(), None).await,
            Kind::Response | Kind::Error => self.sh.answer(msg).await,
            Kind::Notification => self.sh.notify(msg).await,
        }
    }
}

/// Closes a provider's link once nothing is waiting on it (or leaves it to end when its last
/// request does: the link is dropped then, which ends its streams).
fn close_when_idle(sub: Arc<Sub>) {
    if sub.outstanding.load(Ordering::Relaxed) == 0 {
        if let Some(link) = sub.link.get().cloned() {
            tokio::spawn(async move { link.close().await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Mutex<Arc<ProviderSet>>);
    impl Providers for Fixed {
        fn current(&self) -> Arc<ProviderSet> {
            self.0.lock().unwrap().clone()
        }
    }
    struct Nowhere;
    impl InboundSink for Nowhere {
        fn deliver(&self, _: Inbound) {}
    }

    fn set(version: u64, keys: &[&str]) -> Arc<ProviderSet> {
        let provider = |k: &&str| crate::Provider {
            key: Arc::from(*k),
            revision: 1,
            tools: vec!["get_date".to_string()],
            spec: UpstreamSpec {
                name: k.to_string(),
                transport: crate::TransportSpec::Http {
                    url: "http://127.0.0.1:9/mcp".parse().unwrap(),
                    headers: vec![],
                },
                timeout: Duration::from_secs(5),
                reach: crate::Reach::Any,
                credential: None,
            },
        };
        Arc::new(ProviderSet { version, providers: keys.iter().map(provider).collect() })
    }

    #[tokio::test]
    async fn picks_spread_evenly_prefer_the_idle_and_home_and_skip_the_ejected() {
        let providers = Arc::new(Fixed(Mutex::new(set(1, &["a", "b", "c"]))));
        let clients = UpstreamClients::new(&[]).unwrap();
        let link = BalancedLink::new("cap", "c", providers.clone(), clients, Arc::new(Nowhere));
        let sh = &link.sh;
        let pick = |tried: &[Arc<str>], tool, home| sh.pick(tried, tool, home, false).map(|s| s.key.to_string());
        let mut count: HashMap<String, usize> = HashMap::new();
        for _ in 0..300 {
            *count.entry(pick(&[], None, None).unwrap()).or_default() += 1;
        }
        assert_eq!(count.values().copied().collect::<Vec<_>>(), vec![100, 100, 100], "{count:?}");

        // Fewest outstanding first; a counted pick counts at once.
        let sub = |k: &str| sh.state().subs.iter().find(|s| &*s.key == k).unwrap().clone();
        let (a, b, c) = (sub("a"), sub("b"), sub("c"));
        a.outstanding.store(3, Ordering::Relaxed);
        b.outstanding.store(1, Ordering::Relaxed);
        for _ in 0..10 {
            assert_eq!(pick(&[], None, None).as_deref(), Some("c"));
        }
        assert_eq!(sh.pick(&[], None, None, true).unwrap().key.as_ref(), "c");
        assert_eq!(c.outstanding.load(Ordering::Relaxed), 1);
        c.outstanding.store(0, Ordering::Relaxed);
        // Home wins while it is in rotation, whatever its load.
        assert_eq!(pick(&[], None, Some("a")).as_deref(), Some("a"));
        // Left out while ejected, unless nothing else is left; never one already tried.
        sh.eject(&c, &RelayError::UpstreamFailed { cause: crate::Cause::Refused, detail: "x".into() });
        assert_eq!(pick(&[], None, None).as_deref(), Some("b"));
        assert_eq!(pick(&[], None, Some("c")).as_deref(), Some("b"), "an ejected home is not home");
        assert_eq!(pick(&[a.key.clone(), b.key.clone()], None, None).as_deref(), Some("c"));
        assert_eq!(pick(&[a.key.clone(), b.key.clone(), c.key.clone()], Some("get_date"), None), None);
        assert_eq!(pick(&[], Some("not_the_capability"), None), None, "a tool no provider offers");

        // A provider whose session died gets a new one (a new serial) under the same key.
        b.dead.store(true, Ordering::Release);
        let _ = pick(&[], None, None);
        assert_ne!(sub("b").serial, b.serial);
        assert!(sh.state().by_serial.contains_key(&b.serial), "the old one is still alive here");

        // A new set: the kept provider keeps its state, the one that left is gone.
        *providers.0.lock().unwrap() = set(2, &["a", "d"]);
        let keys: Vec<String> = (0..4).map(|_| pick(&[], None, None).unwrap()).collect();
        assert!(keys.iter().all(|k| k == "d"), "a has three outstanding, d none: {keys:?}");
        assert_eq!(sub("a").serial, a.serial);
        drop((a, b, c));
        *providers.0.lock().unwrap() = set(3, &[]);
        assert_eq!(pick(&[], None, None), None);
        assert!(sh.state().by_serial.is_empty(), "forgotten once nothing holds them");
    }
}
