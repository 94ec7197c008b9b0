//! A link over every healthy provider of a capability (#22): a virtual MCP member, or a route,
//! that names a capability instead of one server.
//!
//! To the session above it is one upstream session. Below, it keeps one link per provider,
//! opened when a request first goes there and initialised with the client's own `initialize`
//! (so each provider sees the real client's capabilities). Each request goes to the provider
//! with the fewest requests outstanding, ties taken in turn, so an even load spreads evenly and
//! a slow provider gets less. Providers come from [`Providers`], a snapshot the control plane
//! keeps current from the registry's heartbeats: no database on a call.
//!
//! Failover: a request that never reached its provider (nothing listening, no route, the
//! handshake failed) goes to another provider, whatever its method; one that may have reached it
//! goes again only if the method is safe to repeat (lists, reads, `ping`, completion; never
//! `tools/call`, which may have done its work). A provider that failed so is left out for a
//! while ([`EJECT_FOR`]), before the registry has even noticed it is gone.
//!
//! Tools: the link lists only the tools that serve the capability (a provider's other tools are
//! not what the selector asked for), and a `tools/call` goes only to providers that have the tool.
//!
//! Ids: the session's request ids pass unchanged (they are unique in the session). Requests a
//! provider sends the client get an id that names the provider, so the client's answer finds its
//! way back to the one that asked.

use super::{Inbound, InboundSink, Link, Transport, UpstreamClients};
use crate::{Cause, ProviderSet, Providers, RelayError, UpstreamSpec};
use mesh_protocol::{Kind, Message};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a provider that failed is left out (unless no other is left).
const EJECT_FOR: Duration = Duration::from_secs(2);
/// Most providers one request is tried on.
const MAX_TRIES: usize = 3;
/// The id of the `initialize` the link sends each provider; the session's ids are integers, so
/// it never meets one of theirs.
const INIT_ID: &str = "\"mesh-balance-init\"";
/// The prefix of the ids given to a provider's requests to the client.
const ASKED_PREFIX: &str = "mesh-balance-";

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
    subs: Vec<Arc<Sub>>,
    /// Requests sent and not yet answered, by the session's id.
    flights: HashMap<Box<str>, Flight>,
    /// The client's `initialize`, replayed to each provider.
    handshake: Option<Message>,
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
    tried: Vec<u64>,
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

    /// Brings `st.subs` in line with the provider set: kept where the provider is unchanged,
    /// new where it is new or was changed, dropped where it left.
    fn refresh(&self, st: &mut State) {
        let set: Arc<ProviderSet> = self.providers.current();
        if st.version == Some(set.version) {
            return;
        }
        let mut old: HashMap<Arc<str>, Arc<Sub>> = st.subs.drain(..).map(|s| (s.key.clone(), s)).collect();
        for p in &set.providers {
            let kept = old.remove(&p.key).filter(|s| s.revision == p.revision && *s.tools == *p.tools);
            st.subs.push(
                kept.unwrap_or_else(|| self.sub(p.key.clone(), p.revision, p.spec.clone(), p.tools.clone().into())),
            );
        }
        for (_, gone) in old {
            close_when_idle(gone);
        }
        st.version = Some(set.version);
    }

    fn sub(&self, key: Arc<str>, revision: i64, spec: UpstreamSpec, tools: Arc<[String]>) -> Arc<Sub> {
        Arc::new(Sub {
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
        })
    }

    /// The provider for the next request: not one of `tried`, offering `tool` if named, in
    /// rotation before left out, then the fewest outstanding requests, ties in turn.
    fn pick(&self, tried: &[u64], tool: Option<&str>) -> Option<Arc<Sub>> {
        let mut st = self.state();
        self.refresh(&mut st);
        let now = self.now_ms();
        let n = st.subs.len();
        if n == 0 {
            return None;
        }
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, (bool, usize))> = None;
        for step in 0..n {
            let i = (start + step) % n;
            if st.subs[i].dead.load(Ordering::Acquire) {
                // A new session to the same provider, after a pause.
                let s = &st.subs[i];
                let fresh = self.sub(s.key.clone(), s.revision, s.spec.clone(), s.tools.clone());
                fresh.ejected_until.store(s.ejected_until.load(Ordering::Relaxed), Ordering::Relaxed);
                st.subs[i] = fresh;
            }
            let s = &st.subs[i];
            if tried.contains(&s.serial) || tool.is_some_and(|t| !s.tools.iter().any(|have| have == t)) {
                continue;
            }
            let rank = (s.ejected_until.load(Ordering::Relaxed) > now, s.outstanding.load(Ordering::Relaxed));
            if best.is_none_or(|(_, r)| rank < r) {
                best = Some((i, rank));
            }
        }
        best.map(|(i, _)| st.subs[i].clone())
    }

    fn track(&self, id: &str, sub: &Arc<Sub>, again: Option<Again>, lists_tools: bool) {
        sub.outstanding.fetch_add(1, Ordering::Relaxed);
        let old = self.state().flights.insert(id.into(), Flight { sub: sub.clone(), again, lists_tools });
        if let Some(old) = old {
            old.sub.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
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
    async fn dispatch(
        self: &Arc<Self>,
        msg: Message,
        traceparent: Option<String>,
        mut tried: Vec<u64>,
    ) -> Result<(), RelayError> {
        let id: Box<str> = msg.id().unwrap_or("null").into();
        let method = msg.method().unwrap_or("");
        let safe = safe_to_repeat(method);
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
        let mut last = None;
        while tried.len() < MAX_TRIES {
            let Some(sub) = self.pick(&tried, tool.as_deref()) else { break };
            tried.push(sub.serial);
            let again =
                safe.then(|| Again { msg: msg.clone(), traceparent: traceparent.clone(), tried: tried.clone() });
            // Registered before the send: the reply may come before `send` returns.
            self.track(&id, &sub, again, method == "tools/list");
            let (sent, reached) = match sub.ready(self).await {
                Ok(link) => {
                    let sent = match &traceparent {
                        Some(t) => link.send_traced(msg.clone(), t).await,
                        None => link.send(msg.clone()).await,
                    };
                    (sent, true)
                }
                Err(e) => (Err(e), false),
            };
            let Err(e) = sent else { return Ok(()) };
            self.land(&id, Some(sub.serial));
            if sick(&e) {
                self.eject(&sub, &e);
            }
            if !reached || undelivered(&e) || (safe && sick(&e)) {
                last = Some(e);
                continue;
            }
            return Err(e);
        }
        Err(last.unwrap_or_else(|| self.none_left()))
    }

    /// The client's `initialize`: answered by the first provider that completes it.
    async fn initialize(self: &Arc<Self>, msg: Message) -> Result<(), RelayError> {
        self.state().handshake = Some(msg.clone());
        let mut tried = Vec::new();
        let mut last = None;
        while tried.len() < MAX_TRIES {
            let Some(sub) = self.pick(&tried, None) else { break };
            tried.push(sub.serial);
            match sub.ready(self).await {
                Ok(_) => {
                    let id = msg.id().unwrap_or("null");
                    let reply = sub.init_reply.get().map(|r| r.with_id(id)).ok_or_else(|| self.none_left())?;
                    self.sink.deliver(Inbound::Message { msg: reply, related: Some(id.into()) });
                    return Ok(());
                }
                Err(e) => {
                    self.eject(&sub, &e);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| self.none_left()))
    }

    /// The client's answer to a provider's request: to the provider that asked.
    async fn answer(&self, msg: Message) -> Result<(), RelayError> {
        let Some((serial, original)) = msg.id().and_then(asked_by) else {
            return Err(RelayError::UpstreamProtocol(format!("{}: an answer to nothing a provider asked", self.name)));
        };
        let sub = self.state().subs.iter().find(|s| s.serial == serial).cloned();
        match sub.as_ref().and_then(|s| s.link.get()) {
            Some(link) => link.send(msg.with_id(&original)).await,
            None => Err(RelayError::UpstreamUnavailable(format!("{}: the provider that asked has left", self.name))),
        }
    }

    /// A notification from the client: a cancellation to the provider of that request, the
    /// end of the handshake nowhere (each provider had its own), anything else to every
    /// provider in use.
    async fn notify(&self, msg: Message) -> Result<(), RelayError> {
        match msg.method() {
            Some("notifications/initialized") => Ok(()),
            Some("notifications/cancelled") => {
                let Some(f) = msg.cancelled_request_id().and_then(|id| self.land(&id, None)) else { return Ok(()) };
                match f.sub.link.get() {
                    Some(link) => link.send(msg).await,
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

    /// A provider lost the stream of request `id`: sent again elsewhere when that is safe,
    /// else the session hears of it.
    fn lost(self: &Arc<Self>, sub: &Sub, request: Box<str>, reason: String) {
        let Some(f) = self.land(&request, Some(sub.serial)) else {
            return self.sink.deliver(Inbound::StreamLost { request, reason });
        };
        match f.again.filter(|a| a.tried.len() < MAX_TRIES) {
            Some(a) => {
                let sh = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = sh.dispatch(a.msg, a.traceparent, a.tried).await {
                        sh.sink.deliver(Inbound::StreamLost { request, reason: format!("{reason}; then {e}") });
                    }
                });
            }
            None => self.sink.deliver(Inbound::StreamLost { request, reason }),
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
    /// The link to this provider, opened and initialised with the client's handshake on first use.
    async fn ready(self: &Arc<Self>, sh: &Arc<Shared>) -> Result<&Link, RelayError> {
        self.link
            .get_or_try_init(|| async {
                let handshake =
                    sh.state().handshake.clone().ok_or_else(|| {
                        RelayError::UpstreamProtocol(format!("{}: a request before initialize", sh.name))
                    })?;
                let sink = Arc::new(SubSink { sub: Arc::downgrade(self), sh: Arc::downgrade(sh) });
                let link = super::connect(&self.spec, &sh.clients, sink).await?;
                let (tx, rx) = oneshot::channel();
                *self.init_wait.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
                let replied = async {
                    link.send(handshake.with_id(INIT_ID)).await?;
                    tokio::time::timeout(self.spec.timeout, rx)
                        .await
                        .map_err(|_| {
                            RelayError::UpstreamTimeout(self.spec.timeout, " (initialize at a provider)".into())
                        })?
                        .map_err(|_| {
                            RelayError::UpstreamUnavailable(format!("{}: the provider went away", self.spec.name))
                        })
                };
                let reply = match replied.await {
                    Ok(r) if r.kind() == Kind::Response => r,
                    Ok(_) => {
                        link.close().await;
                        return Err(RelayError::UpstreamUnavailable(format!(
                            "{}: the provider refused the initialize",
                            self.spec.name
                        )));
                    }
                    Err(e) => {
                        link.close().await;
                        return Err(e);
                    }
                };
                link.send(Message::notification("notifications/initialized", None)).await?;
                let _ = self.init_reply.set(reply);
                Ok(link)
            })
            .await
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
                    let flight = msg.id().and_then(|id| sh.land(id, Some(sub.serial)));
                    let msg = match flight {
                        Some(f) if f.lists_tools && msg.kind() == Kind::Response => only_tools(&msg, &sub.tools),
                        _ => msg,
                    };
                    sh.sink.deliver(Inbound::Message { msg, related });
                }
                Kind::Request => {
                    let id = asked_id(sub.serial, msg.id().unwrap_or("null"));
                    sh.sink.deliver(Inbound::Message { msg: msg.with_id(&id), related });
                }
                Kind::Notification => sh.sink.deliver(Inbound::Message { msg, related }),
            },
            Inbound::StreamLost { request, reason } => sh.lost(&sub, request, reason),
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
        let subs = std::mem::take(&mut self.sh.state().subs);
        let links: Vec<Link> = subs.iter().filter_map(|s| s.link.get().cloned()).collect();
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
            return Err(RelayError::UpstreamUnavailable("the upstream session was closed".into()));
        }
        match msg.kind() {
            Kind::Request if msg.method() == Some("initialize") => self.sh.initialize(msg).await,
            Kind::Request => self.sh.dispatch(msg, traceparent, Vec::new()).await,
            Kind::Response | Kind::Error => self.sh.answer(msg).await,
            Kind::Notification => self.sh.notify(msg).await,
        }
    }
}

/// Closes a provider's link once nothing is waiting on it (or drops it, which ends its streams).
fn close_when_idle(sub: Arc<Sub>) {
    if sub.outstanding.load(Ordering::Relaxed) == 0 {
        if let Some(link) = sub.link.get().cloned() {
            tokio::spawn(async move { link.close().await });
        }
    }
}

/// `params.name` of a `tools/call`.
fn tool_name(msg: &Message) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(borrow)]
        name: std::borrow::Cow<'a, str>,
    }
    msg.params::<Params>().map(|p| p.name.into_owned())
}

/// A `tools/list` reply with only the tools in `keep` (the rest of the result as it was).
fn only_tools(msg: &Message, keep: &[String]) -> Message {
    let Some(mut result) = msg.result::<serde_json::Value>() else { return msg.clone() };
    if let Some(tools) = result.get_mut("tools").and_then(|t| t.as_array_mut()) {
        tools.retain(|t| t["name"].as_str().is_some_and(|n| keep.iter().any(|k| k == n)));
    }
    Message::response(msg.id().unwrap_or("null"), &result)
}

/// Methods whose repetition changes nothing: sent again when a provider may have dropped them.
fn safe_to_repeat(method: &str) -> bool {
    matches!(
        method,
        "ping"
            | "tools/list"
            | "prompts/list"
            | "prompts/get"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
            | "completion/complete"
    )
}

/// The provider never got the request: another may have it, whatever it is.
fn undelivered(e: &RelayError) -> bool {
    matches!(
        e,
        RelayError::UpstreamFailed {
            cause: Cause::Refused | Cause::Dns | Cause::Timeout | Cause::NotPublic | Cause::Tls,
            ..
        }
    )
}

/// The provider, not the request, is at fault: leave it out for a while.
fn sick(e: &RelayError) -> bool {
    match e {
        RelayError::UpstreamFailed { cause: Cause::Status(s), .. } => matches!(s, 502..=504),
        RelayError::UpstreamFailed { .. } | RelayError::UpstreamUnavailable(_) | RelayError::UpstreamTimeout(..) => {
            true
        }
        _ => false,
    }
}

/// The id the client sees for request `raw` (raw JSON) of provider `serial`.
fn asked_id(serial: u64, raw: &str) -> String {
    serde_json::Value::String(format!("{ASKED_PREFIX}{serial}:{raw}")).to_string()
}

/// The provider and original id behind an id made by [`asked_id`].
fn asked_by(id: &str) -> Option<(u64, String)> {
    let text: String = serde_json::from_str(id).ok()?;
    let (serial, raw) = text.strip_prefix(ASKED_PREFIX)?.split_once(':')?;
    Some((serial.parse().ok()?, raw.to_string()))
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
    async fn picks_spread_evenly_prefer_the_idle_and_skip_the_ejected() {
        let providers = Arc::new(Fixed(Mutex::new(set(1, &["a", "b", "c"]))));
        let clients = UpstreamClients::new(&[]).unwrap();
        let link = BalancedLink::new("cap", "c", providers.clone(), clients, Arc::new(Nowhere));
        let sh = &link.sh;
        let mut count: HashMap<Arc<str>, usize> = HashMap::new();
        for _ in 0..300 {
            *count.entry(sh.pick(&[], None).unwrap().key.clone()).or_default() += 1;
        }
        assert_eq!(count.values().copied().collect::<Vec<_>>(), vec![100, 100, 100], "{count:?}");

        // Fewest outstanding first.
        let a = sh.state().subs.iter().find(|s| &*s.key == "a").unwrap().clone();
        let b = sh.state().subs.iter().find(|s| &*s.key == "b").unwrap().clone();
        a.outstanding.store(3, Ordering::Relaxed);
        b.outstanding.store(1, Ordering::Relaxed);
        for _ in 0..10 {
            assert_eq!(&*sh.pick(&[], None).unwrap().key, "c");
        }
        // Left out while ejected, unless nothing else is left; never one already tried.
        let c = sh.state().subs.iter().find(|s| &*s.key == "c").unwrap().clone();
        sh.eject(&c, &RelayError::UpstreamFailed { cause: Cause::Refused, detail: "x".into() });
        assert_eq!(&*sh.pick(&[], None).unwrap().key, "b");
        assert_eq!(&*sh.pick(&[a.serial, b.serial], None).unwrap().key, "c");
        assert!(sh.pick(&[a.serial, b.serial, c.serial], Some("get_date")).is_none());
        assert!(sh.pick(&[], Some("not_the_capability")).is_none(), "a tool no provider offers");

        // A new set: the kept provider keeps its state, the one that left is gone.
        *providers.0.lock().unwrap() = set(2, &["b", "d"]);
        let keys: Vec<String> = (0..4).map(|_| sh.pick(&[], None).unwrap().key.to_string()).collect();
        assert!(keys.iter().all(|k| k == "d"), "b has one outstanding, d none: {keys:?}");
        assert_eq!(sh.state().subs.iter().find(|s| &*s.key == "b").unwrap().serial, b.serial);
        *providers.0.lock().unwrap() = set(3, &[]);
        assert!(sh.pick(&[], None).is_none());
    }

    #[test]
    fn a_tool_list_keeps_only_the_capabilitys_tools_and_the_rest_of_the_result() {
        let raw = r#"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"get_date","inputSchema":{}},{"name":"other"}],"nextCursor":"x"}}"#;
        let msg = Message::parse(bytes::Bytes::from(raw)).unwrap();
        let cut = only_tools(&msg, &["get_date".to_string()]);
        assert_eq!(cut.id(), Some("4"));
        let result: serde_json::Value = cut.result().unwrap();
        assert_eq!(result, serde_json::json!({"tools": [{"name": "get_date", "inputSchema": {}}], "nextCursor": "x"}));
        let call = Message::parse(bytes::Bytes::from(
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get\u005fdate"}}"#,
        ))
        .unwrap();
        assert_eq!(tool_name(&call).as_deref(), Some("get_date"));
    }

    #[test]
    fn a_providers_request_id_goes_there_and_back() {
        for raw in ["7", "\"abc\"", "\"a:b\\\"c\""] {
            let id = asked_id(42, raw);
            assert!(id.starts_with('"'), "a JSON string: {id}");
            assert_eq!(asked_by(&id), Some((42, raw.to_string())));
        }
        assert_eq!(asked_by("7"), None);
        assert_eq!(asked_by("\"something-else:7\""), None);
    }

    #[test]
    fn only_calls_that_change_nothing_are_repeated() {
        assert!(safe_to_repeat("tools/list"));
        assert!(safe_to_repeat("resources/read"));
        assert!(!safe_to_repeat("tools/call"));
        assert!(!safe_to_repeat("sampling/createMessage"));
        assert!(!safe_to_repeat("anything/new"));
    }

    #[test]
    fn refusals_before_delivery_fail_over_and_request_errors_do_not() {
        let refused = RelayError::UpstreamFailed { cause: Cause::Refused, detail: "x".into() };
        assert!(undelivered(&refused) && sick(&refused));
        let reset = RelayError::UpstreamFailed { cause: Cause::Other, detail: "x".into() };
        assert!(!undelivered(&reset) && sick(&reset));
        let bad = RelayError::UpstreamFailed { cause: Cause::Status(400), detail: "x".into() };
        assert!(!undelivered(&bad) && !sick(&bad));
        assert!(sick(&RelayError::UpstreamFailed { cause: Cause::Status(503), detail: "x".into() }));
    }
}
