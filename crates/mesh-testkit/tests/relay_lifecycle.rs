//! Session lifecycle: clients negotiating each supported protocol revision, and stdio children
//! that are really gone (no orphans, no zombies) after DELETE and after the mesh shuts down.

use mesh_testkit::{raw, upstreams, TestMesh};
use serde_json::json;
use std::time::{Duration, Instant};

use mesh_testkit::procs::{with_marker as processes_with, zombie_children};

async fn wait_gone(marker: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: processes still running: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_supported_protocol_revision_negotiates() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let url = mesh.endpoint("everything");
        let (status, headers, body) =
            raw::post(&url, raw::post_headers(&mesh.key, None), raw::initialize_body(1, version)).await;
        assert_eq!(status, 200, "{version}: {body}");
        let init = &raw::messages(&body)[0];
        assert_eq!(init["result"]["protocolVersion"], version, "{init}");
        let sid = headers["mcp-session-id"].to_str().expect("ascii").to_string();
        assert!(sid.len() >= 32 && sid.bytes().all(|b| (0x21..=0x7e).contains(&b)), "session id: {sid}");
        let mut h = raw::post_headers(&mesh.key, Some(&sid));
        h.insert("mcp-protocol-version", version.parse().expect("header"));
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
        let (status, _, body) = raw::post(&url, h, list).await;
        assert_eq!(status, 200);
        assert!(
            raw::messages(&body).iter().any(|m| m["id"] == 2 && m["result"]["tools"].is_array()),
            "{version}: {body}"
        );
    }
    // An unknown revision gets the mesh's latest, as the spec's negotiation says.
    let (_, _, body) = raw::post(
        &mesh.endpoint("everything"),
        raw::post_headers(&mesh.key, None),
        raw::initialize_body(1, "2099-01-01"),
    )
    .await;
    assert_eq!(raw::messages(&body)[0]["result"]["protocolVersion"], "2025-11-25", "{body}");
    mesh.stop().await;
}

#[tokio::test]
async fn stdio_children_are_gone_after_delete_and_after_shutdown() {
    let mesh = TestMesh::start().await;
    let marker = mesh_core::id::random_base62(16);
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"],
                               "env": {"MESH_TEST_MARKER": marker}}))
        .await;
    let url = mesh.endpoint("everything");
    let a = raw::open_session(&url, &mesh.key, "2025-11-25").await;
    let _b = raw::open_session(&url, &mesh.key, "2025-11-25").await;
    assert_eq!(processes_with(&marker).len(), 2, "one child per session");
    assert_eq!(mesh.session_count(), 2);

    let resp = reqwest::Client::new()
        .delete(&url)
        .headers(raw::post_headers(&mesh.key, Some(&a)))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    while processes_with(&marker).len() != 1 {
        assert!(Instant::now() < deadline, "the deleted session's child is still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mesh.session_count(), 1);

    mesh.stop().await;
    wait_gone(&marker, "after shutdown").await;
    assert_eq!(zombie_children(), Vec::<u32>::new(), "every child was reaped");
}

#[tokio::test]
async fn an_upstream_on_an_older_revision_works_behind_a_newer_client() {
    let mesh = TestMesh::start().await;
    let script = upstreams::fixture("misbehaving_server.py");
    mesh.add_connection(
        json!({"slug": "old", "command": mesh_testkit::deps::python(), "args": [script, "old-version"]}),
    )
    .await;
    let url = mesh.endpoint("old");
    let (status, headers, body) =
        raw::post(&url, raw::post_headers(&mesh.key, None), raw::initialize_body(1, "2025-11-25")).await;
    assert_eq!(status, 200, "{body}");
    // The client learns what the server really speaks, and carries on in it.
    assert_eq!(raw::messages(&body)[0]["result"]["protocolVersion"], "2024-11-05", "{body}");
    let sid = headers["mcp-session-id"].to_str().expect("ascii").to_string();
    let mut h = raw::post_headers(&mesh.key, Some(&sid));
    h.insert("mcp-protocol-version", "2024-11-05".parse().expect("header"));
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    assert_eq!(raw::post(&url, h.clone(), note).await.0, 202);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "ok", "arguments": {}}});
    let (status, _, body) = raw::post(&url, h, call.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(raw::messages(&body)[0]["result"]["content"][0]["text"], "fine", "{body}");
    mesh.stop().await;
}

#[tokio::test]
async fn an_http_upstream_that_restarts_is_reinitialised_under_the_same_session() -> anyhow::Result<()> {
    use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
    let up = upstreams::everything_http().await;
    let port = up.port;
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "url": up.url})).await;
    let client = TestClient::connect_http(&mesh.endpoint("everything"), &mesh.key, ClientBehaviour::default()).await?;
    let echo = client.call_tool("echo", json!({"message": "before"})).await?;
    assert_eq!(mesh_testkit::text_of(&echo), "Echo: before");

    let reconnects = mesh_relay::stats::upstream_reconnects();
    up.stop().await;
    let down = client.call_tool("echo", json!({"message": "while down"})).await;
    assert!(down.is_err(), "a call while the upstream is down fails: {down:?}");
    // The restarted upstream knows nothing of our session: the mesh starts a new one with the
    // client's own handshake, and the client's session carries on.
    let bin = upstreams::everything_bin();
    let again = upstreams::HttpServer::spawn_on(&bin, &["streamableHttp"], "/mcp", port)
        .await
        .map_err(|e| anyhow::anyhow!("restart on port {port}: {e}"))?;
    let echo = client.call_tool("echo", json!({"message": "after"})).await?;
    assert_eq!(mesh_testkit::text_of(&echo), "Echo: after");
    assert_eq!(mesh.session_count(), 1);
    assert!(mesh_relay::stats::upstream_reconnects() > reconnects, "the re-initialisation is counted (metrics)");
    client.close().await?;
    mesh.stop().await;
    again.stop().await;
    Ok(())
}
