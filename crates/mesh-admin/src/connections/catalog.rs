//! A connection's tools with their schemas, for admins choosing what a virtual MCP exposes and
//! for the dashboard's connection page (`CONNECTION_TOOLS`). Fetched from the upstream with the
//! mesh's own client, like `CONNECTION_TEST`, and kept briefly so that paging and searching a
//! catalogue of thousands of tools does not reconnect on every page.

use crate::{Admin, AdminError};
use mesh_core::Principal;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a fetched list is reused.
const KEEP: Duration = Duration::from_secs(30);
/// Lists kept at most (one per connection).
const MAX_KEPT: usize = 256;
/// Largest page.
pub const MAX_PAGE: usize = 200;

/// A fetched list and when.
type Fetched = (Instant, Arc<Vec<Value>>);

/// Recently fetched tool lists, by connection id.
#[derive(Default)]
pub struct ToolLists(Mutex<HashMap<String, Fetched>>);

impl ToolLists {
    fn get(&self, id: &str) -> Option<Arc<Vec<Value>>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|(at, _)| at.elapsed() < KEEP).map(|(_, l)| l.clone())
    }

    fn put(&self, id: &str, list: Arc<Vec<Value>>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEPT {
            map.retain(|_, (at, _)| at.elapsed() < KEEP);
        }
        map.insert(id.to_string(), (Instant::now(), list));
    }

    /// Forgets a connection's list (it was changed).
    pub fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// Whether a tool matches a search: every word of `query` occurs in its name, title or
/// description, ignoring case.
fn matches(tool: &Value, words: &[String]) -> bool {
    if words.is_empty() {
        return true;
    }
    let hay = ["name", "title", "description"]
        .iter()
        .filter_map(|k| tool.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    words.iter().all(|w| hay.contains(w.as_str()))
}

impl Admin {
    /// One page of a connection's tools (name, title, description, input schema), searched by
    /// `query`: `{connection, total, offset, items}`. Owners and admins only: the list is what
    /// the mesh sees, not what the caller's rules let them call.
    pub async fn connection_tools(
        &self,
        p: &Principal,
        id_or_slug: &str,
        query: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<Value, AdminError> {
        if !p.role.can_manage() {
            return Err(AdminError::Forbidden("listing a connection's tools needs the owner or admin role"));
        }
        let c = self.find_connection(p, id_or_slug).await?;
        let list = match self.tool_lists.get(&c.id) {
            Some(l) => l,
            None => {
                let spec = self.spec(&c).await?;
                let client = mesh_relay::client::McpClient::connect(&spec, &self.http, "mcp-mesh-dashboard")
                    .await
                    .map_err(|e| {
                        tracing::info!(org = %p.org_id, connection = %c.slug, error = %e, "listing tools failed");
                        AdminError::Invalid(format!(
                            "cannot reach '{}': {}",
                            c.slug,
                            mesh_relay::failure::Failure::of(&e).message()
                        ))
                    })?;
                let tools = client.list_tools().await;
                client.close().await;
                let tools = Arc::new(tools.map_err(|e| {
                    AdminError::Invalid(format!(
                        "'{}' did not list its tools: {}",
                        c.slug,
                        mesh_relay::failure::Failure::of(&e).message()
                    ))
                })?);
                self.tool_lists.put(&c.id, tools.clone());
                tools
            }
        };
        let words: Vec<String> = query.unwrap_or("").split_whitespace().map(str::to_lowercase).collect();
        let found: Vec<&Value> = list.iter().filter(|t| matches(t, &words)).collect();
        let items: Vec<Value> = found
            .iter()
            .skip(offset)
            .take(limit.clamp(1, MAX_PAGE))
            .map(|t| {
                json!({
                    "name": t.get("name"),
                    "title": t.get("title"),
                    "description": t.get("description"),
                    "inputSchema": t.get("inputSchema"),
                })
            })
            .collect();
        Ok(json!({"connection": c.slug, "total": found.len(), "offset": offset, "items": items}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_needs_every_word_in_name_title_or_description() {
        let t = json!({"name": "get_weather", "description": "Current weather for a city"});
        let words = |q: &str| q.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>();
        assert!(matches(&t, &words("")));
        assert!(matches(&t, &words("WEATHER city")));
        assert!(!matches(&t, &words("weather country")));
    }
}
