//! The agent registry (#22): agents built on the mcp-mesh SDK join the mesh by heartbeat.
//!
//! The wire is the SDK's (full heartbeat `POST /heartbeat` answering with resolved
//! dependencies, fast heartbeat `HEAD /heartbeat/{id}` answering 200/202/410, goodbye
//! `DELETE /agents/{id}`, the topology at `GET /agents`); the routes live in `mesh-server`.
//! What the mesh adds is governance: an agent registers with a credential of an organisation,
//! which decides where it joins, and each agent becomes a connection of that organisation, so
//! its tools are called, narrowed, rate-limited, audited and put in virtual MCPs like any
//! other server's. Registering creates a connection, so it needs the rights to manage
//! connections, and reaching an agent on an internal address needs the trust tier that may
//! configure such upstreams (`MESH_UPSTREAM_PRIVATE`).

mod resolution;
pub mod selectors;
mod view;
mod wire;

pub use selectors::Selectors;
pub use wire::{AgentTool, Heartbeat};

use std::time::Duration;

use mesh_core::{id, slug, Principal, Role};
use mesh_store::AgentRow;
use serde_json::{json, Value};

use mesh_audit::view::format_time;
use resolution::resolve_all;
use wire::{endpoint, tools_of, validate};

use crate::connections::ConnectionInput;
use crate::trust::Trust;
use crate::{Admin, AdminError};

/// How long agents have to beat, and how long departed ones are remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrySettings {
    /// An agent not heard from for this long is unhealthy (`MESH_REGISTRY_UNHEALTHY_SECS`).
    pub unhealthy_after: Duration,
    /// An unhealthy agent is forgotten, with its connection, after this long
    /// (`MESH_REGISTRY_RETENTION_SECS`).
    pub retention: Duration,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        // Two beats of the SDK's default 5 s interval: a provider that stopped is out of
        // resolution within two missed heartbeats.
        RegistrySettings { unhealthy_after: Duration::from_secs(10), retention: Duration::from_secs(3600) }
    }
}

/// Most agents one organisation may have registered (healthy or not yet forgotten): every full
/// heartbeat resolves against all of them.
const MAX_AGENTS: usize = 1_000;
/// A change this close before an agent's last full heartbeat still earns it a 202: the change
/// may have been stamped before that heartbeat but written after it read the topology (or on a
/// replica whose clock is a little behind). The cost is at most one extra full heartbeat per
/// agent per change.
const TOPOLOGY_MARGIN_MS: i64 = 2_000;

/// A fast heartbeat's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeatAnswer {
    /// Known and healthy, nothing changed (HTTP 200).
    Fine,
    /// Known and healthy, but the topology changed since its last full heartbeat: send one (202).
    Changed,
    /// Unknown or unhealthy: register again (410).
    Gone,
}

/// The current time as the SDK's registry writes it.
pub fn timestamp() -> String {
    format_time(id::now_ms())
}

/// The registry of one installation: the admin services plus its timing.
#[derive(Clone)]
pub struct Registry {
    /// The control plane (store, connections).
    pub admin: Admin,
    /// Timing.
    pub settings: RegistrySettings,
}

/// Whether `p` may change the registry (register, beat, leave): registering creates
/// connections, so an owner's or admin's key with management rights.
pub fn writer(p: &Principal) -> Result<(), AdminError> {
    Trust::check_management(p)?;
    if p.role.can_manage() {
        Ok(())
    } else {
        Err(AdminError::Forbidden("changing the registry needs a key of an owner or admin"))
    }
}

impl Registry {
    fn fresh_after(&self, now: i64) -> i64 {
        now - i64::try_from(self.settings.unhealthy_after.as_millis()).unwrap_or(i64::MAX)
    }

    /// The organisation's agents that are healthy now, with their tools.
    async fn healthy(&self, org_id: &str, now: i64) -> Result<Vec<(AgentRow, Vec<AgentTool>)>, AdminError> {
        let fresh = self.fresh_after(now);
        Ok(self
            .admin
            .store
            .list_agents(org_id)
            .await?
            .into_iter()
            .filter(|a| a.status == "healthy" && a.last_seen >= fresh)
            .map(|a| {
                let tools = tools_of(&a);
                (a, tools)
            })
            .collect())
    }

    /// A full heartbeat: registers or refreshes the agent (and its connection) and answers with
    /// a provider for each declared dependency, in the SDK's response shape.
    pub async fn heartbeat(&self, p: &Principal, hb: Heartbeat) -> Result<Value, AdminError> {
        writer(p)?;
        validate(&hb)?;
        let now = id::now_ms();
        let endpoint = endpoint(&hb);
        let before = self.admin.store.get_agent(&p.org_id, &hb.agent_id).await?;
        if before.is_none() && self.admin.store.list_agents(&p.org_id).await?.len() >= MAX_AGENTS {
            return Err(AdminError::Invalid(format!(
                "this organisation has {MAX_AGENTS} registered agents, the most it may have; departed ones are \
                 forgotten after MESH_REGISTRY_RETENTION_SECS"
            )));
        }
        let connection_id = self.connection_for(p, &hb, &endpoint, before.as_ref()).await?;
        let tools = serde_json::to_string(&hb.tools).map_err(|e| AdminError::Invalid(e.to_string()))?;
        // Others hear of a join, a return (also from silence the sweep has not yet marked), a
        // move or a new declaration; not of a mere refresh.
        let fresh = self.fresh_after(now);
        let changed = match &before {
            Some(b) => b.status != "healthy" || b.last_seen < fresh || b.endpoint != endpoint || b.tools != tools,
            None => true,
        };
        // Stamped as late as possible: others compare it with the time they read the topology.
        let stamp = id::now_ms();
        let row = AgentRow {
            org_id: p.org_id.clone(),
            id: hb.agent_id.clone(),
            name: hb.name.clone().unwrap_or_else(|| hb.agent_id.clone()),
            agent_type: hb.agent_type.clone().unwrap_or_else(|| "mcp_agent".into()),
            version: hb.version.clone().unwrap_or_default(),
            namespace: hb.namespace.clone().unwrap_or_else(|| "default".into()),
            runtime: hb.runtime.clone().unwrap_or_default(),
            description: hb.description.clone().unwrap_or_default(),
            endpoint,
            tools,
            status: "healthy".into(),
            connection_id: Some(connection_id),
            created_at: before.as_ref().map_or(now, |b| b.created_at),
            last_seen: now,
            last_full: now,
            changed_at: if changed { stamp } else { before.as_ref().map_or(stamp, |b| b.changed_at) },
        };
        self.admin.store.put_agent(&row).await?;
        if changed {
            tracing::info!(org = %p.org_id, agent = %row.id, endpoint = %row.endpoint, "agent registered");
        }
        let healthy = self.healthy(&p.org_id, now).await?;
        let mut resolved = serde_json::Map::new();
        for (function, slots) in resolve_all(&hb.tools, &healthy) {
            let entries: Vec<Value> = slots
                .iter()
                .map(|s| match s.found {
                    Some((c, endpoint, kwargs)) => {
                        let mut e = json!({
                            "agent_id": c.agent_id, "capability": c.capability, "endpoint": endpoint,
                            "function_name": c.function_name, "status": "available",
                        });
                        if let Some(k) = kwargs {
                            e["kwargs"] = k.clone();
                        }
                        e
                    }
                    // The SDK reads all five fields, and matches answers to declarations by position.
                    None => json!({
                        "agent_id": "", "capability": s.dep.capability, "endpoint": "",
                        "function_name": "", "status": "unresolved",
                    }),
                })
                .collect();
            resolved.insert(function.to_string(), Value::Array(entries));
        }
        Ok(json!({
            "agent_id": hb.agent_id,
            "status": "success",
            "message": if before.is_some() { "Agent updated via heartbeat" } else { "Agent registered via heartbeat" },
            "timestamp": format_time(now),
            "dependencies_resolved": resolved,
            "llm_tools": {},
        }))
    }

    /// The connection standing for the agent: made on its first heartbeat, its URL kept in
    /// step with what the agent advertises.
    async fn connection_for(
        &self,
        p: &Principal,
        hb: &Heartbeat,
        endpoint: &str,
        before: Option<&AgentRow>,
    ) -> Result<String, AdminError> {
        let url = format!("{endpoint}{}", hb.mcp_path()?);
        let now = id::now_ms();
        let live = before.filter(|b| b.status == "healthy" && b.last_seen >= self.fresh_after(now));
        if let Some(b) = live.filter(|b| b.endpoint != endpoint) {
            // Two registrants under one id (a collision, or a copy of an agent's id) would move
            // one connection, and the headers it holds, back and forth between them.
            return Err(AdminError::Conflict(format!(
                "agent id '{}' is in use by a live agent at {}; give this one another id",
                hb.agent_id, b.endpoint
            )));
        }
        // Headers replace the stored ones when the agent joins or comes back; a live agent's full
        // heartbeat (after a 202) leaves them, as replacing them ends the open upstream sessions.
        let headers = if live.is_none() { Some(hb.headers.clone().unwrap_or_default()) } else { None };
        let marker = format!("Agent '{}', registered by heartbeat", hb.agent_id);
        if let Some(id) = before.and_then(|b| b.connection_id.as_deref()) {
            match self.admin.get_connection(p, id).await {
                // A connection an admin disabled stays disabled: the agent only moves it.
                Ok(c) if c.url.as_deref() == Some(url.as_str()) && headers.is_none() => return Ok(c.id),
                Ok(c) => return self.refresh(p, &c.id, url, headers).await,
                Err(AdminError::NotFound(_)) => {} // deleted by hand: make it again
                Err(e) => return Err(e),
            }
        }
        let slug = slug::slugify(&hb.agent_id)
            .ok_or_else(|| AdminError::Invalid(format!("agent_id '{}' cannot name a connection", hb.agent_id)))?;
        let input = ConnectionInput {
            slug: Some(slug.clone()),
            title: hb.name.clone(),
            description: Some(marker.clone()),
            transport: Some("http".into()),
            url: Some(url.clone()),
            headers: hb.headers.clone(),
            ..ConnectionInput::default()
        };
        match self.admin.create_connection(p, input).await {
            Ok(c) => Ok(c.id),
            Err(AdminError::Conflict(taken)) => match self.admin.get_connection(p, &slug).await {
                // Made for this very agent by a registration that did not finish, and no other
                // agent's: take it over (with this heartbeat's address and headers) rather than
                // lock the agent out. A connection made by hand is never taken.
                Ok(c) if c.description.as_deref() == Some(marker.as_str()) && !self.claimed(p, &c.id).await? => {
                    self.refresh(p, &c.id, url, Some(hb.headers.clone().unwrap_or_default())).await
                }
                _ => Err(AdminError::Conflict(format!(
                    "{taken}: a connection named '{slug}' already exists in this organisation; start the agent \
                     with another id (MCP_MESH_AGENT_ID)"
                ))),
            },
            Err(e) => Err(e),
        }
    }

    /// Points the agent's connection at `url` and, when given, replaces its headers.
    async fn refresh(
        &self,
        p: &Principal,
        id: &str,
        url: String,
        headers: Option<std::collections::BTreeMap<String, String>>,
    ) -> Result<String, AdminError> {
        let input = ConnectionInput { url: Some(url), headers, ..ConnectionInput::default() };
        Ok(self.admin.update_connection(p, id, input).await?.id)
    }

    /// Whether some agent's row names connection `id`.
    async fn claimed(&self, p: &Principal, id: &str) -> Result<bool, AdminError> {
        Ok(self.admin.store.list_agents(&p.org_id).await?.iter().any(|a| a.connection_id.as_deref() == Some(id)))
    }

    /// A fast heartbeat.
    pub async fn beat(&self, p: &Principal, agent_id: &str) -> Result<BeatAnswer, AdminError> {
        let now = id::now_ms();
        Ok(match self.admin.store.beat_agent(&p.org_id, agent_id, now, self.fresh_after(now)).await? {
            None => BeatAnswer::Gone,
            Some(b) if b.topology_at >= b.last_full - TOPOLOGY_MARGIN_MS => BeatAnswer::Changed,
            Some(_) => BeatAnswer::Fine,
        })
    }

    /// An agent's goodbye: it is unhealthy from now on (and forgotten after the retention).
    /// Unknown agents are fine: a goodbye may be said twice.
    pub async fn leave(&self, p: &Principal, agent_id: &str) -> Result<(), AdminError> {
        if self.admin.store.leave_agent(&p.org_id, agent_id, id::now_ms()).await? {
            tracing::info!(org = %p.org_id, agent = %agent_id, "agent deregistered");
        }
        Ok(())
    }

    /// The agent listening at `host_port` (`host:port` as `GET /agents` shows its endpoint),
    /// and the slug of its connection: what a registry proxy call goes through.
    pub async fn agent_at(&self, p: &Principal, host_port: &str) -> Result<(AgentRow, String), AdminError> {
        let wanted = [format!("http://{host_port}"), format!("https://{host_port}")];
        let agent = self
            .admin
            .store
            .list_agents(&p.org_id)
            .await?
            .into_iter()
            // An agent restarted under a new id leaves its old row at the same address for a
            // while: the live one, else the one seen last.
            .filter(|a| wanted.contains(&a.endpoint))
            .max_by_key(|a| (a.status == "healthy", a.last_seen))
            .ok_or_else(|| AdminError::NotFound(format!("registered agent at '{host_port}'")))?;
        let id = agent.connection_id.clone().ok_or_else(|| AdminError::NotFound("the agent's connection".into()))?;
        let slug = self.admin.get_connection(p, &id).await?.slug;
        Ok((agent, slug))
    }

    /// One pass of the sweep: agents not heard from are marked unhealthy (others hear of it on
    /// their next heartbeat), and those unhealthy past the retention are forgotten with their
    /// connections.
    pub async fn sweep(&self) -> Result<(), AdminError> {
        let aged = self.age().await;
        // Capability connections follow health even when ageing failed this time.
        let refreshed = self.admin.selectors.refresh(&self.admin).await;
        aged.and(refreshed)
    }

    /// Marks silent agents unhealthy and forgets those past the retention.
    async fn age(&self) -> Result<(), AdminError> {
        let now = id::now_ms();
        for a in self.admin.store.age_agents(self.fresh_after(now), now).await? {
            tracing::info!(org = %a.org_id, agent = %a.id, "agent missed its heartbeats: unhealthy");
        }
        let retention = i64::try_from(self.settings.retention.as_millis()).unwrap_or(i64::MAX);
        for a in self.admin.store.purge_agents(now.saturating_sub(retention)).await? {
            tracing::info!(org = %a.org_id, agent = %a.id, "agent forgotten");
            if let Some(id) = &a.connection_id {
                // The connection was the registry's: it goes with the agent. An owner's rights
                // within that organisation, nothing more.
                let system = Principal { role: Role::Owner, manage: true, ..Principal::anonymous(&a.org_id) };
                match self.admin.delete_connection(&system, id).await {
                    Ok(_) | Err(AdminError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::warn!(org = %a.org_id, agent = %a.id, error = %e, "could not delete the agent's connection")
                    }
                }
            }
        }
        Ok(())
    }
}
