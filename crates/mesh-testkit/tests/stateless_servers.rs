//! A real server of the stateless revision (2026-07-28) behind the mesh: `py/stateless_server.py`,
//! built with the official Python SDK (`mcp` 2.3.0), whose elicitation and sampling are
//! input-required results (`resultType: "input_required"`, `inputRequests`, `requestState`).
//!
//! The SDK's Streamable HTTP server is dual — it also accepts 2025-11-25 sessions — and has no
//! switch to refuse them, so the script's `--stateless-only` gate refuses what the SDK would hand
//! to its session-based transport. Against that form a session-based client's `initialize` fails
//! at the upstream and the mesh must bridge; against the dual form the mesh speaks each client's
//! revision to it.
//!
//! Clients: the Python SDK's (`py/stateless_server_client.py`, stateless and legacy), the
//! TypeScript SDK v2's (`js/stateless_server_client.mjs`, both), rmcp (session-based), and raw
//! HTTP for the wire itself.

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{deps, raw, text_of, TestMesh};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

const V: &str = "2026-07-28";
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

/// `py/stateless_server.py`, running until dropped (killed then; and it exits by itself when its
/// stdin, held here, closes).
struct PyServer {
    url: String,
    _child: Child,
    _stdin: ChildStdin,
    stderr: tempfile::NamedTempFile,
}

impl PyServer {
    /// Starts the server on a port of the OS's choosing and waits for its `READY <url>` line.
    async fn start(stateless_only: bool) -> PyServer {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/stateless_server.py");
        let stderr = tempfile::NamedTempFile::new().expect("temp file");
        let mut cmd = Command::new(deps::python());
        cmd.arg(&script);
        if stateless_only {
            cmd.arg("--stateless-only");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("reopen"))
            .kill_on_drop(true)
            .spawn()
            .expect("python starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let read = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(url) = line.strip_prefix("READY ") {
                    return Some(url.to_string());
                }
            }
            None
        })
        .await;
        let read_err = || std::fs::read_to_string(stderr.path()).unwrap_or_default();
        let url = match read {
            Ok(Some(url)) => url,
            Ok(None) => panic!("stateless_server.py exited before READY: {}", read_err()),
            Err(_) => panic!("stateless_server.py not READY within 30 s: {}", read_err()),
        };
        PyServer { url, _child: child, _stdin: stdin, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }
}

/// A mesh with one HTTP connection, `py`, to `server`.
async fn mesh_in_front_of(server: &PyServer) -> TestMesh {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "py", "url": server.url})).await;
    mesh
}

fn headers(key: &str, method: &str, name: Option<&str>) -> HeaderMap {
    raw::stateless_headers(key, method, name)
}

fn request(id: i64, method: &str, mut params: Value) -> String {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": {"sampling": {}, "elicitation": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "stateless-servers-test", "version": "1"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

async fn post(url: &str, h: HeaderMap, body: String) -> (u16, Value) {
    let (status, _, text) = raw::post(url, h, body).await;
    (status, raw::messages(&text).last().cloned().unwrap_or(Value::Null))
}

/// The one input request of an input-required result: (its key, the request).
fn only_input_request(result: &Value) -> (String, Value) {
    assert_eq!(result["resultType"], "input_required", "{result}");
    let requests = result["inputRequests"].as_object().unwrap_or_else(|| panic!("inputRequests: {result}"));
    assert_eq!(requests.len(), 1, "{result}");
    let (k, v) = requests.iter().next().expect("one");
    (k.clone(), v.clone())
}

/// The stateless wire through the mesh, checked by hand: what the Python SDK server asks arrives
/// as it was asked, and the retry with the answers and the state completes the call — one round
/// for `ask_name`, two for `ask_name_then_model`.
#[tokio::test]
async fn issue18_python_sdk_stateless_server_input_required_results_through_the_mesh_on_the_wire() {
    let server = PyServer::start(true).await;
    let mesh = mesh_in_front_of(&server).await;
    let url = mesh.endpoint("py");
    let key = mesh.key.clone();

    let (s, b) = post(&url, headers(&key, "server/discover", None), request(1, "server/discover", json!({}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["result"]["supportedVersions"], json!([V]), "{b}");
    assert!(b["result"]["capabilities"]["tools"].is_object(), "{b}");
    let (s, b) = post(&url, headers(&key, "tools/list", None), request(2, "tools/list", json!({}))).await;
    assert_eq!(s, 200, "{b}");
    let mut names: Vec<&str> =
        b["result"]["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "ask_model", "ask_name", "ask_name_then_model", "count"], "{b}");

    let add = request(3, "tools/call", json!({"name": "add", "arguments": {"a": 2, "b": 3}}));
    let (s, b) = post(&url, headers(&key, "tools/call", Some("add")), add).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["result"]["resultType"], "complete", "{b}");
    assert_eq!(text_of(&b["result"]), "5", "{b}");
    assert_eq!(b["result"]["structuredContent"], json!({"result": 5}), "{b}");

    // One round: the elicitation, as the server put it; the answer under the same key.
    let ask = json!({"name": "ask_name", "arguments": {}});
    let h = || headers(&key, "tools/call", Some("ask_name"));
    let (s, b) = post(&url, h(), request(4, "tools/call", ask.clone())).await;
    assert_eq!(s, 200, "{b}");
    let (k, q) = only_input_request(&b["result"]);
    // The key is the server's own (the SDK names it after the resolver), kept by the mesh.
    assert_eq!(k, "__main__:who_is_asking", "{b}");
    assert_eq!(q["method"], "elicitation/create", "{q}");
    assert_eq!(q["params"]["message"], "What is your name?", "{q}");
    assert_eq!(q["params"]["requestedSchema"]["properties"]["name"]["type"], "string", "{q}");
    let state = b["result"]["requestState"].as_str().expect("requestState").to_string();
    let mut retry = ask.clone();
    retry["inputResponses"] = json!({k: {"action": "accept", "content": {"name": "Ada"}}});
    retry["requestState"] = json!(state);
    let (s, b) = post(&url, h(), request(5, "tools/call", retry)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!((b["id"].as_i64(), b["result"]["resultType"].as_str()), (Some(5), Some("complete")), "{b}");
    assert_eq!(text_of(&b["result"]), "Hello, Ada", "{b}");

    // Two rounds: the name, then sampling on it, each answered by a retry carrying the last state.
    let ask = json!({"name": "ask_name_then_model", "arguments": {}});
    let h = || headers(&key, "tools/call", Some("ask_name_then_model"));
    let (s, b) = post(&url, h(), request(6, "tools/call", ask.clone())).await;
    assert_eq!(s, 200, "{b}");
    let (k1, q1) = only_input_request(&b["result"]);
    assert_eq!(q1["method"], "elicitation/create", "{q1}");
    let mut retry = ask.clone();
    retry["inputResponses"] = json!({&k1: {"action": "accept", "content": {"name": "Lin"}}});
    retry["requestState"] = b["result"]["requestState"].clone();
    let (s, b) = post(&url, h(), request(7, "tools/call", retry.clone())).await;
    assert_eq!(s, 200, "{b}");
    let (k2, q2) = only_input_request(&b["result"]);
    assert_eq!(q2["method"], "sampling/createMessage", "{q2}");
    assert_eq!(q2["params"]["messages"][0]["content"]["text"], "Write a one-line greeting for Lin.", "{q2}");
    let reply = json!({"role": "assistant", "content": {"type": "text", "text": "Hi Lin!"}, "model": "m"});
    retry["inputResponses"] = json!({&k2: reply});
    retry["requestState"] = b["result"]["requestState"].clone();
    let (s, b) = post(&url, h(), request(8, "tools/call", retry)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["result"]["resultType"], "complete", "{b}");
    assert_eq!(text_of(&b["result"]), "Lin: Hi Lin!", "{b}");

    // A state nobody minted is refused, and with the revision's error and HTTP status.
    let mut forged = ask.clone();
    forged["inputResponses"] = json!({&k1: {"action": "accept", "content": {"name": "Eve"}}});
    forged["requestState"] = json!("v1.forged");
    let (s, b) = post(&url, h(), request(9, "tools/call", forged)).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(-32602)), "{b}\n{}", server.stderr());
    mesh.stop().await;
}

/// The Python SDK's stateless client through the mesh to the Python SDK's stateless server: the
/// same revision on both sides; elicitation, sampling (one and two rounds) and progress.
#[tokio::test]
async fn issue18_python_sdk_stateless_client_through_the_mesh_to_a_python_sdk_stateless_server() {
    let server = PyServer::start(true).await;
    let mesh = mesh_in_front_of(&server).await;
    let url = mesh.endpoint("py");
    let args = ["--url", url.as_str(), "--key", mesh.key.as_str(), "--mode", "auto"];
    let run = deps::run_python("stateless_server_client.py", &args, SCRIPT_LIMIT).await;
    deps::assert_checks_passed(&format!("Python stateless client\nserver: {}", server.stderr()), &run);
    mesh.stop().await;
}

/// Session-based (2025-11-25) clients through the mesh to the stateless-only server: the upstream
/// refuses `initialize`, so the mesh answers it from `server/discover` and turns each
/// input-required result into server-to-client requests on the client's session, retrying with
/// the answers. The Python SDK's legacy client, then rmcp.
#[tokio::test]
async fn issue18_session_based_clients_through_the_mesh_bridge_to_a_python_sdk_stateless_only_server() {
    let server = PyServer::start(true).await;
    let mesh = mesh_in_front_of(&server).await;
    let url = mesh.endpoint("py");

    // Without the mesh, the server refuses the handshake: the bridge is what makes this work.
    let (s, b) = post(&server.url, raw::post_headers("unused", None), raw::initialize_body(1, "2025-11-25")).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(-32022)), "{b}");

    let args = ["--url", url.as_str(), "--key", mesh.key.as_str(), "--mode", "legacy"];
    let run = deps::run_python("stateless_server_client.py", &args, SCRIPT_LIMIT).await;
    deps::assert_checks_passed(&format!("Python legacy client\nserver: {}", server.stderr()), &run);

    let behaviour = ClientBehaviour {
        sampling_reply: Some("rmcp model reply".into()),
        elicitation_accept: Some(json!({"name": "Ferris"})),
        roots: Vec::new(),
        url_elicitations: None,
    };
    let c = TestClient::connect_http(&url, &mesh.key, behaviour).await.expect("rmcp session through the mesh");
    let info = c.server_info();
    assert_eq!(info["protocolVersion"], "2025-11-25", "{info}");
    assert_eq!(info["serverInfo"]["name"], "mesh-stateless-py", "{info}");
    let mut names = c.list_tool_names().await.expect("tools/list");
    names.sort();
    assert_eq!(names, ["add", "ask_model", "ask_name", "ask_name_then_model", "count"]);
    let r = c.call_tool("add", json!({"a": 1, "b": 2})).await.expect("add");
    assert_eq!((text_of(&r).as_str(), &r["structuredContent"]), ("3", &json!({"result": 3})), "{r}");
    let r = c.call_tool("ask_name", json!({})).await.expect("ask_name");
    assert_eq!(text_of(&r), "Hello, Ferris", "{r}");
    assert_eq!(c.elicitations_seen(), 1);
    let r = c.call_tool("ask_model", json!({"prompt": "Say hi"})).await.expect("ask_model");
    assert_eq!(text_of(&r), "The model said: rmcp model reply", "{r}");
    assert_eq!(c.sampling_requests_seen(), 1);
    let r = c.call_tool("ask_name_then_model", json!({})).await.expect("ask_name_then_model");
    assert_eq!(text_of(&r), "Ferris: rmcp model reply", "{r}");
    assert_eq!((c.elicitations_seen(), c.sampling_requests_seen()), (2, 2));
    let (r, progress) = c.call_tool_with_progress("count", json!({"steps": 3})).await.expect("count");
    assert_eq!(text_of(&r), "counted to 3", "{r}");
    assert_eq!(progress, 3, "progress notifications relayed to the session");
    c.close().await.expect("close");
    mesh.stop().await;
}

/// The TypeScript SDK v2's client, stateless and session-based, through the mesh to the
/// stateless-only Python SDK server.
#[tokio::test]
async fn issue18_typescript_sdk_clients_through_the_mesh_to_a_python_sdk_stateless_server() {
    let server = PyServer::start(true).await;
    let mesh = mesh_in_front_of(&server).await;
    let url = mesh.endpoint("py");
    for mode in ["auto", "legacy"] {
        let args = ["--url", url.as_str(), "--key", mesh.key.as_str(), "--mode", mode];
        let run = deps::run_node("stateless_server_client.mjs", &args, SCRIPT_LIMIT).await;
        deps::assert_checks_passed(&format!("TypeScript client, mode {mode}\nserver: {}", server.stderr()), &run);
    }
    mesh.stop().await;
}

/// The SDK's server as it ships (dual: 2026-07-28 requests and 2025-11-25 sessions on one
/// endpoint): the Python SDK client in both revisions through the mesh.
#[tokio::test]
async fn issue18_python_sdk_clients_through_the_mesh_to_the_python_sdk_dual_server() {
    let server = PyServer::start(false).await;
    let mesh = mesh_in_front_of(&server).await;
    let url = mesh.endpoint("py");
    for mode in ["auto", "legacy"] {
        let args = ["--url", url.as_str(), "--key", mesh.key.as_str(), "--mode", mode];
        let run = deps::run_python("stateless_server_client.py", &args, SCRIPT_LIMIT).await;
        deps::assert_checks_passed(&format!("Python client, mode {mode}\nserver: {}", server.stderr()), &run);
    }
    mesh.stop().await;
}
