//! The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663), relayed between a stateless
//! client and a stateless upstream that offers it.
//!
//! The upstream sees every caller of a connection as one client (the connection's credentials),
//! so it cannot keep one caller's tasks from another, and its ids may be guessable (a counter)
//! or collide with another upstream's. So a client never sees an upstream's task id: when a
//! `tools/call` creates a task, the mesh hands out a *handle* of its own — 190 random bits —
//! recorded with the organisation, API key and endpoint of the call, the tool it called and the
//! upstream's id. `tasks/get`, `tasks/update` and `tasks/cancel` name the handle; the mesh sends
//! the upstream its own id, and only for the key (or, for anonymous callers, who share one
//! principal, the holder of the handle) at the endpoint where the task was created. Any other
//! handle is answered as unknown (`-32602`), exactly as one that never existed.

use mesh_core::Principal;
use mesh_protocol::modern;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The extension's identifier, under `capabilities.extensions`.
pub(super) const EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// The methods that address an existing task by `taskId`.
pub(super) const METHODS: &[&str] = &["tasks/get", "tasks/update", "tasks/cancel"];
/// Tasks one key may have recorded at once; its oldest is forgotten first (it stays at the
/// upstream, unreachable through the mesh).
const PER_KEY: usize = 1_000;
/// Tasks one organisation's keys may have recorded at once, its oldest forgotten first: one
/// organisation never pushes out another's.
const PER_ORG: usize = 20_000;
/// Tasks recorded in all (organisations are self-service: their caps alone bound nothing);
/// beyond it the oldest is forgotten.
const IN_ALL: usize = 100_000;
/// How long a task with no `ttlMs` (or a longer one) stays reachable.
const LONGEST: Duration = Duration::from_secs(24 * 60 * 60);
/// Slack past a task's own TTL: its last `tasks/get` may race the upstream's expiry.
const SLACK: Duration = Duration::from_secs(60);

/// Whose each task is, by handle.
#[derive(Default)]
pub(in crate::ingress) struct Tasks {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    owners: HashMap<String, Owner>,
    /// Per (organisation, key) and per organisation, the handles recorded, oldest first.
    by_key: HashMap<(String, String), VecDeque<String>>,
    by_org: HashMap<String, VecDeque<String>>,
    /// Per organisation, how many of its handles are still recorded: its list above may hold
    /// handles its keys' own caps have pushed out since (until the reaper's next `expire`), which
    /// must not count against it.
    live: HashMap<String, usize>,
    /// Every handle recorded, oldest first.
    all: VecDeque<String>,
}

impl Inner {
    /// Forgets `handle`, if it is still recorded.
    fn forget(&mut self, handle: &str) {
        if let Some(o) = self.owners.remove(handle) {
            if let Some(n) = self.live.get_mut(&o.org_id) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

struct Owner {
    org_id: String,
    key_id: String,
    endpoint: String,
    /// The tool whose call created the task: what policy is asked about it later.
    tool: String,
    /// The upstream's own id.
    upstream: String,
    /// The pooled session whose call created it: a stdio child or a virtual MCP's member session
    /// holds the task, so its later requests go there, and it is kept open meanwhile.
    holder: Holder,
    expires: Instant,
}

/// The pooled session whose call created a task.
#[derive(Clone)]
pub(in crate::ingress) struct Holder {
    /// Its id.
    pub id: String,
    /// Its slot in the pool.
    pub slot: u64,
    /// The task lives in the session itself (a stdio child's, a virtual MCP member's) and ends
    /// with it; otherwise the upstream keeps it, for any pooled session of the key to reach.
    pub bound: bool,
}

/// A recorded task, as a later request for it needs it.
pub(super) struct Owned {
    /// The tool whose call created it.
    pub tool: String,
    /// The upstream's id for it.
    pub upstream: String,
    /// The pooled session that created it.
    pub holder: Holder,
}

impl Tasks {
    /// Records that the upstream behind `endpoint` created task `upstream` in a call of `tool`
    /// by `principal` on the pooled session `holder`, reachable for `ttl` (the
    /// upstream's `ttlMs`; none means as long as the mesh keeps any); the handle the client gets.
    pub(super) fn record(
        &self,
        principal: &Principal,
        endpoint: &str,
        holder: Holder,
        tool: &str,
        upstream: &str,
        ttl: Option<Duration>,
    ) -> String {
        let handle = format!("mt-{}", mesh_core::id::random_base62(32));
        let expires = Instant::now() + ttl.unwrap_or(LONGEST).min(LONGEST) + SLACK;
        let owner = Owner {
            org_id: principal.org_id.clone(),
            key_id: principal.key_id.clone(),
            endpoint: endpoint.to_string(),
            tool: tool.to_string(),
            upstream: upstream.to_string(),
            holder,
            expires,
        };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.owners.insert(handle.clone(), owner);
        *inner.live.entry(principal.org_id.clone()).or_default() += 1;
        let key = (principal.org_id.clone(), principal.key_id.clone());
        let ids = inner.by_key.entry(key).or_default();
        ids.push_back(handle.clone());
        let oldest = (ids.len() > PER_KEY).then(|| ids.pop_front()).flatten();
        if let Some(old) = oldest {
            inner.forget(&old);
        }
        inner.by_org.entry(principal.org_id.clone()).or_default().push_back(handle.clone());
        // Its oldest still recorded goes; handles already forgotten are passed over.
        while inner.live.get(&principal.org_id).is_some_and(|n| *n > PER_ORG) {
            let Some(old) = inner.by_org.get_mut(&principal.org_id).and_then(VecDeque::pop_front) else { break };
            inner.forget(&old);
        }
        inner.all.push_back(handle.clone());
        while inner.owners.len() > IN_ALL {
            let Some(old) = inner.all.pop_front() else { break };
            inner.forget(&old);
        }
        handle
    }

    /// The task behind `handle`, when it is `principal`'s at `endpoint` and still reachable.
    pub(super) fn owned(&self, principal: &Principal, endpoint: &str, handle: &str) -> Option<Owned> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let o = inner.owners.get(handle)?;
        let theirs = o.org_id == principal.org_id && o.key_id == principal.key_id && o.endpoint == endpoint;
        let owned = || Owned { tool: o.tool.clone(), upstream: o.upstream.clone(), holder: o.holder.clone() };
        (theirs && o.expires > Instant::now()).then(owned)
    }

    /// The pooled sessions that hold tasks still reachable (kept open by the reaper).
    pub(super) fn holders(&self) -> std::collections::HashSet<String> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        inner.owners.values().filter(|o| o.expires > now).map(|o| o.holder.id.clone()).collect()
    }

    /// Forgets expired tasks (from the relay's reaper).
    pub(super) fn expire(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        inner.owners.retain(|_, o| o.expires > now);
        let Inner { owners, by_key, by_org, live, all } = &mut *inner;
        all.retain(|h| owners.contains_key(h));
        by_key.retain(|_, ids| {
            ids.retain(|h| owners.contains_key(h));
            !ids.is_empty()
        });
        by_org.retain(|_, ids| {
            ids.retain(|h| owners.contains_key(h));
            !ids.is_empty()
        });
        live.clear();
        for o in owners.values() {
            *live.entry(o.org_id.clone()).or_default() += 1;
        }
    }
}

/// Whether `capabilities` (a request's `clientCapabilities`, raw JSON) declare the extension.
pub(super) fn declared(capabilities: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Caps<'a> {
        #[serde(borrow)]
        extensions: Option<HashMap<std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue>>,
    }
    serde_json::from_str::<Caps<'_>>(capabilities)
        .ok()
        .and_then(|c| c.extensions)
        .is_some_and(|e| e.contains_key(EXTENSION))
}

/// The `_meta` key by which a link of the stateless revision serving stateless clients marks its
/// `initialize` result: only such a link relays tasks ([`crate::upstream::modern`]).
pub(super) const STATELESS: &str = crate::upstream::modern::SERVES_STATELESS;

/// Whether an `initialize` result (the pooled session's) offers the extension: a session-based
/// upstream advertising it speaks the other revision's wire, which the mesh does not relay.
pub(super) fn offered(init: &serde_json::Value) -> bool {
    init.pointer("/_meta").and_then(|m| m.get(STATELESS)).and_then(serde_json::Value::as_bool) == Some(true)
        && init.pointer("/capabilities/extensions").and_then(|e| e.get(EXTENSION)).is_some()
}

/// The task a `tools/call` reply created, with its TTL ([`modern::created_task`]).
pub(super) fn created(reply: &[u8]) -> Option<(String, Option<Duration>)> {
    modern::created_task(reply).map(|(t, ttl)| (t, ttl.map(Duration::from_millis)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(org: &str, key: &str) -> Principal {
        let mut p = Principal::anonymous(org);
        p.key_id = key.into();
        p.user_id = format!("usr_{key}");
        p
    }

    fn held() -> Holder {
        Holder { id: "s1".into(), slot: 1, bound: false }
    }

    #[test]
    fn a_task_is_reachable_by_its_handle_only_for_its_key_at_its_endpoint() {
        let t = Tasks::default();
        let (k1, k2) = (key("o", "k1"), key("o", "k2"));
        let h = t.record(&k1, "/mcp/a", held(), "echo", "1", Some(Duration::from_secs(60)));
        assert!(h.starts_with("mt-") && h.len() == 35, "{h}");
        let owned = t.owned(&k1, "/mcp/a", &h).expect("owned");
        assert_eq!((owned.tool.as_str(), owned.upstream.as_str()), ("echo", "1"));
        assert!(t.owned(&k2, "/mcp/a", &h).is_none());
        assert!(t.owned(&k1, "/mcp/b", &h).is_none());
        assert!(t.owned(&k1, "/mcp/a", "1").is_none(), "the upstream's id is not a handle");
        // The same key id in another organisation is another key.
        assert!(t.owned(&key("other", "k1"), "/mcp/a", &h).is_none());
    }

    #[test]
    fn the_same_upstream_id_twice_is_two_tasks() {
        let t = Tasks::default();
        let (a, b) = (key("o1", "k1"), key("o2", "k2"));
        let (ha, hb) = (t.record(&a, "/mcp/x", held(), "t", "1", None), t.record(&b, "/mcp/x", held(), "t", "1", None));
        assert_ne!(ha, hb);
        assert!(t.owned(&a, "/mcp/x", &ha).is_some() && t.owned(&b, "/mcp/x", &hb).is_some());
    }

    #[test]
    fn a_key_keeps_its_newest_tasks_within_its_bound() {
        let t = Tasks::default();
        let k = key("o", "k");
        let handles: Vec<String> =
            (0..=PER_KEY).map(|i| t.record(&k, "/mcp/a", held(), "t", &format!("t{i}"), None)).collect();
        assert!(t.owned(&k, "/mcp/a", &handles[0]).is_none());
        assert!(t.owned(&k, "/mcp/a", &handles[1]).is_some());
        assert!(t.owned(&k, "/mcp/a", &handles[PER_KEY]).is_some());
        assert_eq!(t.inner.lock().unwrap().owners.len(), PER_KEY);
    }

    #[test]
    fn handles_a_key_pushed_out_do_not_count_against_its_organisation() {
        let t = Tasks::default();
        let other = key("o", "other");
        let kept = t.record(&other, "/mcp/a", held(), "t", "kept", None);
        // One key creates more than an organisation may hold; its own cap keeps it at PER_KEY.
        let busy = key("o", "busy");
        for i in 0..PER_ORG + 10 {
            t.record(&busy, "/mcp/a", held(), "t", &format!("t{i}"), None);
        }
        assert!(t.owned(&other, "/mcp/a", &kept).is_some(), "the organisation holds far fewer than its cap");
        assert_eq!(t.inner.lock().unwrap().live["o"], PER_KEY + 1);
        t.expire();
        assert_eq!(t.inner.lock().unwrap().by_org["o"].len(), PER_KEY + 1);
    }

    #[test]
    fn an_organisation_over_its_cap_forgets_its_oldest() {
        let t = Tasks::default();
        let keys: Vec<Principal> = (0..=PER_ORG / PER_KEY).map(|i| key("o", &format!("k{i}"))).collect();
        let first = t.record(&keys[0], "/mcp/a", held(), "t", "first", None);
        for (i, k) in keys.iter().enumerate() {
            for j in 0..PER_KEY - usize::from(i == 0) {
                t.record(k, "/mcp/a", held(), "t", &format!("{i}-{j}"), None);
            }
        }
        assert!(t.owned(&keys[0], "/mcp/a", &first).is_none(), "past the organisation's cap");
        assert_eq!(t.inner.lock().unwrap().live["o"], PER_ORG);
        assert_eq!(t.inner.lock().unwrap().owners.len(), PER_ORG);
    }

    #[test]
    fn an_expired_task_is_forgotten() {
        let t = Tasks::default();
        let k = key("o", "k");
        let h = t.record(&k, "/mcp/a", held(), "t", "x", Some(Duration::ZERO));
        for o in t.inner.lock().unwrap().owners.values_mut() {
            o.expires = Instant::now() - Duration::from_secs(1);
        }
        assert!(t.owned(&k, "/mcp/a", &h).is_none());
        t.expire();
        let inner = t.inner.lock().unwrap();
        assert!(inner.owners.is_empty() && inner.by_key.is_empty() && inner.by_org.is_empty());
        assert!(inner.all.is_empty());
    }

    #[test]
    fn the_table_is_bounded_across_organisations_too() {
        let t = Tasks::default();
        let first = t.record(&key("o0", "k"), "/mcp/a", held(), "t", "x", None);
        for i in 1..=IN_ALL {
            t.record(&key(&format!("o{i}"), "k"), "/mcp/a", held(), "t", "x", None);
        }
        assert_eq!(t.inner.lock().unwrap().owners.len(), IN_ALL);
        assert!(t.owned(&key("o0", "k"), "/mcp/a", &first).is_none(), "the oldest is forgotten");
    }

    #[test]
    fn a_created_tasks_ttl_is_a_duration() {
        let task = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"abc","ttlMs":5000}}"#;
        assert_eq!(created(task), Some(("abc".into(), Some(Duration::from_millis(5000)))));
    }

    #[test]
    fn the_extension_is_read_from_capabilities_and_the_handshake() {
        assert!(declared(r#"{"extensions":{"io.modelcontextprotocol/tasks":{}}}"#));
        assert!(!declared(r#"{"extensions":{"other":{}}}"#));
        assert!(!declared(r#"{"sampling":{}}"#));
        assert!(!declared("not json"));
        let marked = |caps: serde_json::Value| serde_json::json!({"capabilities": caps, "_meta": {STATELESS: true}});
        assert!(offered(&marked(serde_json::json!({"extensions":{"io.modelcontextprotocol/tasks":{}}}))));
        assert!(!offered(&marked(serde_json::json!({"tools":{}}))));
        // A session-based upstream's own claim is not an offer the mesh can relay.
        assert!(!offered(&serde_json::json!({"capabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}})));
    }
}
