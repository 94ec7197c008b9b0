//! The registry as `GET /agents` shows it: every agent, healthy or not, with its capabilities
//! and how each of its dependencies resolves now, in the SDK registry's shape.

use std::collections::HashMap;

use mesh_core::{id, Principal};
use serde_json::{json, Value};

use super::resolution::resolve_all;
use super::wire::{is_framework, tools_of};
use super::Registry;
use crate::AdminError;
use mesh_audit::view::format_time;

impl Registry {
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
                "created_at": format_time(a.created_at), "last_seen": format_time(a.last_seen),
                "connection": connection,
                "a2a_producer": false, "a2a_consumer": false,
                "tools_count": tools.iter().filter(|t| !is_framework(t)).count(),
            }));
        }
        Ok(json!({"agents": out, "count": all.len(), "timestamp": format_time(now)}))
    }
}
