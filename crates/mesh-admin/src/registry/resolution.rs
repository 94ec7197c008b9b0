//! Every declared dependency of an agent, against the organisation's healthy agents.

use std::collections::HashMap;

use mesh_core::registry::{self, Candidate, Dependency};
use mesh_store::AgentRow;
use serde_json::Value;

use super::wire::AgentTool;

/// A provider's tool with where to call it and the options to echo.
pub(super) type Target<'a> = (Candidate<'a>, &'a str, Option<&'a Value>);

/// One resolved (or unresolved) dependency slot.
pub(super) struct Slot<'a> {
    pub(super) dep: &'a Dependency,
    pub(super) found: Option<Target<'a>>,
}

/// The slots of every tool of `consumer` that declares dependencies, against `healthy` agents.
pub(super) fn resolve_all<'a>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
