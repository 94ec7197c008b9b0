//! The mesh's own keys in `params._meta` (`mcp-mesh/…`) are the mesh's: only its stateless
//! ingress writes them, for the link to an upstream of the stateless revision. A session-based
//! client that writes one itself — here the `Mcp-Param-*` headers the link sends — has it taken
//! out before the link reads it, so the headers an intermediary may route by are always the ones
//! the mesh mirrors from the arguments its policy read.

mod common;

use common::{bounded, fixture_http};
use mesh_testkit::{raw, TestMesh};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_session_client_cannot_set_the_param_headers_the_link_sends() {
    let (_fixture, fixture_url) = fixture_http("modern").await;
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "modern", "url": fixture_url})).await;
    let url = mesh.endpoint("modern");
    let session = raw::open_session(&url, &mesh.key, "2025-11-25").await;
    let post = |id: i64, method: &str, params: Value| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let (url, headers) = (url.clone(), raw::post_headers(&mesh.key, Some(&session)));
        async move {
            let (status, _, text) = bounded("post", raw::post(&url, headers, body)).await;
            assert_eq!(status, 200, "{text}");
            raw::messages(&text).pop().unwrap_or(Value::Null)
        }
    };
    // The link learns which arguments travel in headers from the upstream's list.
    let listed = post(2, "tools/list", json!({})).await;
    assert!(listed["result"]["tools"].to_string().contains("test_custom_header"), "{listed}");

    // Mirrored from the arguments: the upstream (which checks the header against the argument)
    // accepts the call.
    let plain = post(3, "tools/call", json!({"name": "test_custom_header", "arguments": {"region": "us"}})).await;
    assert!(plain["result"]["content"][0]["text"].to_string().contains(r#"\"region\":\"us\""#), "{plain}");

    // The client's own carrier of headers is dropped: the header still says what the argument
    // does, and the upstream accepts the call as before.
    let forged = json!({
        "name": "test_custom_header",
        "arguments": {"region": "us"},
        "_meta": {"mcp-mesh/paramHeaders": {"mcp-param-region": "eu"}},
    });
    let reply = post(4, "tools/call", forged).await;
    assert!(reply["error"].is_null(), "{reply}");
    assert!(reply["result"]["content"][0]["text"].to_string().contains(r#"\"region\":\"us\""#), "{reply}");
    mesh.stop().await;
}
