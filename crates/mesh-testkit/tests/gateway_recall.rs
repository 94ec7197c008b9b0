//! Tool search through a running gateway (#23): LiveMCPBench's 70 servers, each a stdio upstream
//! serving its published tools and description (`py/many_tools_server.py --tools-file`), behind
//! one `smart` virtual MCP; a client asks `search_tools` each of the 95 task questions and
//! recall@k is the share of the task's annotated tools among the first k results. The same
//! figures as the library's (`mesh-core/tests/search_recall.rs`) prove that the gateway indexes
//! its members the way the library was measured; the round trip of a search is timed and printed.

#[path = "../../mesh-core/tests/livemcpbench/mod.rs"]
mod livemcpbench;

use livemcpbench::recall;
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{deps, TestMesh};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The first ten results of `search_tools` for `query`, as the tasks name tools, and how long
/// the round trip took.
async fn search(client: &TestClient, original: &HashMap<String, String>, query: &str) -> (Vec<String>, Duration) {
    let started = Instant::now();
    let result = client.call_tool("search_tools", json!({"query": query, "k": 10})).await.expect("search_tools");
    let took = started.elapsed();
    let names = result["structuredContent"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .map(|n| original.get(n).unwrap_or_else(|| panic!("{n} is a listed tool")).clone())
        .collect();
    (names, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smart_virtual_mcp_over_livemcpbench_finds_the_annotated_tools() {
    let mesh = TestMesh::start().await;
    let servers = livemcpbench::servers();
    let tasks = livemcpbench::tasks();
    let dir = tempfile::tempdir().expect("tempdir");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/many_tools_server.py");
    // The name a tool is listed under through the gateway, and the name the tasks annotate.
    let mut original: HashMap<String, String> = HashMap::new();
    let mut members = Vec::new();
    let mut uri_prefixes = HashSet::new();
    for server in &servers {
        let file = dir.path().join(format!("{}.json", server.slug));
        let served = json!({"instructions": server.description, "tools": server.tools});
        std::fs::write(&file, serde_json::to_vec(&served).expect("json")).expect("tools file");
        let slug = mesh
            .add_connection(json!({
                "slug": server.slug,
                "command": deps::python(),
                "args": [script, "--tools-file", file],
            }))
            .await;
        // A prefix starts with a letter: `12306-mcp` is listed as `mcp-12306` (the same words).
        // `asset_price_mcp` and `asset-price-mcp` would share a resource URI prefix: the second
        // gets a one-letter suffix, which search does not read (no new words either way).
        let mut prefix = match slug.split_once('-') {
            Some((digits, rest)) if digits.chars().all(|c| c.is_ascii_digit()) => format!("{rest}-{digits}"),
            _ => slug.clone(),
        };
        if !uri_prefixes.insert(prefix.replace('_', "-")) {
            prefix.push_str("-x");
        }
        for tool in &server.tools {
            let name = tool["name"].as_str().expect("name");
            original.insert(format!("{prefix}_{name}"), name.to_string());
        }
        members.push(json!({"connection": slug, "prefix": prefix}));
    }
    let (ok, out) = mesh
        .manage(
            &mesh.key,
            "COLLECTION_GATEWAYS_CREATE",
            json!({"slug": "livemcpbench", "strategy": "smart", "members": members}),
        )
        .await;
    assert!(ok, "{out}");

    let client =
        TestClient::connect_http(&mesh.endpoint("gateway/livemcpbench"), &mesh.key, ClientBehaviour::default())
            .await
            .expect("session over 70 members");
    assert_eq!(client.list_tool_names().await.expect("tools/list"), ["search_tools", "describe_tools", "call_tool"]);

    // Every tool of the catalogue is searchable through the gateway: the whole list came through.
    let (first, _) = search(&client, &original, "get current stock price").await;
    assert_eq!(first.first().map(String::as_str), Some("get_current_stock_price"), "{first:?}");
    assert_eq!(original.len(), 526, "every tool under its own prefixed name");

    let (mut at5, mut at10, mut times) = (0.0, 0.0, Vec::new());
    for task in &tasks {
        let (names, took) = search(&client, &original, &task.question).await;
        times.push(took);
        let first = |k: usize| names.iter().take(k).map(String::as_str).collect::<HashSet<&str>>();
        at5 += recall(&first(5), &task.tools);
        at10 += recall(&first(10), &task.tools);
    }
    let (at5, at10) = (at5 / tasks.len() as f64, at10 / tasks.len() as f64);
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "through the gateway: recall@5 {at5:.3}, recall@10 {at10:.3}; search_tools round trip over {} questions: p50 {:?}, p99 {:?}",
        tasks.len(),
        at(0.5),
        at(0.99)
    );
    assert!(at5 >= 0.40, "recall@5 {at5:.3} < 0.40");
    assert!(at10 >= 0.50, "recall@10 {at10:.3} < 0.50");
    drop(client);
    mesh.stop().await;
}
