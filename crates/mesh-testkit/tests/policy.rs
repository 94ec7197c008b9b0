//! Tool-level access control and rate limits, end to end with server-everything over stdio:
//! a custom role restricted to one tool sees and calls only that tool, directly and through a
//! gateway; a denied tool answers as unknown and is audited as denied; a policy change reaches
//! open sessions as `list_changed`; a narrowed key reaches only its routes and tools; viewers
//! list but do not call; rate limits hold under concurrent load with exactly the expected count.

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{raw, text_of, upstreams, TestMesh};
use serde_json::{json, Value};

async fn manage(mesh: &TestMesh, key: &str, tool: &str, args: Value) -> Value {
    let c = TestClient::connect_http(&format!("{}/mcp", mesh.url), key, ClientBehaviour::default())
        .await
        .expect("management session");
    let r = c.call_tool(tool, args).await.expect("tool call");
    c.close().await.ok();
    assert_ne!(r["isError"], true, "{tool} failed: {r}");
    r["structuredContent"].clone()
}

async fn mesh_with_everything() -> TestMesh {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    mesh
}

/// A new member with `role`, and an API key for them.
async fn member_key(mesh: &TestMesh, email: &str, role: &str) -> String {
    let added = manage(mesh, &mesh.key, "ORGANIZATION_MEMBER_ADD", json!({"email": email, "role": role})).await;
    let user = added["item"]["userId"].as_str().expect("user id").to_string();
    let key = manage(mesh, &mesh.key, "API_KEY_CREATE", json!({"name": "k", "userId": user})).await;
    key["key"].as_str().expect("key").to_string()
}

async fn client(mesh: &TestMesh, path: &str, key: &str) -> TestClient {
    TestClient::connect_http(&format!("{}{path}", mesh.url), key, ClientBehaviour::default()).await.expect("session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_role_sees_and_calls_only_its_tools_and_follows_policy_changes() {
    let mesh = mesh_with_everything().await;
    let all = client(&mesh, "/mcp/everything", &mesh.key).await.list_tool_names().await.unwrap();
    assert!(all.len() > 3 && all.contains(&"echo".to_string()), "{all:?}");
    let other = all.iter().find(|t| *t != "echo").unwrap().clone();

    let rules = json!([{"effect": "allow", "connection": "everything", "name": "echo"}]);
    manage(&mesh, &mesh.key, "ROLE_CREATE", json!({"name": "support", "rules": rules})).await;
    let key = member_key(&mesh, "sam@example.test", "support").await;

    // Directly: only echo is listed; it works; another real tool answers as unknown.
    let direct = client(&mesh, "/mcp/everything", &key).await;
    assert_eq!(direct.list_tool_names().await.unwrap(), vec!["echo"]);
    assert_eq!(text_of(&direct.call_tool("echo", json!({"message": "hi"})).await.unwrap()), "Echo: hi");
    let denied = direct.call_tool(&other, json!({})).await.unwrap_err();
    assert!(format!("{denied:#}").contains(&format!("Unknown tool: {other}")), "{denied:#}");

    // Completing a hidden prompt's arguments would reveal the prompt: refused the same way.
    let url = mesh.endpoint("everything");
    let sid = raw::open_session(&url, &key, "2025-11-25").await;
    let complete = json!({"jsonrpc": "2.0", "id": 7, "method": "completion/complete", "params": {
        "ref": {"type": "ref/prompt", "name": "any-prompt"}, "argument": {"name": "a", "value": ""}}});
    let (_, _, body) = raw::post(&url, raw::post_headers(&key, Some(&sid)), complete.to_string()).await;
    assert!(raw::messages(&body)[0]["error"]["message"] == "Unknown prompt: any-prompt", "{body}");

    // Through the default gateway: the same rules, on the original names.
    let gw = client(&mesh, "/mcp/gateway/default", &key).await;
    assert_eq!(gw.list_tool_names().await.unwrap(), vec!["everything_echo"]);
    let denied = gw.call_tool(&format!("everything_{other}"), json!({})).await.unwrap_err();
    assert!(format!("{denied:#}").contains("Unknown tool"), "{denied:#}");

    // A policy change reaches both open sessions as list_changed, and the lists follow.
    let wider = json!([{"effect": "allow", "connection": "everything", "name": "echo"},
                       {"effect": "allow", "connection": "everything", "name": other}]);
    manage(&mesh, &mesh.key, "ROLE_UPDATE", json!({"name": "support", "rules": wider})).await;
    let changed = |c: &TestClient| c.notifications_seen("notifications/tools/list_changed") >= 1;
    direct.wait_until("direct list_changed", changed).await.unwrap();
    gw.wait_until("gateway list_changed", changed).await.unwrap();
    assert_eq!(direct.list_tool_names().await.unwrap().len(), 2);
    assert_eq!(gw.list_tool_names().await.unwrap().len(), 2);

    // A deny wins over the allow, and the built-in member role can carry rules too.
    let deny = json!([{"effect": "allow", "connection": "everything"}, {"effect": "deny", "name": "echo"}]);
    manage(&mesh, &mesh.key, "ROLE_UPDATE", json!({"name": "support", "rules": deny})).await;
    direct
        .wait_until("second list_changed", |c| c.notifications_seen("notifications/tools/list_changed") >= 2)
        .await
        .unwrap();
    let names = direct.list_tool_names().await.unwrap();
    assert!(!names.contains(&"echo".to_string()) && names.len() == all.len() - 1, "{names:?}");

    // A name the mesh cannot read is refused, not checked against nothing: here a duplicate key,
    // which the upstream's JSON parser would resolve to the denied tool (the last one wins).
    let sid = raw::open_session(&url, &key, "2025-11-25").await;
    let sneaky = format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"{other}","name":"echo","arguments":{{"message":"sneaked"}}}}}}"#
    );
    let (_, _, body) = raw::post(&url, raw::post_headers(&key, Some(&sid)), sneaky).await;
    assert_eq!(raw::messages(&body)[0]["error"]["code"], -32602, "{body}");
    assert!(!body.contains("Echo: sneaked"), "{body}");

    // The owner is untouched by the support role's rules.
    assert_eq!(client(&mesh, "/mcp/everything", &mesh.key).await.list_tool_names().await.unwrap().len(), all.len());

    // Denied calls are in the audit trail as denied, with the name asked for.
    let rows = manage(&mesh, &mesh.key, "AUDIT_QUERY", json!({"outcome": "denied"})).await;
    let rows = rows["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let methods: Vec<&str> = rows.iter().filter_map(|r| r["method"].as_str()).collect();
    assert_eq!(methods.iter().filter(|m| **m == "tools/call").count(), 2, "{rows:?}");
    assert!(methods.contains(&"completion/complete"), "{rows:?}");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowed_key_reaches_only_its_routes_and_tools() {
    let mesh = mesh_with_everything().await;
    mesh.add_connection(json!({"slug": "second", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let scope = json!({"connections": ["everything"], "tools": ["echo"]});
    let created = manage(&mesh, &mesh.key, "API_KEY_CREATE", json!({"name": "narrow", "scope": scope})).await;
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(created["item"]["scope"], scope, "the narrowing is shown with the key");

    let c = client(&mesh, "/mcp/everything", &key).await;
    assert_eq!(c.list_tool_names().await.unwrap(), vec!["echo"]);
    assert!(c.call_tool("echo", json!({"message": "x"})).await.is_ok());
    // Other routes do not exist for this key: 404, like a route that does not exist at all.
    for path in ["/mcp/second", "/mcp/gateway/default"] {
        let url = format!("{}{path}", mesh.url);
        let (status, _, body) =
            raw::post(&url, raw::post_headers(&key, None), raw::initialize_body(1, "2025-11-25")).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    // The same key's owner, unnarrowed, reaches them.
    assert!(client(&mesh, "/mcp/second", &mesh.key).await.list_tool_names().await.unwrap().len() > 1);
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_list_but_do_not_call() {
    let mesh = mesh_with_everything().await;
    let key = member_key(&mesh, "vera@example.test", "viewer").await;
    let c = client(&mesh, "/mcp/everything", &key).await;
    assert!(c.list_tool_names().await.unwrap().contains(&"echo".to_string()));
    let refused = c.call_tool("echo", json!({"message": "x"})).await.unwrap_err();
    assert!(format!("{refused:#}").contains("may list tools but not call them"), "{refused:#}");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_under_concurrent_load() {
    let mesh = mesh_with_everything().await;
    let created = manage(&mesh, &mesh.key, "API_KEY_CREATE", json!({"name": "agent"})).await;
    let key = created["key"].as_str().unwrap().to_string();
    let key_id = created["item"]["id"].as_str().unwrap().to_string();
    // A burst of 10, refilled at 1 a minute: exactly 10 of 30 concurrent calls get through,
    // however slow the machine is.
    manage(&mesh, &mesh.key, "RATE_LIMIT_SET", json!({"scope": "key", "target": key_id, "perMinute": 1, "burst": 10}))
        .await;

    let url = mesh.endpoint("everything");
    let sid = raw::open_session(&url, &key, "2025-11-25").await;
    let calls = (0..30).map(|i| {
        let (url, key, sid) = (url.clone(), key.clone(), sid.clone());
        tokio::spawn(async move {
            let body = json!({"jsonrpc": "2.0", "id": 100 + i, "method": "tools/call",
                              "params": {"name": "echo", "arguments": {"message": "m"}}});
            raw::post(&url, raw::post_headers(&key, Some(&sid)), body.to_string()).await
        })
    });
    let results = futures_util::future::join_all(calls).await;
    let (mut ok, mut limited) = (0, 0);
    for r in results {
        let (status, headers, body) = r.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                limited += 1;
                let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "Retry-After {retry}");
                let msg = &raw::messages(&body)[0];
                assert_eq!(msg["error"]["code"], -31029, "{msg}");
                assert!(msg["error"]["data"]["retryAfterMs"].as_u64().unwrap() > 0, "{msg}");
                assert!(msg["error"]["message"].as_str().unwrap().contains("rate limit"), "{msg}");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!((ok, limited), (10, 20));

    // Other keys are not affected.
    let owner = client(&mesh, "/mcp/everything", &mesh.key).await;
    assert!(owner.call_tool("echo", json!({"message": "x"})).await.is_ok());

    // Refusals are audited as rate_limited, one row each.
    let rows = manage(&mesh, &mesh.key, "AUDIT_QUERY", json!({"outcome": "rate_limited", "limit": 100})).await;
    assert_eq!(rows["items"].as_array().map(Vec::len), Some(20), "{rows}");

    // Removing the limit lifts it at once.
    let listed = manage(&mesh, &mesh.key, "RATE_LIMIT_LIST", json!({})).await;
    let id = listed["items"][0]["id"].as_str().unwrap().to_string();
    manage(&mesh, &mesh.key, "RATE_LIMIT_DELETE", json!({"id": id})).await;
    let body = json!({"jsonrpc": "2.0", "id": 999, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "m"}}});
    assert_eq!(raw::post(&url, raw::post_headers(&key, Some(&sid)), body.to_string()).await.0, 200);
    mesh.stop().await;
}
