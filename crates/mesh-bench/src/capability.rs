//! The capability path (#22): `/mcp/{connection}` of a capability connection balanced over three
//! providers. The providers are three registry agents (heartbeats sent here) that all point at
//! the echo upstream, so the column differs from `/mcp/{connection}` only by the balanced link.
//!
//! A mesh without the registry or capability connections (a commit before them) reports the path
//! as [`CAPABILITY_NA`].

use crate::processes::{MeshProcess, UpstreamProcess};
use serde_json::json;

/// Why the capability path is empty until capability connections exist.
pub const CAPABILITY_NA: &str = "n/a (capability connections not implemented)";
/// The capability connection.
pub const CONNECTION: &str = "bench-capability";
/// Its providers.
pub const PROVIDERS: usize = 3;

/// Registers the providers and creates the connection; its URL, or why not.
pub async fn create(mesh: &MeshProcess, upstream: &UpstreamProcess) -> anyhow::Result<Result<url::Url, String>> {
    let http = reqwest::Client::new();
    let heartbeat = mesh.url(&format!("/registry/{}/heartbeat", mesh.key));
    let (host, port) = match (upstream.url.host_str(), upstream.url.port_or_known_default()) {
        (Some(h), Some(p)) => (h.to_string(), p),
        _ => anyhow::bail!("the echo upstream's URL has no host and port: {}", upstream.url),
    };
    for i in 1..=PROVIDERS {
        let beat = json!({
            "agent_id": format!("bench-provider-{i}"),
            "http_host": host,
            "http_port": port,
            "mcp_path": upstream.url.path(),
            "tools": [{"function_name": "echo", "capability": "bench-echo", "version": "1.0.0"}],
        });
        let r = http.post(heartbeat.clone()).json(&beat).send().await?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Err(CAPABILITY_NA.to_string()));
        }
        if !r.status().is_success() {
            anyhow::bail!("registering a bench provider: HTTP {}: {}", r.status(), r.text().await.unwrap_or_default());
        }
    }
    let made = mesh
        .manage("COLLECTION_CONNECTIONS_CREATE", json!({"slug": CONNECTION, "selector": {"capability": "bench-echo"}}))
        .await;
    if let Err(e) = made {
        if e.to_string().contains("selector") {
            return Ok(Err(CAPABILITY_NA.to_string()));
        }
        return Err(e);
    }
    Ok(Ok(mesh.url(&format!("/mcp/{CONNECTION}"))))
}
