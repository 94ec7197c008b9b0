//! `mcp-mesh agent list|show` (#22): agents that registered by heartbeat, with health,
//! capabilities and resolved dependencies. The agents here are heartbeats sent by hand (the
//! real SDK's agents are in mesh-testkit's registry_agents.rs); nothing dials them. Each story
//! runs on SQLite and on PostgreSQL.

mod common;
use common::*;

use mesh_testkit::TestMesh;
use serde_json::{json, Value};

async fn register(mesh: &TestMesh, body: Value) {
    let url = format!("{}/registry/{}/heartbeat", mesh.url, mesh.key);
    let r = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// A mesh with the registry's unhealthy threshold at `unhealthy`, on SQLite or (with `pg`) on a
/// fresh PostgreSQL database; `None` when PostgreSQL is asked for but not configured.
async fn mesh_with(
    unhealthy: std::time::Duration,
    pg: bool,
) -> Option<(TestMesh, Option<mesh_testkit::pg::PgDatabase>)> {
    if !pg {
        return Some((TestMesh::start_with(move |c| c.registry.unhealthy_after = unhealthy).await, None));
    }
    let db = mesh_testkit::pg::fresh("mesh_registry").await?;
    let url = db.url.clone();
    let mesh = TestMesh::start_with(move |c| {
        c.registry.unhealthy_after = unhealthy;
        c.database_url = Some(mesh_core::Secret::new(url));
    })
    .await;
    Some((mesh, Some(db)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_list_and_show_on_sqlite() {
    agent_list_and_show(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_list_and_show_on_postgres() {
    agent_list_and_show(true).await;
}

async fn agent_list_and_show(pg: bool) {
    // Hand-sent heartbeats do not repeat: keep the agents healthy for the whole test.
    let Some((mesh, db)) = mesh_with(std::time::Duration::from_secs(600), pg).await else { return };
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
    if let Some(db) = db {
        db.drop_now().await;
    }
}

/// The agents `GET /api/v1/agents` lists.
async fn listed(mesh: &TestMesh) -> Vec<Value> {
    let r = reqwest::Client::new().get(format!("{}/api/v1/agents", mesh.url)).bearer_auth(&mesh.key).send().await;
    let v: Value = r.unwrap().json().await.unwrap();
    v["agents"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_keeps_a_plain_server_in_the_registry_until_stopped_on_sqlite() {
    register_keeps_a_plain_server_in_the_registry_until_stopped(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_keeps_a_plain_server_in_the_registry_until_stopped_on_postgres() {
    register_keeps_a_plain_server_in_the_registry_until_stopped(true).await;
}

async fn register_keeps_a_plain_server_in_the_registry_until_stopped(pg: bool) {
    let unhealthy = std::time::Duration::from_secs(4);
    let Some((mesh, db)) = mesh_with(unhealthy, pg).await else { return };
    let server = mesh_testkit::upstreams::everything_http().await;
    let endpoint = format!("http://127.0.0.1:{}", server.port);

    // Usage errors, before anything is registered.
    let wrong_path = cli(&mesh, &["register", "--url", &format!("{endpoint}/other"), "--capability", "x"]).await;
    assert!(!wrong_path.ok && wrong_path.stderr.contains("/mcp"), "{}", wrong_path.stderr);
    let ambiguous = cli(&mesh, &["register", "--url", &server.url, "--capability", "echo_service"]).await;
    assert!(!ambiguous.ok && ambiguous.stderr.contains("--capability echo_service=TOOL"), "{}", ambiguous.stderr);
    assert!(listed(&mesh).await.is_empty());

    let mut sidecar = command(
        &mesh,
        &mesh.key,
        &[
            "register",
            "--url",
            &server.url,
            "--capability",
            "echo_service=echo",
            "--tag",
            "demo",
            "--version",
            "1.2.0",
            "--interval",
            "1",
        ],
    )
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("register runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let agent = loop {
        let all = listed(&mesh).await;
        if let Some(a) = all.iter().find(|a| a["endpoint"] == endpoint.as_str() && a["status"] == "healthy") {
            break a.clone();
        }
        assert!(std::time::Instant::now() < deadline, "the sidecar registered the server: {all:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let id = agent["id"].as_str().unwrap().to_string();
    assert!(id.ends_with(&format!("-{}", server.port)), "{agent}");
    let echo = agent["capabilities"].as_array().unwrap().iter().find(|c| c["function_name"] == "echo").unwrap();
    assert_eq!((echo["name"].as_str(), echo["version"].as_str()), (Some("echo_service"), Some("1.2.0")));
    assert_eq!(echo["tags"], json!(["demo"]));

    // Heartbeats keep it healthy past the unhealthy threshold.
    tokio::time::sleep(unhealthy + std::time::Duration::from_secs(2)).await;
    let all = listed(&mesh).await;
    assert_eq!(all.iter().find(|a| a["id"] == id.as_str()).unwrap()["status"], "healthy", "{all:?}");

    // An SDK-style consumer resolves the capability to the server's tool, and meshctl's proxy
    // route calls it through the server's connection.
    let url = format!("{}/registry/{}", mesh.url, mesh.key);
    let http = reqwest::Client::new();
    let consumer = json!({"agent_id": "needs-echo", "http_host": "127.0.0.1", "http_port": 19304, "tools": [
        {"function_name": "ask", "capability": "asker", "dependencies": [{"capability": "echo_service", "tags": ["demo"], "version": ">= 1.2"}]}
    ]});
    let answer: Value =
        http.post(format!("{url}/heartbeat")).json(&consumer).send().await.unwrap().json().await.unwrap();
    let resolved = &answer["dependencies_resolved"]["ask"][0];
    assert_eq!(
        (resolved["function_name"].as_str(), resolved["endpoint"].as_str()),
        (Some("echo"), Some(endpoint.as_str())),
        "{answer}"
    );
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi sidecar"}}});
    let port = server.port;
    let body =
        http.post(format!("{url}/proxy/127.0.0.1:{port}/mcp")).json(&call).send().await.unwrap().text().await.unwrap();
    assert!(body.contains("Echo: hi sidecar"), "{body}");

    // SIGTERM: the sidecar says goodbye as it stops. It beat within the last second, so it could
    // not have aged out by the time it exits.
    let pid = sidecar.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let signalled = std::time::Instant::now();
    let exited = tokio::time::timeout(std::time::Duration::from_secs(10), sidecar.wait()).await;
    assert!(exited.is_ok_and(|s| s.is_ok_and(|s| s.success())), "register exits 0 on SIGTERM");
    // It beat within the last second, so it cannot have aged out before 3 s had passed.
    assert!(signalled.elapsed() < unhealthy - std::time::Duration::from_secs(1), "it stopped promptly");
    let gone = mesh.admin.store.get_agent(&mesh.owner().org_id, &id).await.unwrap().unwrap();
    assert_eq!(gone.status, "unhealthy");
    server.stop().await;
    mesh.stop().await;
    if let Some(db) = db {
        db.drop_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisations_have_registries_of_their_own() {
    let mesh = TestMesh::start_with(|c| c.registry.unhealthy_after = std::time::Duration::from_secs(600)).await;
    let (ok, acme) = mesh.manage(&mesh.key, "ORGANIZATION_CREATE", json!({"slug": "acme", "name": "Acme"})).await;
    assert!(ok, "{acme}");
    let acme_key = acme["key"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let ours = format!("{}/registry/{}", mesh.url, mesh.key);
    let theirs = format!("{}/registry/{acme_key}", mesh.url);
    let beat = |id: &str, port: u16, tools: Value| json!({"agent_id": id, "http_host": "127.0.0.1", "http_port": port, "tools": tools});
    let provider = json!([{"function_name": "get_date", "capability": "date_service"}]);
    let consumer =
        json!([{"function_name": "ask", "capability": "asker", "dependencies": [{"capability": "date_service"}]}]);

    // Acme's provider is Acme's alone: our consumer's dependency stays unresolved.
    let r = http.post(format!("{theirs}/heartbeat")).json(&beat("dates-1", 19311, provider)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let answer: Value = http
        .post(format!("{ours}/heartbeat"))
        .json(&beat("asker-1", 19312, consumer.clone()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["dependencies_resolved"]["ask"][0]["status"], "unresolved", "{answer}");
    // The same id in another organisation is another agent.
    let r = http.post(format!("{theirs}/heartbeat")).json(&beat("asker-1", 19313, consumer)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["dependencies_resolved"]["ask"][0]["agent_id"], "dates-1", "{answer}");

    let ids = |v: Value| -> Vec<String> {
        v["agents"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect()
    };
    let our_list: Value = http.get(format!("{ours}/agents")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ids(our_list), ["asker-1"]);
    let their_list: Value = http.get(format!("{theirs}/agents")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ids(their_list), ["asker-1", "dates-1"]);

    // Another organisation's key neither beats for nor sends away our agent.
    let r = http.delete(format!("{theirs}/agents/asker-1")).send().await.unwrap();
    assert_eq!(r.status(), 204, "a goodbye for its own asker-1");
    let ours_still = mesh.admin.store.get_agent(&mesh.owner().org_id, "asker-1").await.unwrap().unwrap();
    assert_eq!(ours_still.status, "healthy");
    // Known and healthy (200, or 202 within the topology margin of its own registration).
    let status = http.head(format!("{ours}/heartbeat/asker-1")).send().await.unwrap().status().as_u16();
    assert!(matches!(status, 200 | 202), "{status}");
    assert_eq!(http.head(format!("{theirs}/heartbeat/asker-1")).send().await.unwrap().status(), 410);
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_connections_on_sqlite() {
    capability_connections(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_connections_on_postgres() {
    capability_connections(true).await;
}

/// `connection add --capability`: stored and shown with its selector on both databases, refused
/// with what it cannot have, and reaching only its own organisation's providers. (Balancing over
/// real agents is mesh-testkit's registry_balance.rs.)
async fn capability_connections(pg: bool) {
    let Some((mesh, db)) = mesh_with(std::time::Duration::from_secs(600), pg).await else { return };
    let add = cli(
        &mesh,
        &["connection", "add", "dates", "--capability", "date_service", "--tag", "system", "--tag", "-legacy"]
            .into_iter()
            .chain(["--tag", "fast,cheap", "--version", ">=1.0"])
            .collect::<Vec<_>>(),
    )
    .await;
    assert!(add.ok, "{}{}", add.stdout, add.stderr);
    let list = cli(&mesh, &["connection", "list"]).await;
    let row = list.stdout.lines().find(|l| l.starts_with("dates")).unwrap_or_default().to_string();
    assert!(row.contains("capability") && row.contains("registry"), "{}", list.stdout);
    assert!(row.contains("date_service tags=system,-legacy,fast|cheap version=>=1.0"), "{}", list.stdout);
    let show = cli(&mesh, &["connection", "show", "dates", "--json"]).await;
    let shown: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(
        shown["selector"],
        json!({"capability": "date_service", "tags": ["system", "-legacy", ["fast", "cheap"]], "version": ">=1.0"})
    );
    assert_eq!(shown["transport"], "capability");
    assert_eq!(shown["url"], Value::Null);

    // What a capability connection cannot have, each refused with its reason.
    let refused = |args: &'static [&'static str], why: &'static str| {
        let mesh = &mesh;
        async move {
            let out = cli(mesh, args).await;
            assert!(!out.ok && out.stderr.contains(why), "{args:?}: {}{}", out.stdout, out.stderr);
        }
    };
    refused(&["connection", "add", "x", "--capability", "c", "-H", "Authorization: Bearer t"], "no headers or env")
        .await;
    refused(&["connection", "add", "x", "--capability", "c", "--auth", "oauth"], "provider's own credentials").await;
    refused(&["connection", "add", "x", "--capability", "c", "--url", "http://127.0.0.1:9/mcp"], "cannot be used with")
        .await;
    refused(&["connection", "add", "x", "--tag", "system"], "--capability").await;
    let (ok, bad) = mesh
        .manage(
            &mesh.key,
            "COLLECTION_CONNECTIONS_CREATE",
            json!({"slug": "y", "url": "http://127.0.0.1:9/mcp", "selector": {"capability": "c"}}),
        )
        .await;
    assert!(!ok && bad.to_string().contains("give no url"), "{bad}");
    let (ok, bad) = mesh
        .manage(&mesh.key, "COLLECTION_CONNECTIONS_CREATE", json!({"slug": "y", "selector": {"capability": ""}}))
        .await;
    assert!(!ok && bad.to_string().contains("selector.capability"), "{bad}");

    // With no provider, a call says so; another organisation's provider is never one of ours.
    let (ok, acme) = mesh.manage(&mesh.key, "ORGANIZATION_CREATE", json!({"slug": "acme", "name": "Acme"})).await;
    assert!(ok, "{acme}");
    let theirs = format!("{}/registry/{}/heartbeat", mesh.url, acme["key"].as_str().unwrap());
    let beat = json!({"agent_id": "their-dates", "http_host": "127.0.0.1", "http_port": 19321,
                      "tools": [{"function_name": "get_date", "capability": "date_service", "version": "1.5.0", "tags": ["system"]}]});
    let r = reqwest::Client::new().post(theirs).json(&beat).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let call = cli(&mesh, &["call", "dates", "get_date"]).await;
    assert!(!call.ok && call.stderr.contains("no healthy provider of date_service"), "{}{}", call.stdout, call.stderr);
    mesh.stop().await;
    if let Some(db) = db {
        db.drop_now().await;
    }
}
