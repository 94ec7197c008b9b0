//! Upstreams that fail: a stdio child that dies mid-call, hangs, or writes garbage
//! (`fixtures/misbehaving_server.py`), an HTTP upstream nobody listens on, a program that does not
//! exist. Each time the client gets a prompt JSON-RPC error saying whose fault it is, the mesh
//! cleans up (cancels upstream, restarts the child), and every other client is served as before.

use mesh_testkit::raw::{self, post_headers};
use mesh_testkit::{deps, text_of, upstreams, TestMesh};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const VERSION: &str = "2025-11-25";

/// Where a fixture child reports what it saw (see the fixture's docstring).
struct Logs {
    dir: tempfile::TempDir,
}

impl Logs {
    fn new() -> Logs {
        Logs { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Every complete JSON line written so far to `name` (a line still being written is skipped).
    fn read(&self, name: &str) -> Vec<Value> {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).expect("fixture logs JSON lines"))
            .collect()
    }

    fn starts(&self) -> Vec<Value> {
        let all = self.read("calls.log");
        all.into_iter().filter(|e| e["event"] == "start").collect()
    }

    /// The upstream's id of the first call of `tool`, once the fixture has received it.
    fn call_id(&self, tool: &str) -> Option<Value> {
        self.read("calls.log").into_iter().find(|e| e["event"] == "call" && e["tool"] == tool).map(|e| e["id"].clone())
    }
}

/// A stdio connection running the misbehaving fixture in `mode`, logging to `logs`.
fn fixture_connection(slug: &str, mode: &str, timeout_ms: u64, logs: &Logs) -> Value {
    let mut c = plain_fixture(slug, mode, timeout_ms);
    c["env"] = json!({
        "CANCEL_LOG": logs.path("cancels.log"),
        "CALL_LOG": logs.path("calls.log"),
    });
    c
}

fn plain_fixture(slug: &str, mode: &str, timeout_ms: u64) -> Value {
    json!({
        "slug": slug,
        "command": deps::python(),
        "args": [upstreams::fixture("misbehaving_server.py"), mode],
        "timeoutMs": timeout_ms,
    })
}

/// A mesh with the connection under test and a well-behaved `healthy` one beside it.
async fn mesh_with(connection: Value) -> TestMesh {
    let mesh = TestMesh::start().await;
    mesh.add_connection(connection).await;
    mesh.add_connection(plain_fixture("healthy", "normal", 1000)).await;
    mesh
}

/// Posts one request on a session; returns the HTTP status, the reply to it, and how long it took.
async fn rpc(url: &str, key: &str, sid: &str, id: i64, method: &str, params: Value) -> (u16, Value, Duration) {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    let started = Instant::now();
    let (status, _, text) = raw::post(url, post_headers(key, Some(sid)), body).await;
    let took = started.elapsed();
    let reply = raw::messages(&text)
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no reply to request {id} in {text:?} (HTTP {status})"));
    (status, reply, took)
}

async fn call_tool(url: &str, key: &str, sid: &str, id: i64, tool: &str) -> (u16, Value, Duration) {
    rpc(url, key, sid, id, "tools/call", json!({"name": tool, "arguments": {}})).await
}

/// Asserts a reply is a JSON-RPC error with `code`; returns its message.
fn error_of(reply: &Value, code: i64) -> String {
    assert_eq!(reply["error"]["code"], code, "{reply}");
    reply["error"]["message"].as_str().unwrap_or_else(|| panic!("error without message: {reply}")).to_string()
}

/// Asserts `ok` answers "fine" on the session.
async fn assert_ok_works(url: &str, key: &str, sid: &str, id: i64) {
    let (status, reply, _) = call_tool(url, key, sid, id, "ok").await;
    assert_eq!(status, 200);
    assert_eq!(text_of(&reply["result"]), "fine", "{reply}");
}

/// Polls `probe` every 25 ms until it yields a value or `within` has passed.
async fn poll<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A new client on the healthy connection gets a normal tools/list.
async fn assert_still_serves(mesh: &TestMesh) {
    let url = mesh.endpoint("healthy");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;
    let (status, reply, _) = rpc(&url, &mesh.key, &sid, 50, "tools/list", json!({})).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = reply["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("tools/list failed: {reply}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["ok", "die", "hang", "garbage", "change", "same"]);
    assert_ok_works(&url, &mesh.key, &sid, 51).await;
}

#[tokio::test]
async fn a_child_that_dies_mid_call_fails_fast_and_is_restarted_under_the_same_session() {
    let logs = Logs::new();
    let mesh = mesh_with(fixture_connection("flaky", "normal", 1000, &logs)).await;
    let url = mesh.endpoint("flaky");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;
    assert_ok_works(&url, &mesh.key, &sid, 2).await;
    // Process-wide counters (other tests may add to them too): they must at least rise.
    let (failures, restarts) = (mesh_relay::stats::upstream_failures(), mesh_relay::stats::stdio_restarts());

    let (status, reply, took) = call_tool(&url, &mesh.key, &sid, 3, "die").await;
    assert_eq!(status, 200, "an upstream failure is a JSON-RPC error, not an HTTP one");
    let message = error_of(&reply, -31010);
    assert!(message.contains("exited") && message.contains("exit status: 3"), "{message}");
    // Reported on exit, not at the 1 s timeout.
    assert!(took < Duration::from_millis(800), "took {took:?}");

    // The mesh restarts the child (backoff from 250 ms) and replays the handshake — the fixture
    // refuses tools/call before initialize — so the same session works again.
    let mut attempts = 0;
    poll("ok after the restart", Duration::from_secs(10), || {
        attempts += 1;
        let (url, key, sid) = (url.clone(), mesh.key.clone(), sid.clone());
        async move {
            let (status, reply, _) = call_tool(&url, &key, &sid, 100 + attempts, "ok").await;
            assert_eq!(status, 200);
            if reply.get("error").is_some() {
                // While it restarts: the same "unavailable", never a timeout or a protocol error.
                let message = error_of(&reply, -31010);
                assert!(message.contains("restarting"), "{message}");
                return None;
            }
            assert_eq!(text_of(&reply["result"]), "fine", "{reply}");
            Some(())
        }
    })
    .await;
    let starts = logs.starts();
    assert_eq!(starts.len(), 2, "one restart: {starts:?}");
    assert!(mesh_relay::stats::upstream_failures() > failures, "the exit is counted (metrics)");
    assert!(mesh_relay::stats::stdio_restarts() > restarts, "the restart is counted (metrics)");
    assert_ne!(starts[0]["pid"], starts[1]["pid"]);
    assert_eq!(mesh.session_count(), 1, "the session survived the crash");
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn a_hanging_call_times_out_and_is_cancelled_upstream() {
    let logs = Logs::new();
    let mesh = mesh_with(fixture_connection("stuck", "normal", 1000, &logs)).await;
    let url = mesh.endpoint("stuck");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;

    let (status, reply, took) = call_tool(&url, &mesh.key, &sid, 7, "hang").await;
    assert_eq!(status, 200);
    let message = error_of(&reply, -31011);
    assert_eq!(message, "upstream did not answer within 1s");
    assert!(took >= Duration::from_millis(950) && took < Duration::from_secs(5), "took {took:?}");

    // The upstream is told, with its own id for the request (not the client's 7).
    let up_id = logs.call_id("hang").expect("the fixture received the call");
    let cancel = poll("notifications/cancelled upstream", Duration::from_secs(5), || {
        let found = logs.read("cancels.log").into_iter().next();
        async move { found }
    })
    .await;
    assert_eq!(cancel["requestId"], up_id, "{cancel}");
    assert_ne!(up_id, json!(7), "ids are remapped upstream");
    assert_eq!(cancel["reason"], "timed out in MCP Mesh");

    assert_ok_works(&url, &mesh.key, &sid, 8).await;
    assert_eq!(logs.read("cancels.log").len(), 1, "one cancellation, for one timeout");
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn garbage_on_stdout_is_named_in_the_timeout_error_and_the_session_survives() {
    let logs = Logs::new();
    let mesh = mesh_with(fixture_connection("noisy", "normal", 1000, &logs)).await;
    let url = mesh.endpoint("noisy");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;

    let (status, reply, took) = call_tool(&url, &mesh.key, &sid, 2, "garbage").await;
    assert_eq!(status, 200);
    let message = error_of(&reply, -31011);
    assert!(message.starts_with("upstream did not answer within 1s"), "{message}");
    assert!(message.contains("1 non-JSON-RPC line(s) to stdout"), "the error says why: {message}");
    // The garbage itself never reaches the client.
    assert!(!reply.to_string().contains("this is not json"), "{reply}");
    assert!(took >= Duration::from_millis(950), "took {took:?}");

    assert_ok_works(&url, &mesh.key, &sid, 3).await;
    assert_eq!(logs.starts().len(), 1, "garbage is not a crash: no restart");
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn an_http_upstream_that_is_down_fails_initialize_without_a_session() {
    let port = upstreams::free_port();
    let mesh = mesh_with(json!({
        "slug": "gone", "url": format!("http://127.0.0.1:{port}/mcp"), "timeoutMs": 1000,
    }))
    .await;
    let started = Instant::now();
    let (status, h, body) =
        raw::post(&mesh.endpoint("gone"), post_headers(&mesh.key, None), raw::initialize_body(1, VERSION)).await;
    assert_eq!(status, 200, "{body}");
    assert!(!h.contains_key("mcp-session-id"), "no session id is handed out");
    let reply: Value = serde_json::from_str(&body).expect("a JSON-RPC error");
    assert_eq!(reply["id"], 1, "{reply}");
    let message = error_of(&reply, -31010);
    assert!(message.contains("gone: cannot connect"), "{message}");
    assert!(!message.contains(&port.to_string()), "no URL leaks: {message}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(mesh.session_count(), 0);
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn a_stdio_program_that_does_not_exist_fails_initialize_without_a_session() {
    let mesh = mesh_with(json!({
        "slug": "missing", "command": "/nonexistent/mesh-test-no-such-program", "timeoutMs": 1000,
    }))
    .await;
    let (status, h, body) =
        raw::post(&mesh.endpoint("missing"), post_headers(&mesh.key, None), raw::initialize_body(1, VERSION)).await;
    assert_eq!(status, 200, "{body}");
    assert!(!h.contains_key("mcp-session-id"));
    let reply: Value = serde_json::from_str(&body).expect("a JSON-RPC error");
    let message = error_of(&reply, -31010);
    assert!(message.contains("cannot start '/nonexistent/mesh-test-no-such-program'"), "{message}");
    assert_eq!(mesh.session_count(), 0);
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn an_upstream_that_refuses_initialize_has_its_error_relayed_unchanged() {
    let logs = Logs::new();
    let mesh = mesh_with(fixture_connection("grumpy", "refuse-init", 1000, &logs)).await;
    let (status, h, body) =
        raw::post(&mesh.endpoint("grumpy"), post_headers(&mesh.key, None), raw::initialize_body(1, VERSION)).await;
    assert_eq!(status, 200, "{body}");
    assert!(!h.contains_key("mcp-session-id"));
    let reply: Value = serde_json::from_str(&body).expect("a JSON-RPC error");
    assert_eq!(reply["id"], 1, "{reply}");
    assert_eq!(error_of(&reply, -32603), "misbehaving server refuses to initialize");
    assert_eq!(mesh.session_count(), 0);
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn one_hanging_call_holds_up_nobody_else() {
    let logs = Logs::new();
    // A longer timeout than the other tests: the hang must outlast everything checked beside it.
    let mesh = mesh_with(fixture_connection("stuck", "normal", 3000, &logs)).await;
    let url = mesh.endpoint("stuck");
    let alice = raw::open_session(&url, &mesh.key, VERSION).await;
    let bob = raw::open_session(&url, &mesh.key, VERSION).await;

    let hung = tokio::spawn({
        let (url, key, sid) = (url.clone(), mesh.key.clone(), alice.clone());
        async move { call_tool(&url, &key, &sid, 2, "hang").await }
    });
    poll("the hang reaches the upstream", Duration::from_secs(5), || {
        let seen = logs.call_id("hang");
        async move { seen }
    })
    .await;

    // Another client on another session, and the same client on its own session, are served.
    let (_, _, bob_took) = call_tool(&url, &mesh.key, &bob, 3, "ok").await;
    assert_ok_works(&url, &mesh.key, &bob, 4).await;
    assert_ok_works(&url, &mesh.key, &alice, 5).await;
    assert!(bob_took < Duration::from_secs(1), "took {bob_took:?}");
    assert!(!hung.is_finished(), "everything above happened while the hang was pending");

    let (status, reply, took) = hung.await.expect("the hanging call's task");
    assert_eq!(status, 200);
    assert_eq!(error_of(&reply, -31011), "upstream did not answer within 3s");
    assert!(took >= Duration::from_millis(2950), "took {took:?}");
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

// Failures inside the mesh during the first initialize keep their own codes (regression: both
// were once reported as -31012 "the upstream refused initialize").

#[tokio::test]
async fn a_child_that_exits_during_initialize_is_unavailable_not_a_refusal() {
    let logs = Logs::new();
    let mesh = mesh_with(fixture_connection("crashy", "exit-on-init", 1000, &logs)).await;
    let (status, h, body) =
        raw::post(&mesh.endpoint("crashy"), post_headers(&mesh.key, None), raw::initialize_body(1, VERSION)).await;
    assert_eq!(status, 200, "{body}");
    assert!(!h.contains_key("mcp-session-id"));
    let reply: Value = serde_json::from_str(&body).expect("a JSON-RPC error");
    let message = error_of(&reply, -31010);
    assert!(message.contains("exited (exit status: 3)"), "{message}");
    assert!(!message.contains("refused"), "the upstream refused nothing: {message}");
    assert_eq!(mesh.session_count(), 0);
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn an_initialize_that_is_never_answered_times_out_with_32011() {
    let logs = Logs::new();
    let mesh = mesh_with(fixture_connection("mute", "hang-on-init", 1000, &logs)).await;
    let (status, h, body) =
        raw::post(&mesh.endpoint("mute"), post_headers(&mesh.key, None), raw::initialize_body(1, VERSION)).await;
    assert_eq!(status, 200, "{body}");
    assert!(!h.contains_key("mcp-session-id"));
    let reply: Value = serde_json::from_str(&body).expect("a JSON-RPC error");
    assert_eq!(error_of(&reply, -31011), "upstream did not answer within 1s");
    assert_eq!(mesh.session_count(), 0);
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

#[tokio::test]
async fn a_client_cancel_reaches_the_upstream_with_its_own_id() {
    let logs = Logs::new();
    let mesh = mesh_with(fixture_connection("stuck", "normal", 30_000, &logs)).await;
    let url = mesh.endpoint("stuck");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;
    let (key, url2, sid2) = (mesh.key.clone(), url.clone(), sid.clone());
    let pending = tokio::spawn(async move {
        let body =
            json!({"jsonrpc": "2.0", "id": 43, "method": "tools/call", "params": {"name": "hang", "arguments": {}}});
        let started = Instant::now();
        let (status, _, text) = raw::post(&url2, post_headers(&key, Some(&sid2)), body.to_string()).await;
        (status, text, started.elapsed())
    });
    let up_id = poll("the hang call at the upstream", Duration::from_secs(10), || {
        let found = logs.call_id("hang");
        async move { found }
    })
    .await;
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 43, "reason": "user pressed stop"}});
    let (status, _, _) = raw::post(&url, raw::post_headers(&mesh.key, Some(&sid)), cancel.to_string()).await;
    assert_eq!(status, 202);
    let seen = poll("notifications/cancelled upstream", Duration::from_secs(5), || {
        let found = logs.read("cancels.log").into_iter().next();
        async move { found }
    })
    .await;
    assert_eq!(seen["requestId"], up_id, "mapped to the upstream's id: {seen}");
    assert_eq!(seen["reason"], "user pressed stop", "the client's reason passes through");
    // The cancelled POST ends without a reply, long before the 30 s timeout.
    let (status, text, took) =
        tokio::time::timeout(Duration::from_secs(10), pending).await.expect("ends").expect("join");
    assert_eq!(status, 200);
    assert!(raw::messages(&text).iter().all(|m| m["id"] != 43), "a cancelled request gets no reply: {text}");
    assert!(took < Duration::from_secs(10));
    assert_ok_works(&url, &mesh.key, &sid, 44).await;
    mesh.stop().await;
}

/// A Streamable HTTP upstream on loopback, written out by hand so that it can stall where no SDK
/// server would: `tools/call` of `silent` is read and never answered; of `half` gets a head and
/// one byte of its body, then nothing. Everything else gets a prompt answer. Records every
/// notification it receives.
struct Stalling {
    url: String,
    notes: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    calls: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Stalling {
    fn start() -> Stalling {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (n, c) = (notes.clone(), calls.clone());
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { return };
                let (n, c) = (n.clone(), c.clone());
                std::thread::spawn(move || Stalling::serve(sock, &n, &c));
            }
        });
        Stalling { url, notes, calls }
    }

    /// Serves one connection until the mesh closes it.
    fn serve(
        mut sock: std::net::TcpStream,
        notes: &std::sync::Mutex<Vec<Value>>,
        calls: &std::sync::Mutex<Vec<Value>>,
    ) {
        use std::io::Write;
        while let Some((method, body)) = raw::read_request(&mut sock) {
            let answer = match method.as_str() {
                "GET" => "HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n".to_string(),
                "DELETE" => "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_string(),
                _ => {
                    let msg: Value = serde_json::from_slice(&body).expect("JSON-RPC");
                    let result = match msg["method"].as_str().unwrap_or_default() {
                        "initialize" => {
                            json!({"protocolVersion": VERSION, "capabilities": {"tools": {}}, "serverInfo": {"name": "stalling", "version": "1"}})
                        }
                        "tools/call" => {
                            calls.lock().unwrap().push(msg.clone());
                            match msg["params"]["name"].as_str() {
                                Some("silent") => continue,
                                Some("half") => {
                                    let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{");
                                    continue;
                                }
                                _ => json!({"content": [{"type": "text", "text": "fine"}]}),
                            }
                        }
                        _ if msg.get("id").is_none() => {
                            notes.lock().unwrap().push(msg);
                            let _ = sock.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
                            continue;
                        }
                        _ => json!({}),
                    };
                    let reply = json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}).to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: s1\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    )
                }
            };
            if sock.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }
}

#[tokio::test]
async fn an_http_upstream_that_never_answers_a_post_times_out_and_is_told() {
    let upstream = Stalling::start();
    let mesh = mesh_with(json!({"slug": "stalling", "url": upstream.url, "timeoutMs": 1000})).await;
    let url = mesh.endpoint("stalling");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;

    for (id, tool) in [(2, "silent"), (3, "half")] {
        let call = call_tool(&url, &mesh.key, &sid, id, tool);
        let (status, reply, took) =
            tokio::time::timeout(Duration::from_secs(10), call).await.unwrap_or_else(|_| panic!("{tool}: no answer"));
        assert_eq!(status, 200);
        assert_eq!(error_of(&reply, -31011), "upstream did not answer within 1s", "{tool}");
        assert!(took >= Duration::from_millis(950) && took < Duration::from_secs(5), "{tool} took {took:?}");
        // The upstream is told, with its own id for the request.
        let up_id = upstream.calls.lock().unwrap().last().map(|c| c["id"].clone()).expect("the call arrived");
        let cancel = poll("notifications/cancelled upstream", Duration::from_secs(5), || {
            let notes = upstream.notes.lock().unwrap();
            let found =
                notes.iter().find(|n| n["method"] == "notifications/cancelled" && n["params"]["requestId"] == up_id);
            let found = found.cloned();
            async move { found }
        })
        .await;
        assert_eq!(cancel["params"]["reason"], "timed out in MCP Mesh");
    }
    // The stalled connections were dropped, not pooled: the next call is answered at once.
    let (status, reply, _) = call_tool(&url, &mesh.key, &sid, 4, "ok").await;
    assert_eq!(status, 200);
    assert_eq!(text_of(&reply["result"]), "fine", "{reply}");
    assert_still_serves(&mesh).await;
    mesh.stop().await;
}

/// A hand-written HTTP upstream of the stateless revision (2026-07-28) whose one tool answers
/// `input_required` with a `requestState` of `state_bytes` bytes.
fn greedy_stateless_upstream(state_bytes: usize) -> String {
    raw::stateless_upstream(json!({"tools": {}}), move |msg| match msg["method"].as_str().unwrap_or_default() {
        "tools/list" => raw::Reply::Json(
            200,
            json!({"result": {"resultType": "complete", "tools": [{"name": "greedy", "inputSchema": {"type": "object"}}]}}),
        ),
        "tools/call" => raw::Reply::Json(
            200,
            json!({"result": {"resultType": "input_required",
                "inputRequests": {"who": {"method": "elicitation/create", "params": {
                    "mode": "form", "message": "Who are you?",
                    "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}}},
                "requestState": "s".repeat(state_bytes)}}),
        ),
        _ => raw::Reply::Json(200, json!({"error": {"code": -32601, "message": "method not found"}})),
    })
}

/// An upstream of the stateless revision whose input-required result carries a `requestState`
/// larger than the link keeps (1 MiB): the call fails at once with the upstream's fault named,
/// rather than the client being asked and the state held while it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_upstream_handing_over_a_huge_request_state_fails_the_call() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "greedy", "url": greedy_stateless_upstream(2 << 20)})).await;
    let url = mesh.endpoint("greedy");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": VERSION,
        "capabilities": {"elicitation": {"form": {}}}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, headers, body) = raw::post(&url, post_headers(&mesh.key, None), init.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let sid = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).expect("session").to_string();
    let call =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "greedy", "arguments": {}}});
    let answered = raw::post(&url, post_headers(&mesh.key, Some(&sid)), call.to_string());
    let (status, _, body) = tokio::time::timeout(Duration::from_secs(20), answered)
        .await
        .expect("answered at once, not after asking the client");
    assert_eq!(status, 200, "{body}");
    let reply = raw::messages(&body).into_iter().find(|m| m["id"] == 2).unwrap_or(Value::Null);
    assert_eq!(reply["error"]["code"], mesh_protocol::codes::UPSTREAM_PROTOCOL, "{body}");
    assert!(reply["error"]["message"].as_str().is_some_and(|m| m.contains("exceeds")), "{reply}");
    assert!(!body.contains("elicitation/create"), "the client was not asked: {body}");
    mesh.stop().await;
}

/// A session on a hand-written stateless upstream (the `connection`), for a client that answers
/// elicitations; the mesh, the session's endpoint and its id.
async fn bridged_session(connection: Value) -> (TestMesh, String, String) {
    let mesh = TestMesh::start().await;
    mesh.add_connection(connection.clone()).await;
    let endpoint = mesh.endpoint(connection["slug"].as_str().expect("slug"));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": VERSION,
        "capabilities": {"elicitation": {"form": {}}}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, headers, body) = raw::post(&endpoint, post_headers(&mesh.key, None), init.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let sid = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).expect("session").to_string();
    (mesh, endpoint, sid)
}

/// A `tools/call` of `x` (id 2) on the bridged session `sid`, answered within `secs` (`what`
/// says why it must be): its reply, and the whole body it came in (HTTP 200).
async fn call_within(mesh: &TestMesh, endpoint: &str, sid: &str, secs: u64, what: &str) -> (Value, String) {
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "x", "arguments": {}}});
    let answered = raw::post(endpoint, post_headers(&mesh.key, Some(sid)), call.to_string());
    let (status, _, body) = tokio::time::timeout(Duration::from_secs(secs), answered).await.expect(what);
    assert_eq!(status, 200, "{body}");
    let reply = raw::messages(&body).into_iter().find(|m| m["id"] == 2).unwrap_or(Value::Null);
    (reply, body)
}

/// A stateless upstream's error that carries no id of its own (`"id": null`, the usual shape for
/// a request it could not read) answers the request it was the reply to: the client gets it at
/// once, not a timeout after the call's whole deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_upstream_error_without_an_id_reaches_its_call() {
    let url = raw::stateless_upstream(json!({"tools": {}}), |msg| match msg["method"].as_str().unwrap_or_default() {
        "tools/call" => raw::Reply::Verbatim(
            400,
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32020, "message": "Mcp-Name is required"}})
                .to_string(),
        ),
        _ => raw::Reply::Json(200, json!({"error": {"code": -32601, "message": "method not found"}})),
    });
    let (mesh, endpoint, sid) = bridged_session(json!({"slug": "nullid", "url": url})).await;
    let (reply, body) = call_within(&mesh, &endpoint, &sid, 10, "answered at once, not timed out").await;
    assert_eq!(reply["error"]["code"], -32020, "the upstream's own error: {body}");
    mesh.stop().await;
}

/// An upstream that answers `input_required` however often it is answered: the client is asked
/// ten rounds of questions, whose answers are each sent, and then the call fails naming the
/// upstream's fault. An eleventh round, whose answers could never be sent, is not asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_upstream_that_never_stops_asking_is_asked_ten_rounds_at_most() {
    use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
    let (mesh, endpoint, _) = bridged_session(json!({"slug": "greedy", "url": greedy_stateless_upstream(16)})).await;
    let behaviour = ClientBehaviour { elicitation_accept: Some(json!({"name": "Ada"})), ..Default::default() };
    let client = TestClient::connect_http(&endpoint, &mesh.key, behaviour).await.expect("connected");
    let failed = client.call_tool("greedy", json!({})).await;
    let why = format!("{failed:?}");
    assert!(why.contains("more than 10 times"), "{why}");
    assert_eq!(client.elicitations_seen(), 10, "asked ten rounds, each answered and sent");
    client.close().await.expect("closed");
    mesh.stop().await;
}

/// A stateless upstream whose answer to a call is a response stream without end: the call fails
/// naming the bound (256 MiB in all, as for a session-based upstream's request stream) and the
/// stream is closed, instead of the request being held for as long as the upstream streams
/// (progress would keep its deadline alive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_upstreams_endless_response_stream_is_cut_off() {
    let url = raw::stateless_upstream(json!({"tools": {}}), |msg| match msg["method"].as_str().unwrap_or_default() {
        "tools/call" => raw::Reply::Flood(1 << 20),
        _ => raw::Reply::Json(200, json!({"error": {"code": -32601, "message": "method not found"}})),
    });
    // A deadline far beyond the test's: only the bound can end the call in time.
    let (mesh, endpoint, sid) = bridged_session(json!({"slug": "flood", "url": url, "timeoutMs": 300_000})).await;
    let (reply, _) = call_within(&mesh, &endpoint, &sid, 120, "cut off, not held to the deadline").await;
    let why = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("longer than 268435456 bytes"), "{reply}");
    mesh.stop().await;
}

/// An upstream asks two questions in one round; the client refuses one and leaves the other
/// unanswered. The call fails at once with the refusal and the other question is withdrawn,
/// rather than the call waiting (up to ten minutes) for an answer its outcome no longer needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_question_fails_the_call_without_waiting_for_the_rest_of_its_round() {
    let url = raw::stateless_upstream(json!({"tools": {}}), |msg| match msg["method"].as_str().unwrap_or_default() {
        "tools/call" => {
            let ask = |m: &str| {
                json!({"method": "elicitation/create", "params": {"mode": "form", "message": m,
                "requestedSchema": {"type": "object", "properties": {"x": {"type": "string"}}}}})
            };
            raw::Reply::Json(
                200,
                json!({"result": {"resultType": "input_required", "requestState": "s",
                    "inputRequests": {"first": ask("first?"), "second": ask("second?")}}}),
            )
        }
        _ => raw::Reply::Json(200, json!({"error": {"code": -32601, "message": "method not found"}})),
    });
    let (mesh, endpoint, sid) = bridged_session(json!({"slug": "two", "url": url})).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "x", "arguments": {}}});
    let resp = reqwest::Client::new()
        .post(&endpoint)
        .headers(post_headers(&mesh.key, Some(&sid)))
        .body(call.to_string())
        .send()
        .await
        .expect("POST");
    let mut events = raw::Events::new(resp);
    let mut asked = Vec::new();
    while asked.len() < 2 {
        let (_, msg) = events.next().await.expect("both questions");
        if msg["method"] == "elicitation/create" {
            asked.push(msg);
        }
    }
    let (refused, left) = (&asked[0], &asked[1]);
    let no = json!({"jsonrpc": "2.0", "id": refused["id"], "error": {"code": -32603, "message": "not now"}});
    let (status, _, body) = raw::post(&endpoint, post_headers(&mesh.key, Some(&sid)), no.to_string()).await;
    assert_eq!(status, 202, "{body}");
    let (mut withdrawn, mut reply) = (false, Value::Null);
    while let Some((_, msg)) = events.next().await {
        if msg["method"] == "notifications/cancelled" && msg["params"]["requestId"] == left["id"] {
            withdrawn = true;
        }
        if msg["id"] == 2 {
            reply = msg;
            break;
        }
    }
    assert!(reply["error"]["message"].as_str().is_some_and(|m| m.contains("not now")), "{reply}");
    assert!(withdrawn, "the unanswered question is withdrawn before the call ends");
    mesh.stop().await;
}
