//! Pooled sessions: what a stateless request runs on.
//!
//! Keyed by (API key, endpoint, client capabilities, client info). The key because a session is
//! bound to the principal that opened it (its access, its rate limits, its upstream credentials);
//! the capabilities because the upstream learns them once, at its handshake, and may only ask a
//! client for what it declared; the client info because the upstream learns that at the
//! handshake too, and the audit trail names a session's client from it: two programs sharing a
//! key are two clients, as two sessions would be. A pooled session is an ordinary registered
//! session — counted against the session caps, ended with its connection, reaped when idle,
//! recomputing its access on policy changes — whose id is never handed out.

use super::tasks::EXTENSION as TASKS;
use super::{Ask, Held};
use crate::ingress::streamable_http::{open_session, Opened, Target};
use crate::ingress::Relay;
use crate::session::{method_name, outcome_of, Audited, RouteKind, Session};
use crate::RelayError;
use mesh_core::audit::{CallRecord, Origin, Outcome};
use mesh_core::Principal;
use mesh_protocol::{version, Message};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The pooled sessions of the relay, by key.
#[derive(Default)]
pub(in crate::ingress) struct Pool {
    /// By the seeded hash of the key (found without building one per request); each entry keeps
    /// its API key and endpoint, compared on every find, so a hash collision between two keys or
    /// endpoints only ever costs a new session (one between two capability sets of the same key
    /// and endpoint shares one: see [`Key`]). That hash is already seeded SipHash: the map's own
    /// hasher need not be.
    map: Mutex<foldhash::HashMap<u64, Entry>>,
    /// One opening at a time per key: a burst of first requests opens one session, not one each.
    opening: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

/// (API key, endpoint, the seeded hash of all four with the capabilities and client info as
/// sent), which stands for those two. Two that collide share a session initialised with one of
/// them; the ingress still asks a client only for what its own request declared
/// (`input::declared`). Compared as sent: a client that changes how it writes them (another
/// order, another `clientInfo`) opens another session, counted against the caps like any.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    key_id: String,
    endpoint: String,
    hash: u64,
}

/// The largest `clientCapabilities` accepted (real ones are a few hundred bytes).
pub(super) const MAX_CAPABILITIES: usize = 16 * 1024;
/// The largest `clientInfo` accepted (a name and a version; icons are URLs, or small data URIs).
pub(super) const MAX_CLIENT_INFO: usize = 16 * 1024;

struct Entry {
    key: Key,
    session_id: String,
    init: Arc<serde_json::Value>,
    params: Arc<ParamHeaders>,
    tasks: bool,
}

/// Per tool with annotations (as listed on this session): the arguments its `inputSchema` asks clients to mirror
/// into `Mcp-Param-*` headers, as (argument, header token). Learnt from the `tools/list` results
/// that pass through; the mesh checks the headers of a call against them.
pub(in crate::ingress) type ParamHeaders = Mutex<HashMap<String, Vec<(String, String)>>>;

/// A pooled session and what its upstream said at the handshake.
pub(in crate::ingress) struct Pooled {
    /// The session.
    pub session: Arc<Session>,
    /// The upstream's (or the virtual MCP's merged) InitializeResult.
    pub init: Arc<serde_json::Value>,
    /// Which tool arguments travel in `Mcp-Param-*` headers.
    pub params: Arc<ParamHeaders>,
    /// Where the pool keeps it: with the session's id, how a task's requests find it again.
    pub slot: u64,
    /// Whether its upstream offers tasks ([`super::tasks::offered`], read once at the handshake,
    /// not per call).
    pub tasks: bool,
}

impl Pool {
    /// Forgets entries whose session has ended (reaped, closed with its connection).
    pub(in crate::ingress) fn prune(&self, relay: &Relay) {
        // Every stateless request takes this lock: the sessions are looked up outside it, and it
        // is taken again only when some have ended.
        let ids: Vec<String> = self.entries().values().map(|e| e.session_id.clone()).collect();
        let ended: std::collections::HashSet<String> =
            ids.into_iter().filter(|id| relay.sessions.get(id).is_none()).collect();
        if !ended.is_empty() {
            self.entries().retain(|_, e| !ended.contains(&e.session_id));
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, foldhash::HashMap<u64, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The seeded hash a pooled session is found by, in one pass (every stateless request hashes
/// it). Keyed by a per-process random seed: no client can aim its capabilities, or its key, at
/// another's entry. The fields cannot run into each other: `0xff` is never in UTF-8 text, and
/// the client info comes last.
fn hash_of(key_id: &str, endpoint: &str, capabilities: &[u8], client_info: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static SEED: std::sync::LazyLock<std::collections::hash_map::RandomState> =
        std::sync::LazyLock::new(Default::default);
    let mut all = SEED.build_hasher();
    all.write(key_id.as_bytes());
    all.write_u8(0xff);
    all.write(endpoint.as_bytes());
    all.write_u8(0xff);
    all.write(capabilities);
    all.write_u8(0xff);
    all.write(client_info);
    all.finish()
}

impl Key {
    /// Whether this is the key of `key_id` at `endpoint` (its hash is the slot it was found in).
    fn is(&self, key_id: &str, endpoint: &str) -> bool {
        self.key_id == key_id && self.endpoint == endpoint
    }
}

/// The pooled session for `ask` from `principal` at `target`, opened on first use. When it
/// cannot be opened — or the client leaves while it opens — the request's audit row is written
/// here (`audited`: what it names), since no session will write it.
pub(super) async fn session(
    relay: &Arc<Relay>,
    target: &Target,
    principal: &Principal,
    (ask, msg, audited): (&Ask, &Message, Option<&Audited>),
) -> Result<Pooled, RelayError> {
    let client_info = ask.client_info.as_ref().map_or(&[][..], Held::raw);
    let slot = hash_of(&principal.key_id, &ask.endpoint, ask.capabilities.raw(), client_info);
    if let Some(found) = pooled(relay, slot, (&principal.key_id, &ask.endpoint), principal) {
        return Ok(found);
    }
    let unopened = Unopened {
        relay,
        target,
        principal,
        ask,
        audited,
        bytes_in: msg.bytes().len(),
        time_ms: mesh_core::id::now_ms(),
        started: std::time::Instant::now(),
        armed: true,
    };
    // Boxed: only a request that opens a session pays for the opening's future; every other
    // request's future would carry it (and copy it as it moves).
    match Box::pin(open(relay, target, principal, ask, slot)).await {
        Ok(found) => {
            unopened.disarm();
            Ok(found)
        }
        Err(e) => {
            unopened.failed(&e);
            Err(e)
        }
    }
}

/// The audit row of a request whose pooled session was not opened (see [`session`]): written
/// when it failed, or on drop while still armed (the client left during the opening).
struct Unopened<'a> {
    relay: &'a Relay,
    target: &'a Target,
    principal: &'a Principal,
    ask: &'a Ask,
    audited: Option<&'a Audited>,
    bytes_in: usize,
    time_ms: i64,
    started: std::time::Instant,
    armed: bool,
}

impl Unopened<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }

    fn failed(mut self, e: &RelayError) {
        self.armed = false;
        self.write(outcome_of(e), e.to_string());
    }

    fn write(&self, outcome: Outcome, error: String) {
        let (kind, route) = match self.target {
            Target::Management => (RouteKind::Management, ""),
            Target::Route(r) => (RouteKind::Connection, r.as_str()),
            Target::Gateway(g) => (RouteKind::Gateway, g.as_str()),
        };
        let origin = Origin {
            principal: self.principal.clone(),
            // No session was opened for it.
            session_id: String::new(),
            client: None,
            route_kind: kind.as_str(),
            route: route.to_string(),
        };
        self.relay.audit.record(CallRecord {
            time_ms: self.time_ms,
            origin: Arc::new(origin),
            method: method_name(&self.ask.method),
            name: self.audited.and_then(|a| a.name.clone()),
            arguments: self.audited.and_then(|a| a.arguments.clone()),
            outcome,
            error: Some(error),
            latency_us: self.started.elapsed().as_micros() as u64,
            bytes_in: self.bytes_in as u64,
            bytes_out: 0,
            request_id: self.ask.id.to_string().into(),
        });
    }
}

impl Drop for Unopened<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.write(Outcome::ClientGone, "the client went away while its upstream session was opening".into());
        }
    }
}

/// Removes an opening gate from the pool once nobody else holds it (see [`session`]).
struct Ungate<'a> {
    pool: &'a Pool,
    key: &'a Key,
    gate: &'a Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Ungate<'_> {
    fn drop(&mut self) {
        let mut opening = self.pool.opening.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: the map's and this request's. A request still waiting holds a third.
        if opening.get(self.key).is_some_and(|g| Arc::ptr_eq(g, self.gate)) && Arc::strong_count(self.gate) <= 2 {
            opening.remove(self.key);
        }
    }
}

/// The live pooled session in `slot` (the hash of key, endpoint, capabilities and client info)
/// for this key and endpoint, if there is one `principal` may use.
fn pooled(relay: &Arc<Relay>, slot: u64, (key_id, endpoint): (&str, &str), principal: &Principal) -> Option<Pooled> {
    in_slot(relay, slot, |e| e.key.is(key_id, endpoint), principal)
}

/// The pooled session `id` in `slot`, when it is still open, is `principal`'s (same key and
/// rights) and serves `endpoint`: where a task it created is asked about.
pub(super) fn holding(
    relay: &Arc<Relay>,
    (id, slot): (&str, u64),
    principal: &Principal,
    endpoint: &str,
) -> Option<Pooled> {
    let theirs = |e: &Entry| e.session_id == id && e.key.key_id == principal.key_id && e.key.endpoint == endpoint;
    in_slot(relay, slot, theirs, principal)
}

/// The session of the entry in `slot` that `which` accepts, when it still serves and
/// `principal` may use it.
fn in_slot(relay: &Arc<Relay>, slot: u64, which: impl Fn(&Entry) -> bool, principal: &Principal) -> Option<Pooled> {
    // Only the shared parts are taken out, not the entry's strings: this runs on every request.
    // The registry says whether it still serves (reaped or ended sessions leave it first); it is
    // asked under the pool's lock (`Pool::prune` takes the two apart).
    let (s, init, params, tasks) = {
        let map = relay.modern.pool.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.get(&slot).filter(|e| which(e))?;
        (relay.sessions.get(&e.session_id)?, e.init.clone(), e.params.clone(), e.tasks)
    };
    // Same key, other rights (a role changed): the session was opened by someone else.
    if !s.is_dead() && s.principal.same_rights(principal) {
        return Some(Pooled { session: s, init, params, slot, tasks });
    }
    relay.sessions.remove(&s.id);
    tokio::spawn(async move { s.close().await });
    None
}

/// Opens the pooled session in `slot` for a request that found none open — once per key: a
/// request that waited for another's opening takes what it opened.
async fn open(
    relay: &Arc<Relay>,
    target: &Target,
    principal: &Principal,
    ask: &Ask,
    slot: u64,
) -> Result<Pooled, RelayError> {
    let key = Key { key_id: principal.key_id.clone(), endpoint: ask.endpoint.clone(), hash: slot };
    let gate = {
        let mut opening = relay.modern.pool.opening.lock().unwrap_or_else(|p| p.into_inner());
        opening.entry(key.clone()).or_default().clone()
    };
    // Whatever ends the wait or the opening — done, failed, or the client gone and this future
    // dropped — the gate goes with its last holder: a client that keeps changing its
    // capabilities and leaving must not leave a gate behind each time.
    let _gone = Ungate { pool: &relay.modern.pool, key: &key, gate: &gate };
    let _turn = gate.lock().await;
    // Opened by the request this one waited for.
    if let Some(found) = pooled(relay, slot, (&principal.key_id, &ask.endpoint), principal) {
        return Ok(found);
    }
    let init_msg = Message::request("0", "initialize", Some(&handshake(ask)));
    let (session, reply) = match open_session(relay, target, principal.clone(), &init_msg, true).await? {
        Opened::Session(s, reply) => (s, reply),
        Opened::Refused(reply) => {
            let why = reply.error_object().map(|e| e.message).unwrap_or_else(|| "refused".into());
            return Err(RelayError::UpstreamUnavailable(format!("the upstream refused the handshake: {why}")));
        }
    };
    session.set_pooled();
    // What a client says after the handshake; some servers only offer capability-gated tools
    // once they hear it.
    if let Err(e) = session.notify(&Message::notification("notifications/initialized", None)).await {
        relay.sessions.remove(&session.id);
        session.close().await;
        return Err(e);
    }
    let init = Arc::new(reply.result::<serde_json::Value>().unwrap_or_default());
    tracing::info!(session = %session.id, route = %session.label, "stateless requests of a key now share an upstream session");
    let params = Arc::new(ParamHeaders::default());
    // The mark is the link's own only from a link of the stateless revision; a session-based
    // upstream could write it into its result.
    let tasks = super::tasks::offered(&init)
        && (session.route_kind == crate::session::RouteKind::Gateway || session.speaks_stateless(0));
    let entry =
        Entry { key: key.clone(), session_id: session.id.clone(), init: init.clone(), params: params.clone(), tasks };
    relay.modern.pool.map.lock().unwrap_or_else(|p| p.into_inner()).insert(slot, entry);
    Ok(Pooled { session, init, params, slot, tasks })
}

/// The `initialize` params that open a pooled session: the newest session-based revision, and the
/// request's own capabilities and client (so that the upstream asks for nothing the client did not
/// declare, and the upstream's logs and the audit trail name the real client).
fn handshake(ask: &Ask) -> serde_json::Value {
    let mut capabilities: serde_json::Value =
        serde_json::from_str(&ask.capabilities).unwrap_or_else(|_| serde_json::json!({}));
    let mut extensions = None;
    if let Some(c) = capabilities.as_object_mut() {
        // Stateless-only fields the earlier revision does not have. The tasks extension travels
        // beside them, for a link to a stateless upstream to send on (`upstream::modern`); no
        // other extension does (one the mesh does not know might change what a call means).
        let tasks = c.remove("extensions").and_then(|mut e| e.get_mut(TASKS).map(serde_json::Value::take));
        extensions = tasks.map(|t| serde_json::json!({ TASKS: t }));
        c.remove("tasks");
    }
    let client_info = ask
        .client_info
        .as_deref()
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .filter(|c| c.get("name").is_some_and(|n| n.is_string()))
        .unwrap_or_else(|| serde_json::json!({"name": "mcp-mesh", "version": env!("CARGO_PKG_VERSION")}));
    let mut params = serde_json::json!({"protocolVersion": version::LATEST, "capabilities": capabilities, "clientInfo": client_info});
    if let Some(e) = extensions {
        params["_meta"] = serde_json::json!({ crate::upstream::modern::EXTENSIONS: e });
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opening_gate_goes_with_its_last_holder() {
        let pool = Pool::default();
        let key = Key { key_id: "k".into(), endpoint: "/mcp/e".into(), hash: 1 };
        let take = || pool.opening.lock().expect("lock").entry(key.clone()).or_default().clone();
        let (first, second) = (take(), take());
        drop(Ungate { pool: &pool, key: &key, gate: &first });
        assert!(pool.opening.lock().expect("lock").contains_key(&key), "another request still waits on it");
        drop(first);
        drop(Ungate { pool: &pool, key: &key, gate: &second });
        assert!(pool.opening.lock().expect("lock").is_empty(), "the last holder removes it");
    }

    fn ask(capabilities: &str, client_info: Option<&str>) -> Ask {
        Ask {
            id: "1".into(),
            method: "tools/list".into(),
            capabilities: capabilities.into(),
            client_info: client_info.map(Into::into),
            log_level: None,
            param_headers: Vec::new(),
            endpoint: "/mcp/echo".into(),
        }
    }

    #[test]
    fn a_pooled_handshake_names_the_client_and_its_capabilities() {
        let caps = r#"{"sampling":{},"tasks":{},"extensions":{"io.modelcontextprotocol/tasks":{"x":1},"other":{}}}"#;
        let params = handshake(&ask(caps, Some(r#"{"name":"agent-7","version":"2"}"#)));
        assert_eq!(params["clientInfo"], serde_json::json!({"name": "agent-7", "version": "2"}));
        assert_eq!(params["protocolVersion"], version::LATEST);
        // Stateless-only members leave the capabilities; only the tasks extension rides beside them.
        assert_eq!(params["capabilities"], serde_json::json!({"sampling": {}}));
        assert_eq!(params["_meta"][crate::upstream::modern::EXTENSIONS], serde_json::json!({ TASKS: {"x": 1} }));
    }

    #[test]
    fn without_a_usable_client_info_the_mesh_names_itself() {
        for info in [None, Some(r#"{"version":"1"}"#), Some("[1]")] {
            let params = handshake(&ask("{}", info));
            assert_eq!(params["clientInfo"]["name"], "mcp-mesh", "{info:?}");
        }
    }
}
