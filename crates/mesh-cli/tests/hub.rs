//! Hub mode (#22, seed 004): two meshes join a hub with `mcp-mesh hub join`, each advertising a
//! virtual MCP; the hub lists them as peers, and a virtual MCP on the hub reaches a tool on each
//! (server-everything behind one peer, mcp-server-time behind the other). The hub calls each
//! peer with a key made for it, narrowed to the advertised virtual MCP and revoked when the peer
//! leaves.

mod common;
use common::*;

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{text_of, upstreams, TestMesh};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn agents(hub: &TestMesh) -> Vec<Value> {
    let r = reqwest::Client::new().get(format!("{}/api/v1/agents", hub.url)).bearer_auth(&hub.key).send().await;
    let v: Value = r.unwrap().json().await.unwrap();
    v["agents"].as_array().cloned().unwrap_or_default()
}

async fn manage(mesh: &TestMesh, tool: &str, args: Value) -> Value {
    let (ok, out) = mesh.manage(&mesh.key, tool, args).await;
    assert!(ok, "{tool}: {out}");
    out
}

/// `mcp-mesh hub join` run by `peer` (its own URL and key), as a child that stays.
fn join(peer: &TestMesh, hub: &TestMesh, gateway: &str, name: &str) -> tokio::process::Child {
    command(
        peer,
        &peer.key,
        &[
            "hub",
            "join",
            "--hub",
            &hub.url,
            "--hub-key",
            &hub.key,
            "--gateway",
            gateway,
            "--name",
            name,
            "--interval",
            "1",
        ],
    )
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("hub join runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_meshes_join_a_hub_whose_virtual_mcp_reaches_both() {
    let hub = TestMesh::start().await;
    let a = TestMesh::start().await;
    let b = TestMesh::start().await;
    let bin = upstreams::everything_bin().display().to_string();
    a.add_connection(json!({"slug": "everything", "command": bin, "args": ["stdio"]})).await;
    manage(&a, "COLLECTION_GATEWAYS_CREATE", json!({"slug": "tools-a", "members": [{"connection": "everything"}]}))
        .await;
    let (time, time_args) = upstreams::time_command();
    b.add_connection(json!({"slug": "time", "command": time, "args": time_args})).await;
    manage(&b, "COLLECTION_GATEWAYS_CREATE", json!({"slug": "tools-b", "members": [{"connection": "time"}]})).await;

    // A virtual MCP that does not exist is a clear error, and nothing joins.
    let missing = cli(&a, &["hub", "join", "--hub", &hub.url, "--hub-key", &hub.key, "--gateway", "nope"]).await;
    assert!(!missing.ok && missing.stderr.contains("nope"), "{}", missing.stderr);

    let mut join_a = join(&a, &hub, "tools-a", "a");
    let join_b = join(&b, &hub, "tools-b", "b");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = agents(&hub).await;
        let peers: Vec<&str> = all
            .iter()
            .filter(|p| p["agent_type"] == "mesh" && p["status"] == "healthy")
            .filter_map(|p| p["id"].as_str())
            .collect();
        if peers.contains(&"a-tools-a") && peers.contains(&"b-tools-b") {
            break;
        }
        assert!(Instant::now() < deadline, "both peers joined: {all:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = cli(&hub, &["agent", "list"]).await;
    assert!(listed.stdout.contains("a-tools-a") && listed.stdout.contains("b-tools-b"), "{}", listed.stdout);

    // A virtual MCP on the hub over both peers reaches a tool on each.
    manage(
        &hub,
        "COLLECTION_GATEWAYS_CREATE",
        json!({"slug": "federation", "members": [{"connection": "a-tools-a"}, {"connection": "b-tools-b"}]}),
    )
    .await;
    let client = TestClient::connect_http(&hub.endpoint("gateway/federation"), &hub.key, ClientBehaviour::default())
        .await
        .unwrap();
    let names = client.list_tool_names().await.unwrap();
    let echo = names.iter().find(|n| n.ends_with("everything_echo")).unwrap_or_else(|| panic!("{names:?}"));
    let now = names.iter().find(|n| n.ends_with("time_get_current_time")).unwrap_or_else(|| panic!("{names:?}"));
    let echoed = client.call_tool(echo, json!({"message": "via the hub"})).await.unwrap();
    assert!(text_of(&echoed).contains("Echo: via the hub"), "{echoed}");
    let timed = client.call_tool(now, json!({"timezone": "UTC"})).await.unwrap();
    assert!(text_of(&timed).contains("UTC"), "{timed}");
    client.close().await.ok();

    // The hub holds a key of each peer narrowed to the advertised virtual MCP.
    let keys = manage(&a, "API_KEY_LIST", json!({})).await;
    let hub_key = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"].as_str().is_some_and(|n| n.starts_with("hub ")))
        .cloned();
    let hub_key = hub_key.unwrap_or_else(|| panic!("{keys}"));
    assert_eq!(hub_key["scope"]["gateways"], json!(["tools-a"]), "{hub_key}");

    // Peer A leaves: unhealthy at the hub at once, and the hub's key to it is revoked.
    let pid = join_a.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exited = tokio::time::timeout(Duration::from_secs(15), join_a.wait()).await;
    assert!(exited.is_ok_and(|s| s.is_ok_and(|s| s.success())), "hub join exits 0 on SIGTERM");
    let all = agents(&hub).await;
    let left = all.iter().find(|p| p["id"] == "a-tools-a").unwrap();
    assert_eq!(left["status"], "unhealthy", "{left}");
    let keys = manage(&a, "API_KEY_LIST", json!({})).await;
    let revoked =
        keys["items"].as_array().unwrap().iter().find(|k| k["id"] == hub_key["id"]).cloned().unwrap_or(Value::Null);
    assert!(revoked.is_null() || revoked["revokedAt"].is_i64(), "{revoked}");
    drop(join_b);
    for m in [hub, a, b] {
        m.stop().await;
    }
}
