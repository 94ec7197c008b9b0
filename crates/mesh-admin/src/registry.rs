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

use std::collections::HashMap;
use std::time::Duration;

use mesh_core::registry::{self, Candidate, Dependency};
use mesh_core::{id, slug, Principal, Role};
use mesh_store::AgentRow;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

/// Most tools one agent may declare (the SDK adds three of its own to every agent).
const MAX_TOOLS: usize = 256;
/// Most dependencies one agent may declare, over all its tools (each is resolved on every full
/// heartbeat).
const MAX_DEPENDENCIES: usize = 256;
/// Most agents one organisation may have registered (healthy or not yet forgotten): every full
/// heartbeat resolves against all of them.
const MAX_AGENTS: usize = 1_000;
/// A change this close before an agent's last full heartbeat still earns it a 202: the change
/// may have been stamped before that heartbeat but written after it read the topology (or on a
/// replica whose clock is a little behind). The cost is at most one extra full heartbeat per
/// agent per change.
const TOPOLOGY_MARGIN_MS: i64 = 2_000;

/// A full heartbeat as the SDK sends it (fields the mesh does not use are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Heartbeat {
    /// The agent's id.
    #[serde(default)]
    pub agent_id: String,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// `mcp_agent`, …
    #[serde(default)]
    pub agent_type: Option<String>,
    /// Its version.
    #[serde(default)]
    pub version: Option<String>,
    /// Its namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `python`, …
    #[serde(default)]
    pub runtime: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The host it advertises.
    #[serde(default)]
    pub http_host: Option<String>,
    /// The port it advertises.
    #[serde(default)]
    pub http_port: Option<u16>,
    /// Its tools.
    #[serde(default)]
    pub tools: Vec<AgentTool>,
    /// `http` (the default, all the SDK's agents speak) or `https` (a mesh joining a hub
    /// across networks).
    #[serde(default)]
    pub scheme: Option<String>,
    /// Where its MCP endpoint is below its address (default `/mcp`, where the SDK's agents
    /// serve). A mesh joining a hub names one of its virtual MCPs: `/mcp/gateway/{slug}`.
    #[serde(default)]
    pub mcp_path: Option<String>,
    /// Request headers the mesh sends it (a mesh joining a hub hands over a key of its own).
    /// Sealed in the vault with the agent's connection, never shown or answered back; taken
    /// when the agent joins or comes back, not on every heartbeat.
    #[serde(default)]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
}

impl Heartbeat {
    /// The MCP endpoint's path, checked: `/mcp` or below it, in plain characters.
    fn mcp_path(&self) -> Result<&str, AdminError> {
        let path = self.mcp_path.as_deref().unwrap_or("/mcp");
        let plain = path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
        if (path == "/mcp" || path.starts_with("/mcp/")) && plain && !path.contains("..") && path.len() <= 200 {
            Ok(path)
        } else {
            Err(AdminError::Invalid("mcp_path must be /mcp or a path below it".into()))
        }
    }
}

/// One tool of an agent, as stored and resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTool {
    /// The MCP tool name.
    pub function_name: String,
    /// The capability it offers.
    pub capability: String,
    /// Its version.
    #[serde(default)]
    pub version: String,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What it depends on, in the order the SDK matches answers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// The SDK's call options, echoed to consumers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwargs: Option<Value>,
}

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

/// A provider's tool with where to call it and the options to echo.
type Target<'a> = (Candidate<'a>, &'a str, Option<&'a Value>);

/// One resolved (or unresolved) dependency slot.
struct Slot<'a> {
    dep: &'a Dependency,
    found: Option<Target<'a>>,
}

fn is_framework(t: &AgentTool) -> bool {
    t.function_name.starts_with("__mesh_")
}

fn validate(hb: &Heartbeat) -> Result<(), AdminError> {
    let id = hb.agent_id.as_str();
    if id.is_empty() {
        return Err(AdminError::Invalid("agent_id is required".into()));
    }
    if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(AdminError::Invalid("agent_id must be 1-128 letters, digits, '-' or '_'".into()));
    }
    let host = hb.http_host.as_deref().unwrap_or("");
    // A host name or address only: anything that could smuggle a path, credentials or a port.
    if host.is_empty()
        || host.len() > 253
        || !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        return Err(AdminError::Invalid("http_host must be a host name or an IP address".into()));
    }
    if hb.http_port.unwrap_or(0) == 0 {
        return Err(AdminError::Invalid("http_port must be a port number (1-65535)".into()));
    }
    hb.mcp_path()?;
    if !matches!(hb.scheme.as_deref(), None | Some("http" | "https")) {
        return Err(AdminError::Invalid("scheme must be http or https".into()));
    }
    if hb.headers.as_ref().is_some_and(|h| h.len() > 16) {
        return Err(AdminError::Invalid("an agent may hand over at most 16 headers".into()));
    }
    if hb.tools.len() > MAX_TOOLS {
        return Err(AdminError::Invalid(format!("an agent may declare at most {MAX_TOOLS} tools")));
    }
    if hb.tools.iter().map(|t| t.dependencies.len()).sum::<usize>() > MAX_DEPENDENCIES {
        return Err(AdminError::Invalid(format!("an agent may declare at most {MAX_DEPENDENCIES} dependencies")));
    }
    Ok(())
}

fn endpoint(hb: &Heartbeat) -> String {
    let scheme = hb.scheme.as_deref().unwrap_or("http");
    let host = hb.http_host.as_deref().unwrap_or_default();
    let port = hb.http_port.unwrap_or_default();
    if host.contains(':') && !host.starts_with('[') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

fn tools_of(a: &AgentRow) -> Vec<AgentTool> {
    // Written by this module only; a row that does not read is treated as offering nothing.
    serde_json::from_str(&a.tools).unwrap_or_default()
}

/// The slots of every tool of `consumer` that declares dependencies, against `healthy` agents.
fn resolve_all<'a>(
    consumer: &'a [AgentTool],
    healthy: &'a [(AgentRow, Vec<AgentTool>)],
) -> Vec<(&'a str, Vec<Slot<'a>>)> {
    let candidates: Vec<Target<'a>> = healthy
        .iter()
        .flat_map(|(a, tools)| {
            tools.iter().map(move |t| {
                let c = Candidate {
                    agent_id: &a.id,
                    function_name: &t.function_name,
                    capability: &t.capability,
                    version: &t.version,
                    tags: &t.tags,
                };
                (c, a.endpoint.as_str(), t.kwargs.as_ref())
            })
        })
        .collect();
    // Indexed by capability once, so that each dependency looks only at its own providers.
    let mut by_capability: HashMap<&str, (Vec<Candidate<'a>>, Vec<Target<'a>>)> = HashMap::new();
    for (c, endpoint, kwargs) in candidates {
        let entry = by_capability.entry(c.capability).or_default();
        entry.0.push(c);
        entry.1.push((c, endpoint, kwargs));
    }
    consumer
        .iter()
        .filter(|t| !t.dependencies.is_empty())
        .map(|t| {
            let slots = t
                .dependencies
                .iter()
                .map(|dep| {
                    let found = by_capability.get(dep.capability.as_str()).and_then(|(plain, targets)| {
                        let c = registry::resolve(dep, plain)?;
                        targets.iter().find(|(x, _, _)| x.agent_id == c.agent_id && x.function_name == c.function_name)
                    });
                    Slot { dep, found: found.copied() }
                })
                .collect();
            (t.function_name.as_str(), slots)
        })
        .collect()
}

fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The current time as the SDK's registry writes it.
pub fn timestamp() -> String {
    rfc3339(id::now_ms())
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
            "timestamp": rfc3339(now),
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

    /// The organisation's agents, healthy or not, in the SDK registry's `GET /agents` shape.
    pub async fn agents(&self, p: &Principal) -> Result<Value, AdminError> {
        let now = id::now_ms();
        let fresh = self.fresh_after(now);
        let all = self.admin.store.list_agents(&p.org_id).await?;
        let healthy = self.healthy(&p.org_id, now).await?;
        let connections = self.admin.store.list_connections(&p.org_id).await?;
        let slugs: HashMap<&str, &str> = connections.iter().map(|c| (c.id.as_str(), c.slug.as_str())).collect();
        let mut out = Vec::with_capacity(all.len());
        for a in &all {
            let tools = tools_of(a);
            let status = if a.status == "healthy" && a.last_seen >= fresh { "healthy" } else { "unhealthy" };
            let capabilities: Vec<Value> = tools
                .iter()
                .map(|t| {
                    json!({
                        "name": t.capability, "function_name": t.function_name, "version": t.version,
                        "tags": t.tags, "description": t.description.clone().unwrap_or_default(),
                        "available": status == "healthy",
                    })
                })
                .collect();
            let mut resolutions = Vec::new();
            for (function, slots) in resolve_all(&tools, &healthy) {
                for s in slots {
                    let tags = serde_json::to_value(&s.dep.tags).unwrap_or(Value::Null);
                    resolutions.push(match s.found {
                        Some((c, endpoint, _)) => json!({
                            "capability": s.dep.capability, "function_name": function, "status": "available",
                            "endpoint": endpoint, "mcp_tool": c.function_name, "provider_agent_id": c.agent_id,
                            "tags": tags,
                        }),
                        None => json!({
                            "capability": s.dep.capability, "function_name": function, "status": "unresolved",
                            "tags": tags,
                        }),
                    });
                }
            }
            let resolved = resolutions.iter().filter(|r| r["status"] == "available").count();
            let connection = a.connection_id.as_ref().and_then(|id| slugs.get(id.as_str()));
            out.push(json!({
                "id": a.id, "name": a.name, "agent_type": a.agent_type, "version": a.version,
                "namespace": a.namespace, "runtime": a.runtime, "description": a.description,
                "endpoint": a.endpoint, "status": status, "capabilities": capabilities,
                "total_dependencies": resolutions.len(), "dependencies_resolved": resolved,
                "dependency_resolutions": if resolutions.is_empty() { Value::Null } else { Value::Array(resolutions) },
                "created_at": rfc3339(a.created_at), "last_seen": rfc3339(a.last_seen),
                "connection": connection,
                "a2a_producer": false, "a2a_consumer": false,
                "tools_count": tools.iter().filter(|t| !is_framework(t)).count(),
            }));
        }
        Ok(json!({"agents": out, "count": all.len(), "timestamp": rfc3339(now)}))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(host: &str, port: u16) -> Heartbeat {
        serde_json::from_value(json!({"agent_id": "a-1", "http_host": host, "http_port": port, "tools": []})).unwrap()
    }

    #[test]
    fn heartbeats_are_checked_before_anything_is_written() {
        assert!(validate(&hb("127.0.0.1", 9000)).is_ok());
        assert_eq!(endpoint(&hb("::1", 9000)), "http://[::1]:9000");
        for (host, port) in [("", 9000), ("evil.com/x", 9000), ("user@host", 9000), ("h", 0)] {
            assert!(validate(&hb(host, port)).is_err(), "{host}:{port}");
        }
        let mut bad = hb("h", 1);
        bad.agent_id = "a/b".into();
        assert!(validate(&bad).is_err());
        bad.agent_id = String::new();
        assert!(matches!(validate(&bad), Err(AdminError::Invalid(m)) if m == "agent_id is required"));
        let deps: Vec<Value> = (0..=MAX_DEPENDENCIES).map(|i| json!({"capability": format!("c{i}")})).collect();
        let greedy: Heartbeat = serde_json::from_value(json!({"agent_id": "a-1", "http_host": "h", "http_port": 1,
            "tools": [{"function_name": "f", "capability": "c", "dependencies": deps}]}))
        .unwrap();
        assert!(matches!(validate(&greedy), Err(AdminError::Invalid(m)) if m.contains("dependencies")));
    }

    #[test]
    fn every_declared_dependency_gets_a_slot_in_order() {
        let consumer: Vec<AgentTool> = serde_json::from_value(json!([{
            "function_name": "ask", "capability": "greeter",
            "dependencies": [{"capability": "missing"}, {"capability": "date", "tags": ["system"]}]
        }]))
        .unwrap();
        let provider = AgentRow {
            org_id: "o".into(),
            id: "p-1".into(),
            name: "p".into(),
            agent_type: "mcp_agent".into(),
            version: "1.0.0".into(),
            namespace: "default".into(),
            runtime: "python".into(),
            description: String::new(),
            endpoint: "http://127.0.0.1:1".into(),
            tools: String::new(),
            status: "healthy".into(),
            connection_id: None,
            created_at: 0,
            last_seen: 0,
            last_full: 0,
            changed_at: 0,
        };
        let tools: Vec<AgentTool> = serde_json::from_value(json!([
            {"function_name": "get_date", "capability": "date", "version": "1.0.0", "tags": ["system"]}
        ]))
        .unwrap();
        let healthy = vec![(provider, tools)];
        let all = resolve_all(&consumer, &healthy);
        assert_eq!(all.len(), 1);
        let (function, slots) = &all[0];
        assert_eq!(*function, "ask");
        assert!(slots[0].found.is_none());
        let (c, endpoint, _) = slots[1].found.unwrap();
        assert_eq!((c.agent_id, c.function_name, endpoint), ("p-1", "get_date", "http://127.0.0.1:1"));
    }
}
