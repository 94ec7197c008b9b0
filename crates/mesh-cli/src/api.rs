//! Talking to a running mesh: the management MCP server at `/mcp`, through the relay's client.

use anyhow::{anyhow, bail, Context};
use mesh_core::Secret;
use mesh_relay::client::McpClient;
use mesh_relay::{TransportSpec, UpstreamSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which mesh to talk to, and as whom.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// Base URL of the mesh.
    #[arg(long = "mesh-url", env = "MESH_URL", default_value = "http://127.0.0.1:3000", global = true)]
    pub mesh_url: url::Url,
    /// API key (else the owner key the server wrote into the data dir on first start).
    #[arg(long, env = "MESH_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// Data directory holding the local owner key.
    #[arg(long, env = "MESH_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The API key: flag or env, else the local owner key file.
pub fn resolve_key(flag: Option<String>, data_dir: &Path) -> anyhow::Result<Secret<String>> {
    if let Some(k) = flag.filter(|k| !k.trim().is_empty()) {
        return Ok(Secret::new(k.trim().to_string()));
    }
    let path = mesh_admin::bootstrap::owner_key_path(data_dir);
    let key = std::fs::read_to_string(&path)
        .with_context(|| format!("no API key: set MESH_API_KEY or --api-key (no owner key at {})", path.display()))?;
    Ok(Secret::new(key.trim().to_string()))
}

/// An MCP client session with an endpoint of the mesh (`path` is `/mcp` or `/mcp/{slug}`).
pub async fn connect(t: &Target, path: &str) -> anyhow::Result<McpClient> {
    let key = resolve_key(t.api_key.clone(), &t.data_dir)?;
    let url = t.mesh_url.join(path).context("invalid mesh URL")?;
    let spec = UpstreamSpec {
        name: "mesh".into(),
        transport: TransportSpec::Http {
            url,
            headers: vec![("Authorization".into(), Secret::new(format!("Bearer {}", key.expose())))],
        },
        timeout: Duration::from_secs(120),
        reach: Default::default(),
        credential: None,
    };
    let http = mesh_relay::UpstreamClients::default();
    McpClient::connect(&spec, &http, "mcp-mesh-cli")
        .await
        .map_err(|e| anyhow!("cannot talk to the mesh at {}: {e}", t.mesh_url))
}

/// One REST call (`/api/v1/…`, `path` relative to the mesh URL) with the key; a non-2xx answer
/// becomes an error carrying the mesh's message.
pub async fn rest(t: &Target, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
    let key = resolve_key(t.api_key.clone(), &t.data_dir)?;
    let url = t.mesh_url.join(path).context("invalid mesh URL")?;
    let resp = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(key.expose())
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| anyhow!("cannot talk to the mesh at {}: {}", t.mesh_url, e.without_url()))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{}", body["error"].as_str().unwrap_or(status.as_str()));
    }
    Ok(body)
}

/// Calls a management tool and returns its structured result; a tool error becomes an error.
pub async fn manage(t: &Target, tool: &str, args: Value) -> anyhow::Result<Value> {
    let client = connect(t, "/mcp").await?;
    let result = client.call_tool(tool, args).await;
    client.close().await;
    let result = result.map_err(|e| anyhow!("{tool}: {e}"))?;
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        bail!("{}", text_of(&result));
    }
    Ok(result.get("structuredContent").cloned().unwrap_or(Value::Null))
}

/// The concatenated text content of a tool result.
pub fn text_of(result: &Value) -> String {
    result
        .get("content")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(|x| x.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// `mcp-mesh vault rotate`.
pub async fn vault_rotate(t: Target) -> anyhow::Result<()> {
    let out = manage(&t, "VAULT_ROTATE", serde_json::json!({})).await?;
    if t.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "vault rotated: primary key {}, {} secret(s) re-encrypted",
            out["primaryKeyId"].as_str().unwrap_or("?"),
            out["reencrypted"]
        );
    }
    Ok(())
}
