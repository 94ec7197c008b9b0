//! `GET /metrics` end to end: a real mesh, a real upstream (server-everything over stdio), real
//! calls, and the answer checked by Prometheus's own checker (`promtool check metrics`, from
//! Debian's prometheus package, installed by `scripts/test-deps`). The duration histogram counts
//! exactly the calls made; 10,000 made-up tool names leave the series bounded; the token and the
//! separate listener guard the route.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt};
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{upstreams, TestMesh};
use serde_json::json;

const TOKEN: &str = "metrics-token-for-tests";

/// One sample line: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text format's samples (enough of it for assertions; promtool checks the rest).
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (head, value) = line.rsplit_once(' ').expect("a sample has a value");
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        let mut map = BTreeMap::new();
        // Label values here never hold `",` (slugs, methods, tool names of the test).
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        out.push((name.to_string(), map, value.parse().expect("a number")));
    }
    out
}

fn value(s: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    s.iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| v)
        .sum()
}

async fn scrape(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("{url}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("scrape");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// `promtool check metrics` on `text`: its exit status and what it said.
async fn promtool(text: &str) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let bin = std::env::var("MESH_TEST_PROMTOOL")
        .expect("MESH_TEST_PROMTOOL names promtool: run scripts/test-deps and source .test-deps/env.sh");
    let mut child = tokio::process::Command::new(bin)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("promtool runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_call_pass_promtool_and_stay_bounded() {
    const CALLS: usize = 100;
    const MADE_UP: usize = 10_000;
    let metrics_port = upstreams::free_port();
    let mesh = TestMesh::start_with(|c| {
        c.metrics_token = Some(mesh_core::Secret::new(TOKEN.into()));
        c.metrics_listen = Some(format!("127.0.0.1:{metrics_port}").parse().unwrap());
    })
    .await;
    let bin = upstreams::everything_bin().display().to_string();
    mesh.add_connection(json!({"slug": "everything", "command": bin, "args": ["stdio"]})).await;
    let org = mesh.owner().org_id;

    // The route is guarded: no token, a wrong one.
    assert_eq!(scrape(&mesh.url, None).await.0, 401);
    assert_eq!(scrape(&mesh.url, Some("wrong")).await.0, 401);

    let client =
        TestClient::connect_http(&mesh.endpoint("everything"), &mesh.key, ClientBehaviour::default()).await.unwrap();
    for i in 0..CALLS {
        // Every tenth a tool error (a string where a number goes).
        let r = if i % 10 == 0 {
            client.call_tool("get-sum", json!({"a": "x", "b": 1})).await.unwrap()
        } else {
            client.call_tool("echo", json!({"message": format!("m{i}")})).await.unwrap()
        };
        assert_eq!(r["isError"] == true, i % 10 == 0, "{r}");
    }

    let (status, text) = scrape(&mesh.url, Some(TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    let (ok, said) = promtool(&text).await;
    assert!(ok, "promtool check metrics refused the exposition:\n{said}\n---\n{text}");
    let s = samples(&text);
    let ops = "mcp_server_operation_duration_seconds_count";
    assert_eq!(value(&s, ops, &[("mcp_method_name", "tools/call")]), CALLS as f64, "{text}");
    assert_eq!(value(&s, ops, &[("mcp_method_name", "tools/call"), ("error_type", "tool_error")]), 10.0);
    let calls = "mcp_mesh_calls_total";
    let here = [("org_id", org.as_str()), ("route", "everything"), ("method", "tools/call")];
    assert_eq!(value(&s, calls, &here), CALLS as f64);
    assert_eq!(value(&s, "mcp_mesh_tool_calls_total", &[("tool", "echo"), ("outcome", "ok")]), 90.0);
    assert_eq!(value(&s, "mcp_mesh_tool_calls_total", &[("tool", "get-sum"), ("outcome", "tool_error")]), 10.0);
    assert!(value(&s, "mcp_mesh_bytes_total", &[("route", "everything"), ("direction", "out")]) > 0.0);
    assert_eq!(value(&s, "mcp_mesh_sessions_open", &[("route_kind", "connection")]), 1.0, "{text}");
    assert_eq!(value(&s, "mcp_mesh_upstream_links", &[("state", "up")]), 1.0, "{text}");
    assert!(
        text.contains("\nmcp_mesh_streams_open ") && text.contains("\nmcp_mesh_upstream_reconnects_total "),
        "{text}"
    );
    assert!(value(&s, "process_resident_memory_bytes", &[]) > 0.0, "process metrics: {text}");
    assert!(value(&s, "process_open_fds", &[]) > 0.0);

    // A client making up names: the series stay bounded by the cap, the calls are all counted.
    stream::iter(0..MADE_UP)
        .for_each_concurrent(16, |i| {
            let c = &client;
            async move {
                c.call_tool(&format!("made-up-{i}"), json!({})).await.expect("answered");
            }
        })
        .await;
    // A name longer than the spec allows is never a label value.
    let long = "n".repeat(300);
    client.call_tool(&long, json!({})).await.expect("answered");
    let (_, text) = scrape(&mesh.url, Some(TOKEN)).await;
    assert!(!text.contains(&long), "a 300-byte name became a label");
    let s = samples(&text);
    let names: BTreeSet<&String> =
        s.iter().filter(|(n, ..)| n == "mcp_mesh_tool_calls_total").filter_map(|(_, l, _)| l.get("tool")).collect();
    assert!(names.len() <= mesh_telemetry::Metrics::MAX_NAMES + 3, "{} tool label values", names.len());
    assert_eq!(value(&s, "mcp_mesh_tool_calls_total", &[]), (CALLS + MADE_UP + 1) as f64);
    assert!(value(&s, "mcp_mesh_tool_calls_total", &[("tool", "(other)")]) >= (MADE_UP - 2_000) as f64);
    assert!(promtool(&text).await.0);

    // A session that ends is timed.
    client.close().await.ok();
    let ended = async {
        loop {
            let (_, text) = scrape(&mesh.url, Some(TOKEN)).await;
            let s = samples(&text);
            if value(&s, "mcp_server_session_duration_seconds_count", &[("route_kind", "connection")]) >= 1.0 {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let s =
        tokio::time::timeout(std::time::Duration::from_secs(10), ended).await.expect("the session's end is counted");
    assert_eq!(value(&s, "mcp_mesh_sessions_open", &[("route_kind", "connection")]), 0.0);

    // The separate listener serves the same metrics (asking for the token there too).
    let side = format!("http://127.0.0.1:{metrics_port}");
    assert_eq!(scrape(&side, None).await.0, 401);
    let (status, text) = scrape(&side, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(text.contains("mcp_server_operation_duration_seconds_bucket"), "{text}");
    mesh.stop().await;
}

#[tokio::test]
async fn without_a_token_the_main_address_serves_no_metrics() {
    let mesh = TestMesh::start().await;
    let (status, body) = scrape(&mesh.url, Some("anything")).await;
    assert_eq!(status, 404);
    assert!(body.contains("MESH_METRICS_TOKEN"), "{body}");
    mesh.stop().await;
}
