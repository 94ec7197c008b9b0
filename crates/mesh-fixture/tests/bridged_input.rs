//! A session-based client (2025-11-25) through the mesh to the fixture speaking only the
//! stateless revision (2026-07-28): the upstream's input-required result becomes an
//! `elicitation/create` on the client's session. A client that answers it with an error refuses
//! it: the revision has no way to tell the upstream so (answers are results), and the call fails
//! with the client's refusal rather than the client being asked the same again. A question whose
//! call ends first is withdrawn.

mod common;

use common::{bounded, fixture_http};
use futures_util::StreamExt;
use mesh_testkit::{raw, TestMesh};
use serde_json::{json, Value};

/// A response's SSE events, each read as it comes.
struct Sse {
    stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    pending: String,
}

impl Sse {
    /// The next event's JSON-RPC message (events without one, such as priming events, skipped).
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let event: String = self.pending.drain(..end + 2).collect();
                let data: String = event.lines().filter_map(|l| l.strip_prefix("data:")).collect();
                if let Ok(m) = serde_json::from_str::<Value>(data.trim()) {
                    return m;
                }
                continue;
            }
            let chunk = self.stream.next().await.expect("the stream goes on").expect("bytes");
            self.pending.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// A session of a client that declares form elicitation, at the mesh's route `url`: its id.
async fn session(url: &str, key: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
        "capabilities": {"elicitation": {"form": {}}}, "clientInfo": {"name": "asked", "version": "1"}}});
    let (status, headers, body) = raw::post(url, raw::post_headers(key, None), init.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let sid = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).expect("session id").to_string();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    assert_eq!(raw::post(url, raw::post_headers(key, Some(&sid)), note).await.0, 202);
    sid
}

/// Calls the fixture's elicitation tool on `sid`: the call's events, once it has asked.
async fn asked(url: &str, key: &str, sid: &str) -> (Sse, Value) {
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "test_input_required_result_elicitation", "arguments": {}}});
    let resp = reqwest::Client::new()
        .post(url)
        .headers(raw::post_headers(key, Some(sid)))
        .body(call.to_string())
        .send()
        .await
        .expect("the call is sent");
    assert_eq!(resp.status(), 200);
    let mut events = Sse { stream: Box::pin(resp.bytes_stream()), pending: String::new() };
    let asked = bounded("the elicitation", events.next()).await;
    assert_eq!(asked["method"], "elicitation/create", "{asked}");
    (events, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_session_client_that_refuses_an_input_request_ends_the_call() {
    let (_fixture, fixture_url) = fixture_http("modern").await;
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "modern", "url": fixture_url})).await;
    let url = mesh.endpoint("modern");
    let sid = session(&url, &mesh.key).await;
    let (mut events, asked) = asked(&url, &mesh.key, &sid).await;

    let refusal = json!({"jsonrpc": "2.0", "id": asked["id"], "error": {"code": -1, "message": "User rejected"}});
    let (status, _, body) = raw::post(&url, raw::post_headers(&mesh.key, Some(&sid)), refusal.to_string()).await;
    assert_eq!(status, 202, "{body}");

    let ended = bounded("the call's end", events.next()).await;
    assert_eq!(ended["id"], 2, "the call ends next, the client is not asked again: {ended}");
    assert_eq!(ended["error"]["code"], -1, "{ended}");
    let message = ended["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("refused") && message.contains("User rejected"), "{ended}");
    mesh.stop().await;
}

/// A call that times out while its question is open: the question is withdrawn on the call's
/// stream (`notifications/cancelled` naming it) before the call's timeout error, so that the
/// client's dialog closes rather than waiting for an answer nobody will use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_question_whose_call_timed_out_is_withdrawn() {
    let (_fixture, fixture_url) = fixture_http("modern").await;
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "modern", "url": fixture_url, "timeoutMs": 2000})).await;
    let url = mesh.endpoint("modern");
    let sid = session(&url, &mesh.key).await;
    let (mut events, asked) = asked(&url, &mesh.key, &sid).await;

    let withdrawn = bounded("the withdrawal", events.next()).await;
    assert_eq!(withdrawn["method"], "notifications/cancelled", "{withdrawn}");
    assert_eq!(withdrawn["params"]["requestId"], asked["id"], "{withdrawn}");
    let ended = bounded("the call's end", events.next()).await;
    assert_eq!((&ended["id"], &ended["error"]["code"]), (&json!(2), &json!(-31011)), "{ended}");
    // A late answer is ignored, not an error.
    let late = json!({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "accept", "content": {"name": "Ada"}}});
    let (status, _, body) = raw::post(&url, raw::post_headers(&mesh.key, Some(&sid)), late.to_string()).await;
    assert_eq!(status, 202, "{body}");
    mesh.stop().await;
}
