//! `mcp-mesh register`: a sidecar that registers a plain MCP server with the mesh's agent
//! registry (#22) and keeps it there by heartbeat, as an mcp-mesh SDK agent would itself, until
//! it is stopped (SIGINT/SIGTERM), when it says goodbye.
//!
//! The server's tools are read once with `tools/list`. Each `--capability CAP=TOOL` offers TOOL
//! as CAP (with the given tags and version); `--capability CAP` alone names the server's only
//! tool. Tools not named keep their own name as their capability, so `meshctl call TOOL` still
//! finds them. SDK agents call a provider at `{endpoint}/mcp`, so the server must serve MCP at
//! `/mcp`.

use crate::api::{self, Target};
use anyhow::{anyhow, bail, Context};
use clap::Args;
use mesh_relay::client::McpClient;
use mesh_relay::{TransportSpec, UpstreamSpec};
use serde_json::{json, Value};
use std::time::Duration;

/// `register`.
#[derive(Args)]
pub struct RegisterArgs {
    /// The server's MCP endpoint, `http://host:port/mcp` (the address other agents call).
    #[arg(long)]
    url: url::Url,
    /// A capability it offers: `CAP=TOOL`, or `CAP` for a server with one tool (repeatable).
    #[arg(long = "capability", required = true)]
    capabilities: Vec<String>,
    /// A tag of the capabilities (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// The capabilities' version.
    #[arg(long, default_value = "1.0.0")]
    version: String,
    /// The agent's name (default: the server's own name from its handshake).
    #[arg(long)]
    name: Option<String>,
    /// The agent's id (default: the name, host and port, stable across restarts).
    #[arg(long)]
    id: Option<String>,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 5)]
    interval: u64,
    #[command(flatten)]
    target: Target,
}

/// Which capability each tool offers.
fn capabilities_of(args: &[String], tools: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for arg in args {
        let (cap, tool) = match arg.split_once('=') {
            Some((cap, tool)) => (cap.trim(), tool.trim().to_string()),
            None => match tools {
                [only] => (arg.trim(), only.clone()),
                _ => bail!(
                    "the server has {} tools: say which one offers '{arg}' with --capability {arg}=TOOL (tools: {})",
                    tools.len(),
                    tools.join(", ")
                ),
            },
        };
        if cap.is_empty() {
            bail!("--capability '{arg}' names no capability");
        }
        if !tools.contains(&tool) {
            bail!("the server has no tool '{tool}' (tools: {})", tools.join(", "));
        }
        if out.iter().any(|(t, _)| *t == tool) {
            bail!("tool '{tool}' is named by two --capability options; a tool offers one capability");
        }
        out.push((tool, cap.to_string()));
    }
    Ok(out)
}

/// Runs the sidecar until SIGINT/SIGTERM.
pub async fn run(a: RegisterArgs) -> anyhow::Result<()> {
    let stop = shutdown()?;
    if a.url.path().trim_end_matches('/') != "/mcp" {
        bail!(
            "agents call a provider at http://host:port/mcp: serve the server's MCP endpoint at /mcp (got {})",
            a.url
        );
    }
    let (Some(host), Some(port)) = (a.url.host_str(), a.url.port_or_known_default()) else {
        bail!("--url needs a host and a port");
    };
    let spec = UpstreamSpec {
        name: "server".into(),
        transport: TransportSpec::Http { url: a.url.clone(), headers: Vec::new() },
        timeout: Duration::from_secs(30),
        reach: Default::default(),
        credential: None,
    };
    let client = McpClient::connect(&spec, &mesh_relay::UpstreamClients::default(), "mcp-mesh-register")
        .await
        .map_err(|e| anyhow!("cannot talk to the server at {}: {e}", a.url))?;
    let listed = client.list_tools().await.map_err(|e| anyhow!("tools/list at {}: {e}", a.url));
    let server_name = client.initialize_result()["serverInfo"]["name"].as_str().map(str::to_string);
    client.close().await;
    let listed = listed?;
    let names: Vec<String> = listed.iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect();
    let offered = capabilities_of(&a.capabilities, &names)?;
    let name = a.name.clone().or(server_name).unwrap_or_else(|| "server".into());
    let id = a.id.clone().unwrap_or_else(|| {
        mesh_core::slug::slugify(&format!("{name}-{host}-{port}")).unwrap_or_else(|| format!("server-{port}"))
    });
    let tools: Vec<Value> = listed
        .iter()
        .filter_map(|t| {
            let tool = t["name"].as_str()?;
            let (capability, tags, version) = match offered.iter().find(|(n, _)| n == tool) {
                Some((_, cap)) => (cap.as_str(), a.tags.clone(), a.version.as_str()),
                None => (tool, Vec::new(), a.version.as_str()),
            };
            Some(json!({
                "function_name": tool, "capability": capability, "version": version, "tags": tags,
                "description": t["description"].as_str().unwrap_or(""),
            }))
        })
        .collect();
    let body = json!({
        "agent_id": id, "name": name, "agent_type": "mcp_server", "version": a.version,
        "scheme": a.url.scheme(), "http_host": host, "http_port": port, "namespace": "default",
        "runtime": "mcp-mesh-register",
        "status": "healthy", "tools": tools,
    });

    let key = api::resolve_key(a.target.api_key.clone(), &a.target.data_dir)?;
    let base = a.target.mesh_url.join(&format!("registry/{}/", key.expose())).context("invalid mesh URL")?;
    let summary = format!("{id} ({} tools, {} capabilities)", tools.len(), offered.len());
    keep_registered(&base, &id, &body, a.interval, &summary, &a.target.mesh_url, stop).await
}

/// Registers `body` at the registry `base` (`…/registry/{key}/`), keeps it there with a
/// heartbeat every `interval` seconds (a 202 or 410 answered with a full heartbeat) until
/// SIGINT/SIGTERM, then deregisters. A refused first registration is an error.
pub(crate) async fn keep_registered(
    base: &url::Url,
    id: &str,
    body: &Value,
    interval: u64,
    summary: &str,
    shown: &url::Url,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let post = || async {
        let url = base.join("heartbeat").expect("a fixed path joins");
        let resp = http.post(url).json(body).send().await.map_err(|e| anyhow!("{}", e.without_url()))?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("the mesh refused the registration: {}", answer["error"].as_str().unwrap_or(status.as_str()));
        }
        Ok(())
    };
    tokio::pin!(stop);
    tokio::select! {
        _ = &mut stop => return Ok(()),
        first = post() => first?,
    }
    eprintln!("registered {summary} with the mesh at {shown}");

    let beat_url = base.join(&format!("heartbeat/{id}")).context("agent id")?;
    let mut tick = tokio::time::interval(Duration::from_secs(interval.max(1)));
    tick.tick().await;
    let mut ended = Ok(());
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        match http.head(beat_url.clone()).send().await.map(|r| r.status().as_u16()) {
            Ok(200) => {}
            // The topology changed, or the mesh forgot us: a full heartbeat.
            Ok(202 | 410) => {
                if let Err(e) = post().await {
                    eprintln!("heartbeat: {e}");
                }
            }
            // The key was revoked or lost its rights, or the mesh has no registry: beating on
            // would only log this for ever.
            Ok(status @ (401 | 403 | 404)) => {
                ended = Err(anyhow!("the mesh answered {status} to a heartbeat: the key no longer registers here"));
                break;
            }
            Ok(status) => eprintln!("heartbeat: the mesh answered {status}"),
            Err(e) => eprintln!("heartbeat: {}", e.without_url()),
        }
    }
    let gone = base.join(&format!("agents/{id}")).context("agent id")?;
    match http.delete(gone).send().await {
        Ok(r) if r.status().is_success() => eprintln!("deregistered {id}"),
        Ok(r) => eprintln!("deregistering {id}: the mesh answered {}", r.status()),
        Err(e) => eprintln!("deregistering {id}: {}", e.without_url()),
    }
    ended
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed now, not when first awaited, so a
/// signal during the first registration is not the default (immediate) death that would skip
/// the goodbye.
pub(crate) fn shutdown() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_name_tools() {
        let one = vec!["get_date".to_string()];
        assert_eq!(capabilities_of(&["date".into()], &one).unwrap(), vec![("get_date".into(), "date".into())]);
        let two = vec!["echo".to_string(), "add".to_string()];
        assert!(capabilities_of(&["math".into()], &two).unwrap_err().to_string().contains("--capability math=TOOL"));
        assert_eq!(capabilities_of(&["math=add".into()], &two).unwrap(), vec![("add".into(), "math".into())]);
        assert!(capabilities_of(&["math=nope".into()], &two).unwrap_err().to_string().contains("no tool 'nope'"));
        assert!(capabilities_of(&["=add".into()], &two).is_err());
        assert!(capabilities_of(&["a=add".into(), "b=add".into()], &two).unwrap_err().to_string().contains("two"));
    }
}
