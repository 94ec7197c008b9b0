//! The virtual-MCP paths: a gateway of 3 members for `tools/call`, and one of 50 members × 20
//! tools for `tools/list`. Every member is a connection to the same echo upstream (each its own
//! upstream session), so the gateway column differs from `/mcp/{connection}` only by the gateway.
//!
//! A mesh without gateways (a commit before they landed) has no `COLLECTION_GATEWAYS_CREATE`
//! management tool: the paths are then reported as [`GATEWAY_NA`], so reports of old and new
//! commits stay comparable row by row.

use crate::processes::{MeshProcess, UpstreamProcess};
use crate::report::GATEWAY_NA;
use mesh_core::Secret;
use mesh_relay::client::McpClient;
use mesh_relay::{TransportSpec, UpstreamSpec};
use serde_json::json;
use std::time::Duration;

/// The gateway of the `tools/call` column.
pub const CALL_GATEWAY: &str = "bench-call3";
/// The `smart` gateway over the same members, for `tools/call` through `call_tool`.
pub const SMART_GATEWAY: &str = "bench-smart3";
/// The `code` gateway over the same members, for `tools/call` through `run_code`.
pub const CODE_GATEWAY: &str = "bench-code3";
/// The gateway of the `tools/list` 50 × 20 figure.
pub const LIST_GATEWAY: &str = "bench-list50";
/// The tool called through [`CALL_GATEWAY`]: `echo` of its first member, under its prefix.
pub const CALL_TOOL: &str = "gw1_echo";
/// Members of [`LIST_GATEWAY`], and tools each.
pub const LIST_MEMBERS: usize = 50;

/// Whether this mesh's management server offers gateways.
pub async fn available(mesh: &MeshProcess) -> anyhow::Result<bool> {
    let spec = UpstreamSpec {
        name: "mesh".into(),
        transport: TransportSpec::Http {
            url: mesh.url("/mcp"),
            headers: vec![("Authorization".into(), Secret::new(format!("Bearer {}", mesh.key)))],
        },
        timeout: Duration::from_secs(60),
        reach: Default::default(),
        credential: None,
    };
    let client = McpClient::connect(&spec, &mesh_relay::UpstreamClients::default(), "mesh-bench")
        .await
        .map_err(|e| anyhow::anyhow!("management server: {e}"))?;
    let tools = client.list_tools().await;
    client.close().await;
    let tools = tools.map_err(|e| anyhow::anyhow!("management tools/list: {e}"))?;
    Ok(tools.iter().any(|t| t["name"] == "COLLECTION_GATEWAYS_CREATE"))
}

/// Creates both gateways (and their member connections); returns their URLs, or why not.
pub async fn create(
    mesh: &MeshProcess,
    upstream: &UpstreamProcess,
) -> anyhow::Result<Result<(url::Url, url::Url), String>> {
    if !available(mesh).await? {
        return Ok(Err(GATEWAY_NA.to_string()));
    }
    let call_members = ["gw1", "gw2", "gw3"].map(String::from).to_vec();
    let list_members: Vec<String> = (1..=LIST_MEMBERS).map(|i| format!("ls{i:02}")).collect();
    for slug in call_members.iter().chain(&list_members) {
        mesh.manage(
            "COLLECTION_CONNECTIONS_CREATE",
            json!({"slug": slug, "transport": "http", "url": upstream.url.as_str()}),
        )
        .await?;
    }
    let members = |slugs: &[String]| slugs.iter().map(|s| json!({"connection": s})).collect::<Vec<_>>();
    mesh.manage("COLLECTION_GATEWAYS_CREATE", json!({"slug": CALL_GATEWAY, "members": members(&call_members)})).await?;
    // One page holds the whole merged list (1,000 tools): one tools/list is one request.
    mesh.manage(
        "COLLECTION_GATEWAYS_CREATE",
        json!({"slug": LIST_GATEWAY, "members": members(&list_members), "pageSize": 1000}),
    )
    .await?;
    Ok(Ok((mesh.url(&format!("/mcp/gateway/{CALL_GATEWAY}")), mesh.url(&format!("/mcp/gateway/{LIST_GATEWAY}")))))
}

/// Creates a gateway named `slug` with `strategy` over [`CALL_GATEWAY`]'s members (after
/// [`create`]); its URL, or `None` on a mesh without that strategy.
pub async fn create_with_strategy(mesh: &MeshProcess, slug: &str, strategy: &str) -> anyhow::Result<Option<url::Url>> {
    let members: Vec<_> = ["gw1", "gw2", "gw3"].iter().map(|s| json!({"connection": s})).collect();
    let made = mesh
        .manage("COLLECTION_GATEWAYS_CREATE", json!({"slug": slug, "members": members, "strategy": strategy}))
        .await;
    match made {
        Ok(_) => Ok(Some(mesh.url(&format!("/mcp/gateway/{slug}")))),
        Err(e) if e.to_string().contains("strategy") => Ok(None),
        Err(e) => Err(e),
    }
}
