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

/// A stateless client's `Mcp-Param-*` header given twice is refused: the mesh checked one value
/// against the argument, and would have forwarded the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_stateless_client_cannot_send_a_param_header_twice() {
    use reqwest::header::HeaderValue;
    let (_fixture, fixture_url) = fixture_http("modern").await;
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "modern", "url": fixture_url})).await;
    let url = mesh.endpoint("modern");
    let post = |method: &'static str, name: Option<&'static str>, params: Value, regions: &[&'static str]| {
        let mut params = params;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let mut headers = raw::stateless_headers(&mesh.key, method, name);
        for r in regions {
            headers.append("mcp-param-region", HeaderValue::from_static(r));
        }
        let url = url.clone();
        async move {
            let (status, _, text) = bounded(method, raw::post(&url, headers, body)).await;
            (status, raw::messages(&text).pop().unwrap_or(Value::Null))
        }
    };
    // The pooled session learns which arguments travel in headers from the upstream's list.
    let (status, listed) = post("tools/list", None, json!({}), &[]).await;
    assert!(status == 200 && listed.to_string().contains("test_custom_header"), "{listed}");
    let call = json!({"name": "test_custom_header", "arguments": {"region": "eu"}});
    let (status, once) = post("tools/call", Some("test_custom_header"), call.clone(), &["eu"]).await;
    assert_eq!(status, 200, "{once}");
    assert!(once["result"]["content"][0]["text"].to_string().contains(r#"\"region\":\"eu\""#), "{once}");
    let (status, twice) = post("tools/call", Some("test_custom_header"), call, &["eu", "us"]).await;
    assert_eq!((status, &twice["error"]["code"]), (400, &json!(-32020)), "{twice}");
    let why = twice["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("mcp-param-region is given more than once"), "the mesh's own refusal: {twice}");
    mesh.stop().await;
}
