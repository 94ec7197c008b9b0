//! Real stdio servers from PyPI and npm behind the mesh: `mcp-server-time`, and
//! `server-filesystem` whose allowed directories come from the downstream client's roots —
//! proof that the server→client `roots/list` request reaches the right client and back.

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{text_of, upstreams, TestMesh};
use serde_json::json;

#[tokio::test]
async fn time_server_over_stdio() -> anyhow::Result<()> {
    let mesh = TestMesh::start().await;
    let (command, args) = upstreams::time_command();
    mesh.add_connection(json!({"slug": "time", "command": command, "args": args})).await;
    let client = TestClient::connect_http(&mesh.endpoint("time"), &mesh.key, ClientBehaviour::default()).await?;
    assert_eq!(client.server_info()["serverInfo"]["name"], "mcp-time");
    let names = client.list_tool_names().await?;
    assert!(names.contains(&"get_current_time".to_string()), "{names:?}");
    let r = client.call_tool("get_current_time", json!({"timezone": "UTC"})).await?;
    assert!(text_of(&r).contains("\"timezone\": \"UTC\""), "{r}");
    let bad = client.call_tool("get_current_time", json!({"timezone": "Not/AZone"})).await?;
    assert_eq!(bad["isError"], true, "input errors stay tool results: {bad}");
    client.close().await?;
    mesh.stop().await;
    Ok(())
}

#[tokio::test]
async fn filesystem_server_takes_its_roots_from_the_downstream_client() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().canonicalize()?;
    std::fs::write(root.join("hello.txt"), "hello from the client's root")?;
    let mesh = TestMesh::start().await;
    // No directory arguments: the server must ask the client for roots.
    mesh.add_connection(json!({"slug": "fs", "command": upstreams::filesystem_bin()})).await;
    let behaviour = ClientBehaviour { roots: vec![format!("file://{}", root.display())], ..Default::default() };
    let client = TestClient::connect_http(&mesh.endpoint("fs"), &mesh.key, behaviour).await?;
    client.wait_until("roots/list from server-filesystem", |c| c.roots_requests_seen() >= 1).await?;
    // The server applies the roots asynchronously after the reply; poll its view, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let allowed = client.call_tool("list_allowed_directories", json!({})).await?;
        if text_of(&allowed).contains(&root.display().to_string()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "roots never applied: {allowed}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let file = root.join("hello.txt").display().to_string();
    let read = client.call_tool("read_text_file", json!({"path": file})).await?;
    assert!(text_of(&read).contains("hello from the client's root"), "{read}");
    let outside = client.call_tool("read_text_file", json!({"path": "/etc/hostname"})).await;
    assert!(outside.is_err() || outside.as_ref().is_ok_and(|r| r["isError"] == true), "{outside:?}");
    client.close().await?;
    mesh.stop().await;
    Ok(())
}
