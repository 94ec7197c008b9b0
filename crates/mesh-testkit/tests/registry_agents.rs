//! The agent registry (#22), end to end with the real packages: two unmodified agents of the
//! mcp-mesh SDK (PyPI `mcp-mesh`, `py/mesh_provider.py` and `py/mesh_consumer.py`) register with
//! the mesh at `/registry/{key}`, the consumer's dependency is resolved to the provider and its
//! tool answers with the provider's words; the SDK's own CLI (`meshctl`, npm
//! `@mcpmesh/cli-linux-x64`) lists both and calls a tool through the mesh, where the call is a
//! governed, audited call of the agent's connection. A provider killed with SIGKILL is aged out
//! and the dependency becomes unresolved, then resolved again when a second provider starts; a
//! consumer stopped with SIGTERM deregisters at once. Bad keys, roles and bodies are refused.

use mesh_testkit::TestMesh;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Heartbeats every second, unhealthy after six silent seconds: the SDK's and the mesh's
/// defaults (5 s and 10 s) scaled down so that the test takes seconds, not minutes.
const BEAT_SECS: &str = "1";
const UNHEALTHY: Duration = Duration::from_secs(6);

fn dep(var: &str) -> PathBuf {
    let p = PathBuf::from(std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: source .test-deps/env.sh")));
    assert!(p.exists(), "{} is missing: run scripts/test-deps", p.display());
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Agent {
    child: tokio::process::Child,
    port: u16,
    /// Held open: the agent exits when it closes, so a test that dies leaves no agent behind.
    _stdin: Option<tokio::process::ChildStdin>,
}

impl Agent {
    fn start(script: &str, registry: &str) -> Agent {
        let port = free_port();
        let child = tokio::process::Command::new(dep("MESH_TEST_MCPMESH_PYTHON"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(script))
            // Bind and advertise loopback only.
            .env("HOST", "127.0.0.1")
            .env("MCP_MESH_HTTP_HOST", "127.0.0.1")
            .env("MCP_MESH_HTTP_PORT", port.to_string())
            .env("MCP_MESH_REGISTRY_URL", registry)
            .env("MCP_MESH_HEALTH_INTERVAL", BEAT_SECS)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the mcp-mesh agent starts");
        let mut child = child;
        let stdin = child.stdin.take();
        Agent { child, port, _stdin: stdin }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill").args([sig, &pid]).status().expect("kill runs").success();
        assert!(ok, "kill {sig} {pid}");
    }
}

async fn agents(http: &reqwest::Client, registry: &str) -> Vec<Value> {
    let v: Value = http.get(format!("{registry}/agents")).send().await.unwrap().json().await.unwrap();
    v["agents"].as_array().cloned().unwrap_or_default()
}

fn by_endpoint<'a>(all: &'a [Value], endpoint: &str) -> Option<&'a Value> {
    all.iter().find(|a| a["endpoint"] == endpoint)
}

/// Polls `check` every 250 ms until it returns `Some`, for at most `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("{what} within {limit:?}; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn meshctl(args: &[&str], registry: &str) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(dep("MESH_TEST_MESHCTL"))
            .args(args)
            .args(["--registry-url", registry])
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("meshctl finishes")
    .expect("meshctl runs");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Polls `meshctl call ask_date` until its output contains `text`.
async fn until_call_says(registry: &str, text: &str, what: &str, limit: Duration) {
    wait_for(what, limit, || async move {
        let out = meshctl(&["call", "ask_date"], registry).await;
        if out.contains(text) {
            Ok(())
        } else {
            Err(out)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_agents_register_resolve_fail_over_and_leave() {
    let mesh = TestMesh::start_with(|c| c.registry.unhealthy_after = UNHEALTHY).await;
    let http = reqwest::Client::new();
    let registry = format!("{}/registry/{}", mesh.url, mesh.key);

    // Refusals first: no valid key, no registration; a member may not register; bad bodies.
    let bogus = format!("{}/registry/mesh_not-a-key", mesh.url);
    assert_eq!(http.get(format!("{bogus}/agents")).send().await.unwrap().status(), 401);
    let r = http.post(format!("{bogus}/heartbeat")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let member = mesh.extra_key("member").await;
    let hb = json!({"agent_id": "sneaky-1", "http_host": "127.0.0.1", "http_port": 9, "tools": []});
    let member_registry = format!("{}/registry/{member}", mesh.url);
    let r = http.post(format!("{member_registry}/heartbeat")).json(&hb).send().await.unwrap();
    assert_eq!(r.status(), 403, "{}", r.text().await.unwrap());
    let r = http.post(format!("{registry}/heartbeat")).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().starts_with("Invalid JSON payload"));
    let r = http.post(format!("{registry}/heartbeat")).json(&json!({"tools": []})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "agent_id is required");
    let r = http.post(format!("{registry}/proxy/127.0.0.1:9/mcp")).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 403, "only registered agents are proxied to");
    assert!(agents(&http, &registry).await.is_empty());

    // A provider and a consumer join; the consumer's dependency resolves to the provider.
    let first = Agent::start("mesh_provider.py", &registry);
    let mut consumer = Agent::start("mesh_consumer.py", &registry);
    let (provider_id, consumer_id) =
        wait_for("both agents healthy, the dependency resolved", Duration::from_secs(60), || {
            let (http, registry) = (&http, &registry);
            let (p, c) = (first.endpoint(), consumer.endpoint());
            async move {
                let all = agents(http, registry).await;
                let (Some(pa), Some(ca)) = (by_endpoint(&all, &p), by_endpoint(&all, &c)) else {
                    return Err(format!("{all:?}"));
                };
                let resolved = &ca["dependency_resolutions"][0];
                if pa["status"] == "healthy" && ca["status"] == "healthy" && resolved["status"] == "available" {
                    assert_eq!(resolved["provider_agent_id"], pa["id"]);
                    assert_eq!(resolved["mcp_tool"], "get_date");
                    Ok((pa["id"].as_str().unwrap().to_string(), ca["id"].as_str().unwrap().to_string()))
                } else {
                    Err(format!("{all:?}"))
                }
            }
        })
        .await;

    // A member's key reads but may not keep an agent alive or send it away.
    let r = http.head(format!("{member_registry}/heartbeat/{provider_id}")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http.delete(format!("{member_registry}/agents/{provider_id}")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(agents(&http, &member_registry).await.len(), 2);

    // Each agent is a connection of the key's organisation.
    let connections = mesh.admin.list_connections(&mesh.owner()).await.unwrap();
    let consumer_conn = connections.iter().find(|c| c.slug == consumer_id).expect("the consumer's connection");
    assert_eq!(consumer_conn.url.as_deref(), Some(format!("{}/mcp", consumer.endpoint()).as_str()));
    assert!(connections.iter().any(|c| c.slug == provider_id));

    // meshctl, unmodified, against the mesh: list, then call the consumer's tool (the consumer
    // learns of the provider on a heartbeat, so the first calls may still say NO_PROVIDER).
    let listed = meshctl(&["list"], &registry).await;
    assert!(listed.contains(&provider_id) && listed.contains(&consumer_id) && listed.contains("2 healthy"), "{listed}");
    until_call_says(
        &registry,
        "provider says: 2024-01-01 (from the provider)",
        "meshctl call reaches the provider through the consumer",
        Duration::from_secs(30),
    )
    .await;
    // The call went through the consumer's connection: authorised and audited like any other.
    let (ok, audit) = mesh.manage(&mesh.key, "AUDIT_QUERY", json!({"tool": "ask_date", "outcome": "ok"})).await;
    assert!(ok, "{audit}");
    let rows = audit["items"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r["route"] == consumer_id.as_str()), "{audit}");

    // The provider dies without a word: aged out, the dependency unresolved, the consumer's
    // tool says so.
    first.signal("-KILL");
    wait_for("the killed provider aged out and the dependency unresolved", Duration::from_secs(30), || {
        let (http, registry, provider_id) = (&http, &registry, &provider_id);
        let c = consumer.endpoint();
        async move {
            let all = agents(http, registry).await;
            let gone = all.iter().any(|a| a["id"] == provider_id.as_str() && a["status"] == "unhealthy");
            let unresolved =
                by_endpoint(&all, &c).is_some_and(|a| a["dependency_resolutions"][0]["status"] == "unresolved");
            if gone && unresolved {
                Ok(())
            } else {
                Err(format!("{all:?}"))
            }
        }
    })
    .await;
    until_call_says(&registry, "NO_PROVIDER", "the consumer learns that no provider is left", Duration::from_secs(30))
        .await;

    // A second provider: resolved again.
    let second = Agent::start("mesh_provider.py", &registry);
    until_call_says(&registry, "provider says:", "the second provider takes over", Duration::from_secs(60)).await;
    let all = agents(&http, &registry).await;
    let resolved = &by_endpoint(&all, &consumer.endpoint()).unwrap()["dependency_resolutions"][0];
    assert_eq!(resolved["endpoint"], second.endpoint(), "{all:?}");

    // SIGTERM: the consumer says goodbye (DELETE) as it stops. It beat within the last second,
    // so it cannot have aged out before UNHEALTHY - 1 s: seen unhealthy sooner, it said goodbye.
    consumer.signal("-TERM");
    wait_for("the consumer deregistered on SIGTERM", UNHEALTHY - Duration::from_secs(1), || {
        let (http, registry, consumer_id) = (&http, &registry, &consumer_id);
        async move {
            let all = agents(http, registry).await;
            let left = all.iter().find(|a| a["id"] == consumer_id.as_str()).unwrap();
            if left["status"] == "unhealthy" {
                Ok(())
            } else {
                Err(left.to_string())
            }
        }
    })
    .await;
    let stopped = tokio::time::timeout(Duration::from_secs(20), consumer.child.wait()).await;
    assert!(stopped.is_ok(), "the consumer stops on SIGTERM");
    let listed = meshctl(&["list"], &registry).await;
    assert!(listed.contains("1 healthy"), "{listed}");
    drop(second);
    mesh.stop().await;
}
