//! What a change of the rules does to what is already under way, through the mesh to the
//! session-based fixture: a stateless client's call parked for its answers (MCP 2026-07-28,
//! input-required results; the fixture's input-required prompt asks by elicitation mid-request)
//! is checked against the rules as they are when its retry comes; a subscription made while a
//! resource was allowed no longer carries its updates once the rules hide it.

mod common;

use common::bounded;
use mesh_testkit::{raw, TestMesh};
use serde_json::{json, Value};
use std::time::Duration;

const V: &str = "2026-07-28";
const PROMPT: &str = "test_input_required_result_prompt";

/// A stateless request that declares elicitation.
fn request(id: i64, method: &str, mut params: Value) -> String {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// POSTs one stateless request; its status and last message.
async fn ask(url: &str, key: &str, method: &str, name: Option<&str>, body: String) -> (u16, Value) {
    let (status, _, text) = bounded(method, raw::post(url, raw::stateless_headers(key, method, name), body)).await;
    (status, raw::messages(&text).last().cloned().unwrap_or(Value::Null))
}

async fn manage(mesh: &TestMesh, tool: &str, args: Value) -> Value {
    let (ok, v) = mesh.manage(&mesh.key, tool, args).await;
    assert!(ok, "{tool}: {v}");
    v
}

/// A request the session-based fixture answers only after asking the user's name (by elicitation
/// mid-request, which the mesh turns into an input-required result for a stateless client).
struct Parkable {
    /// `prompts/get` or `resources/read`, and the param that names what it asks for.
    method: &'static str,
    field: &'static str,
    /// The rules' kind, and the word of the refusal ("Unknown prompt: …").
    kind: &'static str,
    /// What asks, as the connection names it and as the virtual MCP over it does.
    asks: &'static str,
    via_gateway: String,
    /// Another item of the kind, which the rules keep allowing.
    other: &'static str,
}

/// `p.method` of `name` at `url`: parked, with the retry that answers it.
async fn parked(url: &str, key: &str, p: &Parkable, name: &str, id: i64) -> Value {
    let mut first = json!({});
    first[p.field] = json!(name);
    let (status, body) = ask(url, key, p.method, Some(name), request(id, p.method, first.clone())).await;
    assert_eq!((status, body["result"]["resultType"].as_str()), (200, Some("input_required")), "{url}: {body}");
    let (k, _) = body["result"]["inputRequests"].as_object().expect("inputRequests").iter().next().expect("one");
    let mut retry = first;
    retry["inputResponses"] = json!({k: {"action": "accept", "content": {"name": "Ada"}}});
    retry["requestState"] = body["result"]["requestState"].clone();
    retry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_parked_prompt_is_refused_on_retry_once_policy_hides_it() {
    let p = Parkable {
        method: "prompts/get",
        field: "name",
        kind: "prompt",
        asks: PROMPT,
        via_gateway: format!("legacy_{PROMPT}"),
        other: "test_simple_prompt",
    };
    refused_on_retry_once_hidden(p).await;
}

/// The same for a resource read (the fixture's template instance that asks first), whose
/// re-check through a virtual MCP places the URI by its member's prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_parked_resource_read_is_refused_on_retry_once_policy_hides_it() {
    const ASKS: &str = "test://template/asks/data";
    let p = Parkable {
        method: "resources/read",
        field: "uri",
        kind: "resource",
        asks: ASKS,
        // A virtual MCP's member's URIs carry its slug (`{slug}+{uri}`).
        via_gateway: format!("legacy+{ASKS}"),
        other: "test://static-text",
    };
    refused_on_retry_once_hidden(p).await;
}

/// `p` parked on a direct route and through a virtual MCP: while the rules allow it, the retry
/// completes it with the client's answer; parked again, then hidden by the rules, the retry is
/// refused like an unknown one.
async fn refused_on_retry_once_hidden(p: Parkable) {
    let mesh = TestMesh::start().await;
    let bin = env!("CARGO_BIN_EXE_mesh-fixture");
    mesh.add_connection(json!({"slug": "legacy", "command": bin, "args": ["stdio", "--era", "legacy"]})).await;
    // The same request through a virtual MCP, which answers from its merged list.
    manage(&mesh, "COLLECTION_GATEWAYS_CREATE", json!({"slug": "writing", "members": [{"connection": "legacy"}]}))
        .await;
    let rules = |names: &[&str]| {
        let rules = names.iter().map(|n| json!({"effect": "allow", "connection": "legacy", "kind": p.kind, "name": n}));
        Value::Array(rules.collect())
    };
    manage(&mesh, "ROLE_CREATE", json!({"name": "writer", "rules": rules(&[p.other, p.asks])})).await;
    let added = manage(&mesh, "ORGANIZATION_MEMBER_ADD", json!({"email": "wren@example.test", "role": "writer"})).await;
    let user = added["item"]["userId"].as_str().expect("user id").to_string();
    let created = manage(&mesh, "API_KEY_CREATE", json!({"name": "k", "userId": user})).await;
    let key = created["key"].as_str().expect("key").to_string();
    let gateway = format!("{}/mcp/gateway/writing", mesh.url);
    let routes = [(mesh.endpoint("legacy"), p.asks.to_string()), (gateway, p.via_gateway.clone())];

    // While the rules allow it, the retry completes the request with the client's answer.
    for (url, name) in &routes {
        let retry = parked(url, &key, &p, name, 1).await;
        let (status, done) = ask(url, &key, p.method, Some(name), request(2, p.method, retry)).await;
        assert_eq!((status, done["result"]["resultType"].as_str()), (200, Some("complete")), "{url}: {done}");
        assert!(done["result"].to_string().contains("Ada"), "{url}: {done}");
    }

    // Parked again; it leaves the role's rules; once a fresh request of it is refused (the
    // change has reached the key's sessions), the retry comes.
    let mut retries = Vec::new();
    for (url, name) in &routes {
        retries.push(parked(url, &key, &p, name, 3).await);
    }
    manage(&mesh, "ROLE_UPDATE", json!({"name": "writer", "rules": rules(&[p.other])})).await;
    for ((url, name), retry) in routes.iter().zip(retries) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut fresh = json!({});
            fresh[p.field] = json!(name);
            let (_, b) = ask(url, &key, p.method, Some(name), request(4, p.method, fresh)).await;
            if b["error"].is_object() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the policy change never reached {url}: {b}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, refused) = ask(url, &key, p.method, Some(name), request(5, p.method, retry)).await;
        assert_eq!((status, refused["error"]["code"].as_i64()), (400, Some(-32602)), "{url}: {refused}");
        assert_eq!(refused["error"]["message"], format!("Unknown {}: {name}", p.kind), "{url}: {refused}");
    }
    mesh.stop().await;
}

/// A session-based client subscribed to two resources; the rules then hide one. The fixture's
/// `test_trigger_resource_update` sends an update of every resource its session subscribed to,
/// on the call's own stream, before its result: the hidden one's update is held back, the
/// other's still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_an_update_of_a_resource_the_rules_now_hide_is_not_heard() {
    const TRIGGER: &str = "test_trigger_resource_update";
    const KEPT: &str = "test://static-text";
    const HIDDEN: &str = "test://static-binary";
    let mesh = TestMesh::start().await;
    let bin = env!("CARGO_BIN_EXE_mesh-fixture");
    mesh.add_connection(json!({"slug": "legacy", "command": bin, "args": ["stdio", "--era", "legacy"]})).await;
    let url = mesh.endpoint("legacy");
    let rules = |resources: &[&str]| {
        let mut rules = vec![json!({"effect": "allow", "connection": "legacy", "kind": "tool", "name": TRIGGER})];
        rules.extend(
            resources.iter().map(|u| json!({"effect": "allow", "connection": "legacy", "kind": "resource", "name": u})),
        );
        Value::Array(rules)
    };
    manage(&mesh, "ROLE_CREATE", json!({"name": "reader", "rules": rules(&[KEPT, HIDDEN])})).await;
    let added = manage(&mesh, "ORGANIZATION_MEMBER_ADD", json!({"email": "rae@example.test", "role": "reader"})).await;
    let user = added["item"]["userId"].as_str().expect("user id").to_string();
    let created = manage(&mesh, "API_KEY_CREATE", json!({"name": "k", "userId": user})).await;
    let key = created["key"].as_str().expect("key").to_string();

    let session = raw::open_session(&url, &key, "2025-11-25").await;
    let post = |id: i64, method: &str, params: Value| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let (url, headers) = (url.clone(), raw::post_headers(&key, Some(&session)));
        async move {
            let (status, _, text) = bounded("post", raw::post(&url, headers, body)).await;
            assert_eq!(status, 200, "{text}");
            raw::messages(&text)
        }
    };
    for (id, uri) in [(2, KEPT), (3, HIDDEN)] {
        let reply = post(id, "resources/subscribe", json!({"uri": uri})).await;
        assert_eq!(reply.last().map(|m| &m["result"]), Some(&json!({})), "{uri}: {reply:?}");
    }
    // The updates the trigger's call carries, and its result's text.
    let trigger = |id: i64| {
        let call = post(id, "tools/call", json!({"name": TRIGGER, "arguments": {}}));
        async move {
            let messages = call.await;
            let updated: Vec<String> = messages
                .iter()
                .filter(|m| m["method"] == "notifications/resources/updated")
                .map(|m| m["params"]["uri"].as_str().unwrap_or_default().to_string())
                .collect();
            let text = messages.last().map(|m| m["result"]["content"][0]["text"].to_string()).unwrap_or_default();
            (updated, text)
        }
    };
    let (updated, text) = trigger(4).await;
    assert_eq!(updated, [HIDDEN, KEPT], "{text}");

    manage(&mesh, "ROLE_UPDATE", json!({"name": "reader", "rules": rules(&[KEPT])})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = post(5, "resources/list", json!({})).await;
        let listed = listed.last().map(|m| m["result"]["resources"].to_string()).unwrap_or_default();
        assert!(listed.contains(KEPT), "{listed}");
        if !listed.contains(HIDDEN) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the policy change never reached the session: {listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The upstream still sends both (its session is subscribed to both); the client hears one.
    let (updated, text) = trigger(6).await;
    assert!(text.contains("for 2 resource(s)"), "{text}");
    assert_eq!(updated, [KEPT], "{text}");
    mesh.stop().await;
}

/// A virtual MCP's list read page by page by a stateless client, across a change of the rules
/// that hides a member's tool: the cursor from before the change is refused as invalid, never
/// served from the list as it was (which would show the hidden tool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_cursor_from_before_a_rules_change_is_refused() {
    let member = || {
        raw::stateless_upstream(json!({"tools": {}}), |msg| {
            let reply = match msg["method"].as_str().unwrap_or_default() {
                "tools/list" => {
                    let tools = [json!({"name": "only", "inputSchema": {"type": "object"}})];
                    json!({"result": {"resultType": "complete", "tools": tools, "ttlMs": 60_000}})
                }
                _ => json!({"error": {"code": -32601, "message": "method not found"}}),
            };
            raw::Reply::Json(200, reply)
        })
    };
    let mesh = TestMesh::start().await;
    for slug in ["first", "second"] {
        mesh.add_connection(json!({"slug": slug, "url": member()})).await;
    }
    let members = json!([{"connection": "first"}, {"connection": "second"}]);
    manage(&mesh, "COLLECTION_GATEWAYS_CREATE", json!({"slug": "paged", "members": members, "pageSize": 1})).await;
    let rules = |slugs: &[&str]| {
        Value::Array(slugs.iter().map(|c| json!({"effect": "allow", "connection": c, "name": "*"})).collect())
    };
    manage(&mesh, "ROLE_CREATE", json!({"name": "pager", "rules": rules(&["first", "second"])})).await;
    let added = manage(&mesh, "ORGANIZATION_MEMBER_ADD", json!({"email": "pia@example.test", "role": "pager"})).await;
    let user = added["item"]["userId"].as_str().expect("user id").to_string();
    let created = manage(&mesh, "API_KEY_CREATE", json!({"name": "k", "userId": user})).await;
    let key = created["key"].as_str().expect("key").to_string();
    let url = format!("{}/mcp/gateway/paged", mesh.url);
    let page = |cursor: Option<&str>| {
        let params = cursor.map(|c| json!({"cursor": c})).unwrap_or_else(|| json!({}));
        let (url, key) = (url.clone(), key.clone());
        async move { ask(&url, &key, "tools/list", None, request(1, "tools/list", params)).await }
    };

    let (_, first) = page(None).await;
    assert_eq!(first["result"]["tools"][0]["name"], "first_only", "{first}");
    let cursor = first["result"]["nextCursor"].as_str().expect("a second page").to_string();

    manage(&mesh, "ROLE_UPDATE", json!({"name": "pager", "rules": rules(&["first"])})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, now) = page(None).await;
        if now["result"]["tools"].as_array().is_some_and(|t| t.len() == 1) && now["result"]["nextCursor"].is_null() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the rules change never reached the key: {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, stale) = page(Some(&cursor)).await;
    assert_eq!((status, &stale["error"]["code"]), (400, &json!(-32602)), "{stale}");
    assert!(!stale.to_string().contains("second_only"), "{stale}");
    mesh.stop().await;
}
