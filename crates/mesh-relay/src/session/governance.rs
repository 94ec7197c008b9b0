//! Policy and rate limits inside a session: which calls go through, which list entries the
//! client sees, and what happens to an open session when the rules change.
//!
//! The session holds its principal's [`Access`] (computed once, swapped when the control plane
//! announces a change), so a call costs one read lock and a few glob matches — and nothing at
//! all when the principal has no rules. Rate limits are asked of the governor per call.
//!
//! Where each check runs: a direct session checks calls before forwarding and filters list
//! replies on their way back; a gateway session filters while merging its lists (so a hidden
//! tool is absent from its name index) and checks calls after routing, when the member and the
//! original name are known — the check that also covers resources, routed by URI prefix.

/// What the rules, and a virtual MCP's curation and lists, say of using one item now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// It may be used.
    Allowed,
    /// The rules refuse it.
    Denied,
    /// Nothing by that name can be used here now: not listed or curated, its member gone, or the
    /// list that would say unavailable.
    Unknown,
}

impl Use {
    /// The audit outcome of a request refused so.
    pub fn outcome(self) -> mesh_core::audit::Outcome {
        match self {
            Use::Denied => mesh_core::audit::Outcome::Denied,
            Use::Allowed | Use::Unknown => mesh_core::audit::Outcome::ProtocolError,
        }
    }
}

use super::gateway::{ListKind, Located};
use super::record::Call;
use super::Session;
use crate::ports::Governor;
use crate::RelayError;
use mesh_core::policy::{Access, Item, ItemKind};
use mesh_protocol::Message;
use serde_json::Value;
use std::sync::{Arc, RwLock};

/// Longest tool or prompt name a governed request may carry (MCP names are 1-128 characters).
const MAX_NAME: usize = 1024;
/// Longest resource URI a governed request may carry.
const MAX_URI: usize = 8 * 1024;

/// The session's link to the governor and its current access.
pub(super) struct Governance {
    governor: Arc<dyn Governor>,
    access: RwLock<Arc<Access>>,
}

/// The policy kind of a governed method, and whether it counts against rate limits.
fn governed(method: &str) -> Option<(ItemKind, bool)> {
    match method {
        "tools/call" => Some((ItemKind::Tool, true)),
        "prompts/get" => Some((ItemKind::Prompt, true)),
        "resources/read" => Some((ItemKind::Resource, true)),
        "resources/subscribe" => Some((ItemKind::Resource, false)),
        _ => None,
    }
}

/// The list a virtual MCP finds an exposed tool or prompt name in (resources go by URI).
fn list_of(kind: ItemKind) -> Option<ListKind> {
    match kind {
        ItemKind::Tool => Some(ListKind::Tools),
        ItemKind::Prompt => Some(ListKind::Prompts),
        ItemKind::Resource => None,
    }
}

/// The answer for a hidden item: exactly what an unknown one gets.
fn unknown(kind: ItemKind, name: &str) -> RelayError {
    let what = match kind {
        ItemKind::Tool => "tool",
        ItemKind::Prompt => "prompt",
        ItemKind::Resource => "resource",
    };
    RelayError::Hidden(format!("Unknown {what}: {name}"))
}

/// The prompt or resource a `completion/complete` request refers to.
fn completion_ref(msg: &Message) -> Option<(ItemKind, String)> {
    let params: Value = msg.params()?;
    let r = params.get("ref")?;
    match r.get("type").and_then(Value::as_str)? {
        "ref/prompt" => Some((ItemKind::Prompt, r.get("name")?.as_str()?.to_string())),
        "ref/resource" => Some((ItemKind::Resource, r.get("uri")?.as_str()?.to_string())),
        _ => None,
    }
}

pub(super) fn item_kind(kind: ListKind) -> ItemKind {
    match kind {
        ListKind::Tools => ItemKind::Tool,
        ListKind::Prompts => ItemKind::Prompt,
        ListKind::Resources | ListKind::Templates => ItemKind::Resource,
    }
}

impl Session {
    /// Puts the session under `governor`: its access is computed now and kept current by
    /// [`Session::access_changed`]. Sessions never governed (management) allow everything.
    pub fn govern(&self, governor: Arc<dyn Governor>) {
        let access = RwLock::new(governor.access(&self.principal));
        let _ = self.governance.set(Governance { governor, access });
    }

    /// What this session's principal may see and use.
    pub fn access(&self) -> Arc<Access> {
        match self.governance.get() {
            Some(g) => g.access.read().unwrap_or_else(|p| p.into_inner()).clone(),
            None => crate::ports::unrestricted(),
        }
    }

    /// Whether the principal may still make a `tools/call`, `prompts/get` or `resources/read` of
    /// `exposed` (the name or URI the client sees) on this session: what a call that waited for
    /// its client's answers gets when the retry comes, and a task's later requests (which name
    /// only the task) for its tool, since the rules may have changed meanwhile.
    /// Rate limits are not asked again: the call was counted when it came. Other methods: allowed.
    pub async fn may_still(&self, method: &str, exposed: &str) -> Use {
        let Some((kind, _)) = governed(method) else { return Use::Allowed };
        if let (Some(gw), Some(list)) = (&self.gateway, list_of(kind)) {
            // The merged list says what an exposed name stands for; a change of the rules or of
            // the members may have dropped it, and it is built again rather than taken as empty.
            if gw.merged(self, list).await.is_err() {
                return Use::Unknown;
            }
        }
        self.use_of(kind, exposed)
    }

    /// Whether the current rules (and a virtual MCP's curation) let the principal use the item
    /// of `kind` the client knows as `exposed` ([`Session::use_of`]).
    pub(super) fn may_use(&self, kind: ItemKind, exposed: &str) -> bool {
        self.use_of(kind, exposed) == Use::Allowed
    }

    /// What the current rules (and a virtual MCP's curation) say of the principal's use of the
    /// item of `kind` the client knows as `exposed`. A virtual MCP finds the member and the
    /// original name in its merged list (for a resource, by its URI) and checks those, as
    /// `admit_call` does; a name it cannot place is unknown, unless the rules hid it.
    fn use_of(&self, kind: ItemKind, exposed: &str) -> Use {
        let access = self.access();
        let by_rules = |allowed: bool| if allowed { Use::Allowed } else { Use::Denied };
        if kind == ItemKind::Tool && !access.call_tools {
            return Use::Denied;
        }
        let Some(gw) = &self.gateway else {
            return by_rules(access.allows(&Item { connection: &self.label, gateway: None, kind, name: exposed }));
        };
        // The tools a virtual MCP's strategy answers itself are in no member's catalogue; what
        // they call is admitted call by call.
        let own = [mesh_core::search::code::RUN_CODE, mesh_core::search::meta::SEARCH, mesh_core::search::meta::CALL];
        if kind == ItemKind::Tool && own.contains(&exposed) {
            return Use::Allowed;
        }
        let indexed = |list| gw.catalog().merged.get(&list).and_then(|m| m.index.get(exposed).cloned());
        let found = match list_of(kind) {
            Some(list) => indexed(list),
            None => match gw.locate_uri(exposed) {
                Located::At(member, original) => Some((member, original)),
                Located::InIndex => indexed(ListKind::Resources).or_else(|| gw.listed_unprefixed(exposed)),
                Located::Nowhere => None,
            },
        };
        let Some((member, original)) = found else {
            let hidden =
                list_of(kind).is_some_and(|l| gw.catalog().merged.get(&l).is_some_and(|m| m.hidden.contains(exposed)));
            return if hidden { Use::Denied } else { Use::Unknown };
        };
        if list_of(kind).is_none() && !gw.selects_resource(member, &original) {
            return Use::Unknown;
        }
        let members = gw.members();
        let Some(m) = members.get(member).filter(|m| !m.removed) else { return Use::Unknown };
        if !list_of(kind).is_none_or(|list| m.selection(list).allows(&original)) {
            return Use::Unknown;
        }
        by_rules(access.allows(&Item { connection: &m.slug, gateway: Some(&gw.slug), kind, name: &original }))
    }

    /// Checks a routed request against policy and rate limits. `member` and `original` say
    /// where it goes and what it names there.
    pub(super) fn admit_call(
        &self,
        member: usize,
        msg: &Message,
        call: &Call,
        original: Option<&str>,
    ) -> Result<(), RelayError> {
        let Some(g) = self.governance.get() else { return Ok(()) };
        let completion;
        let (kind, counted, asked) = match governed(&call.method) {
            Some((kind, counted)) => match call.name.as_deref().or(original) {
                Some(name) => (kind, counted, name),
                // Fail closed: a request whose name the mesh cannot read (a duplicate key, a
                // number for a name) must not reach an upstream that might read one, past rules
                // that were checked against nothing.
                None => {
                    return Err(RelayError::InvalidParams(format!(
                        "{}: params need a readable {}",
                        call.method,
                        if kind == ItemKind::Resource { "uri" } else { "name" }
                    )))
                }
            },
            // A completion names a prompt or resource in its `ref`: completing a hidden one
            // would reveal it exists.
            None if &*call.method == "completion/complete" => match completion_ref(msg) {
                Some((kind, name)) => {
                    completion = name;
                    (kind, false, completion.as_str())
                }
                None => return Ok(()),
            },
            None => return Ok(()),
        };
        let name = original.unwrap_or(asked);
        // Names reach rate-limit buckets and audit rows: refuse absurd ones before either holds
        // them (MCP names are 1-128 characters; URIs get room for long paths).
        let max = if kind == ItemKind::Resource { MAX_URI } else { MAX_NAME };
        if name.len() > max || asked.len() > max {
            return Err(RelayError::InvalidParams(format!("{}: the name is longer than {max} bytes", call.method)));
        }
        let access = g.access.read().unwrap_or_else(|p| p.into_inner()).clone();
        if kind == ItemKind::Tool && !access.call_tools {
            return Err(RelayError::Forbidden(format!(
                "the {} role may list tools but not call them",
                self.principal.role_name()
            )));
        }
        let member_slug;
        let (connection, gateway): (&str, Option<&str>) = match &self.gateway {
            Some(gw) => {
                member_slug = gw.members().get(member).map(|m| m.slug.clone()).unwrap_or_default();
                (&member_slug, Some(&gw.slug))
            }
            None => (&self.label, None),
        };
        if !access.allows(&Item { connection, gateway, kind, name }) {
            return Err(unknown(kind, asked));
        }
        if counted {
            let tool = (kind == ItemKind::Tool).then_some(name);
            g.governor.admit(&self.principal, connection, tool).map_err(RelayError::from)?;
        }
        Ok(())
    }

    /// Takes one call of `tool`, a tool a virtual MCP answers itself at a cost (`run_code`), from
    /// the caller's rate limits; refused like a call of a member's tool (`RateLimited`, so 429
    /// and an audit row saying so). Its subject is `gateway/{slug}`, which no connection slug
    /// can be (docs/ACCESS.md, "Rate limits").
    pub(super) fn admit_local_tool(&self, tool: &str) -> Result<(), RelayError> {
        let Some(g) = self.governance.get() else { return Ok(()) };
        let subject = match &self.gateway {
            Some(gw) => format!("gateway/{}", gw.slug),
            None => self.label.clone(),
        };
        g.governor.admit(&self.principal, &subject, Some(tool)).map_err(RelayError::from)
    }

    /// A direct session's list reply with what policy hides taken out; anything else as is.
    pub(super) fn filter_list(&self, call: &Call, reply: Message) -> Message {
        if self.gateway.is_some() {
            return reply;
        }
        let Some(kind) = ListKind::of_method(&call.method) else { return reply };
        let access = self.access();
        if access.filters_nothing() {
            return reply;
        }
        let Some(mut result) = reply.result::<Value>() else { return reply };
        let Some(items) = result.get_mut(kind.key()).and_then(Value::as_array_mut) else { return reply };
        let before = items.len();
        items.retain(|item| {
            let name = item.get(kind.id_field()).and_then(Value::as_str).unwrap_or("");
            access.allows(&Item { connection: &self.label, gateway: None, kind: item_kind(kind), name })
        });
        if items.len() == before {
            return reply;
        }
        Message::response(reply.id().unwrap_or("null"), &result)
    }

    /// Recomputes this session's access after a policy change; if it changed, the client is
    /// told through `list_changed` (a gateway only for the lists whose visible content moved).
    pub fn access_changed(&self) {
        let Some(g) = self.governance.get() else { return };
        let new = g.governor.access(&self.principal);
        {
            let mut current = g.access.write().unwrap_or_else(|p| p.into_inner());
            if **current == *new {
                return;
            }
            *current = new;
        }
        match &self.gateway {
            Some(gw) => gw.rebuild(self),
            None => {
                for method in [
                    "notifications/tools/list_changed",
                    "notifications/prompts/list_changed",
                    "notifications/resources/list_changed",
                ] {
                    self.notify_client(&Message::notification(method, None));
                }
            }
        }
    }
}
