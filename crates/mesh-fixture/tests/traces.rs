//! Traces end to end: a real mesh exporting over OTLP/HTTP to a real receiver on loopback (built
//! on the `opentelemetry-proto` definitions), the fixture as upstream over HTTP and over stdio,
//! and a client that sends its own trace context — in the `traceparent` header on one route and
//! in `params._meta` on the other. Every tool call must give one server span (named and
//! attributed per the MCP semantic conventions) with one client child, all in the client's trace;
//! the upstream must receive the client span's context (header and `_meta` over HTTP, `_meta`
//! over stdio). A collector that is down costs no call, and the drops are counted.

mod common;

use common::BIN;
use mesh_testkit::otlp::Receiver;
use mesh_testkit::{raw, TestMesh};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const VERSION: &str = "2025-11-25";
const CALLS: usize = 100;

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand_byte())).collect()
}

fn rand_byte() -> u8 {
    mesh_core::id::random_base62(1).as_bytes()[0]
}

/// Calls `name` on a session; the trace context goes in the header and/or `_meta`.
async fn call(
    url: &str,
    key: &str,
    sid: &str,
    id: usize,
    name: &str,
    header: Option<&str>,
    meta: Option<&str>,
) -> Value {
    let mut params = json!({"name": name, "arguments": {}});
    if let Some(m) = meta {
        params["_meta"] = json!({"traceparent": m});
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string();
    let mut headers = raw::post_headers(key, Some(sid));
    if let Some(h) = header {
        headers.insert("traceparent", h.parse().unwrap());
    }
    let (status, _, text) = raw::post(url, headers, body).await;
    assert_eq!(status, 200, "{text}");
    raw::messages(&text).into_iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("no reply in {text}"))
}

async fn tool_names(url: &str, key: &str, sid: &str, traceparent: &str) -> Vec<String> {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "tools/list"}).to_string();
    let mut headers = raw::post_headers(key, Some(sid));
    headers.insert("traceparent", traceparent.parse().unwrap());
    let (_, _, text) = raw::post(url, headers, body).await;
    let reply = raw::messages(&text).into_iter().find(|m| m["id"] == 0).expect("tools/list reply");
    reply["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

/// The trace id and span id of a `traceparent` value.
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    (parts[1].to_string(), parts[2].to_string())
}

/// Checks the server spans of one trace and their client children; returns them by span id.
fn check_trace(spans: &[Value], trace: &str, parent: &str, route: &str, expect_calls: usize) -> HashMap<String, Value> {
    let mine: Vec<&Value> = spans.iter().filter(|s| s["trace_id"] == trace).collect();
    let servers: Vec<&Value> =
        mine.iter().copied().filter(|s| s["kind"] == "SERVER" && attr(s, "mcp.method.name") == "tools/call").collect();
    assert_eq!(servers.len(), expect_calls, "server spans of trace {trace}");
    let by_id: HashMap<String, Value> =
        mine.iter().map(|s| (s["span_id"].as_str().unwrap().to_string(), (*s).clone())).collect();
    for s in &servers {
        let tool = attr(s, "gen_ai.tool.name").as_str().expect("gen_ai.tool.name");
        assert_eq!(s["name"], format!("tools/call {tool}"), "{s}");
        assert_eq!(s["parent_span_id"], parent, "the client's span is the parent: {s}");
        assert_eq!(attr(s, "gen_ai.operation.name"), "execute_tool");
        assert_eq!(attr(s, "mcp.protocol.version"), VERSION);
        assert!(attr(s, "mcp.session.id").as_str().is_some_and(|v| v.len() == 32), "{s}");
        assert!(attr(s, "jsonrpc.request.id").as_str().is_some(), "{s}");
        assert_eq!(attr(s, "mesh.route"), route);
        assert!(attr(s, "mesh.org.id").as_str().is_some() && attr(s, "mesh.user.id").as_str().is_some());
        assert_eq!(s["resource"]["service.name"], "mcp-mesh");
        if tool.ends_with("test_error_handling") {
            assert_eq!(attr(s, "error.type"), "tool_error", "{s}");
            assert_eq!(s["status_code"], "ERROR");
        } else if tool == "no_such_tool" {
            // A JSON-RPC error reply: its code, as the semantic conventions say.
            assert_eq!(
                (attr(s, "error.type").as_str(), attr(s, "mesh.outcome").as_str()),
                (Some("-32602"), Some("protocol_error"))
            );
            assert_eq!(s["status_code"], "ERROR");
        } else {
            assert!(attr(s, "error.type").is_null(), "{s}");
        }
        let children: Vec<&Value> = mine.iter().copied().filter(|c| c["parent_span_id"] == s["span_id"]).collect();
        assert_eq!(children.len(), 1, "one upstream leg under {s}");
        let c = children[0];
        assert_eq!(c["kind"], "CLIENT");
        let upstream_tool = attr(c, "gen_ai.tool.name").as_str().unwrap();
        assert!(tool.ends_with(upstream_tool), "{tool} goes upstream as {upstream_tool}");
        assert_eq!(c["name"], format!("tools/call {upstream_tool}"));
        assert!(attr(c, "mesh.connection").as_str().is_some_and(|v| !v.is_empty()), "{c}");
        let ns = |span: &Value, k: &str| span[k].as_u64().unwrap_or_else(|| panic!("{k} in {span}"));
        assert!(ns(c, "start_ns") >= ns(s, "start_ns") && ns(c, "end_ns") <= ns(s, "end_ns"), "{c} within {s}");
    }
    by_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_follow_each_call_from_the_client_through_the_mesh_into_the_upstream() {
    let receiver = Receiver::start(&[]).await;
    let (_fixture, fixture_url) = common::fixture_http("legacy").await;
    let endpoint = receiver.endpoint();
    let mesh = TestMesh::start_with(move |c| {
        c.tracing = Some(mesh_telemetry::TraceSettings {
            delay: Duration::from_millis(100),
            ..mesh_telemetry::TraceSettings::to(&endpoint)
        })
    })
    .await;
    mesh.add_connection(json!({"slug": "alpha", "url": fixture_url})).await;
    mesh.add_connection(json!({"slug": "beta", "command": BIN, "args": ["stdio"]})).await;
    let (ok, made) = mesh
        .manage(
            &mesh.key,
            "COLLECTION_GATEWAYS_CREATE",
            json!({"slug": "gw", "members": [{"connection": "alpha"}, {"connection": "beta"}]}),
        )
        .await;
    assert!(ok, "{made}");

    // A direct route, context in the header.
    let (t1, p1) = (random_hex(16), random_hex(8));
    let header = format!("00-{t1}-{p1}-01");
    let url = mesh.endpoint("alpha");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;
    for i in 0..CALLS {
        let tool = if i % 10 == 9 { "test_error_handling" } else { "test_simple_text" };
        let r = call(&url, &mesh.key, &sid, i + 1, tool, Some(&header), None).await;
        assert_eq!(r["result"]["isError"] == true, i % 10 == 9, "{r}");
    }
    let unknown = call(&url, &mesh.key, &sid, 999, "no_such_tool", Some(&header), None).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let seen = call(&url, &mesh.key, &sid, 1000, "trace_context", Some(&header), None).await;
    let seen = seen["result"]["structuredContent"].clone();

    // A virtual MCP over both, context in `_meta`.
    let (t2, p2) = (random_hex(16), random_hex(8));
    let meta = format!("00-{t2}-{p2}-01");
    let gw = format!("{}/mcp/gateway/gw", mesh.url);
    let gsid = raw::open_session(&gw, &mesh.key, VERSION).await;
    // Its first tools/list fetches every member's list: one client span per member under it.
    let (t3, p3) = (random_hex(16), random_hex(8));
    let names = tool_names(&gw, &mesh.key, &gsid, &format!("00-{t3}-{p3}-01")).await;
    let named = |member: &str, tool: &str| {
        names
            .iter()
            .find(|n| n.starts_with(member) && n.ends_with(tool))
            .cloned()
            .unwrap_or_else(|| panic!("{member} {tool} in {names:?}"))
    };
    for i in 0..CALLS {
        let member = if i % 2 == 0 { "alpha" } else { "beta" };
        let r = call(&gw, &mesh.key, &gsid, i + 1, &named(member, "test_simple_text"), None, Some(&meta)).await;
        assert!(r["result"].is_object(), "{r}");
    }
    let over_http = call(&gw, &mesh.key, &gsid, 1001, &named("alpha", "trace_context"), None, Some(&meta)).await;
    let over_stdio = call(&gw, &mesh.key, &gsid, 1002, &named("beta", "trace_context"), None, Some(&meta)).await;

    let spans = receiver
        .wait_for("every span", |s| {
            let count = |t: &str| s.iter().filter(|x| x["trace_id"] == t && x["kind"] == "CLIENT").count();
            count(&t1) > CALLS + 1 && count(&t2) > CALLS + 1 && count(&t3) >= 2
        })
        .await;
    let list: Vec<&Value> = spans.iter().filter(|s| s["trace_id"] == t3).collect();
    let server = list.iter().find(|s| s["kind"] == "SERVER").expect("the list's server span");
    assert_eq!((server["name"].as_str(), server["parent_span_id"].as_str()), (Some("tools/list"), Some(p3.as_str())));
    let mut members: Vec<&str> = list
        .iter()
        .filter(|s| s["kind"] == "CLIENT" && s["parent_span_id"] == server["span_id"] && s["name"] == "tools/list")
        .filter_map(|s| attr(s, "mesh.connection").as_str())
        .collect();
    members.sort();
    assert_eq!(members, ["alpha", "beta"], "one client span per member: {list:?}");
    let direct = check_trace(&spans, &t1, &p1, "alpha", CALLS + 2);
    let via_gw = check_trace(&spans, &t2, &p2, "gw", CALLS + 2);

    // The upstream received the client span's context: same trace, the leg's span id, in the
    // header and in `_meta` over HTTP, in `_meta` over stdio.
    let check_seen = |seen: &Value, by_id: &HashMap<String, Value>, trace: &str, header: bool| {
        let meta = seen["meta"].as_str().unwrap_or_else(|| panic!("no _meta.traceparent upstream: {seen}"));
        let (t, s) = ids(meta);
        assert_eq!(t, trace, "{seen}");
        assert_eq!(by_id.get(&s).map(|x| x["kind"].clone()), Some(json!("CLIENT")), "the upstream leg's span: {seen}");
        if header {
            assert_eq!(seen["header"], meta, "the header carries the same context over HTTP");
        } else {
            assert!(seen["header"].is_null(), "stdio has no headers: {seen}");
        }
    };
    check_seen(&seen, &direct, &t1, true);
    check_seen(&over_http["result"]["structuredContent"], &via_gw, &t2, true);
    check_seen(&over_stdio["result"]["structuredContent"], &via_gw, &t2, false);
    let legs: Vec<&Value> = via_gw.values().filter(|s| s["kind"] == "CLIENT").collect();
    let transports: std::collections::BTreeSet<&str> =
        legs.iter().filter_map(|s| attr(s, "network.transport").as_str()).collect();
    assert_eq!(transports, ["pipe", "tcp"].into_iter().collect(), "stdio and HTTP legs");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_no_call_and_its_drops_are_counted() {
    let receiver = Receiver::start(&[]).await;
    let endpoint = receiver.endpoint();
    receiver.stop().await;
    let mesh = TestMesh::start_with(move |c| {
        c.metrics_token = Some(mesh_core::Secret::new("t".into()));
        c.tracing = Some(mesh_telemetry::TraceSettings {
            queue: 16,
            batch: 8,
            delay: Duration::from_millis(50),
            ..mesh_telemetry::TraceSettings::to(&endpoint)
        })
    })
    .await;
    mesh.add_connection(json!({"slug": "beta", "command": BIN, "args": ["stdio"]})).await;
    let url = mesh.endpoint("beta");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;
    for i in 0..CALLS {
        let r = call(
            &url,
            &mesh.key,
            &sid,
            i + 1,
            "test_simple_text",
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            None,
        )
        .await;
        assert!(r["result"].is_object(), "every call succeeds: {r}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = reqwest::Client::new()
            .get(format!("{}/metrics", mesh.url))
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        // Every span of the 100 calls (and the session's opening) is lost, and said so.
        if value("mcp_mesh_trace_spans_dropped_total") >= (2 * CALLS) as f64 {
            assert_eq!(value("mcp_mesh_trace_spans_exported_total"), 0.0);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "drops were not counted: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_pushed_over_otlp_with_the_semantic_convention_names() {
    const N: usize = 10;
    let receiver = Receiver::start(&[]).await;
    let endpoint = receiver.metrics_endpoint();
    let mesh = TestMesh::start_with(move |c| {
        c.metrics_export = Some(mesh_telemetry::MetricsExport::to(&endpoint, Duration::from_millis(200)))
    })
    .await;
    mesh.add_connection(json!({"slug": "beta", "command": BIN, "args": ["stdio"]})).await;
    let url = mesh.endpoint("beta");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;
    for i in 0..N {
        call(&url, &mesh.key, &sid, i + 1, "test_simple_text", None, None).await;
    }
    let is = |p: &Value, name: &str, attrs: &[(&str, &str)]| {
        p["name"] == name && attrs.iter().all(|(k, v)| p["attributes"][*k] == *v)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (histogram, calls) = loop {
        let points = receiver.points().await;
        let last = |name: &str, attrs: &[(&str, &str)]| points.iter().rev().find(|p| is(p, name, attrs)).cloned();
        let h = last("mcp.server.operation.duration", &[("mcp.method.name", "tools/call")]);
        let c = last("mcp_mesh_calls", &[("route", "beta"), ("method", "tools/call"), ("outcome", "ok")]);
        if let (Some(h), Some(c)) = (&h, &c) {
            if h["count"] == N && c["value"] == N as f64 {
                break (h.clone(), c.clone());
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no complete push: {h:?} {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((histogram["type"].as_str(), histogram["unit"].as_str()), (Some("histogram"), Some("s")));
    assert_eq!(histogram["temporality"], "CUMULATIVE");
    let buckets = histogram["bucket_counts"].as_array().unwrap();
    assert_eq!(buckets.len(), histogram["explicit_bounds"].as_array().unwrap().len() + 1);
    assert_eq!(buckets.iter().map(|b| b.as_u64().unwrap()).sum::<u64>(), N as u64);
    assert!(histogram["attributes"].get("error.type").is_none(), "success has no error.type: {histogram}");
    assert_eq!((calls["type"].as_str(), calls["monotonic"].as_bool()), (Some("sum"), Some(true)));
    assert_eq!(calls["resource"]["service.name"], "mcp-mesh");
    mesh.stop().await;
}
