//! The SDK's full heartbeat as the mesh reads it: the wire types, their checks, the address.

use mesh_core::registry::Dependency;
use mesh_store::AgentRow;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AdminError;

/// Most tools one agent may declare (the SDK adds three of its own to every agent).
pub(super) const MAX_TOOLS: usize = 256;
/// Most dependencies one agent may declare, over all its tools (each is resolved on every full
/// heartbeat).
pub(super) const MAX_DEPENDENCIES: usize = 256;

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
    pub(super) fn mcp_path(&self) -> Result<&str, AdminError> {
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

pub(super) fn is_framework(t: &AgentTool) -> bool {
    t.function_name.starts_with("__mesh_")
}

pub(super) fn validate(hb: &Heartbeat) -> Result<(), AdminError> {
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

pub(super) fn endpoint(hb: &Heartbeat) -> String {
    let scheme = hb.scheme.as_deref().unwrap_or("http");
    let host = hb.http_host.as_deref().unwrap_or_default();
    let port = hb.http_port.unwrap_or_default();
    if host.contains(':') && !host.starts_with('[') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

pub(super) fn tools_of(a: &AgentRow) -> Vec<AgentTool> {
    // Written by this module only; a row that does not read is treated as offering nothing.
    serde_json::from_str(&a.tools).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
