//! The management MCP server at `/mcp`, driven by a real MCP client: connection CRUD, secrets
//! that never come back out, CONNECTION_TEST, and vault rotation while a connection keeps working.

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{text_of, upstreams, TestMesh};
use serde_json::{json, Value};

async fn manage(client: &TestClient, tool: &str, args: Value) -> Value {
    let r = client.call_tool(tool, args).await.unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_ne!(r["isError"], true, "{tool} failed: {}", text_of(&r));
    r["structuredContent"].clone()
}

#[tokio::test]
async fn connection_lifecycle_through_management_tools() -> anyhow::Result<()> {
    let mesh = TestMesh::start().await;
    let admin = TestClient::connect_http(&format!("{}/mcp", mesh.url), &mesh.key, ClientBehaviour::default()).await?;
    let names = admin.list_tool_names().await?;
    for t in [
        "COLLECTION_CONNECTIONS_CREATE",
        "COLLECTION_CONNECTIONS_LIST",
        "COLLECTION_CONNECTIONS_GET",
        "COLLECTION_CONNECTIONS_UPDATE",
        "COLLECTION_CONNECTIONS_DELETE",
        "CONNECTION_TEST",
        "VAULT_ROTATE",
    ] {
        assert!(names.iter().any(|n| n == t), "{t} missing");
    }
    let (command, args) = upstreams::time_command();
    let created = manage(
        &admin,
        "COLLECTION_CONNECTIONS_CREATE",
        json!({"slug": "time", "command": command, "args": args, "env": {"SECRET_TOKEN": "s3cr3t-value"}}),
    )
    .await;
    assert_eq!(created["item"]["transport"], "stdio");
    assert_eq!(created["item"]["env"]["SECRET_TOKEN"], "***", "secrets are write-only");

    let dup = admin.call_tool("COLLECTION_CONNECTIONS_CREATE", json!({"slug": "time", "command": "x"})).await?;
    assert_eq!(dup["isError"], true);
    assert!(text_of(&dup).contains("already exists"), "{dup}");
    let bad = admin.call_tool("COLLECTION_CONNECTIONS_CREATE", json!({"slug": "Bad Slug", "command": "x"})).await?;
    assert_eq!(bad["isError"], true);
    let nothing = admin.call_tool("COLLECTION_CONNECTIONS_CREATE", json!({"slug": "empty"})).await?;
    assert!(text_of(&nothing).contains("url") && nothing["isError"] == true, "{nothing}");

    let listed = manage(&admin, "COLLECTION_CONNECTIONS_LIST", json!({})).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let everything = serde_json::to_string(&listed)?;
    assert!(!everything.contains("s3cr3t-value"), "a secret leaked through LIST");

    let tested = manage(&admin, "CONNECTION_TEST", json!({"id": "time"})).await;
    assert_eq!(tested["ok"], true, "{tested}");
    assert_eq!(tested["serverInfo"]["name"], "mcp-time");
    assert_eq!(tested["toolCount"], 2);

    let updated =
        manage(&admin, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "time", "title": "Clock", "timeoutMs": 5000}))
            .await;
    assert_eq!(updated["item"]["title"], "Clock");
    assert_eq!(updated["item"]["env"]["SECRET_TOKEN"], "***", "secrets survive an update that does not name them");

    let unknown = admin.call_tool("NO_SUCH_TOOL", json!({})).await;
    assert!(unknown.is_err(), "an unknown management tool is a protocol error");

    manage(&admin, "COLLECTION_CONNECTIONS_DELETE", json!({"id": "time"})).await;
    let gone = admin.call_tool("COLLECTION_CONNECTIONS_GET", json!({"id": "time"})).await?;
    assert!(gone["isError"] == true && text_of(&gone).contains("not found"), "{gone}");
    admin.close().await?;
    mesh.stop().await;
    Ok(())
}

#[tokio::test]
async fn member_role_cannot_change_connections() -> anyhow::Result<()> {
    let mesh = TestMesh::start().await;
    let key = mesh.extra_key("member").await;
    let member = TestClient::connect_http(&format!("{}/mcp", mesh.url), &key, ClientBehaviour::default()).await?;
    let r = member.call_tool("COLLECTION_CONNECTIONS_CREATE", json!({"slug": "x", "command": "true"})).await?;
    assert_eq!(r["isError"], true);
    assert!(text_of(&r).contains("permission denied"), "{r}");
    let list = member.call_tool("COLLECTION_CONNECTIONS_LIST", json!({})).await?;
    assert_ne!(list["isError"], true, "members may read");
    let rot = member.call_tool("VAULT_ROTATE", json!({})).await?;
    assert_eq!(rot["isError"], true);
    member.close().await?;
    mesh.stop().await;
    Ok(())
}

#[tokio::test]
async fn vault_rotation_reencrypts_and_connections_keep_working() -> anyhow::Result<()> {
    let upstream = upstreams::everything_http().await;
    let mesh = TestMesh::start().await;
    // A header secret the upstream ignores, and an env secret: both must survive rotation.
    mesh.add_connection(json!({"slug": "everything", "url": upstream.url, "headers": {"X-Api-Key": "k-123"}})).await;
    let (command, args) = upstreams::time_command();
    mesh.add_connection(json!({"slug": "time", "command": command, "args": args, "env": {"TZ_HINT": "utc"}})).await;
    let before: Vec<String> = mesh.admin.store.all_secrets().await?.into_iter().map(|s| s.key_id).collect();
    assert_eq!(before.len(), 2);

    let admin = TestClient::connect_http(&format!("{}/mcp", mesh.url), &mesh.key, ClientBehaviour::default()).await?;
    let rotated = manage(&admin, "VAULT_ROTATE", json!({})).await;
    assert_eq!(rotated["reencrypted"], 2, "{rotated}");
    let primary = rotated["primaryKeyId"].as_str().unwrap_or_default().to_string();
    let after = mesh.admin.store.all_secrets().await?;
    assert!(after.iter().all(|s| s.key_id == primary), "every secret is under the new key");
    assert!(before.iter().all(|k| *k != primary));

    // Both connections still decrypt and work, without a restart.
    for slug in ["everything", "time"] {
        let c = TestClient::connect_http(&mesh.endpoint(slug), &mesh.key, ClientBehaviour::default()).await?;
        assert!(!c.list_tool_names().await?.is_empty());
        c.close().await?;
    }
    let again = manage(&admin, "VAULT_ROTATE", json!({})).await;
    assert_eq!(again["reencrypted"], 2);
    admin.close().await?;
    mesh.stop().await;
    upstream.stop().await;
    Ok(())
}
