//! Bad input at the Streamable HTTP front door (MCP 2025-11-25, basic/transports), in raw HTTP so
//! that every status code, header and JSON-RPC error is checked exactly: authentication, message
//! shape, media types, sessions and their binding to a key, DNS-rebinding defence, body limits,
//! methods and the health routes. Each test ends by showing the mesh still serves a new client.

use mesh_testkit::raw::{self, post_headers};
use mesh_testkit::{upstreams, TestMesh};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use serde_json::{json, Value};

const VERSION: &str = "2025-11-25";
/// The mesh's default body limit (`RelayConfig::max_body_bytes`).
const LIMIT: usize = 4 * 1024 * 1024;

/// A mesh with one connection, `everything` (server-everything over stdio).
async fn mesh_with_everything() -> TestMesh {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({
        "slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"],
    }))
    .await;
    mesh
}

/// The management server's endpoint.
fn management(mesh: &TestMesh) -> String {
    format!("{}/mcp", mesh.url)
}

/// Both MCP endpoints: the connection and the management server share the transport rules.
fn endpoints(mesh: &TestMesh) -> [String; 2] {
    [mesh.endpoint("everything"), management(mesh)]
}

fn request(id: i64, method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

fn tools_list(id: i64) -> String {
    request(id, "tools/list", json!({}))
}

/// A transport-level refusal's body: a JSON-RPC error with a null id. Returns (code, message).
fn refusal(body: &str) -> (i64, String) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("refusal is not JSON ({e}): {body}"));
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(v["id"], Value::Null, "a refusal answers no request: {v}");
    let code = v["error"]["code"].as_i64().unwrap_or_else(|| panic!("no code: {v}"));
    let message = v["error"]["message"].as_str().unwrap_or_else(|| panic!("no message: {v}"));
    (code, message.to_string())
}

/// Any method, returning (status, headers, body).
async fn send(
    method: Method,
    url: &str,
    headers: HeaderMap,
    body: impl Into<reqwest::Body>,
) -> (u16, HeaderMap, String) {
    let resp =
        reqwest::Client::new().request(method, url).headers(headers).body(body).send().await.expect("the mesh answers");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, h, resp.text().await.expect("body"))
}

/// The names of the tools a `tools/list` on `sid` returns (asserting a 200 success on the way).
async fn tool_names(url: &str, key: &str, sid: &str) -> Vec<String> {
    let (status, _, body) = raw::post(url, post_headers(key, Some(sid)), tools_list(99)).await;
    assert_eq!(status, 200, "{body}");
    let reply = raw::messages(&body)
        .into_iter()
        .find(|m| m["id"] == 99)
        .unwrap_or_else(|| panic!("no reply to tools/list in {body}"));
    reply["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("tools/list failed: {reply}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

/// The mesh still serves a brand-new client normally: a fresh session on the connection and one
/// on the management server each list their tools.
async fn assert_still_serves(mesh: &TestMesh) {
    let url = mesh.endpoint("everything");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;
    let names = tool_names(&url, &mesh.key, &sid).await;
    assert!(names.iter().any(|n| n == "echo"), "{names:?}");
    let url = management(mesh);
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;
    let names = tool_names(&url, &mesh.key, &sid).await;
    assert!(names.iter().any(|n| n == "COLLECTION_CONNECTIONS_LIST"), "{names:?}");
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_401_with_a_bearer_challenge() {
    let mesh = mesh_with_everything().await;
    let sid = raw::open_session(&mesh.endpoint("everything"), &mesh.key, VERSION).await;
    for url in endpoints(&mesh) {
        let init = raw::initialize_body(1, VERSION);
        let mut none = post_headers(&mesh.key, None);
        none.remove("authorization");
        let mut basic = post_headers(&mesh.key, None);
        basic.insert("authorization", HeaderValue::from_str(&format!("Basic {}", mesh.key)).unwrap());
        let cases = [
            ("no Authorization", none),
            ("wrong key", post_headers("mesh_not-a-real-key", None)),
            ("right key, wrong scheme", basic),
        ];
        for (what, headers) in cases {
            let (status, h, body) = raw::post(&url, headers, init.clone()).await;
            assert_eq!(status, 401, "{what} on {url}: {body}");
            let challenge = h
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{what}: 401 without WWW-Authenticate"));
            assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
            let (code, message) = refusal(&body);
            assert_eq!(code, -31020, "{what}: {message}");
            assert!(message.contains("authentication required"), "{message}");
        }
    }
    // A session id is never a credential: the live session, without a key, is still 401.
    let mut headers = post_headers(&mesh.key, Some(&sid));
    headers.remove("authorization");
    let (status, h, body) = raw::post(&mesh.endpoint("everything"), headers.clone(), tools_list(2)).await;
    assert_eq!(status, 401, "{body}");
    assert!(h.contains_key("www-authenticate"));
    headers.insert("accept", HeaderValue::from_static("text/event-stream"));
    let (status, _, _) = send(Method::GET, &mesh.endpoint("everything"), headers, "").await;
    assert_eq!(status, 401, "GET without a key");
    assert_eq!(mesh.session_count(), 1, "refused requests create no session");
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn malformed_json_is_400_parse_error_with_null_id() {
    let mesh = mesh_with_everything().await;
    for url in endpoints(&mesh) {
        let cases = [
            (r#"{"jsonrpc": "2.0", "id": 1, "method": "initialize""#, -32700, "invalid JSON"),
            ("not json at all", -32700, "invalid JSON"),
            ("", -32700, "invalid JSON"),
            // Valid JSON that is not a JSON-RPC message is an invalid request, not a parse error.
            (r#""a string""#, -32600, "expected a JSON object"),
            (r#"{"jsonrpc": "1.0", "id": 1, "method": "ping"}"#, -32600, "jsonrpc"),
        ];
        for (body, want_code, want_text) in cases {
            let (status, _, reply) = raw::post(&url, post_headers(&mesh.key, None), body).await;
            assert_eq!(status, 400, "{body:?} on {url}: {reply}");
            let (code, message) = refusal(&reply);
            assert_eq!(code, want_code, "{body:?}: {message}");
            assert!(message.contains(want_text), "{body:?}: {message}");
        }
    }
    assert_eq!(mesh.session_count(), 0);
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn a_batch_is_400_invalid_request_saying_batches_are_not_supported() {
    let mesh = mesh_with_everything().await;
    let sid = raw::open_session(&mesh.endpoint("everything"), &mesh.key, VERSION).await;
    let batch = format!("[{},{}]", tools_list(2), request(3, "ping", json!({})));
    let init_batch = format!("[{}]", raw::initialize_body(1, VERSION));
    for (url, session) in [
        (mesh.endpoint("everything"), Some(sid.as_str())),
        (mesh.endpoint("everything"), None),
        (management(&mesh), None),
    ] {
        for body in [&batch, &init_batch] {
            let (status, _, reply) = raw::post(&url, post_headers(&mesh.key, session), body.clone()).await;
            assert_eq!(status, 400, "{url}: {reply}");
            let (code, message) = refusal(&reply);
            assert_eq!(code, -32600, "{message}");
            assert!(message.contains("batches"), "{message}");
        }
    }
    assert_eq!(mesh.session_count(), 1);
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn wrong_accept_is_406_and_wrong_content_type_is_415() {
    let mesh = mesh_with_everything().await;
    for url in endpoints(&mesh) {
        // (reqwest sends `Accept: */*` when none is set, which the mesh rightly accepts.)
        for accept in ["application/json", "text/event-stream", "text/html", ""] {
            let mut h = post_headers(&mesh.key, None);
            h.insert("accept", HeaderValue::from_static(accept));
            let (status, _, body) = raw::post(&url, h, raw::initialize_body(1, VERSION)).await;
            assert_eq!(status, 406, "Accept: {accept} on {url}: {body}");
            let (code, message) = refusal(&body);
            assert_eq!(code, -32600);
            assert!(message.contains("application/json and text/event-stream"), "{message}");
        }
        for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
            let mut h = post_headers(&mesh.key, None);
            match ct {
                Some(ct) => h.insert("content-type", HeaderValue::from_static(ct)),
                None => h.remove("content-type"),
            };
            let (status, _, body) = raw::post(&url, h, raw::initialize_body(1, VERSION)).await;
            assert_eq!(status, 415, "Content-Type {ct:?} on {url}: {body}");
            let (code, message) = refusal(&body);
            assert_eq!(code, -32600);
            assert!(message.contains("application/json"), "{message}");
        }
    }
    // A parameter on the media type is fine.
    let mut h = post_headers(&mesh.key, None);
    h.insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
    let (status, _, body) = raw::post(&management(&mesh), h, raw::initialize_body(1, VERSION)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mesh.session_count(), 1, "only the well-formed initialize opened a session");
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn a_request_without_a_session_is_400_and_an_unknown_session_is_404() {
    let mesh = mesh_with_everything().await;
    for url in endpoints(&mesh) {
        let (status, _, body) = raw::post(&url, post_headers(&mesh.key, None), tools_list(2)).await;
        assert_eq!(status, 400, "{url}: {body}");
        let (code, message) = refusal(&body);
        assert_eq!(code, -32600);
        assert!(message.contains("Mcp-Session-Id"), "{message}");

        let unknown = "0123456789abcdefghijABCDEFGHIJxy";
        let (status, _, body) = raw::post(&url, post_headers(&mesh.key, Some(unknown)), tools_list(3)).await;
        assert_eq!(status, 404, "{url}: {body}");
        let (code, message) = refusal(&body);
        assert_eq!(code, -31021);
        assert!(message.contains("session not found"), "{message}");
    }
    // A live session belongs to its endpoint: the connection's session is unknown at /mcp.
    let sid = raw::open_session(&mesh.endpoint("everything"), &mesh.key, VERSION).await;
    let (status, _, body) = raw::post(&management(&mesh), post_headers(&mesh.key, Some(&sid)), tools_list(4)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(refusal(&body).0, -31021);
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn an_unknown_or_disabled_connection_is_404_route_not_found() {
    let mesh = mesh_with_everything().await;
    mesh.add_connection(json!({
        "slug": "switched-off", "command": upstreams::everything_bin(), "args": ["stdio"],
        "status": "disabled",
    }))
    .await;
    for slug in ["nope", "switched-off"] {
        let (status, _, body) =
            raw::post(&mesh.endpoint(slug), post_headers(&mesh.key, None), raw::initialize_body(7, VERSION)).await;
        assert_eq!(status, 404, "{slug}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON error body");
        assert_eq!(v["id"], 7, "the initialize's id is echoed: {v}");
        assert_eq!(v["error"]["code"], -31022, "{v}");
        // Same words whether the connection exists (disabled) or not: nothing is revealed.
        assert_eq!(v["error"]["message"], format!("no connection named '{slug}'"), "{v}");
    }
    assert_eq!(mesh.session_count(), 0);
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

/// Plain `/mcp/{connection}` paths skip the router (`ingress/front.rs`); escaped ones go through
/// it. Both must name the same connection: a session opened on one path works on the other.
#[tokio::test]
async fn a_percent_escaped_connection_name_is_the_same_connection() {
    let mesh = mesh_with_everything().await;
    let escaped = format!("{}/mcp/every%74hing", mesh.url);
    let sid = raw::open_session(&escaped, &mesh.key, VERSION).await;
    let names = tool_names(&mesh.endpoint("everything"), &mesh.key, &sid).await;
    assert!(names.iter().any(|n| n == "echo"), "{names:?}");
    let sid = raw::open_session(&mesh.endpoint("everything"), &mesh.key, VERSION).await;
    assert!(tool_names(&escaped, &mesh.key, &sid).await.iter().any(|n| n == "echo"));

    let (status, _, body) = raw::post(
        &format!("{}/mcp/nope%21", mesh.url),
        post_headers(&mesh.key, None),
        raw::initialize_body(7, VERSION),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON error body");
    assert_eq!(v["error"]["message"], "no connection named 'nope!'", "decoded by the router: {v}");
    mesh.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_413_and_one_just_under_the_limit_passes() {
    let mesh = mesh_with_everything().await;
    let url = mesh.endpoint("everything");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;
    let echo = |id: i64, len: usize| {
        let envelope = request(id, "tools/call", json!({"name": "echo", "arguments": {"message": ""}}));
        let message = "x".repeat(len - envelope.len());
        request(id, "tools/call", json!({"name": "echo", "arguments": {"message": message}}))
    };

    let big = echo(2, 5 * 1024 * 1024);
    assert_eq!(big.len(), 5 * 1024 * 1024);
    // With Content-Length (refused before reading) and chunked (refused while reading).
    let (status, _, body) = raw::post(&url, post_headers(&mesh.key, Some(&sid)), big.clone()).await;
    assert_eq!(status, 413, "{}", &body[..body.len().min(300)]);
    let (code, message) = refusal(&body);
    assert_eq!(code, -32600);
    assert_eq!(message, format!("request body exceeds the limit of {LIMIT} bytes"));
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.into_bytes().chunks(256 * 1024).map(|c| Ok(c.to_vec())).collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let (status, h, body) = raw::post(&url, post_headers(&mesh.key, Some(&sid)), streamed).await;
    assert_eq!(status, 413, "{h:?} {}", &body[..body.len().min(300)]);
    assert_eq!(refusal(&body).0, -32600);

    // The limit is the limit, not less: a body of exactly LIMIT bytes is relayed.
    let (status, _, body) = raw::post(&url, post_headers(&mesh.key, Some(&sid)), echo(3, LIMIT)).await;
    assert_eq!(status, 200);
    let reply = raw::messages(&body).into_iter().find(|m| m["id"] == 3).expect("echo reply");
    let text = reply["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("Echo: xxxx") && text.len() > LIMIT - 200, "{}", &text[..text.len().min(200)]);
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn an_unsupported_protocol_version_header_is_400() {
    let mesh = mesh_with_everything().await;
    for url in endpoints(&mesh) {
        let sid = raw::open_session(&url, &mesh.key, VERSION).await;
        let mut h = post_headers(&mesh.key, Some(&sid));
        h.insert("mcp-protocol-version", HeaderValue::from_static("1999-01-01"));
        let (status, _, body) = raw::post(&url, h, tools_list(2)).await;
        assert_eq!(status, 400, "{url}: {body}");
        let (code, message) = refusal(&body);
        assert_eq!(code, -32600);
        assert_eq!(message, "unsupported MCP-Protocol-Version '1999-01-01'");
        // The session itself is unharmed; an absent header means 2025-03-26 and is accepted.
        let mut h = post_headers(&mesh.key, Some(&sid));
        h.remove("mcp-protocol-version");
        let (status, _, body) = raw::post(&url, h, tools_list(3)).await;
        assert_eq!(status, 200, "{body}");
        assert!(!tool_names(&url, &mesh.key, &sid).await.is_empty());
    }
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn a_session_is_bound_to_its_key_and_ends_on_delete() {
    let mesh = mesh_with_everything().await;
    let url = mesh.endpoint("everything");
    let other = mesh.extra_key("owner").await;
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;
    assert_eq!(mesh.session_count(), 1);

    // Another key — same organisation, same role — cannot use, listen to, or end the session.
    let (status, _, body) = raw::post(&url, post_headers(&other, Some(&sid)), tools_list(2)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(refusal(&body), (-31021, "session not found: it may have ended; initialize a new one".into()));
    let mut listen = post_headers(&other, Some(&sid));
    listen.insert("accept", HeaderValue::from_static("text/event-stream"));
    let (status, _, _) = send(Method::GET, &url, listen, "").await;
    assert_eq!(status, 404, "GET with another key");
    let (status, _, body) = send(Method::DELETE, &url, post_headers(&other, Some(&sid)), "").await;
    assert_eq!(status, 404, "DELETE with another key: {body}");
    assert_eq!(mesh.session_count(), 1, "the foreign DELETE ended nothing");

    // Its owner still can; the other key works fine on its own session.
    assert!(tool_names(&url, &mesh.key, &sid).await.iter().any(|n| n == "echo"));
    let theirs = raw::open_session(&url, &other, VERSION).await;
    assert!(!tool_names(&url, &other, &theirs).await.is_empty());

    let (status, _, body) = send(Method::DELETE, &url, post_headers(&mesh.key, Some(&sid)), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mesh.session_count(), 1, "only the other key's session is left");
    let (status, _, body) = raw::post(&url, post_headers(&mesh.key, Some(&sid)), tools_list(3)).await;
    assert_eq!(status, 404, "an ended session is not found: {body}");
    assert_eq!(refusal(&body).0, -31021);
    let (status, _, _) = send(Method::DELETE, &url, post_headers(&mesh.key, Some(&sid)), "").await;
    assert_eq!(status, 404, "a second DELETE");
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_or_host_is_403_before_authentication() {
    let mesh = mesh_with_everything().await;
    for url in endpoints(&mesh) {
        let mut evil_origin = post_headers(&mesh.key, None);
        evil_origin.insert("origin", HeaderValue::from_static("https://evil.example"));
        let mut evil_host = post_headers(&mesh.key, None);
        evil_host.insert("host", HeaderValue::from_static("evil.example"));
        let mut evil_host_port = post_headers(&mesh.key, None);
        evil_host_port.insert("host", HeaderValue::from_static("evil.example:80"));
        // Without any key: the rebinding check runs first, so it is still 403, not 401.
        let mut anonymous = post_headers(&mesh.key, None);
        anonymous.remove("authorization");
        anonymous.insert("origin", HeaderValue::from_static("https://evil.example"));
        let cases = [
            (evil_origin, "Origin 'https://evil.example' is not allowed"),
            (evil_host, "Host 'evil.example' is not allowed"),
            (evil_host_port, "Host 'evil.example' is not allowed"),
            (anonymous, "Origin 'https://evil.example' is not allowed"),
        ];
        for (headers, want) in cases {
            let (status, _, body) = raw::post(&url, headers, raw::initialize_body(1, VERSION)).await;
            assert_eq!(status, 403, "{url}: {body}");
            let (code, message) = refusal(&body);
            assert_eq!(code, -31020);
            assert_eq!(message, format!("forbidden: {want}"));
        }
    }
    assert_eq!(mesh.session_count(), 0);
    // A loopback origin and a loopback Host name are what local tools send: allowed.
    let mut local = post_headers(&mesh.key, None);
    local.insert("origin", HeaderValue::from_static("http://localhost:6274"));
    local.insert("host", HeaderValue::from_static("localhost"));
    let (status, _, body) = raw::post(&management(&mesh), local, raw::initialize_body(1, VERSION)).await;
    assert_eq!(status, 200, "{body}");
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn a_notification_is_202_and_get_opens_an_event_stream() {
    let mesh = mesh_with_everything().await;
    for url in endpoints(&mesh) {
        let sid = raw::open_session(&url, &mesh.key, VERSION).await;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}).to_string();
        let (status, _, body) = raw::post(&url, post_headers(&mesh.key, Some(&sid)), note).await;
        assert_eq!(status, 202);
        assert_eq!(body, "", "202 has no body");
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                            "params": {"requestId": 12345, "reason": "never sent"}})
        .to_string();
        let (status, _, body) = raw::post(&url, post_headers(&mesh.key, Some(&sid)), cancel).await;
        assert_eq!((status, body.as_str()), (202, ""), "cancelling an unknown request");

        let mut h = post_headers(&mesh.key, Some(&sid));
        h.insert("accept", HeaderValue::from_static("text/event-stream"));
        let resp = reqwest::Client::new().get(&url).headers(h.clone()).send().await.expect("GET reaches the mesh");
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok());
        assert_eq!(ct, Some("text/event-stream"));
        drop(resp); // headers only: the stream stays open until the client goes away

        // GET must accept an event stream.
        h.insert("accept", HeaderValue::from_static("application/json"));
        let (status, _, body) = send(Method::GET, &url, h, "").await;
        assert_eq!(status, 406, "{body}");
        // Dropping the stream did not end the session.
        assert!(!tool_names(&url, &mesh.key, &sid).await.is_empty());
    }
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn put_is_405_with_allow() {
    let mesh = mesh_with_everything().await;
    let sid = raw::open_session(&mesh.endpoint("everything"), &mesh.key, VERSION).await;
    for url in endpoints(&mesh) {
        for method in [Method::PUT, Method::PATCH] {
            let (status, h, _) = send(method.clone(), &url, post_headers(&mesh.key, Some(&sid)), tools_list(2)).await;
            assert_eq!(status, 405, "{method} {url}");
            assert_eq!(h.get("allow").and_then(|v| v.to_str().ok()), Some("GET, POST, DELETE"));
        }
    }
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn health_needs_no_auth_and_unknown_routes_are_404() {
    let mesh = mesh_with_everything().await;
    let http = reqwest::Client::new();
    for (path, status_field) in [("/health", "ok"), ("/health/live", "ok"), ("/health/ready", "ready")] {
        let resp = http.get(format!("{}{path}", mesh.url)).send().await.expect("health answers");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let v: Value = resp.json().await.expect("health is JSON");
        assert_eq!(v["status"], status_field, "{path}: {v}");
    }
    for path in ["/nope", "/mcp/everything/extra", "/healthz"] {
        let resp = http
            .get(format!("{}{path}", mesh.url))
            .header("authorization", format!("Bearer {}", mesh.key))
            .send()
            .await
            .expect("the mesh answers");
        assert_eq!(resp.status().as_u16(), 404, "{path}");
        let v: Value = resp.json().await.expect("404 is JSON");
        assert_eq!(v, json!({"error": "not found"}), "{path}");
    }
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}
