//! `mcp-mesh agent list|show` (#22): agents that registered by heartbeat, with health,
//! capabilities and resolved dependencies. The agents here are heartbeats sent by hand (the
//! real SDK's agents are in mesh-testkit's registry_agents.rs); nothing dials them.

mod common;
use common::*;

use mesh_testkit::TestMesh;
use serde_json::{json, Value};

async fn register(mesh: &TestMesh, body: Value) {
    let url = format!("{}/registry/{}/heartbeat", mesh.url, mesh.key);
    let r = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_list_and_show() {
    // Hand-sent heartbeats do not repeat: keep the agents healthy for the whole test.
    let mesh = TestMesh::start_with(|c| c.registry.unhealthy_after = std::time::Duration::from_secs(600)).await;
    let empty = cli(&mesh, &["agent", "list"]).await;
    assert!(empty.ok && empty.stdout.contains("MCP_MESH_REGISTRY_URL="), "{}", empty.stdout);

    let tool = |name: &str, cap: &str, version: &str, deps: Value| json!({"function_name": name, "capability": cap, "version": version, "tags": ["system"], "dependencies": deps});
    register(
        &mesh,
        json!({"agent_id": "dates-1", "name": "dates", "http_host": "127.0.0.1", "http_port": 19301,
               "tools": [tool("get_date", "date_service", "1.2.0", json!([]))]}),
    )
    .await;
    register(
        &mesh,
        json!({"agent_id": "asker-1", "name": "asker", "http_host": "127.0.0.1", "http_port": 19302,
        "tools": [tool("ask", "greeter", "1.0.0", json!([
            {"capability": "date_service", "tags": ["system"], "version": ">=1.1"},
            {"capability": "weather"}
        ]))]}),
    )
    .await;

    let list = cli(&mesh, &["agent", "list"]).await;
    assert!(list.ok, "{}", list.stderr);
    let line = |id: &str| list.stdout.lines().find(|l| l.starts_with(id)).unwrap_or_default().to_string();
    assert!(line("dates-1").contains("healthy") && line("dates-1").contains("date_service"), "{}", list.stdout);
    assert!(line("asker-1").contains("1/2") && line("asker-1").contains("http://127.0.0.1:19302"), "{}", list.stdout);

    let show = cli(&mesh, &["agent", "show", "asker-1"]).await;
    assert!(show.ok, "{}", show.stderr);
    let resolved = show.stdout.lines().find(|l| l.contains("date_service") && l.contains("available")).unwrap_or("");
    assert!(resolved.contains("dates-1") && resolved.contains("get_date"), "{}", show.stdout);
    assert!(show.stdout.lines().any(|l| l.contains("weather") && l.contains("unresolved")), "{}", show.stdout);

    let json_out = cli(&mesh, &["agent", "list", "--json"]).await;
    let agents: Value = serde_json::from_str(&json_out.stdout).expect("--json is JSON");
    assert_eq!(agents.as_array().map(Vec::len), Some(2), "{agents}");
    // Each agent is a connection of the organisation, named after it.
    let conns = cli(&mesh, &["connection", "list"]).await;
    assert!(conns.stdout.contains("dates-1") && conns.stdout.contains("asker-1"), "{}", conns.stdout);

    // An organisation admin who is not an operator registers an agent on loopback: it joins
    // (other agents call it directly), but the mesh itself will not reach it for them.
    let admin = mesh.extra_key("admin").await;
    let admin_registry = format!("{}/registry/{admin}", mesh.url);
    let http = reqwest::Client::new();
    let hb = json!({"agent_id": "local-1", "http_host": "127.0.0.1", "http_port": 19303, "tools": []});
    let r = http.post(format!("{admin_registry}/heartbeat")).json(&hb).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    let r = http.post(format!("{admin_registry}/proxy/127.0.0.1:19303/mcp")).json(&call).send().await.unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("only installation operators may connect to internal networks"), "{body}");

    let missing = cli(&mesh, &["agent", "show", "nobody"]).await;
    assert!(!missing.ok && missing.stderr.contains("agent 'nobody' not found"), "{}", missing.stderr);
    mesh.stop().await;
}
