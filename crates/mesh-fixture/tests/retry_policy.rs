//! A stateless client's retry (MCP 2026-07-28, input-required results) through the mesh to the
//! session-based fixture, whose `prompts/get` of its input-required prompt asks the client by
//! elicitation mid-request: the mesh parks the call, and the retry is checked against the rules
//! as they are when it comes, not as they were when the call was admitted.

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

/// `prompts/get` of the input-required prompt (`prompt`, as `url` exposes it): parked, with the retry that answers it.
async fn parked(url: &str, key: &str, prompt: &str, id: i64) -> Value {
    let get = json!({"name": prompt});
    let (status, body) = ask(url, key, "prompts/get", Some(prompt), request(id, "prompts/get", get.clone())).await;
    assert_eq!((status, body["result"]["resultType"].as_str()), (200, Some("input_required")), "{url}: {body}");
    let (k, _) = body["result"]["inputRequests"].as_object().expect("inputRequests").iter().next().expect("one");
    let mut retry = get;
    retry["inputResponses"] = json!({k: {"action": "accept", "content": {"name": "Ada"}}});
    retry["requestState"] = body["result"]["requestState"].clone();
    retry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_parked_prompt_is_refused_on_retry_once_policy_hides_it() {
    let mesh = TestMesh::start().await;
    let bin = env!("CARGO_BIN_EXE_mesh-fixture");
    mesh.add_connection(json!({"slug": "legacy", "command": bin, "args": ["stdio", "--era", "legacy"]})).await;
    // The same prompt through a virtual MCP, which answers from its merged list.
    manage(&mesh, "COLLECTION_GATEWAYS_CREATE", json!({"slug": "writing", "members": [{"connection": "legacy"}]}))
        .await;
    let prompts = |names: &[&str]| {
        let rules =
            names.iter().map(|n| json!({"effect": "allow", "connection": "legacy", "kind": "prompt", "name": n}));
        Value::Array(rules.collect())
    };
    manage(&mesh, "ROLE_CREATE", json!({"name": "writer", "rules": prompts(&["test_simple_prompt", PROMPT])})).await;
    let added = manage(&mesh, "ORGANIZATION_MEMBER_ADD", json!({"email": "wren@example.test", "role": "writer"})).await;
    let user = added["item"]["userId"].as_str().expect("user id").to_string();
    let created = manage(&mesh, "API_KEY_CREATE", json!({"name": "k", "userId": user})).await;
    let key = created["key"].as_str().expect("key").to_string();
    let gateway = format!("{}/mcp/gateway/writing", mesh.url);
    let routes = [(mesh.endpoint("legacy"), PROMPT.to_string()), (gateway, format!("legacy_{PROMPT}"))];

    // While the rules allow it, the retry completes the prompt with the client's answer.
    for (url, prompt) in &routes {
        let retry = parked(url, &key, prompt, 1).await;
        let (status, done) = ask(url, &key, "prompts/get", Some(prompt), request(2, "prompts/get", retry)).await;
        assert_eq!((status, done["result"]["resultType"].as_str()), (200, Some("complete")), "{url}: {done}");
        assert!(done["result"]["messages"].to_string().contains("Ada"), "{url}: {done}");
    }

    // Parked again; the prompt leaves the role's rules; once the key's lists no longer show it,
    // the retry comes.
    let mut retries = Vec::new();
    for (url, prompt) in &routes {
        retries.push(parked(url, &key, prompt, 3).await);
    }
    manage(&mesh, "ROLE_UPDATE", json!({"name": "writer", "rules": prompts(&["test_simple_prompt"])})).await;
    for ((url, prompt), retry) in routes.iter().zip(retries) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (s, b) = ask(url, &key, "prompts/list", None, request(4, "prompts/list", json!({}))).await;
            assert_eq!(s, 200, "{url}: {b}");
            assert!(b["result"]["prompts"].to_string().contains("test_simple_prompt"), "{url}: {b}");
            if !b["result"]["prompts"].to_string().contains(PROMPT) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the policy change never reached {url}: {b}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, refused) = ask(url, &key, "prompts/get", Some(prompt), request(5, "prompts/get", retry)).await;
        assert_eq!((status, refused["error"]["code"].as_i64()), (400, Some(-32602)), "{url}: {refused}");
        assert_eq!(refused["error"]["message"], format!("Unknown prompt: {prompt}"), "{url}: {refused}");
    }
    mesh.stop().await;
}
