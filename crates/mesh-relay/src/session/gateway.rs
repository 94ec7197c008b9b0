//! Virtual MCPs: one downstream session over many members.
//!
//! Opening: every member is connected and initialised concurrently with the client's own
//! `initialize` (so each sees the client's real capabilities); the client gets one
//! InitializeResult whose capabilities are the union of what can be routed. In `degrade` mode a
//! member that fails is left out and the client is told through a log notification; in `strict`
//! mode any failure fails the session.
//!
//! Lists (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`) are answered
//! by the gateway: each member's full list is fetched once (following its own pagination),
//! curated and namespaced (`mesh_core::gateway`), merged in member order, and paged with a cursor
//! the gateway owns. A member's `list_changed` refetches that member only and reaches the client
//! as one `list_changed`, only when what the client can see changed.
//!
//! Calls, reads, subscriptions and completions are routed by exposed name or URI prefix to their
//! member with the original name restored. Everything else a member sends (progress, logging,
//! sampling, elicitation, roots) flows through the shared session machinery in `mod.rs`.

use super::routing::Routing;
use super::Session;
use crate::ports::{ResolvedGateway, ResolvedMember};
use crate::RelayError;
use mesh_core::gateway::{
    expose_name, expose_uri, uri_prefix, valid_tool_name, FailureMode, MemberConfig, Selection, Strategy,
};
use mesh_core::policy::Item;
use mesh_protocol::Message;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The four lists a gateway merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    pub(super) const ALL: [ListKind; 4] =
        [ListKind::Tools, ListKind::Prompts, ListKind::Resources, ListKind::Templates];

    pub(super) fn of_method(m: &str) -> Option<ListKind> {
        Self::ALL.into_iter().find(|k| k.method() == m)
    }

    pub(super) fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::Templates => "resources/templates/list",
        }
    }

    /// The result field holding the items.
    pub(super) fn key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }

    /// The item field that names it.
    pub(super) fn id_field(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::Templates => "uriTemplate",
        }
    }

    pub(super) fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources | ListKind::Templates => "resources",
        }
    }

    pub(super) fn changed_notification(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Prompts => "notifications/prompts/list_changed",
            ListKind::Resources | ListKind::Templates => "notifications/resources/list_changed",
        }
    }
}

/// A merged, curated list.
pub(super) struct Merged {
    pub(super) items: Vec<Value>,
    /// Exposed name (or URI) → (member, original name or URI).
    pub(super) index: HashMap<String, (usize, String)>,
    /// Exposed names policy hides from this session: answered as unknown, audited as denied.
    pub(super) hidden: std::collections::HashSet<String>,
    pub(super) fingerprint: u64,
}

pub(super) struct Member {
    pub(super) connection_id: String,
    pub(super) slug: String,
    pub(super) prefix: String,
    pub(super) uri_prefix: String,
    pub(super) config: MemberConfig,
    pub(super) caps: Option<Value>,
    pub(super) instructions: Option<String>,
    pub(super) healthy: bool,
    /// Taken out of the gateway while the session was open.
    pub(super) removed: bool,
}

impl Member {
    /// Whether this member's handshake offered the tasks extension.
    pub(super) fn has_tasks(&self) -> bool {
        self.has("extensions")
            && self.caps.as_ref().and_then(|c| c.get("extensions")).and_then(|e| e.get(TASKS_EXTENSION)).is_some()
    }

    pub(super) fn has(&self, capability: &str) -> bool {
        !self.removed && self.healthy && self.caps.as_ref().is_some_and(|c| c.get(capability).is_some())
    }

    /// Whether the member says when its list of `kind` changes (`listChanged`).
    pub(super) fn announces_changes(&self, kind: ListKind) -> bool {
        let changes = self.caps.as_ref().and_then(|c| c.get(kind.capability())).and_then(|c| c.get("listChanged"));
        changes.and_then(Value::as_bool) == Some(true)
    }

    pub(super) fn selection(&self, kind: ListKind) -> &Selection {
        match kind {
            ListKind::Tools => &self.config.tools,
            ListKind::Prompts => &self.config.prompts,
            ListKind::Resources | ListKind::Templates => &self.config.resources,
        }
    }
}

#[derive(Default)]
pub(super) struct Catalog {
    pub(super) raw: HashMap<(usize, ListKind), Listed>,
    pub(super) merged: HashMap<ListKind, Arc<Merged>>,
    /// The `smart` strategy's search index of the merged tools (`smart.rs`).
    pub(super) search: Option<Arc<super::smart::Index>>,
}

/// One member's whole list of one kind, as last fetched.
pub(super) struct Listed {
    pub(super) items: Arc<Vec<Value>>,
    /// When it was fetched, and for how long the member said it stays fresh (`ttlMs`, the
    /// shortest of its pages; `None` when a page gave none, as every session-based member's).
    pub(super) fetched: std::time::Instant,
    pub(super) ttl_ms: Option<u64>,
}

impl Listed {
    /// How much longer the member said the list stays fresh, in milliseconds (0 when it said
    /// nothing: immediately stale, as the revision reads a missing `ttlMs`).
    fn fresh_for(&self) -> u64 {
        let ttl = self.ttl_ms.unwrap_or(0);
        ttl.saturating_sub(u64::try_from(self.fetched.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

/// The gateway part of a session.
pub struct Gateway {
    pub(super) slug: String,
    pub(super) mode: FailureMode,
    pub(super) page_size: usize,
    /// What the client is shown of the tools (`smart.rs`).
    pub(super) strategy: Strategy,
    /// What a `code` strategy's script may use.
    pub(super) code_limits: mesh_sandbox::Limits,
    pub(super) members: RwLock<Vec<Member>>,
    pub(super) catalog: Mutex<Catalog>,
    /// Serialises list refreshes so one member change yields at most one list_changed.
    pub(super) refresh: tokio::sync::Mutex<()>,
    pub(super) initialized: AtomicBool,
    /// The client's initialize params, to initialise members added later.
    pub(super) init_params: Mutex<Value>,
    /// The session serves stateless clients (pooled): members of that revision are reached in it.
    pub(super) stateless_clients: bool,
    /// Which member each task lives at (the tasks extension; stateless clients only).
    pub(super) tasks: Mutex<TaskRoutes>,
}

/// Task id → the member that created it, oldest first within a bound (a pooled session is one
/// key's; the ingress keeps the key's own bound too).
#[derive(Default)]
pub(super) struct TaskRoutes {
    member: HashMap<String, usize>,
    order: std::collections::VecDeque<String>,
}

/// Tasks one virtual MCP session routes at once; the oldest is forgotten first.
const MAX_TASK_ROUTES: usize = 1_000;
/// The tasks extension's identifier.
const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

impl TaskRoutes {
    fn record(&mut self, task: &str, member: usize) {
        match self.member.get(task) {
            // Two members chose the same id: neither can be told apart any more, so the id is
            // forgotten rather than routed to the wrong one (a task's answers may be in it).
            Some(&m) if m != member => {
                self.member.insert(task.to_string(), usize::MAX);
            }
            Some(_) => {}
            None => {
                self.member.insert(task.to_string(), member);
                self.order.push_back(task.to_string());
                if self.order.len() > MAX_TASK_ROUTES {
                    if let Some(oldest) = self.order.pop_front() {
                        self.member.remove(&oldest);
                    }
                }
            }
        }
    }
}

/// Where an exposed resource URI goes ([`Gateway::locate_uri`]).
pub(super) enum Located {
    /// To this member, which knows it by this URI.
    At(usize, String),
    /// Several members serve resources unprefixed: only the merged list tells which.
    InIndex,
    /// No member serves it.
    Nowhere,
}

pub(super) fn params_of(msg: &Message) -> Map<String, Value> {
    msg.params::<Map<String, Value>>().unwrap_or_default()
}

pub(super) fn rewrite(msg: &Message, params: Map<String, Value>) -> Message {
    Message::request(msg.id().unwrap_or("null"), msg.method().unwrap_or(""), Some(&Value::Object(params)))
}

pub(super) fn fingerprint(items: &[Value]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(items).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// Whether `uri` is an instance of RFC 6570 level-1 `template` (literal parts in order).
pub(super) fn template_matches(template: &str, uri: &str) -> bool {
    let mut rest = uri;
    for (i, part) in template.split(['{', '}']).enumerate() {
        // Even parts are literals, odd parts are variable names.
        if i % 2 == 1 || part.is_empty() {
            continue;
        }
        match rest.find(part) {
            Some(pos) if i > 0 || pos == 0 => rest = &rest[pos + part.len()..],
            _ => return false,
        }
    }
    template.ends_with('}') || rest.is_empty()
}

impl Gateway {
    pub(super) fn new(def: &ResolvedGateway, stateless_clients: bool, code_limits: mesh_sandbox::Limits) -> Gateway {
        let members = def.members.iter().map(Self::member).collect();
        Gateway {
            slug: def.slug.clone(),
            mode: def.mode,
            page_size: def.page_size.max(1),
            strategy: def.strategy,
            code_limits,
            members: RwLock::new(members),
            catalog: Mutex::new(Catalog::default()),
            refresh: tokio::sync::Mutex::new(()),
            initialized: AtomicBool::new(false),
            init_params: Mutex::new(json!({})),
            stateless_clients,
            tasks: Mutex::default(),
        }
    }

    /// Records the task a `tools/call` reply of `member` created, so that later requests for it
    /// reach that member.
    pub(super) fn note_task(&self, member: usize, reply: &Message) {
        if !self.members().get(member).is_some_and(Member::has_tasks) {
            return;
        }
        if let Some((task, _)) = mesh_protocol::modern::created_task(reply.bytes()) {
            self.tasks.lock().unwrap_or_else(|p| p.into_inner()).record(&task, member);
        }
    }

    /// `reply`, `member`'s answer to `method`, with the resource URIs it names as this virtual
    /// MCP's client knows them (`exposed.rs`).
    pub(super) fn exposed_reply(&self, member: usize, method: &str, reply: Message) -> Message {
        match self.members().get(member) {
            Some(m) => super::exposed::exposed_reply(&m.uri_prefix, method, reply),
            None => reply,
        }
    }

    pub(super) fn member(m: &ResolvedMember) -> Member {
        let prefix = m.config.effective_prefix(&m.slug).to_string();
        Member {
            connection_id: m.connection_id.clone(),
            slug: m.slug.clone(),
            uri_prefix: uri_prefix(&prefix),
            prefix,
            config: m.config.clone(),
            caps: None,
            instructions: None,
            healthy: false,
            removed: false,
        }
    }

    pub(super) fn members(&self) -> std::sync::RwLockReadGuard<'_, Vec<Member>> {
        self.members.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn catalog(&self) -> std::sync::MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn initialized(&self) {
        self.initialized.store(true, Ordering::Release);
    }

    /// Decides where a client request goes: to the member serving what it names, with the
    /// member's own name restored, or answered by the gateway itself.
    pub(super) async fn route(&self, s: &Session, msg: &Message) -> Result<Routing, RelayError> {
        let method = msg.method().unwrap_or("");
        let me = s.me.upgrade().ok_or_else(|| RelayError::Internal("session is gone".into()))?;
        if let Some(answer) = self.smart_route(&me, msg) {
            return Ok(answer);
        }
        if let Some(answer) = self.code_route(&me, msg) {
            return answer;
        }
        if let Some(kind) = ListKind::of_method(method) {
            let cursor = params_of(msg).get("cursor").and_then(Value::as_str).map(str::to_string);
            return Ok(Routing::Local(Box::pin(async move {
                let gw = me.gateway.as_ref().ok_or_else(|| RelayError::Internal("not a gateway".into()))?;
                if me.is_pooled() && cursor.is_none() {
                    // A list's first page: a later one pages through the list the first saw.
                    gw.expire(kind);
                }
                let merged = gw.merged(&me, kind).await?;
                let mut page = gw.page(&merged, kind, cursor.as_deref())?;
                if me.is_pooled() {
                    // The stateless revision's caching hint, from the members' own.
                    page["ttlMs"] = gw.fresh_for(kind).into();
                }
                Ok(page)
            })));
        }
        match method {
            "ping" => Ok(Routing::Local(Box::pin(async { Ok(json!({})) }))),
            "tools/call" | "prompts/get" => {
                let kind = if method == "tools/call" { ListKind::Tools } else { ListKind::Prompts };
                let mut params = params_of(msg);
                let name = params.get("name").and_then(Value::as_str).unwrap_or("").to_string();
                let merged = self.merged(s, kind).await?;
                let what = if kind == ListKind::Tools { "tool" } else { "prompt" };
                let (member, original) = merged.index.get(&name).cloned().ok_or_else(|| {
                    let text = format!("Unknown {what}: {name}");
                    // Same words either way; only the audit trail tells a hidden name apart.
                    if merged.hidden.contains(&name) {
                        RelayError::Hidden(text)
                    } else {
                        RelayError::InvalidParams(text)
                    }
                })?;
                params.insert("name".into(), Value::String(original.clone()));
                Ok(Routing::Forward { member, request: rewrite(msg, params), original: Some(original) })
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let mut params = params_of(msg);
                let uri = params.get("uri").and_then(Value::as_str).unwrap_or("").to_string();
                let (member, original) = self.route_uri(s, &uri).await?;
                params.insert("uri".into(), Value::String(original.clone()));
                Ok(Routing::Forward { member, request: rewrite(msg, params), original: Some(original) })
            }
            "completion/complete" => {
                let mut params = params_of(msg);
                let reference = params.get("ref").cloned().unwrap_or(Value::Null);
                let (member, new_ref) = match reference.get("type").and_then(Value::as_str) {
                    Some("ref/prompt") => {
                        let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
                        let merged = self.merged(s, ListKind::Prompts).await?;
                        let (member, original) = merged
                            .index
                            .get(name)
                            .cloned()
                            .ok_or_else(|| RelayError::InvalidParams(format!("Unknown prompt: {name}")))?;
                        let mut r = reference.clone();
                        r["name"] = Value::String(original);
                        (member, r)
                    }
                    Some("ref/resource") => {
                        let uri = reference.get("uri").and_then(Value::as_str).unwrap_or("");
                        let (member, original) = self.route_uri(s, uri).await?;
                        let mut r = reference.clone();
                        r["uri"] = Value::String(original);
                        (member, r)
                    }
                    _ => {
                        return Err(RelayError::InvalidParams(
                            "completion/complete needs a ref/prompt or ref/resource".into(),
                        ))
                    }
                };
                let original =
                    new_ref.get("name").or_else(|| new_ref.get("uri")).and_then(Value::as_str).map(str::to_string);
                params.insert("ref".into(), new_ref);
                Ok(Routing::Forward { member, request: rewrite(msg, params), original })
            }
            "tasks/get" | "tasks/update" | "tasks/cancel" => {
                let task = params_of(msg).get("taskId").and_then(Value::as_str).map(str::to_string);
                let found = task
                    .and_then(|t| self.tasks.lock().unwrap_or_else(|p| p.into_inner()).member.get(&t).copied())
                    .filter(|m| *m != usize::MAX);
                match found {
                    Some(member) => Ok(Routing::Forward { member, request: msg.clone(), original: None }),
                    None => Err(RelayError::InvalidParams("Unknown task".into())),
                }
            }
            "logging/setLevel" => {
                let params = Value::Object(params_of(msg));
                Ok(Routing::Local(Box::pin(async move {
                    let gw = me.gateway.as_ref().ok_or_else(|| RelayError::Internal("not a gateway".into()))?;
                    let targets: Vec<usize> =
                        gw.members().iter().enumerate().filter(|(_, m)| m.has("logging")).map(|(k, _)| k).collect();
                    let calls = targets.into_iter().map(|k| {
                        let (me, params) = (me.clone(), params.clone());
                        async move { me.internal(k, "logging/setLevel", &params).await }
                    });
                    futures_util::future::join_all(calls).await;
                    Ok(json!({}))
                })))
            }
            other => Err(RelayError::MethodNotFound(other.chars().take(64).collect())),
        }
    }

    /// The member owning an exposed resource URI, and the URI it knows.
    pub(super) async fn route_uri(&self, s: &Session, uri: &str) -> Result<(usize, String), RelayError> {
        let unknown = || RelayError::InvalidParams(format!("Unknown resource: {uri}"));
        let (member, original) = match self.locate_uri(uri) {
            Located::At(member, original) => (member, original),
            Located::InIndex => {
                let merged = self.merged(s, ListKind::Resources).await?;
                merged.index.get(uri).cloned().ok_or_else(unknown)?
            }
            Located::Nowhere => return Err(unknown()),
        };
        match self.selects_resource(member, &original) {
            true => Ok((member, original)),
            false => Err(unknown()),
        }
    }

    /// Where an exposed resource URI goes, as far as the members alone can tell: a member's URI
    /// prefix names it, or only one member serves resources unprefixed.
    pub(super) fn locate_uri(&self, uri: &str) -> Located {
        let members = self.members();
        let found = members.iter().enumerate().find_map(|(k, m)| {
            let p = format!("{}+", m.uri_prefix);
            (!m.removed && !m.uri_prefix.is_empty() && uri.starts_with(&p)).then(|| (k, uri[p.len()..].to_string()))
        });
        if let Some((member, original)) = found {
            return Located::At(member, original);
        }
        let mut unprefixed = members.iter().enumerate().filter(|(_, m)| m.uri_prefix.is_empty() && m.has("resources"));
        match (unprefixed.next(), unprefixed.next()) {
            (Some((only, _)), None) => Located::At(only, uri.to_string()),
            (None, _) => Located::Nowhere,
            (Some(_), Some(_)) => Located::InIndex,
        }
    }

    /// The member whose last fetched list of resources has `uri`, among those that serve
    /// resources unprefixed: where the merged list is being rebuilt, what still places a URI.
    pub(super) fn listed_unprefixed(&self, uri: &str) -> Option<(usize, String)> {
        let members = self.members();
        let catalog = self.catalog();
        members.iter().enumerate().find_map(|(k, m)| {
            let raw = catalog.raw.get(&(k, ListKind::Resources)).filter(|_| m.uri_prefix.is_empty() && !m.removed)?;
            raw.items.iter().any(|r| r.get("uri").and_then(Value::as_str) == Some(uri)).then(|| (k, uri.to_string()))
        })
    }

    /// Whether the virtual MCP's curation of `member` takes the resource it knows as `original`.
    pub(super) fn selects_resource(&self, member: usize, original: &str) -> bool {
        match self.members().get(member).map(|m| m.config.resources.clone()) {
            Some(Selection::All) => true,
            Some(Selection::Only(list)) => list.iter().any(|t| *t == original || template_matches(t, original)),
            None => false,
        }
    }

    pub(super) fn page(&self, merged: &Merged, kind: ListKind, cursor: Option<&str>) -> Result<Value, RelayError> {
        let start = match cursor {
            None => 0,
            Some(c) => c
                .strip_prefix('p')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n <= merged.items.len())
                .ok_or_else(|| RelayError::InvalidParams("invalid cursor".into()))?,
        };
        let end = (start + self.page_size).min(merged.items.len());
        let mut out = Map::new();
        out.insert(kind.key().into(), Value::Array(merged.items[start..end].to_vec()));
        if end < merged.items.len() {
            out.insert("nextCursor".into(), Value::String(format!("p{end}")));
        }
        Ok(Value::Object(out))
    }

    /// The merged list of `kind`, fetching what is not cached.
    pub(super) async fn merged(&self, s: &Session, kind: ListKind) -> Result<Arc<Merged>, RelayError> {
        if let Some(m) = self.catalog().merged.get(&kind) {
            return Ok(m.clone());
        }
        let wanted: Vec<(usize, String)> = {
            let members = self.members();
            let catalog = self.catalog();
            members
                .iter()
                .enumerate()
                .filter(|(k, m)| m.has(kind.capability()) && !catalog.raw.contains_key(&(*k, kind)))
                .map(|(k, m)| (k, m.slug.clone()))
                .collect()
        };
        let fetched = futures_util::future::join_all(
            wanted.into_iter().map(|(k, slug)| async move { (k, slug, Self::fetch_all(s, k, kind).await) }),
        )
        .await;
        for (k, slug, result) in fetched {
            match result {
                Ok((items, ttl_ms)) => {
                    let listed = Listed { items: Arc::new(items), fetched: std::time::Instant::now(), ttl_ms };
                    self.catalog().raw.insert((k, kind), listed);
                }
                Err(e) if self.mode == FailureMode::Strict => {
                    return Err(RelayError::UpstreamUnavailable(format!("member {slug}: {e}")));
                }
                Err(e) => {
                    tracing::warn!(gateway = %self.slug, member = %slug, error = %e, "member list unavailable; serving the others");
                    s.notify_client(&warning(&format!("member {slug} is unavailable: {e}")));
                }
            }
        }
        let merged = Arc::new(self.build(s, kind));
        self.catalog().merged.insert(kind, merged.clone());
        Ok(merged)
    }

    /// Every page of `member`'s list of `kind`, and the shortest `ttlMs` its pages gave (`None`
    /// when one gave none).
    pub(super) async fn fetch_all(
        s: &Session,
        member: usize,
        kind: ListKind,
    ) -> Result<(Vec<Value>, Option<u64>), RelayError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut ttl_ms = Some(u64::MAX);
        for _ in 0..100 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = s.internal(member, kind.method(), &params).await?;
            items.extend(page.get(kind.key()).and_then(Value::as_array).cloned().unwrap_or_default());
            ttl_ms = ttl_ms.zip(page.get("ttlMs").and_then(Value::as_u64)).map(|(a, b)| a.min(b));
            cursor = page.get("nextCursor").and_then(Value::as_str).map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        Ok((items, ttl_ms))
    }

    /// Drops the members' lists of `kind` that have gone stale — the member said for how long
    /// its list stays fresh, that time is up, and it does not announce changes of the list (one
    /// that does is refetched when it says so) — with the merged list, so that the next merge
    /// fetches them again. Asked when a client lists, not per call: what a call finds by name
    /// is the list as the client last saw it.
    pub(super) fn expire(&self, kind: ListKind) {
        let members = self.members();
        let mut catalog = self.catalog();
        let stale: Vec<(usize, ListKind)> = catalog
            .raw
            .iter()
            .filter(|((k, kk), listed)| {
                *kk == kind
                    && listed.ttl_ms.is_some()
                    && listed.fresh_for() == 0
                    && !members.get(*k).is_some_and(|m| m.announces_changes(kind))
            })
            .map(|(at, _)| *at)
            .collect();
        if stale.is_empty() {
            return;
        }
        for at in stale {
            catalog.raw.remove(&at);
        }
        catalog.merged.remove(&kind);
    }

    /// How long the merged list of `kind` stays fresh, in milliseconds: the least any member in
    /// it still has (each member's own `ttlMs` since it was fetched; 0 for one that gave none or
    /// whose list is missing from the merge).
    pub(super) fn fresh_for(&self, kind: ListKind) -> u64 {
        let members = self.members();
        let catalog = self.catalog();
        let serving = members.iter().enumerate().filter(|(_, m)| m.has(kind.capability()));
        serving.map(|(k, _)| catalog.raw.get(&(k, kind)).map_or(0, Listed::fresh_for)).min().unwrap_or(0)
    }

    pub(super) fn build(&self, s: &Session, kind: ListKind) -> Merged {
        let access = s.access();
        let policy_kind = super::governance::item_kind(kind);
        let members = self.members();
        let catalog = self.catalog();
        let mut candidates: Vec<(String, usize, String, Value)> = Vec::new();
        let mut hidden = std::collections::HashSet::new();
        for (k, m) in members.iter().enumerate() {
            let Some(raw) = catalog.raw.get(&(k, kind)) else { continue };
            for item in raw.items.iter() {
                let Some(original) = item.get(kind.id_field()).and_then(Value::as_str) else { continue };
                if !m.selection(kind).allows(original) {
                    continue;
                }
                let exposed = match kind {
                    ListKind::Tools | ListKind::Prompts => expose_name(&m.prefix, &m.config, original),
                    ListKind::Resources | ListKind::Templates => expose_uri(&m.prefix, original),
                };
                let entry = Item { connection: &m.slug, gateway: Some(&self.slug), kind: policy_kind, name: original };
                if !access.allows(&entry) {
                    hidden.insert(exposed);
                    continue;
                }
                if kind == ListKind::Tools && !valid_tool_name(&exposed) {
                    tracing::warn!(gateway = %self.slug, member = %m.slug, name = %exposed, "exposed tool name invalid; left out");
                    continue;
                }
                let mut def = item.clone();
                def[kind.id_field()] = Value::String(exposed.clone());
                if let Some(d) =
                    m.config.descriptions.get(original).filter(|_| matches!(kind, ListKind::Tools | ListKind::Prompts))
                {
                    def["description"] = Value::String(d.clone());
                }
                candidates.push((exposed, k, original.to_string(), def));
            }
        }
        // A name exposed twice is a collision: neither is served, and both are named, rather
        // than letting whichever member answered first win.
        let mut count: HashMap<&str, Vec<(usize, &str)>> = HashMap::new();
        for (name, k, original, _) in &candidates {
            count.entry(name.as_str()).or_default().push((*k, original.as_str()));
        }
        for (name, owners) in count.iter().filter(|(_, o)| o.len() > 1) {
            let who: Vec<String> = owners.iter().map(|(k, o)| format!("{}'s '{o}'", members[*k].slug)).collect();
            let text = format!(
                "name collision in gateway {}: '{name}' is {}; neither is served",
                self.slug,
                who.join(" and ")
            );
            tracing::warn!("{text}");
            s.notify_client(&warning(&text));
        }
        let mut items = Vec::new();
        let mut index = HashMap::new();
        for (name, k, original, def) in candidates.iter().cloned() {
            if count.get(name.as_str()).is_some_and(|o| o.len() > 1) {
                continue;
            }
            index.insert(name, (k, original));
            items.push(def);
        }
        let fingerprint = fingerprint(&items);
        Merged { items, index, hidden, fingerprint }
    }

    /// Handles a member's notification; returns what to pass on to the client, if anything.
    pub(super) fn on_notification(&self, s: &Session, member: usize, msg: Message) -> Option<Message> {
        let kinds: &[ListKind] = match msg.method()? {
            "notifications/tools/list_changed" => &[ListKind::Tools],
            "notifications/prompts/list_changed" => &[ListKind::Prompts],
            "notifications/resources/list_changed" => &[ListKind::Resources, ListKind::Templates],
            "notifications/resources/updated" => {
                let mut params = params_of(&msg);
                let uri = params.get("uri").and_then(Value::as_str).unwrap_or("").to_string();
                let prefix = self.members().get(member).map(|m| m.prefix.clone()).unwrap_or_default();
                params.insert("uri".into(), Value::String(expose_uri(&prefix, &uri)));
                return Some(Message::notification("notifications/resources/updated", Some(&Value::Object(params))));
            }
            _ => return Some(msg),
        };
        self.refresh(s, Some(member), kinds);
        // Stateless clients list on other requests than they listen on: they hear of a member's
        // change at once (a spurious list_changed only costs a refetch), not after the merge.
        s.is_pooled().then(|| Message::notification(msg.method().unwrap_or_default(), None))
    }

    /// Refetches `member`'s lists of `kinds` (all members' when `None`) and tells the client
    /// once per kind whose visible list changed.
    pub(super) fn refresh(&self, s: &Session, member: Option<usize>, kinds: &[ListKind]) {
        self.renew(s, Some(member), kinds);
    }

    /// Re-curates every merged list from the cached member lists (the policy changed) and tells
    /// the client of those whose visible content moved.
    pub(super) fn rebuild(&self, s: &Session) {
        self.renew(s, None, &ListKind::ALL);
    }

    /// `refetch`: `Some(member)` drops that member's cached lists (`Some(None)`: every member's)
    /// before merging again; `None` keeps them.
    fn renew(&self, s: &Session, refetch: Option<Option<usize>>, kinds: &[ListKind]) {
        let Some(me) = s.me.upgrade() else { return };
        let kinds = kinds.to_vec();
        tokio::spawn(async move {
            let Some(gw) = me.gateway.as_ref() else { return };
            let _serial = gw.refresh.lock().await;
            let mut announce: Vec<&'static str> = Vec::new();
            for kind in kinds {
                let old = {
                    let mut c = gw.catalog();
                    if let Some(member) = refetch {
                        c.raw.retain(|(k, kk), _| *kk != kind || member.is_some_and(|m| m != *k));
                    }
                    c.merged.remove(&kind)
                };
                // A list the client never fetched cannot have changed for it.
                let Some(old) = old else { continue };
                match gw.merged(&me, kind).await {
                    Ok(new) if new.fingerprint != old.fingerprint => {
                        if !announce.contains(&kind.changed_notification()) {
                            announce.push(kind.changed_notification());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(gateway = %gw.slug, error = %e, "refreshing a merged list failed"),
                }
            }
            for method in announce {
                me.notify_client(&Message::notification(method, None));
            }
        });
    }

    pub(super) fn member_down(&self, s: &Session, member: usize, reason: &str) {
        let slug = {
            let mut members = self.members.write().unwrap_or_else(|p| p.into_inner());
            let Some(m) = members.get_mut(member) else { return };
            m.healthy = false;
            m.slug.clone()
        };
        if self.mode == FailureMode::Strict {
            tracing::warn!(gateway = %self.slug, member = %slug, "strict gateway lost a member; ending the session");
            s.dead.store(true, Ordering::Release);
            return;
        }
        s.notify_client(&warning(&format!("member {slug} is unavailable: {reason}")));
    }

    pub(super) fn member_up(&self, s: &Session, member: usize) {
        if let Some(m) = self.members.write().unwrap_or_else(|p| p.into_inner()).get_mut(member) {
            m.healthy = m.caps.is_some() && !m.removed;
        }
        self.refresh(s, Some(member), &ListKind::ALL);
    }
}

/// A strategy's answer to `tools/list`: the tools `list` makes of the session's merged list
/// (curated and filtered by policy) instead of that list.
pub(super) fn tools_listed_as(me: &Arc<Session>, list: fn(&Merged) -> Vec<Value>) -> Routing {
    let me = me.clone();
    Routing::Local(Box::pin(async move {
        let gw = me.gateway.as_ref().ok_or_else(|| RelayError::Internal("not a gateway".into()))?;
        let merged = gw.merged(&me, ListKind::Tools).await?;
        Ok(json!({ "tools": list(&merged) }))
    }))
}

pub(super) fn warning(text: &str) -> Message {
    Message::notification(
        "notifications/message",
        Some(&json!({"level": "warning", "logger": "mcp-mesh", "data": text})),
    )
}

#[cfg(test)]
mod tests {
    use super::template_matches;

    #[test]
    pub(super) fn templates_match_their_instances() {
        assert!(template_matches("test://template/{id}/data", "test://template/42/data"));
        assert!(!template_matches("test://template/{id}/data", "test://other/42/data"));
        assert!(template_matches("demo://resource/dynamic/text/{resourceId}", "demo://resource/dynamic/text/7"));
        assert!(template_matches("file:///exact", "file:///exact"));
        assert!(!template_matches("file:///exact", "file:///exact/more"));
    }
}
