//! Virtual MCPs: one downstream session over many members.
//!
//! Opening: every member is connected and initialised concurrently with the client's own
//! `initialize` (so each sees the client's real capabilities); the client gets one
//! InitializeResult whose capabilities are the union of what can be routed. In `degrade` mode a
//! member that fails is left out and the client is told through a log notification; in `strict`
//! mode any failure fails the session.
//!
//! Lists (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`) are answered
//! by the gateway from its catalogue (`catalog.rs`: the members' lists merged, curated and paged).
//! A member's `list_changed` refetches that member only and reaches the client as one
//! `list_changed`, only when what the client can see changed.
//!
//! Calls, reads, subscriptions and completions are routed by exposed name or URI prefix to their
//! member with the original name restored. Everything else a member sends (progress, logging,
//! sampling, elicitation, roots) flows through the shared session machinery in `mod.rs`.

pub(super) use super::catalog::{Catalog, Merged};
use super::routing::Routing;
use super::Session;
use crate::ports::{ResolvedGateway, ResolvedMember};
use crate::RelayError;
use mesh_core::gateway::{expose_uri, uri_prefix, FailureMode, MemberConfig, Selection, Strategy};
use mesh_protocol::Message;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::hash::Hash;
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

/// The tasks a virtual MCP's members created, under ids of the virtual MCP's own: two members may
/// choose the same id (each may count from 1), and a task's requests must reach the member that
/// created it. The ids are the session's (a pooled session is one key's; the ingress keeps the
/// key's own bound too, and shows the client handles of its own), oldest forgotten first.
#[derive(Default)]
pub(super) struct TaskRoutes {
    /// The virtual MCP's id → the member, and the member's own id.
    at: HashMap<String, (usize, String)>,
    /// (member, the member's id) → the virtual MCP's id.
    named: HashMap<(usize, String), String>,
    /// The virtual MCP's ids, oldest first.
    order: std::collections::VecDeque<String>,
    /// The last id handed out.
    last: u64,
}

/// Tasks one virtual MCP session routes at once; the oldest is forgotten first.
const MAX_TASK_ROUTES: usize = 1_000;
/// The tasks extension's identifier.
const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

impl TaskRoutes {
    /// A new id of the virtual MCP's for the task `member` just created as `task`. Should the
    /// member use an id again (one that restarted and counts from 1 anew), the older task's id
    /// goes: what the client holds for it never reaches the newer task.
    fn name(&mut self, member: usize, task: &str) -> String {
        self.last += 1;
        let ours = format!("vt{}", self.last);
        let key = (member, task.to_string());
        if let Some(older) = self.named.insert(key.clone(), ours.clone()) {
            self.at.remove(&older);
        }
        self.at.insert(ours.clone(), key);
        self.order.push_back(ours.clone());
        while self.order.len() > MAX_TASK_ROUTES {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(key) = self.at.remove(&oldest) {
                self.named.remove(&key);
            }
        }
        ours
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

    /// `reply`, `member`'s answer to a stateless client's `call`, naming tasks as this virtual
    /// MCP does: a task a `tools/call` created is given an id of the virtual MCP's, by which
    /// later requests for it reach that member; a reply about a task (`call.task`: the id its
    /// member knows it by, and the virtual MCP's) names it by the virtual MCP's id again.
    pub(super) fn tasks_named(&self, member: usize, call: &super::record::Call, reply: Message) -> Message {
        use mesh_protocol::modern;
        let routes = || self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        match (&*call.method, call.task.as_deref().map(|(theirs, ours)| (theirs.as_str(), ours.as_str()))) {
            ("tools/call", _) => {
                if !self.members().get(member).is_some_and(Member::has_tasks) {
                    return reply;
                }
                let Some((task, _)) = modern::created_task(reply.bytes()) else { return reply };
                let ours = routes().name(member, &task);
                modern::with_task_id(&reply, "result", &ours).unwrap_or(reply)
            }
            (_, Some((theirs, ours))) => match reply.kind() {
                // A member's error may name its own id ("Unknown task: 1", `data.taskId`).
                mesh_protocol::Kind::Error => modern::task_error_renamed(&reply, theirs, ours),
                _ => modern::with_task_id(&reply, "result", ours).unwrap_or(reply),
            },
            _ => reply,
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
                let mut page = gw.page(&me, kind, cursor.as_deref()).await?;
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
                // The member knows the task by its own id: `original`, by which `Session`
                // tells `tasks_named` what to name again in the reply.
                let ours = params_of(msg).get("taskId").and_then(Value::as_str).map(str::to_string);
                let found = ours.and_then(|t| self.tasks.lock().unwrap_or_else(|p| p.into_inner()).at.get(&t).cloned());
                let unknown = || RelayError::InvalidParams("Unknown task".into());
                let (member, theirs) = found.ok_or_else(unknown)?;
                let request = mesh_protocol::modern::with_task_id(msg, "params", &theirs).ok_or_else(unknown)?;
                Ok(Routing::Forward { member, request, original: Some(theirs) })
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
        let merged = match me.is_pooled() {
            true => gw.fresh_merged(&me, ListKind::Tools).await?,
            false => gw.merged(&me, ListKind::Tools).await?,
        };
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
    use super::{template_matches, TaskRoutes, MAX_TASK_ROUTES};

    #[test]
    pub(super) fn templates_match_their_instances() {
        assert!(template_matches("test://template/{id}/data", "test://template/42/data"));
        assert!(!template_matches("test://template/{id}/data", "test://other/42/data"));
        assert!(template_matches("demo://resource/dynamic/text/{resourceId}", "demo://resource/dynamic/text/7"));
        assert!(template_matches("file:///exact", "file:///exact"));
        assert!(!template_matches("file:///exact", "file:///exact/more"));
    }

    #[test]
    fn members_tasks_get_ids_of_the_virtual_mcps_own() {
        let mut r = TaskRoutes::default();
        let (a, b) = (r.name(0, "1"), r.name(1, "1"));
        assert_ne!(a, b, "two members' task 1 are two tasks");
        assert_eq!((r.at[&a].clone(), r.at[&b].clone()), ((0, "1".into()), (1, "1".into())));
        // A member that counts from 1 anew: the older task's id no longer reaches anything.
        let again = r.name(0, "1");
        assert!(!r.at.contains_key(&a) && r.at[&again] == (0, "1".into()));
        assert_eq!(r.named[&(0, "1".to_string())], again);
        // Bounded, the oldest going first: the id given up above goes without taking the newer
        // route of its task along.
        for i in 0..MAX_TASK_ROUTES - 2 {
            r.name(2, &i.to_string());
        }
        assert_eq!(r.named[&(0, "1".to_string())], again);
        assert!(r.at.contains_key(&b) && r.at.contains_key(&again));
        r.name(2, "x");
        r.name(2, "y");
        assert!(!r.at.contains_key(&b) && !r.at.contains_key(&again));
        assert_eq!((r.at.len(), r.named.len()), (MAX_TASK_ROUTES, MAX_TASK_ROUTES));
    }
}
