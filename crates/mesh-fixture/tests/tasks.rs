//! The tasks extension (MCP 2026-07-28, SEP-2663) through the mesh to the fixture over
//! Streamable HTTP and stdio: offered to stateless clients only, a task reachable only by the key
//! that created it at the endpoint where it did, and the extension's gate kept. A stdio child is
//! spoken to in the stateless revision when it speaks it, and in the session-based one otherwise.

mod common;

use common::{bounded, fixture_http};
use mesh_testkit::{raw, TestMesh};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

const V: &str = "2026-07-28";
const TASKS: &str = "io.modelcontextprotocol/tasks";

fn headers(key: &str, method: &str, name: Option<&str>) -> HeaderMap {
    raw::stateless_headers(key, method, name)
}

/// A stateless request, declaring the tasks extension or not.
fn request(method: &str, mut params: Value, with_tasks: bool) -> String {
    let caps = if with_tasks { json!({"extensions": {TASKS: {}}}) } else { json!({}) };
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": caps,
    });
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string()
}

/// POSTs one stateless request; its status and last message.
async fn ask(url: &str, key: &str, method: &str, name: Option<&str>, params: Value, with_tasks: bool) -> (u16, Value) {
    let body = request(method, params, with_tasks);
    let (status, _, text) = bounded(method, raw::post(url, headers(key, method, name), body)).await;
    (status, raw::messages(&text).last().cloned().unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_tasks_are_relayed_to_a_stateless_upstream_and_kept_to_their_creator() {
    let (mut fixture, fixture_url) = fixture_http("dual").await;
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "fixture", "url": fixture_url})).await;
    let url = mesh.endpoint("fixture");
    let (owner, other) = (mesh.key.clone(), mesh.extra_key("member").await);

    // Offered in server/discover to stateless clients; never in a session-based handshake.
    let (_, discover) = ask(&url, &owner, "server/discover", None, json!({}), true).await;
    assert!(discover["result"]["capabilities"]["extensions"][TASKS].is_object(), "{discover}");
    let (_, _, text) = raw::post(&url, raw::post_headers(&owner, None), raw::initialize_body(1, "2025-11-25")).await;
    let init = raw::messages(&text).pop().expect("initialize result");
    assert!(init["result"]["capabilities"].get("extensions").is_none(), "{init}");

    // A task-supporting tool creates a task for a request that declares the extension.
    let slow = json!({"name": "slow_compute", "arguments": {"seconds": 30, "label": "mesh"}});
    let (status, created) = ask(&url, &owner, "tools/call", Some("slow_compute"), slow.clone(), true).await;
    assert_eq!((status, created["result"]["resultType"].as_str()), (200, Some("task")), "{created}");
    let task = created["result"]["taskId"].as_str().expect("taskId").to_string();
    // The client holds the mesh's handle, never the upstream's id.
    assert!(task.starts_with("mt-") && task.len() == 35, "{task}");
    let by_id = json!({"taskId": task});

    // Another key of the same organisation at the same endpoint: as if the task did not exist.
    for method in ["tasks/get", "tasks/cancel"] {
        let (status, refused) = ask(&url, &other, method, Some(&task), by_id.clone(), true).await;
        assert_eq!((status, refused["error"]["code"].as_i64()), (400, Some(-32602)), "{method}: {refused}");
    }
    // The creator, without declaring the extension: the extension's own gate.
    let (status, gated) = ask(&url, &owner, "tasks/get", Some(&task), by_id.clone(), false).await;
    assert_eq!((status, gated["error"]["code"].as_i64()), (400, Some(-32021)), "{gated}");
    // A name header that disagrees with the task is refused before anything is forwarded.
    let (status, mismatch) = ask(&url, &owner, "tasks/get", Some("another-task"), by_id.clone(), true).await;
    assert_eq!((status, mismatch["error"]["code"].as_i64()), (400, Some(-32020)), "{mismatch}");

    // The creator reaches it: still working, then cancelled (the other key's cancel did nothing).
    let (_, got) = ask(&url, &owner, "tasks/get", Some(&task), by_id.clone(), true).await;
    assert_eq!((got["result"]["taskId"].as_str(), got["result"]["status"].as_str()), (Some(&*task), Some("working")));
    let (_, ack) = ask(&url, &owner, "tasks/cancel", Some(&task), by_id.clone(), true).await;
    assert_eq!(ack["result"], json!({"resultType": "complete"}), "{ack}");
    let (_, got) = ask(&url, &owner, "tasks/get", Some(&task), by_id.clone(), true).await;
    assert_eq!(got["result"]["status"], "cancelled", "{got}");

    // Without the extension the same tool runs within the call, and no task is created.
    let quick = json!({"name": "slow_compute", "arguments": {"seconds": 0, "label": "sync"}});
    let (_, done) = ask(&url, &owner, "tools/call", Some("slow_compute"), quick, false).await;
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(done["result"]["content"].is_array() && done["result"].get("taskId").is_none(), "{done}");

    // The other key's own task is its own.
    let (_, theirs) = ask(&url, &other, "tools/call", Some("slow_compute"), slow, true).await;
    let their_task = theirs["result"]["taskId"].as_str().expect("taskId").to_string();
    let (status, refused) =
        ask(&url, &owner, "tasks/get", Some(&their_task), json!({"taskId": their_task}), true).await;
    assert_eq!((status, refused["error"]["code"].as_i64()), (400, Some(-32602)), "{refused}");
    let (_, ack) = ask(&url, &other, "tasks/cancel", Some(&their_task), json!({"taskId": their_task}), true).await;
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");

    // A session-based client bridged to an upstream of the stateless revision only has no tasks
    // there: the upstream would take it for any other caller of the connection.
    let (mut modern, modern_url) = fixture_http("modern").await;
    mesh.add_connection(json!({"slug": "modern", "url": modern_url})).await;
    let legacy_url = mesh.endpoint("modern");
    let (_, h, text) =
        raw::post(&legacy_url, raw::post_headers(&other, None), raw::initialize_body(1, "2025-11-25")).await;
    let init = raw::messages(&text).pop().expect("initialize result");
    assert!(init["result"]["capabilities"].get("extensions").is_none(), "{init}");
    let sid = h.get("mcp-session-id").and_then(|v| v.to_str().ok()).expect("a session").to_string();
    let get = json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"taskId": "1"}}).to_string();
    let (_, _, text) = raw::post(&legacy_url, raw::post_headers(&other, Some(&sid)), get).await;
    let refused = raw::messages(&text).pop().expect("a reply");
    assert_eq!(refused["error"]["code"], -32601, "{refused}");

    mesh.stop().await;
    let _ = fixture.kill().await;
    let _ = modern.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_stdio_upstream_is_spoken_to_in_its_own_revision() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "dual", "command": common::BIN, "args": ["stdio"]})).await;
    mesh.add_connection(json!({"slug": "legacy", "command": common::BIN, "args": ["stdio", "--era", "legacy"]})).await;
    let key = mesh.key.clone();

    // The dual child is reached in the stateless revision: only there is the extension offered,
    // and a task it creates lives on in that child for the next request.
    let dual = mesh.endpoint("dual");
    let (_, discover) = ask(&dual, &key, "server/discover", None, json!({}), true).await;
    assert!(discover["result"]["capabilities"]["extensions"][TASKS].is_object(), "{discover}");
    let slow = json!({"name": "slow_compute", "arguments": {"seconds": 30, "label": "stdio"}});
    let (_, created) = ask(&dual, &key, "tools/call", Some("slow_compute"), slow, true).await;
    let task = created["result"]["taskId"].as_str().expect("a task").to_string();
    let (_, got) = ask(&dual, &key, "tasks/get", Some(&task), json!({"taskId": task}), true).await;
    assert_eq!(got["result"]["status"], "working", "{got}");
    let (_, ack) = ask(&dual, &key, "tasks/cancel", Some(&task), json!({"taskId": task}), true).await;
    assert_eq!(ack["result"], json!({"resultType": "complete"}), "{ack}");

    // The session-based child is reached through a pooled session, as before: it works, without
    // the extension.
    let legacy = mesh.endpoint("legacy");
    let (_, discover) = ask(&legacy, &key, "server/discover", None, json!({}), true).await;
    assert!(discover["result"]["capabilities"].get("extensions").is_none(), "{discover}");
    let text = json!({"name": "test_simple_text", "arguments": {}});
    let (status, called) = ask(&legacy, &key, "tools/call", Some("test_simple_text"), text, true).await;
    assert_eq!((status, called["result"]["resultType"].as_str()), (200, Some("complete")), "{called}");
    assert!(called["result"]["content"][0]["text"].is_string(), "{called}");
    mesh.stop().await;
}

/// A task a stdio child holds lives in the pooled session that created it: its requests reach
/// that session whatever capabilities they carry, and the session is not reaped as idle while
/// the task lives (a reaped session's child, and its tasks, would be gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_task_keeps_its_pooled_session_and_reaches_it_with_other_capabilities() {
    let idle = std::time::Duration::from_secs(1);
    let mesh = TestMesh::start_with(|c| c.session_idle = idle).await;
    mesh.add_connection(json!({"slug": "dual", "command": common::BIN, "args": ["stdio"]})).await;
    let (url, key) = (mesh.endpoint("dual"), mesh.key.clone());
    let slow = json!({"name": "slow_compute", "arguments": {"seconds": 60, "label": "kept"}});
    let (_, created) = ask(&url, &key, "tools/call", Some("slow_compute"), slow, true).await;
    let task = created["result"]["taskId"].as_str().expect("a task").to_string();

    // Other capabilities are another pooled session (another child, which never heard of the
    // task); the request still reaches the one holding it.
    let mut get = serde_json::from_str::<Value>(&request("tasks/get", json!({"taskId": task}), true)).expect("json");
    get["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]["sampling"] = json!({});
    let (_, _, text) =
        bounded("tasks/get", raw::post(&url, headers(&key, "tasks/get", Some(&task)), get.to_string())).await;
    let got = raw::messages(&text).pop().expect("a reply");
    assert_eq!(got["result"]["status"], "working", "{got}");

    // Several reaper rounds past the idle time: the session holding a live task stays.
    tokio::time::sleep(idle * 4).await;
    let (_, got) = ask(&url, &key, "tasks/get", Some(&task), json!({"taskId": task}), true).await;
    assert_eq!(got["result"]["status"], "working", "{got}");
    let (_, ack) = ask(&url, &key, "tasks/cancel", Some(&task), json!({"taskId": task}), true).await;
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");

    // The task's requests are audited under its tool (they name only the task).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (ok, rows) = mesh.manage(&key, "AUDIT_QUERY", json!({"tool": "slow_compute"})).await;
        assert!(ok, "{rows}");
        let methods: Vec<&str> =
            rows["items"].as_array().into_iter().flatten().filter_map(|r| r["method"].as_str()).collect();
        if ["tools/call", "tasks/get", "tasks/cancel"].iter().all(|m| methods.contains(m)) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "task requests not audited under the tool: {rows}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    mesh.stop().await;
}

/// A task a stdio child held ends with its pooled session (here: the connection's command line
/// changed, which ends its sessions). A later request for it is answered as for an unknown task by the mesh
/// itself: no pooled session is opened (no child started) to ask for what is gone, where a
/// reused id could name another task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_task_gone_with_its_session_is_unknown_without_opening_another() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "dual", "command": common::BIN, "args": ["stdio"]})).await;
    let (url, key) = (mesh.endpoint("dual"), mesh.key.clone());
    let slow = json!({"name": "slow_compute", "arguments": {"seconds": 60, "label": "gone"}});
    let (_, created) = ask(&url, &key, "tools/call", Some("slow_compute"), slow, true).await;
    let task = created["result"]["taskId"].as_str().expect("a task").to_string();
    assert_eq!(mesh.session_count(), 1, "the pooled session holding the task");

    let args = json!(["stdio", "--era", "modern"]);
    mesh.manage_ok("COLLECTION_CONNECTIONS_UPDATE", json!({"id": "dual", "args": args})).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while mesh.session_count() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(mesh.session_count(), 0, "a changed connection ends its sessions");

    let (status, got) = ask(&url, &key, "tasks/get", Some(&task), json!({"taskId": task}), true).await;
    assert_eq!((status, &got["error"]["code"]), (400, &json!(-32602)), "{got}");
    assert_eq!(got["error"]["message"], "Unknown task", "the mesh's own answer: {got}");
    assert_eq!(mesh.session_count(), 0, "no session opened for a handle alone");
    mesh.stop().await;
}

/// A task whose tool the rules stop allowing: its requests get what an unknown task gets, and
/// each refusal is in the audit trail as denied, under the task's tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_task_whose_tool_the_rules_now_deny_is_unknown_and_the_refusal_audited() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "dual", "command": common::BIN, "args": ["stdio"]})).await;
    let url = mesh.endpoint("dual");
    let rules = |names: &[&str]| {
        Value::Array(names.iter().map(|n| json!({"effect": "allow", "connection": "dual", "name": n})).collect())
    };
    mesh.manage_ok("ROLE_CREATE", json!({"name": "worker", "rules": rules(&["slow_compute", "greet"])})).await;
    let added = mesh.manage_ok("ORGANIZATION_MEMBER_ADD", json!({"email": "tam@example.test", "role": "worker"})).await;
    let user = added["item"]["userId"].as_str().expect("user id").to_string();
    let created = mesh.manage_ok("API_KEY_CREATE", json!({"name": "k", "userId": user})).await;
    let key = created["key"].as_str().expect("key").to_string();

    let slow = json!({"name": "slow_compute", "arguments": {"seconds": 60, "label": "denied"}});
    let (_, created) = ask(&url, &key, "tools/call", Some("slow_compute"), slow.clone(), true).await;
    let task = created["result"]["taskId"].as_str().expect("a task").to_string();
    let (_, got) = ask(&url, &key, "tasks/get", Some(&task), json!({"taskId": task}), true).await;
    assert_eq!(got["result"]["status"], "working", "{got}");

    // The tool leaves the role's rules; once a call of it is refused, the task's request comes.
    mesh.manage_ok("ROLE_UPDATE", json!({"name": "worker", "rules": rules(&["greet"])})).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, b) = ask(&url, &key, "tools/call", Some("slow_compute"), slow.clone(), true).await;
        if b["error"].is_object() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the policy change never reached the key: {b}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, got) = ask(&url, &key, "tasks/get", Some(&task), json!({"taskId": task}), true).await;
    assert_eq!((status, &got["error"]["code"]), (400, &json!(-32602)), "{got}");
    assert_eq!(got["error"]["message"], "Unknown task", "{got}");

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let args = json!({"tool": "slow_compute", "outcome": "denied"});
        let (ok, rows) = mesh.manage(&mesh.key, "AUDIT_QUERY", args).await;
        assert!(ok, "{rows}");
        let denied_get = rows["items"].as_array().into_iter().flatten().any(|r| r["method"] == "tasks/get");
        if denied_get {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the refused task request is not audited: {rows}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    mesh.stop().await;
}

/// A hand-written member of the stateless revision that offers tasks and counts their ids from 1,
/// as any server may: `tools/call` of `work` creates tasks "1", "2", …; `tasks/get` answers for
/// task 1 naming `who` and the id it was asked by, and for any other id an error naming that id.
fn counting_tasks_member(who: &'static str) -> String {
    let made = std::sync::atomic::AtomicUsize::new(0);
    raw::stateless_upstream(json!({"tools": {}, "extensions": {TASKS: {}}}), move |msg| {
        let reply = match msg["method"].as_str().unwrap_or_default() {
            "tools/list" => {
                let tool = json!({"name": "work", "inputSchema": {"type": "object"}});
                json!({"result": {"resultType": "complete", "tools": [tool]}})
            }
            "tools/call" => {
                let n = made.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                json!({"result": {"resultType": "task", "taskId": n.to_string(), "status": "working", "ttlMs": 60_000}})
            }
            "tasks/get" => match msg["params"]["taskId"].as_str().unwrap_or_default() {
                "1" => {
                    let text = format!("{who} did task 1");
                    json!({"result": {"resultType": "complete", "taskId": "1", "status": "completed",
                                      "result": {"content": [{"type": "text", "text": text}]}}})
                }
                id => {
                    json!({"error": {"code": -32602, "message": format!("Unknown task: {id}"), "data": {"taskId": id}}})
                }
            },
            _ => json!({"error": {"code": -32601, "message": "method not found"}}),
        };
        raw::Reply::Json(200, reply)
    })
}

/// Two members of a virtual MCP that both count their task ids from 1: each task is reached at
/// the member that created it, by the id that member gave it, and a member's error about its
/// task names the client's handle, never the member's own id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_tasks_of_two_members_with_the_same_ids_are_kept_apart() {
    let mesh = TestMesh::start().await;
    for slug in ["a", "b"] {
        mesh.add_connection(json!({"slug": slug, "url": counting_tasks_member(slug)})).await;
    }
    let members = json!([{"connection": "a"}, {"connection": "b"}]);
    mesh.manage_ok("COLLECTION_GATEWAYS_CREATE", json!({"slug": "pair", "members": members})).await;
    let (url, key) = (format!("{}/mcp/gateway/pair", mesh.url), mesh.key.clone());
    let create = |tool: &'static str| {
        let (url, key) = (url.clone(), key.clone());
        async move {
            let (status, created) = ask(&url, &key, "tools/call", Some(tool), json!({"name": tool}), true).await;
            assert_eq!((status, created["result"]["resultType"].as_str()), (200, Some("task")), "{created}");
            created["result"]["taskId"].as_str().expect("a task").to_string()
        }
    };
    let get = |task: String| {
        let (url, key) = (url.clone(), key.clone());
        async move { ask(&url, &key, "tasks/get", Some(&task), json!({"taskId": task}), true).await.1 }
    };

    // Both members call their first task "1".
    let (at_a, at_b) = (create("a_work").await, create("b_work").await);
    for (member, task) in [("a", &at_a), ("b", &at_b)] {
        let got = get(task.clone()).await;
        assert_eq!(got["result"]["status"], "completed", "{member}: {got}");
        assert_eq!(got["result"]["taskId"], json!(task), "{member}: {got}");
        let text = got["result"]["result"]["content"][0]["text"].as_str().unwrap_or_default();
        assert_eq!(text, format!("{member} did task 1"), "{member}: {got}");
    }

    // The member's error about its task "2" names it as the client knows it.
    let second = create("a_work").await;
    let got = get(second.clone()).await;
    let e = &got["error"];
    assert_eq!((&e["code"], &e["message"]), (&json!(-32602), &json!(format!("Unknown task: {second}"))), "{got}");
    assert_eq!(e["data"]["taskId"], json!(second), "{got}");
    mesh.stop().await;
}
