//! MCP 2026-07-28 (stateless) at the mesh's routes: the revision's own checks (envelope, mirrored
//! headers, removed methods, HTTP statuses), pooled upstream sessions, and the official Python
//! SDK's stateless client through the mesh to a server of the session-based revision — sampling,
//! elicitation and roots bridged as input-required results.

use mesh_testkit::{deps, raw, upstreams, TestMesh};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use std::time::Duration;

const V: &str = "2026-07-28";

fn headers(key: &str, method: &str, name: Option<&str>) -> HeaderMap {
    raw::stateless_headers(key, method, name)
}

fn request(id: i64, method: &str, mut params: Value) -> String {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": {"sampling": {}, "elicitation": {}, "roots": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "stateless-test", "version": "1"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

async fn post(url: &str, h: HeaderMap, body: String) -> (u16, Value) {
    let (status, _, text) = raw::post(url, h, body).await;
    let msgs = raw::messages(&text);
    (status, msgs.last().cloned().unwrap_or(Value::Null))
}

#[tokio::test]
async fn issue18_stateless_requests_are_checked_and_answered_in_the_new_form() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let url = mesh.endpoint("everything");
    let key = mesh.key.clone();

    // server/discover: synthesised from the upstream's handshake.
    let (status, body) =
        post(&url, headers(&key, "server/discover", None), request(1, "server/discover", json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let r = &body["result"];
    assert_eq!(r["resultType"], "complete");
    assert_eq!(r["supportedVersions"], json!([V]));
    assert!(r["capabilities"]["tools"].is_object(), "{r}");
    assert!(r["capabilities"].get("tasks").is_none(), "the earlier revision's tasks are not offered: {r}");
    assert_eq!((r["ttlMs"].as_u64(), r["cacheScope"].as_str()), (Some(0), Some("private")));
    assert!(r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"].is_string(), "{r}");

    // A list gains resultType and the caching hints; a call round-trips.
    let (status, body) = post(&url, headers(&key, "tools/list", None), request(2, "tools/list", json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], 2);
    assert_eq!(body["result"]["resultType"], "complete");
    assert_eq!(body["result"]["cacheScope"], "private");
    assert!(body["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()));
    let call = request(3, "tools/call", json!({"name": "echo", "arguments": {"message": "hi stateless"}}));
    let (status, body) = post(&url, headers(&key, "tools/call", Some("echo")), call.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["resultType"], "complete");
    assert!(body["result"]["content"][0]["text"].as_str().is_some_and(|t| t.contains("hi stateless")), "{body}");
    // Every request of the key shares one upstream session (one stdio child, one handshake).
    let sessions = mesh.session_count();
    for id in 10..15 {
        let call = request(id, "tools/call", json!({"name": "echo", "arguments": {"message": "again"}}));
        assert_eq!(post(&url, headers(&key, "tools/call", Some("echo")), call).await.0, 200);
    }
    assert_eq!(mesh.session_count(), sessions, "no session per call");
    assert_eq!(sessions, 1);

    // The revision's refusals, each with its HTTP status and the request id.
    let refusal = |status: u16, body: &Value, code: i64, id: i64| {
        assert_eq!(
            (status, body["error"]["code"].as_i64(), body["id"].as_i64()),
            (400, Some(code), Some(id)),
            "{body}"
        );
    };
    let (s, b) = post(&url, headers(&key, "tools/call", Some("other")), call.clone()).await;
    refusal(s, &b, -32020, 3);
    let (s, b) = post(&url, headers(&key, "tools/list", None), call.clone()).await;
    refusal(s, &b, -32020, 3);
    let mut no_method = headers(&key, "tools/call", Some("echo"));
    no_method.remove("mcp-method");
    let (s, b) = post(&url, no_method, call.clone()).await;
    refusal(s, &b, -32020, 3);
    let mut twice = headers(&key, "tools/call", Some("echo"));
    twice.append("mcp-method", HeaderValue::from_static("tools/call"));
    let (s, b) = post(&url, twice, call.clone()).await;
    refusal(s, &b, -32020, 3);
    // Trimmed and base64-decoded before comparing.
    let mut encoded = headers(&key, "tools/call", None);
    encoded.insert("mcp-name", HeaderValue::from_static(" =?base64?ZWNobw==?= "));
    assert_eq!(post(&url, encoded, call.clone()).await.0, 200);
    let bare = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {}}).to_string();
    let (s, b) = post(&url, headers(&key, "tools/list", None), bare).await;
    refusal(s, &b, -32602, 4);
    let mut future = headers(&key, "tools/list", None);
    future.insert("mcp-protocol-version", HeaderValue::from_static("v999.0.0"));
    let body = request(5, "tools/list", json!({})).replace(V, "v999.0.0");
    let (s, b) = post(&url, future, body).await;
    refusal(s, &b, -32022, 5);
    assert_eq!(b["error"]["data"], json!({"supported": [V], "requested": "v999.0.0"}));
    let (s, b) =
        post(&url, headers(&key, "tools/list", None), request(6, "tools/list", json!({})).replacen(V, "2027-01-01", 1))
            .await;
    refusal(s, &b, -32020, 6);
    for removed in ["ping", "initialize", "logging/setLevel", "resources/subscribe", "unknown/method"] {
        let (s, b) =
            post(&url, headers(&key, removed, None), request(7, removed, json!({"uri": "x", "level": "info"}))).await;
        assert_eq!((s, b["error"]["code"].as_i64()), (404, Some(-32601)), "{removed}: {b}");
    }
    // Bad bodies get the transport's answers on this path too, and the mesh keeps serving.
    let (s, _, text) = raw::post(&url, headers(&key, "tools/list", None), "{not json").await;
    assert_eq!((s, raw::messages(&text)[0]["error"]["code"].as_i64()), (400, Some(-32700)), "{text}");
    let huge =
        format!(r#"{{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{{"pad":"{}"}}}}"#, "x".repeat(5 << 20));
    assert_eq!(raw::post(&url, headers(&key, "tools/list", None), huge).await.0, 413);
    let batch = format!("[{}]", request(9, "tools/list", json!({})));
    assert_eq!(raw::post(&url, headers(&key, "tools/list", None), batch).await.0, 400);
    assert_eq!(post(&url, headers(&key, "tools/list", None), request(9, "tools/list", json!({}))).await.0, 200);
    // No GET stream and no session to delete in this revision.
    let client = reqwest::Client::new();
    for m in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = client.request(m, &url).headers(headers(&key, "x", None)).send().await.expect("send");
        assert_eq!(r.status(), 405);
    }
    // Authentication comes first, as on the session-based path; and a pooled session's id is
    // no session a client could name.
    assert_eq!(post(&url, headers("mesh_wrong", "tools/list", None), request(8, "tools/list", json!({}))).await.0, 401);
    mesh.stop().await;
}

/// A pooled session's handshake carries a stateless client's tasks extension, and its calls the
/// client's `Mcp-Param-*` headers, under keys of the mesh's own, for a link to a stateless
/// upstream; a session-based upstream is sent what a session's client would send: the real
/// client and capabilities, no mesh keys.
#[tokio::test]
async fn issue18_a_session_based_upstream_hears_no_mesh_keys_in_a_pooled_handshake() {
    let mesh = TestMesh::start().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/many_tools_server.py");
    let args = json!([script, "--tools", "1", "--handshake-tool"]);
    mesh.add_connection(json!({"slug": "plain", "command": deps::python(), "args": args})).await;
    let url = mesh.endpoint("plain");
    let mut call: Value = serde_json::from_str(&request(1, "tools/call", json!({"name": "handshake"}))).expect("json");
    call["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
        json!({"sampling": {}, "extensions": {"io.modelcontextprotocol/tasks": {}}});
    call["params"]["_meta"]["trace"] = json!("kept");
    let mut h = headers(&mesh.key, "tools/call", Some("handshake"));
    h.insert("mcp-param-region", HeaderValue::from_static("eu"));
    let (status, body) = post(&url, h, call.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let text = body["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("a text result: {body}"));
    let seen: Value = serde_json::from_str(text).expect("the upstream's record is JSON");
    let init = &seen["initialize"];
    assert_eq!(init["clientInfo"]["name"], "stateless-test", "{seen}");
    assert_eq!(init["capabilities"], json!({"sampling": {}}), "stateless-only members stay behind: {seen}");
    assert!(init.get("_meta").is_none(), "no mesh key reaches a session-based upstream's handshake: {seen}");
    // The call's own `_meta` goes on without the envelope and without the mesh's header carrier.
    assert_eq!(seen["meta"], json!({"trace": "kept"}), "{seen}");
    mesh.stop().await;
}

/// A stateless client can be asked only during a request it can retry with answers
/// (`tools/call`, `prompts/get`, `resources/read`): a question a session-based upstream puts
/// while it answers `tools/list` is refused to the upstream (`-32601`), and the list comes back
/// complete, instead of an input-required result for a request that cannot be retried.
#[tokio::test]
async fn issue18_a_question_during_a_list_is_refused_to_the_upstream_not_put_to_the_client() {
    let mesh = TestMesh::start().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/many_tools_server.py");
    let args = json!([script, "--tools", "1", "--handshake-tool", "--ask-on-list"]);
    mesh.add_connection(json!({"slug": "asks", "command": deps::python(), "args": args})).await;
    let url = mesh.endpoint("asks");
    let (status, listed) =
        post(&url, headers(&mesh.key, "tools/list", None), request(1, "tools/list", json!({}))).await;
    assert_eq!((status, &listed["result"]["resultType"]), (200, &json!("complete")), "{listed}");
    assert!(listed["result"]["tools"].to_string().contains("handshake"), "{listed}");
    let call = request(2, "tools/call", json!({"name": "handshake"}));
    let (status, body) = post(&url, headers(&mesh.key, "tools/call", Some("handshake")), call).await;
    assert_eq!(status, 200, "{body}");
    let text = body["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("a text result: {body}"));
    let seen: Value = serde_json::from_str(text).expect("the upstream's record is JSON");
    assert_eq!(seen["asked"][0]["code"], -32601, "the upstream's question was refused: {seen}");
    mesh.stop().await;
}

/// A session-based upstream cannot make the mesh offer the stateless revision's tasks by writing
/// the mark the mesh's own links set into its `initialize` result: the mark counts only from a
/// link of that revision, so `server/discover` offers no extension.
#[tokio::test]
async fn issue18_a_session_based_upstream_cannot_claim_the_tasks_extension() {
    let mesh = TestMesh::start().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/many_tools_server.py");
    let args = json!([script, "--tools", "1", "--forge-stateless-mark"]);
    mesh.add_connection(json!({"slug": "forger", "command": deps::python(), "args": args})).await;
    let url = mesh.endpoint("forger");
    let mut discover: Value = serde_json::from_str(&request(1, "server/discover", json!({}))).expect("json");
    discover["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]["extensions"] =
        json!({"io.modelcontextprotocol/tasks": {}});
    let (status, body) = post(&url, headers(&mesh.key, "server/discover", None), discover.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["result"]["capabilities"].get("extensions").is_none(), "no extension offered: {body}");
    mesh.stop().await;
}

#[tokio::test]
async fn issue18_input_required_results_bridge_server_requests_and_refuse_altered_state() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let url = mesh.endpoint("everything");
    let key = mesh.key.clone();
    let ask = json!({"name": "trigger-elicitation-request", "arguments": {}});
    let h = || headers(&key, "tools/call", Some("trigger-elicitation-request"));
    let (status, body) = post(&url, h(), request(1, "tools/call", ask.clone())).await;
    assert_eq!(status, 200, "{body}");
    let r = &body["result"];
    assert_eq!(r["resultType"], "input_required", "{body}");
    let requests = r["inputRequests"].as_object().expect("inputRequests");
    assert_eq!(requests.len(), 1);
    let (k, input) = requests.iter().next().expect("one");
    assert_eq!(input["method"], "elicitation/create");
    assert!(input.get("jsonrpc").is_none() && input.get("id").is_none());
    let state = r["requestState"].as_str().expect("state").to_string();

    // Altered state, another key, other arguments: refused; the parked call is untouched.
    let answer = json!({k: {"action": "accept", "content": {"name": "Ada"}}});
    let mut retry = ask.clone();
    retry["inputResponses"] = answer.clone();
    retry["requestState"] = json!(format!("{state}-TAMPERED"));
    let (s, b) = post(&url, h(), request(2, "tools/call", retry.clone())).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(-32602)), "{b}");
    let viewer = mesh.extra_key("member").await;
    retry["requestState"] = json!(state);
    let (s, b) = post(
        &url,
        headers(&viewer, "tools/call", Some("trigger-elicitation-request")),
        request(3, "tools/call", retry.clone()),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(-32602)), "another key: {b}");
    let mut other = retry.clone();
    other["arguments"] = json!({"x": 1});
    let (s, b) = post(&url, h(), request(4, "tools/call", other)).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(-32602)), "other params: {b}");
    // Without the answer: asked again, under a new state.
    let mut unanswered = retry.clone();
    unanswered["inputResponses"] = json!({"unrelated": {}});
    let (s, b) = post(&url, h(), request(5, "tools/call", unanswered)).await;
    assert_eq!((s, b["result"]["resultType"].as_str()), (200, Some("input_required")), "{b}");
    let state2 = b["result"]["requestState"].as_str().expect("state").to_string();
    assert_ne!(state2, state);
    // The old state is spent; the new one completes the call under the retry's id.
    let (s, b) = post(&url, h(), request(6, "tools/call", retry.clone())).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(-32602)), "spent: {b}");
    retry["requestState"] = json!(state2);
    let (s, b) = post(&url, h(), request(7, "tools/call", retry)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["id"], 7);
    assert_eq!(b["result"]["resultType"], "complete", "{b}");
    assert!(b["result"]["content"].to_string().contains("Ada"), "{b}");
    mesh.stop().await;
}

#[tokio::test]
async fn issue18_python_sdk_stateless_client_through_the_mesh_to_a_session_based_server() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let url = mesh.endpoint("everything");
    let args = ["--url", url.as_str(), "--key", mesh.key.as_str()];
    deps::assert_checks_passed(
        "stateless Python client",
        &deps::run_python("stateless_client.py", &args, Duration::from_secs(240)).await,
    );
    mesh.stop().await;
}

/// `TestMesh::manage`'s structured result, asserting success.
async fn manage(mesh: &TestMesh, tool: &str, args: Value) -> Value {
    let (ok, v) = mesh.manage(&mesh.key, tool, args).await;
    assert!(ok, "{tool}: {v}");
    v
}

#[tokio::test]
async fn issue18_governance_applies_to_stateless_requests_as_to_sessions() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let url = mesh.endpoint("everything");
    let echo = |id: i64| request(id, "tools/call", json!({"name": "echo", "arguments": {"message": "governed"}}));

    // A viewer lists but does not call, on this path as on sessions.
    let viewer = mesh.extra_key("viewer").await;
    let (s, b) = post(&url, headers(&viewer, "tools/list", None), request(1, "tools/list", json!({}))).await;
    assert!(s == 200 && b["result"]["tools"].is_array(), "{b}");
    let (s, b) = post(&url, headers(&viewer, "tools/call", Some("echo")), echo(2)).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (200, Some(-31020)), "{b}");

    // A rate limit on a key: its burst passes, the rest is 429 with Retry-After and -31029.
    let created = manage(&mesh, "API_KEY_CREATE", json!({"name": "agent"})).await;
    let key = created["key"].as_str().expect("key").to_string();
    let key_id = created["item"]["id"].as_str().expect("id").to_string();
    manage(&mesh, "RATE_LIMIT_SET", json!({"scope": "key", "target": key_id, "perMinute": 1, "burst": 2})).await;
    let mut statuses = Vec::new();
    for id in 10..14 {
        let (status, h, text) = raw::post(&url, headers(&key, "tools/call", Some("echo")), echo(id)).await;
        if status == 429 {
            assert!(h.contains_key("retry-after"), "{text}");
            assert_eq!(raw::messages(&text)[0]["error"]["code"], -31029, "{text}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 429, 429]);

    // Every call is in the audit trail, with its outcome: the viewer's denial, the limited ones.
    let denied = manage(&mesh, "AUDIT_QUERY", json!({"outcome": "denied", "tool": "echo"})).await;
    assert_eq!(denied["items"].as_array().map(Vec::len), Some(1), "{denied}");
    let limited = manage(&mesh, "AUDIT_QUERY", json!({"outcome": "rate_limited", "tool": "echo"})).await;
    assert_eq!(limited["items"].as_array().map(Vec::len), Some(2), "{limited}");
    let ok = manage(&mesh, "AUDIT_QUERY", json!({"outcome": "ok", "tool": "echo"})).await;
    assert_eq!(ok["items"].as_array().map(Vec::len), Some(2), "{ok}");
    mesh.stop().await;
}

/// Two programs calling with the same key and the same capabilities are two clients: each is
/// named in the audit trail (and to the upstream) by its own `clientInfo`, never by whichever
/// happened to call first — as two sessions would be.
#[tokio::test]
async fn issue18_each_stateless_client_is_named_in_the_audit_trail_by_its_own_client_info() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let url = mesh.endpoint("everything");
    for (id, client) in [(1, "agent-a"), (2, "agent-b"), (3, "agent-a")] {
        let call = request(id, "tools/call", json!({"name": "echo", "arguments": {"message": client}}))
            .replace(r#""name":"stateless-test""#, &format!(r#""name":"{client}""#));
        assert!(call.contains(client), "{call}");
        let (status, body) = post(&url, headers(&mesh.key, "tools/call", Some("echo")), call).await;
        assert_eq!((status, &body["result"]["content"][0]["text"]), (200, &json!(format!("Echo: {client}"))), "{body}");
    }
    let rows = manage(&mesh, "AUDIT_QUERY", json!({"tool": "echo"})).await;
    let mut named: Vec<(String, String)> = rows["items"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["clientName"].as_str().unwrap_or("-").to_string(), r["arguments"].to_string()))
        .collect();
    named.sort();
    assert_eq!(named.len(), 3, "{rows}");
    for (client, arguments) in &named {
        assert!(arguments.contains(client.as_str()), "a call named by another client's info: {named:?}");
    }
    assert_eq!(named.iter().filter(|(c, _)| c == "agent-a").count(), 2, "{named:?}");
    // Both are part of what a pooled session is found by, hashed on every request: each is
    // bounded (16 KiB), and a request past the bound is refused before anything is opened.
    let big = "x".repeat(20 * 1024);
    let too_big = [
        (r#""name":"stateless-test""#.to_string(), format!(r#""name":"{big}""#), "clientInfo is too large"),
        (r#""roots":{}"#.to_string(), format!(r#""roots":{{"x":"{big}"}}"#), "clientCapabilities is too large"),
    ];
    for (from, to, why) in too_big {
        let call =
            request(9, "tools/call", json!({"name": "echo", "arguments": {"message": "big"}})).replace(&from, &to);
        assert!(call.len() > 20 * 1024, "{from}");
        let (status, body) = post(&url, headers(&mesh.key, "tools/call", Some("echo")), call).await;
        assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(-32602)), "{body}");
        assert_eq!(body["error"]["message"], why, "{body}");
    }
    mesh.stop().await;
}

#[tokio::test]
async fn issue18_a_stateless_client_that_leaves_cancels_its_call() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let url = mesh.endpoint("everything");
    // Without roots: server-everything asks for them on its own right after the handshake.
    let slow = request(
        1,
        "tools/call",
        json!({"name": "trigger-long-running-operation", "arguments": {"duration": 30, "steps": 1}}),
    )
    .replace(r#","roots":{}"#, "");
    assert!(!slow.contains("roots"), "{slow}");
    // The pooled session (and the child behind it, found by probing the command's revision) is
    // opened by a first call with the same capabilities, so the give-up below lands on a call that
    // has reached the upstream rather than on a slow machine's process start.
    let warm = request(9, "tools/call", json!({"name": "echo", "arguments": {"message": "warm"}}))
        .replace(r#","roots":{}"#, "");
    let (s, b) = post(&url, headers(&mesh.key, "tools/call", Some("echo")), warm).await;
    assert_eq!(s, 200, "{b}");
    let h = headers(&mesh.key, "tools/call", Some("trigger-long-running-operation"));
    let call = async { reqwest::Client::new().post(&url).headers(h).body(slow).send().await?.bytes().await };
    let gone = tokio::time::timeout(Duration::from_millis(1500), call).await;
    assert!(gone.is_err(), "the client gave up before the 30 s tool finished: {gone:?}");
    // In this revision, closing the stream is cancelling: the call ends as cancelled in the audit
    // trail (written when the upstream is told), long before the tool would have finished.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows =
            manage(&mesh, "AUDIT_QUERY", json!({"outcome": "cancelled", "tool": "trigger-long-running-operation"}))
                .await;
        if rows["items"].as_array().is_some_and(|i| i.len() == 1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no cancelled audit row: {rows}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The pooled session serves the next call as before.
    let echo = request(2, "tools/call", json!({"name": "echo", "arguments": {"message": "still here"}}));
    let (s, b) = post(&url, headers(&mesh.key, "tools/call", Some("echo")), echo).await;
    assert_eq!(s, 200, "{b}");
    mesh.stop().await;
}

/// A stateless client's script on a code virtual MCP: a tool the script calls asks the client
/// something, which comes back as an input-required result of `run_code`; the retry with the
/// answer lets the waiting tool call finish, and the script returns its result.
#[tokio::test]
async fn issue23_a_stateless_clients_script_is_asked_and_answered_through_input_required() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let (ok, out) = mesh
        .manage(
            &mesh.key,
            "COLLECTION_GATEWAYS_CREATE",
            json!({"slug": "code", "strategy": "code", "members": [{"connection": "everything"}]}),
        )
        .await;
    assert!(ok, "{out}");
    let url = mesh.endpoint("gateway/code");
    let script = r#"const asked = callTool("everything_trigger-elicitation-request", {}); return {asked};"#;
    let run = json!({"name": "run_code", "arguments": {"code": script}});
    let h = || headers(&mesh.key, "tools/call", Some("run_code"));
    let (status, body) = post(&url, h(), request(1, "tools/call", run.clone())).await;
    assert_eq!(status, 200, "{body}");
    let r = &body["result"];
    assert_eq!(r["resultType"], "input_required", "{body}");
    let requests = r["inputRequests"].as_object().expect("inputRequests");
    let (k, input) = requests.iter().next().expect("one question");
    assert_eq!(input["method"], "elicitation/create", "{body}");
    let mut retry = run.clone();
    retry["inputResponses"] = json!({k: {"action": "accept", "content": {"name": "Ada"}}});
    retry["requestState"] = r["requestState"].clone();
    let (status, body) = post(&url, h(), request(2, "tools/call", retry)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["resultType"], "complete", "{body}");
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert!(body["result"]["structuredContent"]["result"].to_string().contains("Ada"), "{body}");
    mesh.stop().await;
}

/// A call parked for its client's answers is checked against policy again when the answers come:
/// a tool the key may no longer call gets what an unknown tool gets, and its upstream call is
/// given up rather than completed.
#[tokio::test]
async fn issue18_a_retry_after_a_policy_change_is_refused_like_an_unknown_tool() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let url = mesh.endpoint("everything");
    const TOOL: &str = "trigger-elicitation-request";
    let allow = |names: &[&str]| {
        Value::Array(names.iter().map(|n| json!({"effect": "allow", "connection": "everything", "name": n})).collect())
    };
    manage(&mesh, "ROLE_CREATE", json!({"name": "support", "rules": allow(&["echo", TOOL])})).await;
    let added = manage(&mesh, "ORGANIZATION_MEMBER_ADD", json!({"email": "sam@example.test", "role": "support"})).await;
    let user = added["item"]["userId"].as_str().expect("user id").to_string();
    let key = manage(&mesh, "API_KEY_CREATE", json!({"name": "k", "userId": user})).await["key"]
        .as_str()
        .expect("key")
        .to_string();

    let ask = json!({"name": TOOL, "arguments": {}});
    let (status, body) =
        post(&url, headers(&key, "tools/call", Some(TOOL)), request(1, "tools/call", ask.clone())).await;
    assert_eq!((status, body["result"]["resultType"].as_str()), (200, Some("input_required")), "{body}");
    let (k, _) = body["result"]["inputRequests"].as_object().expect("inputRequests").iter().next().expect("one");
    let mut retry = ask.clone();
    retry["inputResponses"] = json!({k: {"action": "accept", "content": {"name": "Ada"}}});
    retry["requestState"] = body["result"]["requestState"].clone();

    // The tool leaves the role's rules; once the key's lists no longer show it, the retry comes.
    manage(&mesh, "ROLE_UPDATE", json!({"name": "support", "rules": allow(&["echo"])})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, b) = post(&url, headers(&key, "tools/list", None), request(2, "tools/list", json!({}))).await;
        assert_eq!(s, 200, "{b}");
        if !b["result"]["tools"].to_string().contains(TOOL) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the policy change never reached the key's lists: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, b) = post(&url, headers(&key, "tools/call", Some(TOOL)), request(3, "tools/call", retry)).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(-32602)), "{b}");
    assert_eq!(b["error"]["message"], format!("Unknown tool: {TOOL}"), "{b}");
    // The call's one audit row says the rules refused it, not that it was cancelled.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = manage(&mesh, "AUDIT_QUERY", json!({"tool": TOOL})).await;
        let items = rows["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            assert_eq!(items.len(), 1, "{rows}");
            assert_eq!((items[0]["outcome"].as_str(), items[0]["userId"].as_str()), (Some("denied"), Some(&*user)));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no audit row for the call: {rows}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mesh.stop().await;
}

/// A stateless request whose pooled session cannot be opened (its upstream is down) is in the
/// audit trail like any other request's end: there is no session to write it, so the ingress does.
#[tokio::test]
async fn issue18_a_request_whose_upstream_session_cannot_open_is_audited() {
    let mesh = TestMesh::start().await;
    let down = format!("http://127.0.0.1:{}/mcp", upstreams::free_port());
    mesh.add_connection(json!({"slug": "down", "url": down})).await;
    let url = mesh.endpoint("down");
    let call = request(4, "tools/call", json!({"name": "echo", "arguments": {"message": "anyone?"}}));
    let (status, body) = post(&url, headers(&mesh.key, "tools/call", Some("echo")), call).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (200, Some(-31010)), "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = manage(&mesh, "AUDIT_QUERY", json!({"outcome": "upstream_down", "tool": "echo"})).await;
        if rows["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break rows;
        }
        assert!(tokio::time::Instant::now() < deadline, "no audit row: {rows}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let row = &rows["items"][0];
    assert_eq!((row["method"].as_str(), row["route"].as_str()), (Some("tools/call"), Some("down")), "{row}");
    assert_eq!((&row["requestId"], &row["name"], &row["sessionId"]), (&json!(4), &json!("echo"), &json!("")), "{row}");
    mesh.stop().await;
}

/// A hand-written member of the stateless revision whose tools/list says `ttlMs` and does not
/// announce list changes; each list names its tool after how many lists it has answered.
fn counting_member(prefix: &'static str, ttl_ms: u64) -> String {
    counting_member_failing_after(prefix, ttl_ms, usize::MAX)
}

/// [`counting_member`] whose lists after the first `good` fail (a JSON-RPC error).
fn counting_member_failing_after(prefix: &'static str, ttl_ms: u64, good: usize) -> String {
    counting_member_then(prefix, ttl_ms, good, false)
}

/// [`counting_member`] whose lists after the first `good` fail, or are never answered (`hang`).
fn counting_member_then(prefix: &'static str, ttl_ms: u64, good: usize, hang: bool) -> String {
    let lists = std::sync::atomic::AtomicUsize::new(0);
    raw::stateless_upstream(json!({"tools": {}}), move |msg| match msg["method"].as_str().unwrap_or_default() {
        "tools/list" => {
            let n = lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n > good && hang {
                return raw::Reply::Hold;
            }
            if n > good {
                return raw::Reply::Json(200, json!({"error": {"code": -32603, "message": "lists are failing"}}));
            }
            let tool = json!({"name": format!("{prefix}{n}"), "inputSchema": {"type": "object"}});
            raw::Reply::Json(200, json!({"result": {"resultType": "complete", "tools": [tool], "ttlMs": ttl_ms}}))
        }
        _ => raw::Reply::Json(200, json!({"error": {"code": -32601, "message": "method not found"}})),
    })
}

/// A virtual MCP's merged list, for a stateless client, carries the caching hint its members
/// give: the least time any of them still has. A member whose list has gone stale by its own
/// `ttlMs` (and that does not announce changes) is asked again when the client lists; one still
/// fresh is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_virtual_mcps_caching_hints_come_from_its_members() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "steady", "url": counting_member("s", 60_000)})).await;
    mesh.add_connection(json!({"slug": "fleeting", "url": counting_member("f", 0)})).await;
    let create = |slug: &str, members: Value| json!({"slug": slug, "members": members});
    manage(&mesh, "COLLECTION_GATEWAYS_CREATE", create("one", json!([{"connection": "steady"}]))).await;
    let both = json!([{"connection": "steady"}, {"connection": "fleeting"}]);
    manage(&mesh, "COLLECTION_GATEWAYS_CREATE", create("both", both)).await;
    let list = |gateway: &'static str, id: i64| {
        let url = format!("{}/mcp/gateway/{gateway}", mesh.url);
        let key = mesh.key.clone();
        async move {
            let (status, body) =
                post(&url, headers(&key, "tools/list", None), request(id, "tools/list", json!({}))).await;
            assert_eq!(status, 200, "{body}");
            let r = body["result"].clone();
            let names: Vec<String> = r["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["name"].as_str().map(String::from))
                .collect();
            (r["ttlMs"].as_u64().unwrap_or_else(|| panic!("ttlMs: {r}")), names)
        }
    };

    // One member that keeps its list a minute: the merged list says as much (less what passed).
    let (ttl, names) = list("one", 1).await;
    assert!((50_000..=60_000).contains(&ttl), "{ttl}");
    assert!(names.len() == 1 && names[0].starts_with("steady_s"), "{names:?}");

    // With a member whose list is stale at once, the merged list is too; listing again asks
    // that member again, and not the other.
    let named = |names: &[String], prefix: &str| {
        let found: Vec<&String> = names.iter().filter(|n| n.starts_with(prefix)).collect();
        assert_eq!(found.len(), 1, "{prefix}: {names:?}");
        found[0].clone()
    };
    let (ttl, first) = list("both", 2).await;
    assert_eq!(ttl, 0, "{first:?}");
    let (ttl, again) = list("both", 3).await;
    assert_eq!(ttl, 0, "{again:?}");
    assert_eq!(named(&first, "steady_s"), named(&again, "steady_s"), "a fresh member's list is kept");
    assert_ne!(named(&first, "fleeting_f"), named(&again, "fleeting_f"), "a stale member's list is asked again");

    // A stale list that cannot be fetched again is served as it was, not dropped.
    mesh.add_connection(json!({"slug": "shaky", "url": counting_member_failing_after("k", 0, 1)})).await;
    let with_shaky = json!([{"connection": "steady"}, {"connection": "shaky"}]);
    manage(&mesh, "COLLECTION_GATEWAYS_CREATE", create("shaky", with_shaky)).await;
    let (_, first) = list("shaky", 4).await;
    let (ttl, again) = list("shaky", 5).await;
    assert_eq!((ttl, named(&again, "shaky_k")), (0, named(&first, "shaky_k")), "{again:?}");

    // A member that stops answering costs one list its deadline; the lists right after do not
    // wait on it again, and are served what was last fetched.
    let stuck = json!({"slug": "stuck", "url": counting_member_then("h", 0, 1, true), "timeoutMs": 3000});
    mesh.add_connection(stuck).await;
    manage(&mesh, "COLLECTION_GATEWAYS_CREATE", create("stuck", json!([{"connection": "stuck"}]))).await;
    let (_, first) = list("stuck", 6).await;
    let waited = std::time::Instant::now();
    let (_, again) = list("stuck", 7).await;
    assert!(waited.elapsed() >= Duration::from_secs(2), "the refetch waited for the member: {:?}", waited.elapsed());
    assert_eq!(again, first);
    let at_once = std::time::Instant::now();
    let (_, third) = list("stuck", 8).await;
    assert!(at_once.elapsed() < Duration::from_millis(1500), "not asked again at once: {:?}", at_once.elapsed());
    assert_eq!(third, first);
    mesh.stop().await;
}

/// A member whose lists are stale at once and grow: its `n`th list has `n` tools.
fn growing_member() -> String {
    let lists = std::sync::atomic::AtomicUsize::new(0);
    raw::stateless_upstream(json!({"tools": {}}), move |msg| match msg["method"].as_str().unwrap_or_default() {
        "tools/list" => {
            let n = lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let tools: Vec<Value> =
                (1..=n).map(|i| json!({"name": format!("g{n}_{i}"), "inputSchema": {"type": "object"}})).collect();
            raw::Reply::Json(200, json!({"result": {"resultType": "complete", "tools": tools, "ttlMs": 0}}))
        }
        _ => raw::Reply::Json(200, json!({"error": {"code": -32601, "message": "method not found"}})),
    })
}

/// A virtual MCP's list read page by page on a pooled session, while another caller's first page
/// merges it again with a member's new list: the later pages come from the list the first page
/// saw, so the pages add up to one list, never to parts of two; a cursor whose list is gone is
/// refused as invalid, not served from another list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_virtual_mcps_pages_come_from_the_list_their_first_page_saw() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "growing", "url": growing_member()})).await;
    mesh.add_connection(json!({"slug": "steady", "url": counting_member("s", 60_000)})).await;
    let members = json!([{"connection": "growing"}, {"connection": "steady"}]);
    manage(&mesh, "COLLECTION_GATEWAYS_CREATE", json!({"slug": "paged", "members": members, "pageSize": 1})).await;
    let url = format!("{}/mcp/gateway/paged", mesh.url);
    let page = |cursor: Option<String>| {
        let (url, key) = (url.clone(), mesh.key.clone());
        async move {
            let params = cursor.map(|c| json!({"cursor": c})).unwrap_or_else(|| json!({}));
            let (status, body) = post(&url, headers(&key, "tools/list", None), request(1, "tools/list", params)).await;
            let names: Vec<String> = body["result"]["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["name"].as_str().map(String::from))
                .collect();
            (status, names, body["result"]["nextCursor"].as_str().map(String::from), body)
        }
    };

    // The first list: one tool of each member, a page each.
    let (_, first, cursor, body) = page(None).await;
    assert_eq!(first, ["growing_g1_1"], "{body}");
    // Another caller's first page on the same pooled session: the growing member is asked again.
    let (_, other, _, body) = page(None).await;
    assert_eq!(other, ["growing_g2_1"], "{body}");
    // The first caller's later pages still read the first list.
    let (status, second, cursor, body) = page(cursor).await;
    assert_eq!((status, second.as_slice()), (200, ["steady_s1".to_string()].as_slice()), "{body}");
    assert_eq!(cursor, None, "the first list had two tools: {body}");

    // A cursor whose list is no longer kept is refused, never read against another list.
    let (_, _, mut cursor, _) = page(None).await;
    for _ in 0..4 {
        page(None).await;
    }
    let stale = cursor.take().expect("a cursor");
    let (status, names, _, body) = page(Some(stale)).await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!(-32602)), "{body}");
    assert!(names.is_empty(), "{body}");
    mesh.stop().await;
}

/// A stateless client's `Mcp-Param-*` header that disagrees with its arguments, on a pooled
/// session that has not seen the tool listed (so the ingress cannot check it): the upstream gets
/// the header made from the body, which policy and audit read, never the client's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_param_header_the_mesh_could_not_check_is_made_from_the_body() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let heard = seen.clone();
    let url = raw::stateless_upstream_seeing(json!({"tools": {}}), move |msg, head| {
        match msg["method"].as_str().unwrap_or_default() {
            "tools/list" => {
                let region = json!({"type": "string", "x-mcp-header": "Region"});
                let tool =
                    json!({"name": "where", "inputSchema": {"type": "object", "properties": {"region": region}}});
                raw::Reply::Json(200, json!({"result": {"resultType": "complete", "tools": [tool]}}))
            }
            "tools/call" => {
                let params = head.lines().filter(|l| l.starts_with("mcp-param-")).map(str::to_string);
                heard.lock().unwrap().extend(params);
                let text = json!([{"type": "text", "text": "ok"}]);
                raw::Reply::Json(200, json!({"result": {"resultType": "complete", "content": text}}))
            }
            _ => raw::Reply::Json(200, json!({"error": {"code": -32601, "message": "method not found"}})),
        }
    });
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "regions", "url": url})).await;
    let mut h = headers(&mesh.key, "tools/call", Some("where"));
    h.insert("mcp-param-region", HeaderValue::from_static("us"));
    let call = request(1, "tools/call", json!({"name": "where", "arguments": {"region": "eu"}}));
    let (status, body) = post(&mesh.endpoint("regions"), h, call).await;
    assert_eq!((status, body["result"]["resultType"].as_str()), (200, Some("complete")), "{body}");
    assert_eq!(*seen.lock().unwrap(), ["mcp-param-region: eu"], "the body's value, not the client's");
    mesh.stop().await;
}
