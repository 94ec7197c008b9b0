//! `mcp-mesh hub join`: this mesh joins a hub mesh as a peer (#22, hub mode of seed 004), in one
//! command. It registers one of this mesh's virtual MCPs with the hub's agent registry and keeps
//! it there by heartbeat until stopped; the hub makes it a connection of its own organisation,
//! so the hub lists its peers (`mcp-mesh agent list` there) and its virtual MCPs can take a
//! peer's as a member.
//!
//! The hub calls this mesh with a key made for it here, narrowed to that one virtual MCP, handed
//! over in the registration (sealed in the hub's vault) and revoked when the command stops.

use crate::api::{self, Target};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::json;

/// Hub sub-commands.
#[derive(Subcommand)]
pub enum HubCmd {
    /// Join a hub: advertise one virtual MCP of this mesh there until stopped (SIGINT/SIGTERM).
    Join(Box<JoinArgs>),
}

/// `hub join`.
#[derive(Args)]
pub struct JoinArgs {
    /// The hub mesh's URL.
    #[arg(long)]
    hub: url::Url,
    /// An owner's or admin's API key of the hub (decides the hub organisation joined).
    #[arg(long, env = "MESH_HUB_KEY", hide_env_values = true)]
    hub_key: String,
    /// The virtual MCP of this mesh to advertise.
    #[arg(long)]
    gateway: String,
    /// Where the hub reaches this mesh, `scheme://host:port` (default: --mesh-url).
    #[arg(long)]
    advertise_url: Option<url::Url>,
    /// This mesh's name at the hub (default: `mesh-{port}`).
    #[arg(long)]
    name: Option<String>,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 5)]
    interval: u64,
    #[command(flatten)]
    target: Target,
}

/// Runs a hub sub-command.
pub async fn run(cmd: HubCmd) -> anyhow::Result<()> {
    match cmd {
        HubCmd::Join(a) => join(*a).await,
    }
}

async fn join(a: JoinArgs) -> anyhow::Result<()> {
    let stop = crate::register::shutdown()?;
    let advertised = a.advertise_url.clone().unwrap_or_else(|| a.target.mesh_url.clone());
    if !matches!(advertised.path(), "" | "/") || advertised.query().is_some() {
        bail!("--advertise-url must be scheme://host:port, without a path ({advertised})");
    }
    let (Some(host), Some(port)) = (advertised.host_str(), advertised.port_or_known_default()) else {
        bail!("--advertise-url needs a host");
    };
    if is_loopback(host) && !a.hub.host_str().is_some_and(is_loopback) {
        bail!(
            "the hub at {} would reach this mesh at {advertised}, a loopback address of its own host: give \
             --advertise-url with an address the hub can reach",
            a.hub
        );
    }
    let gateway = api::manage(&a.target, "COLLECTION_GATEWAYS_GET", json!({"id": a.gateway}))
        .await
        .with_context(|| format!("this mesh's virtual MCP '{}'", a.gateway))?;
    let slug = gateway["item"]["slug"].as_str().unwrap_or(&a.gateway).to_string();
    let name = a.name.clone().unwrap_or_else(|| format!("mesh-{host}-{port}"));
    let id = mesh_core::slug::slugify(&format!("{name}-{slug}")).context("--name and the gateway make no id")?;

    // The hub's way in: a key of this mesh for that virtual MCP only, without management.
    let made = api::manage(
        &a.target,
        "API_KEY_CREATE",
        json!({"name": format!("hub {}", a.hub.host_str().unwrap_or("?")), "scope": {"gateways": [slug]}}),
    )
    .await
    .context("making a key for the hub")?;
    let key_id = made["item"]["id"].as_str().unwrap_or_default().to_string();
    let result = async {
        let hub_key = made["key"].as_str().context("the new key")?;
        let body = json!({
            "agent_id": id, "name": name, "agent_type": "mesh", "version": env!("CARGO_PKG_VERSION"),
            "runtime": "mcp-mesh", "namespace": "default", "status": "healthy",
            "description": format!("Peer mesh {advertised}: virtual MCP '{slug}'"),
            "scheme": advertised.scheme(), "http_host": host, "http_port": port,
            "mcp_path": format!("/mcp/gateway/{slug}"),
            "headers": {"Authorization": format!("Bearer {hub_key}")},
            "tools": [],
        });
        let base = a.hub.join(&format!("registry/{}/", a.hub_key)).context("invalid hub URL")?;
        crate::register::keep_registered(&base, &id, &body, a.interval, &id, &a.hub, stop).await
    }
    .await;
    // Whatever happened, the hub's key goes: a peer that left is not reachable through it.
    match api::manage(&a.target, "API_KEY_REVOKE", json!({"id": key_id})).await {
        Ok(_) => eprintln!("revoked the hub's key {key_id}"),
        Err(e) => {
            eprintln!("could not revoke the hub's key {key_id}: {e:#}; revoke it with mcp-mesh key revoke {key_id}")
        }
    }
    result
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_matches(['[', ']']);
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
