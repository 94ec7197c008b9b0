//! Stream semantics through the mesh: resource subscriptions and their updates, roots
//! list_changed from the client, resuming a dropped SSE response with `Last-Event-ID`, and a
//! client's cancellation ending its request. Upstream: server-everything.

use futures_util::StreamExt;
use mesh_testkit::raw::{self, Events};
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{upstreams, TestMesh};
use rmcp::model::SubscribeRequestParams;
use serde_json::json;
use std::time::Duration;

async fn mesh_with_everything(http: Option<&upstreams::HttpServer>) -> TestMesh {
    let mesh = TestMesh::start().await;
    let conn = match http {
        Some(up) => json!({"slug": "everything", "url": up.url}),
        None => {
            json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})
        }
    };
    mesh.add_connection(conn).await;
    mesh
}

async fn subscription_updates_arrive(mesh: &TestMesh) -> anyhow::Result<()> {
    let client = TestClient::connect_http(&mesh.endpoint("everything"), &mesh.key, ClientBehaviour::default()).await?;
    #[allow(deprecated)] // resources/subscribe is the 2025-11-25 way; rmcp marks it legacy
    client.peer().subscribe(SubscribeRequestParams::new("demo://resource/dynamic/text/1")).await?;
    // The upstream sends one update at once when updates are toggled on, then every 5 s.
    client.call_tool("toggle-subscriber-updates", json!({})).await?;
    client
        .wait_until("notifications/resources/updated", |c| c.notifications_seen("notifications/resources/updated") >= 1)
        .await?;
    client.call_tool("toggle-subscriber-updates", json!({})).await?;
    client.close().await?;
    Ok(())
}

#[tokio::test]
async fn resource_updates_reach_the_subscriber_stdio() -> anyhow::Result<()> {
    let mesh = mesh_with_everything(None).await;
    subscription_updates_arrive(&mesh).await?;
    mesh.stop().await;
    Ok(())
}

#[tokio::test]
async fn resource_updates_reach_the_subscriber_http() -> anyhow::Result<()> {
    let up = upstreams::everything_http().await;
    let mesh = mesh_with_everything(Some(&up)).await;
    subscription_updates_arrive(&mesh).await?;
    mesh.stop().await;
    up.stop().await;
    Ok(())
}

#[tokio::test]
async fn roots_list_changed_from_the_client_reaches_the_upstream() -> anyhow::Result<()> {
    let mesh = mesh_with_everything(None).await;
    let behaviour = ClientBehaviour { roots: vec!["file:///tmp/a".into()], ..Default::default() };
    let client = TestClient::connect_http(&mesh.endpoint("everything"), &mesh.key, behaviour).await?;
    client.wait_until("first roots/list", |c| c.roots_requests_seen() >= 1).await?;
    // server-everything answers roots/list_changed by asking for the roots again.
    client.peer().notify_roots_list_changed().await?;
    client.wait_until("second roots/list", |c| c.roots_requests_seen() >= 2).await?;
    client.close().await?;
    mesh.stop().await;
    Ok(())
}

fn long_call(id: i64, secs: f64, steps: u32) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "trigger-long-running-operation", "arguments": {"duration": secs, "steps": steps},
        "_meta": {"progressToken": format!("tok-{id}")}}})
    .to_string()
}

async fn post_stream(url: &str, key: &str, sid: &str, body: String) -> reqwest::Response {
    let resp = reqwest::Client::new()
        .post(url)
        .headers(raw::post_headers(key, Some(sid)))
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);
    resp
}

#[tokio::test]
async fn a_dropped_response_stream_resumes_with_last_event_id() -> anyhow::Result<()> {
    let mesh = mesh_with_everything(None).await;
    let url = mesh.endpoint("everything");
    let sid = raw::open_session(&url, &mesh.key, "2025-11-25").await;
    let mut first = Events::new(post_stream(&url, &mesh.key, &sid, long_call(7, 1.2, 4)).await);
    // Unrelated notifications (server-everything announces a tools/list_changed) may ride along.
    let (event_id, progress) = loop {
        let (id, msg) = first.next().await.expect("a first progress event");
        if msg["method"] == "notifications/progress" {
            break (id, msg);
        }
    };
    assert_eq!(progress["params"]["progress"], 1);
    drop(first); // the connection is gone; this is not a cancellation

    let resumed = reqwest::Client::new()
        .get(&url)
        .header("authorization", format!("Bearer {}", mesh.key))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", &event_id)
        .send()
        .await?;
    assert_eq!(resumed.status(), 200);
    let mut rest = Events::new(resumed);
    let mut seen = vec![1];
    let result = loop {
        let (_, msg) = rest.next().await.expect("the stream carries the result before it ends");
        if msg["id"] == 7 {
            break msg;
        }
        if msg["method"] != "notifications/progress" {
            continue;
        }
        seen.push(msg["params"]["progress"].as_i64().unwrap_or(-1));
    };
    assert_eq!(seen, vec![1, 2, 3, 4], "every progress event exactly once, in order");
    assert!(result["result"]["content"][0]["text"].as_str().unwrap_or("").contains("Steps: 4"), "{result}");
    assert!(rest.next().await.is_none(), "the stream ends after the reply");

    // An event id of no stream of this session is refused.
    let bogus = reqwest::Client::new()
        .get(&url)
        .header("authorization", format!("Bearer {}", mesh.key))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("last-event-id", "999-0")
        .send()
        .await?;
    assert_eq!(bogus.status(), 400);
    mesh.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_client_cancel_ends_the_request_without_a_reply() -> anyhow::Result<()> {
    let mesh = mesh_with_everything(None).await;
    let url = mesh.endpoint("everything");
    let sid = raw::open_session(&url, &mesh.key, "2025-06-18").await;
    let started = std::time::Instant::now();
    let mut events = Events::new(post_stream(&url, &mesh.key, &sid, long_call(9, 10.0, 10)).await);
    while events.next().await.expect("progress before cancelling").1["method"] != "notifications/progress" {}
    let cancel =
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9, "reason": "user"}});
    let (status, _, _) = raw::post(&url, raw::post_headers(&mesh.key, Some(&sid)), cancel.to_string()).await;
    assert_eq!(status, 202);
    while let Some((_, msg)) = events.next().await {
        assert_ne!(msg["id"], 9, "a cancelled request gets no reply: {msg}");
    }
    assert!(started.elapsed() < Duration::from_secs(8), "the stream ended at the cancel, not at the operation's end");
    // The session is fine afterwards.
    let ping = json!({"jsonrpc": "2.0", "id": 10, "method": "ping"}).to_string();
    let (status, _, body) = raw::post(&url, raw::post_headers(&mesh.key, Some(&sid)), ping).await;
    assert_eq!(status, 200);
    assert_eq!(raw::messages(&body)[0]["result"], json!({}), "{body}");
    mesh.stop().await;
    Ok(())
}

/// The first SSE event block of a response to a long call, as raw text.
async fn first_block(mesh: &TestMesh, version: &str) -> String {
    let url = mesh.endpoint("everything");
    let sid = raw::open_session(&url, &mesh.key, version).await;
    let mut h = raw::post_headers(&mesh.key, Some(&sid));
    h.insert("mcp-protocol-version", version.parse().expect("header"));
    let resp = reqwest::Client::new().post(&url).headers(h).body(long_call(1, 0.2, 2)).send().await.expect("POST");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(20), body.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split("\n\n").next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn sse_responses_are_primed_for_2025_11_25_clients_only() {
    let mesh = mesh_with_everything(None).await;
    let primed = first_block(&mesh, "2025-11-25").await;
    assert!(
        primed.starts_with("id: ") && primed.contains("data: ") && !primed.contains('{'),
        "priming event: {primed:?}"
    );
    let plain = first_block(&mesh, "2025-06-18").await;
    assert!(plain.contains("data: {"), "older clients get no empty event: {plain:?}");
    mesh.stop().await;
}
