//! The lifecycle of a virtual MCP session: opening it over every member, reconfiguring it in
//! place when its definition changes, and reporting its members' health.

use super::gateway::{warning, Gateway, ListKind, Merged};
use super::Session;
use crate::ports::{AuditSink, ResolvedGateway};
use crate::{upstream, RelayError};
use mesh_core::gateway::FailureMode;
use mesh_protocol::{version, Message};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl Session {
    /// Opens a virtual MCP session: connects and initialises every member with the client's
    /// `initialize`, and returns the session with the merged InitializeResult. `prepare` sets the
    /// session up (its governance, its hooks) before any member is contacted.
    // The ingress's own values, each passed on once: a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_gateway(
        principal: mesh_core::Principal,
        def: &ResolvedGateway,
        audit: Arc<dyn AuditSink>,
        prepare: impl FnOnce(&Session),
        http: &crate::upstream::UpstreamClients,
        init: &Message,
        stateless_clients: bool,
        code_limits: mesh_sandbox::Limits,
    ) -> Result<(Arc<Session>, Message), RelayError> {
        let timeout = def.members.iter().map(|m| m.spec.timeout).max().unwrap_or(Duration::from_secs(60));
        let s = Session::build(
            principal,
            &def.id,
            &def.slug,
            timeout,
            super::RouteKind::Gateway,
            audit,
            Some(Gateway::new(def, stateless_clients, code_limits)),
        );
        prepare(&s);
        s.note_client(init);
        let params: Value = init.params().unwrap_or_else(|| json!({}));
        if let Some(gw) = &s.gateway {
            *gw.init_params.lock().unwrap_or_else(|p| p.into_inner()) = params.clone();
        }
        let opened = futures_util::future::join_all(def.members.iter().enumerate().map(|(k, m)| {
            let (s, params) = (s.clone(), params.clone());
            async move { s.connect_member(k, &m.spec, http, &params, stateless_clients).await }
        }))
        .await;
        let gw = s.gateway.as_ref().ok_or_else(|| RelayError::Internal("not a gateway".into()))?;
        let mut failures = Vec::new();
        {
            let mut members = gw.members.write().unwrap_or_else(|p| p.into_inner());
            for (k, result) in opened.into_iter().enumerate() {
                match result {
                    Ok(init) => {
                        members[k].caps = init.get("capabilities").cloned();
                        members[k].instructions = init.get("instructions").and_then(Value::as_str).map(str::to_string);
                        members[k].healthy = true;
                    }
                    Err(e) => failures.push((members[k].slug.clone(), e)),
                }
            }
        }
        let healthy = gw.members().iter().filter(|m| m.healthy).count();
        // A gateway with no members at all (a new organisation's default gateway before its
        // first connection) opens and serves empty lists; one whose members all failed does not.
        if (!failures.is_empty() && gw.mode == FailureMode::Strict) || (healthy == 0 && !failures.is_empty()) {
            s.close().await;
            let (slug, e) =
                failures.first().cloned().unwrap_or_else(|| ("?".into(), RelayError::Internal("no members".into())));
            return Err(RelayError::UpstreamUnavailable(format!("gateway {}: member {slug}: {e}", def.slug)));
        }
        for (slug, e) in &failures {
            tracing::warn!(gateway = %def.slug, member = %slug, error = %e, "member unavailable; serving the others");
            s.notify_client(&warning(&format!("member {slug} is unavailable: {e}")));
        }
        let asked = params.get("protocolVersion").and_then(Value::as_str).unwrap_or("");
        let negotiated = if version::is_supported(asked) { asked } else { version::LATEST };
        s.set_version(negotiated);
        let result = gw.initialize_result(negotiated);
        Ok((s.clone(), Message::response(init.id().unwrap_or("null"), &result)))
    }
}

impl Session {
    /// Connects member `k` and initialises it with the client's `params`. Members are reached
    /// in the client's revision where they speak it: a stateless client's through a link of
    /// that revision ([`upstream::connect_stateless`]); a session-based client's in its own, and
    /// through the bridge when the member's handshake fails because it speaks only the
    /// stateless revision.
    async fn connect_member(
        &self,
        k: usize,
        spec: &crate::UpstreamSpec,
        http: &crate::upstream::UpstreamClients,
        params: &Value,
        stateless_clients: bool,
    ) -> Result<Value, RelayError> {
        let link = match stateless_clients {
            true => upstream::connect_stateless(spec, http, self.member_sink(k)).await?,
            false => upstream::connect(spec, http, self.member_sink(k)).await?,
        };
        self.set_member_link(k, link.clone());
        let init = self.initialize_member(k, params, stateless_clients).await;
        match init {
            Err(e) if !stateless_clients => {
                let Some(Ok(bridge)) = upstream::bridge_link(spec, http, self.member_sink(k)).await else {
                    return Err(e);
                };
                link.close().await;
                tracing::info!(session = %self.id, member = %spec.name, "the member speaks only the stateless revision; bridging");
                self.set_member_link(k, bridge);
                self.initialize_member(k, params, false).await
            }
            init => init,
        }
    }

    /// Initialises member `k`. Its extensions are kept only from a link that serves stateless
    /// clients in their revision (marked so by `upstream::modern`): a session-based member that
    /// advertises tasks speaks the other revision's wire, which the mesh does not relay.
    async fn initialize_member(&self, k: usize, params: &Value, stateless_clients: bool) -> Result<Value, RelayError> {
        let mut init = self.internal(k, "initialize", params).await?;
        let marked = init.pointer("/_meta").and_then(|m| m.get(upstream::modern::SERVES_STATELESS)).is_some()
            && self.speaks_stateless(k);
        if !(stateless_clients && marked) {
            if let Some(c) = init.get_mut("capabilities").and_then(Value::as_object_mut) {
                c.remove("extensions");
            }
        }
        Ok(init)
    }
}

impl Gateway {
    fn initialize_result(&self, protocol_version: &str) -> Value {
        let members = self.members();
        let any = |cap: &str| members.iter().any(|m| m.has(cap));
        let mut caps = Map::new();
        if any("tools") {
            caps.insert("tools".into(), json!({"listChanged": true}));
        }
        if any("prompts") {
            caps.insert("prompts".into(), json!({"listChanged": true}));
        }
        if any("resources") {
            let subscribe = members.iter().any(|m| {
                m.healthy
                    && m.caps.as_ref().and_then(|c| c.pointer("/resources/subscribe")).and_then(Value::as_bool)
                        == Some(true)
            });
            caps.insert("resources".into(), json!({"listChanged": true, "subscribe": subscribe}));
        }
        if any("logging") {
            caps.insert("logging".into(), json!({}));
        }
        if any("completions") {
            caps.insert("completions".into(), json!({}));
        }
        // Only members reached in the stateless revision for stateless clients keep the
        // extension (`initialize_member`), so the merged result carries their mark too.
        let tasks = members.iter().any(super::gateway::Member::has_tasks);
        if tasks {
            caps.insert("extensions".into(), json!({"io.modelcontextprotocol/tasks": {}}));
        }
        let names: Vec<&str> = members.iter().filter(|m| m.healthy).map(|m| m.slug.as_str()).collect();
        let mut instructions = format!("MCP Mesh virtual server '{}' over: {}.", self.slug, names.join(", "));
        for m in members.iter().filter(|m| m.healthy) {
            if let Some(i) = &m.instructions {
                instructions.push_str(&format!("\n\n## {} (prefix '{}')\n{i}", m.slug, m.prefix));
            }
        }
        let mut result = json!({
            "protocolVersion": protocol_version,
            "capabilities": caps,
            "serverInfo": {"name": format!("mcp-mesh/gateway/{}", self.slug), "version": env!("CARGO_PKG_VERSION")},
            "instructions": instructions,
        });
        if tasks {
            result["_meta"] = json!({ upstream::modern::SERVES_STATELESS: true });
        }
        result
    }

    /// The slugs of the members (not removed), and whether each is healthy.
    pub fn member_health(&self) -> Vec<(String, bool)> {
        self.members().iter().filter(|m| !m.removed).map(|m| (m.slug.clone(), m.healthy)).collect()
    }
}

impl Session {
    /// Applies a changed gateway definition to this open session: members kept keep their
    /// upstream session (with new curation), new members are connected and initialised with the
    /// client's original initialize, removed members are closed. Every list the client had
    /// fetched is rebuilt, and each that visibly changed is announced once.
    pub async fn reconfigure(self: &Arc<Session>, def: &ResolvedGateway, http: &crate::upstream::UpstreamClients) {
        let Some(gw) = &self.gateway else { return };
        let _serial = gw.refresh.lock().await;
        let mut added = Vec::new();
        let removed: Vec<usize> = {
            let mut members = gw.members.write().unwrap_or_else(|p| p.into_inner());
            for m in &def.members {
                match members.iter_mut().find(|x| x.connection_id == m.connection_id && !x.removed) {
                    Some(existing) => {
                        let fresh = Gateway::member(m);
                        existing.prefix = fresh.prefix;
                        existing.uri_prefix = fresh.uri_prefix;
                        existing.config = fresh.config;
                    }
                    None => {
                        members.push(Gateway::member(m));
                        added.push((members.len() - 1, m.spec.clone()));
                    }
                }
            }
            let keep: Vec<&str> = def.members.iter().map(|m| m.connection_id.as_str()).collect();
            members
                .iter_mut()
                .enumerate()
                .filter(|(_, m)| !keep.contains(&m.connection_id.as_str()) && !m.removed)
                .map(|(k, m)| {
                    // Kept as a tombstone: indices stay stable for links and requests in flight.
                    m.removed = true;
                    m.healthy = false;
                    k
                })
                .collect()
        };
        for k in removed {
            if let Ok(link) = self.link(k) {
                link.close().await;
            }
        }
        let params = gw.init_params.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (k, spec) in added {
            let opened = async {
                let init = self.connect_member(k, &spec, http, &params, gw.stateless_clients).await?;
                if gw.initialized.load(Ordering::Acquire) {
                    self.link(k)?.send(Message::notification("notifications/initialized", None)).await?;
                }
                Ok::<_, RelayError>(init)
            }
            .await;
            let mut members = gw.members.write().unwrap_or_else(|p| p.into_inner());
            match opened {
                Ok(init) => {
                    members[k].caps = init.get("capabilities").cloned();
                    members[k].healthy = true;
                }
                Err(e) => {
                    tracing::warn!(gateway = %gw.slug, member = %members[k].slug, error = %e, "new member unavailable")
                }
            }
        }
        let old: Vec<(ListKind, Arc<Merged>)> = {
            // Members before the catalogue, the order every other holder takes them in.
            let live: Vec<usize> = gw.members().iter().enumerate().filter(|(_, m)| m.healthy).map(|(k, _)| k).collect();
            let mut c = gw.catalog();
            let old = ListKind::ALL.iter().filter_map(|&kind| Some((kind, c.new_generation(kind)?))).collect();
            c.raw.retain(|(k, _), _| live.contains(k));
            old
        };
        let mut announce: Vec<&'static str> = Vec::new();
        for (kind, before) in old {
            gw.merge_again(self, kind, &before, &mut announce).await;
        }
        super::catalog::announce_changes(self, announce);
    }
}
