//! The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663), relayed between a stateless
//! client and a stateless upstream that offers it.
//!
//! The upstream sees every caller of a connection as one client (the connection's credentials),
//! so it cannot keep one caller's tasks from another. The mesh does: a task id the upstream
//! returned to one API key at one endpoint is recorded here, and `tasks/get`, `tasks/update` and
//! `tasks/cancel` reach the upstream only for a task of the same key at the same endpoint. Any
//! other id is answered as unknown (`-32602`), exactly as one that never existed, so a caller
//! learns nothing of another's tasks.

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
/// Tasks recorded in all; beyond it, the record closest to expiry goes.
const TOTAL: usize = 100_000;
/// How long a task with no `ttlMs` (or a longer one) stays reachable.
const LONGEST: Duration = Duration::from_secs(24 * 60 * 60);
/// Slack past a task's own TTL: its last `tasks/get` may race the upstream's expiry.
const SLACK: Duration = Duration::from_secs(60);

/// Whose each task is.
#[derive(Default)]
pub(in crate::ingress) struct Tasks {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    owners: HashMap<String, Owner>,
    /// Per key, its task ids oldest first (for the per-key bound).
    by_key: HashMap<String, VecDeque<String>>,
}

struct Owner {
    key_id: String,
    endpoint: String,
    expires: Instant,
}

impl Tasks {
    /// Records that the upstream behind `endpoint` created `task` for `key_id`, reachable for
    /// `ttl` (the upstream's `ttlMs`; none means as long as the mesh keeps any).
    pub(super) fn record(&self, key_id: &str, endpoint: &str, task: &str, ttl: Option<Duration>) {
        let now = Instant::now();
        let expires = now + ttl.unwrap_or(LONGEST).min(LONGEST) + SLACK;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.owners.len() >= TOTAL {
            inner.expire(now);
        }
        if inner.owners.len() >= TOTAL {
            // Rare: a hundred thousand live tasks. The one closest to expiry goes.
            let soonest = inner.owners.iter().min_by_key(|(_, o)| o.expires).map(|(t, _)| t.clone());
            if let Some(t) = soonest {
                inner.forget(&t);
            }
        }
        let owner = Owner { key_id: key_id.to_string(), endpoint: endpoint.to_string(), expires };
        if inner.owners.insert(task.to_string(), owner).is_some() {
            // The upstream reused an id: it now belongs to this caller only.
            for ids in inner.by_key.values_mut() {
                ids.retain(|t| t != task);
            }
        }
        let ids = inner.by_key.entry(key_id.to_string()).or_default();
        ids.push_back(task.to_string());
        if ids.len() > PER_KEY {
            if let Some(oldest) = ids.pop_front() {
                inner.owners.remove(&oldest);
            }
        }
    }

    /// Whether `task` was created for `key_id` at `endpoint` and is still reachable.
    pub(super) fn owns(&self, key_id: &str, endpoint: &str, task: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .owners
            .get(task)
            .is_some_and(|o| o.key_id == key_id && o.endpoint == endpoint && o.expires > Instant::now())
    }

    /// Forgets expired tasks (from the relay's reaper).
    pub(super) fn expire(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).expire(Instant::now());
    }
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        let owners = &mut self.owners;
        owners.retain(|_, o| o.expires > now);
        self.by_key.retain(|_, ids| {
            ids.retain(|t| owners.contains_key(t));
            !ids.is_empty()
        });
    }

    fn forget(&mut self, task: &str) {
        if let Some(o) = self.owners.remove(task) {
            if let Some(ids) = self.by_key.get_mut(&o.key_id) {
                ids.retain(|t| t != task);
            }
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

/// Whether an `initialize` result (the pooled session's) offers the extension.
pub(super) fn offered(init: &serde_json::Value) -> bool {
    init.pointer("/capabilities/extensions").and_then(|e| e.get(EXTENSION)).is_some()
}

/// The task a `tools/call` reply created, with its TTL ([`modern::created_task`]).
pub(super) fn created(reply: &[u8]) -> Option<(String, Option<Duration>)> {
    modern::created_task(reply).map(|(t, ttl)| (t, ttl.map(Duration::from_millis)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_reachable_only_by_its_key_at_its_endpoint() {
        let t = Tasks::default();
        t.record("k1", "/mcp/a", "task-1", Some(Duration::from_secs(60)));
        assert!(t.owns("k1", "/mcp/a", "task-1"));
        assert!(!t.owns("k2", "/mcp/a", "task-1"));
        assert!(!t.owns("k1", "/mcp/b", "task-1"));
        assert!(!t.owns("k1", "/mcp/a", "task-2"));
    }

    #[test]
    fn a_reused_id_belongs_to_its_latest_creator_only() {
        let t = Tasks::default();
        t.record("k1", "/mcp/a", "same", None);
        t.record("k2", "/mcp/a", "same", None);
        assert!(!t.owns("k1", "/mcp/a", "same"));
        assert!(t.owns("k2", "/mcp/a", "same"));
        assert!(t.inner.lock().unwrap().by_key.get("k1").is_none_or(|ids| ids.is_empty()));
    }

    #[test]
    fn a_key_keeps_its_newest_tasks_within_its_bound() {
        let t = Tasks::default();
        for i in 0..=PER_KEY {
            t.record("k", "/mcp/a", &format!("t{i}"), None);
        }
        assert!(!t.owns("k", "/mcp/a", "t0"));
        assert!(t.owns("k", "/mcp/a", "t1"));
        assert!(t.owns("k", "/mcp/a", &format!("t{PER_KEY}")));
        assert_eq!(t.inner.lock().unwrap().owners.len(), PER_KEY);
    }

    #[test]
    fn an_expired_task_is_forgotten() {
        let t = Tasks::default();
        t.record("k", "/mcp/a", "t", Some(Duration::ZERO));
        t.inner.lock().unwrap().owners.get_mut("t").unwrap().expires = Instant::now() - Duration::from_secs(1);
        assert!(!t.owns("k", "/mcp/a", "t"));
        t.expire();
        let inner = t.inner.lock().unwrap();
        assert!(inner.owners.is_empty() && inner.by_key.is_empty());
    }

    #[test]
    fn only_a_create_task_result_creates_a_task() {
        let task = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"abc","status":"working","ttlMs":5000}}"#;
        assert_eq!(created(task), Some(("abc".into(), Some(Duration::from_millis(5000)))));
        let no_ttl = br#"{"jsonrpc":"2.0","id":1,"result":{"taskId":"abc","resultType":"task","ttlMs":null}}"#;
        assert_eq!(created(no_ttl), Some(("abc".into(), None)));
        let plain = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","content":[],"taskId":"x"}}"#;
        assert_eq!(created(plain), None);
        assert_eq!(created(br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}"#), None);
    }

    #[test]
    fn the_extension_is_read_from_capabilities_and_the_handshake() {
        assert!(declared(r#"{"extensions":{"io.modelcontextprotocol/tasks":{}}}"#));
        assert!(!declared(r#"{"extensions":{"other":{}}}"#));
        assert!(!declared(r#"{"sampling":{}}"#));
        assert!(!declared("not json"));
        assert!(offered(&serde_json::json!({"capabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}})));
        assert!(!offered(&serde_json::json!({"capabilities":{"tools":{}}})));
    }
}
