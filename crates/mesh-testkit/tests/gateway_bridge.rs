//! Bridge mode: a peer MCP Mesh added as a connection is just another member. Two meshes on
//! loopback: a client of mesh A calls a tool that mesh B's connection serves, through A's virtual
//! MCP, B's virtual MCP, and B's stdio upstream — with each mesh's own key, never passed along.

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{text_of, upstreams, TestMesh};
use serde_json::json;

#[tokio::test]
async fn a_client_of_mesh_a_calls_a_tool_served_by_mesh_b() -> anyhow::Result<()> {
    let b = TestMesh::start().await;
    let (python, args) = upstreams::time_command();
    b.add_connection(json!({"slug": "time", "command": python, "args": args})).await;

    let a = TestMesh::start().await;
    // Mesh B's default virtual MCP, reached with B's key (stored in A's vault).
    a.add_connection(json!({
        "slug": "peer-b",
        "url": format!("{}/mcp/gateway/default", b.url),
        "headers": {"Authorization": format!("Bearer {}", b.key)},
    }))
    .await;
    let echo = upstreams::everything_bin();
    a.add_connection(json!({"slug": "local", "command": echo, "args": ["stdio"]})).await;
    let input = serde_json::from_value(json!({
        "slug": "bridge",
        "members": [{"connection": "peer-b"}, {"connection": "local", "tools": ["echo"]}],
    }))?;
    a.admin.create_gateway(&a.owner(), input).await.map_err(|e| anyhow::anyhow!("{e}"))?;

    let client =
        TestClient::connect_http(&format!("{}/mcp/gateway/bridge", a.url), &a.key, ClientBehaviour::default()).await?;
    let names = client.list_tool_names().await?;
    // B prefixes with its connection slug, A with the peer's: the path is visible in the name.
    assert_eq!(names, ["peer-b_time_get_current_time", "peer-b_time_convert_time", "local_echo"], "{names:?}");
    let now = client.call_tool("peer-b_time_get_current_time", json!({"timezone": "UTC"})).await?;
    assert!(text_of(&now).contains("\"timezone\": \"UTC\""), "{now}");
    assert_eq!(text_of(&client.call_tool("local_echo", json!({"message": "here"})).await?), "Echo: here");
    client.close().await?;
    a.stop().await;
    b.stop().await;
    Ok(())
}
