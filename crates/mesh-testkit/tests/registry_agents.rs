//! The agent registry (#22), end to end with the real packages: two unmodified agents of the
//! mcp-mesh SDK (PyPI `mcp-mesh`, `py/mesh_provider.py` and `py/mesh_consumer.py`) register with
//! the mesh at `/registry/{key}`, the consumer's dependency is resolved to the provider and its
//! tool answers with the provider's words; the SDK's own CLI (`meshctl`, npm
//! `@mcpmesh/cli-linux-x64`) lists both and calls a tool through the mesh, where the call is a
//! governed, audited call of the agent's connection. A provider killed with SIGKILL is aged out
//! and the dependency becomes unresolved, then resolved again when a second provider starts; a
//! consumer stopped with SIGTERM deregisters at once. Bad keys, roles and bodies are refused.

mod sdk_agents;

use mesh_testkit::TestMesh;
use sdk_agents::{agents, by_endpoint, dep, wait_for, Agent};
use serde_json::{json, Value};
use std::time::Duration;

/// Heartbeats every second, unhealthy after six silent seconds: the SDK's and the mesh's
/// defaults (5 s and 10 s) scaled down so that the test takes seconds, not minutes.
const BEAT_SECS: u64 = 1;
const UNHEALTHY: Duration = Duration::from_secs(6);

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
    let first = Agent::start("mesh_provider.py", &registry, BEAT_SECS, &[]);
    let mut consumer = Agent::start("mesh_consumer.py", &registry, BEAT_SECS, &[]);
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
    let second = Agent::start("mesh_provider.py", &registry, BEAT_SECS, &[]);
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
