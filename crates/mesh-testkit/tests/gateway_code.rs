//! The `code` strategy of a virtual MCP (#23), end to end: the official Python SDK lists one tool,
//! `run_code`, whose description is the catalogue as a typed API, and runs scripts in the mesh's
//! QuickJS sandbox over two real servers (server-everything and mcp-server-time). A script calls
//! two tools and combines their results; a tool policy hides is absent from the API and refused
//! inside a script; an infinite loop and a memory bomb are stopped within their limits and the
//! mesh goes on serving; every call a script makes is in the audit trail under the real tool; a
//! script itself spends the caller's rate limit; a cancelled script stops; a tool that asks the
//! client during a script is answered.

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{deps, raw, upstreams, TestMesh};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The text of a tool result's first content block.
fn text(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_virtual_mcp_runs_scripts_under_policy_and_limits() {
    let wall = Duration::from_secs(3);
    let mesh = TestMesh::start_with(move |c| {
        c.code_limits.wall = wall;
        c.code_limits.memory = 32 << 20;
    })
    .await;
    // A member who may use everything but converting times.
    let (key, key_id) = mesh.strategy_over_everything_and_time("code", "code").await;

    let scripts = [
        // Two tools, combined.
        r#"const echo = tools.everything_echo({message: "hi code"});
           const now = await tools.time_get_current_time({timezone: "Europe/Paris"});
           console.log("asked two tools");
           return {echo, zone: (typeof now === "string" ? JSON.parse(now) : now).timezone};"#,
        // The hidden tool: not in the API, and refused when called by name anyway.
        r#"const listed = typeof tools.time_convert_time;
           try { callTool("time_convert_time", {source_timezone: "UTC", time: "12:00", target_timezone: "Asia/Tokyo"}); return "called"; }
           catch (e) { return listed + " / " + e.message; }"#,
        // A script may not start another.
        r#"try { callTool("run_code", {code: "return 1"}); return "nested"; } catch (e) { return e.message; }"#,
        // Forever, then a memory bomb, then a plain script: the mesh is still there.
        "while (true) {}",
        "const hog = []; while (true) hog.push('x'.repeat(1 << 20));",
        "return 6 * 7",
    ];
    let mut args = vec!["--url".to_string(), mesh.endpoint("gateway/code"), "--key".to_string(), key.clone()];
    for s in scripts {
        args.extend(["--script".to_string(), s.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let (ok, stdout, stderr) = deps::run_python("code_client.py", &args, Duration::from_secs(120)).await;
    assert!(ok, "code_client.py:\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON report");

    let tools = report["tools"].as_array().expect("tools");
    assert_eq!(tools.len(), 1, "{tools:?}");
    assert_eq!(tools[0]["name"], "run_code");
    let api = tools[0]["description"].as_str().unwrap_or_default();
    assert!(api.contains("tools.everything_echo({message: string"), "{api}");
    assert!(api.contains("tools.time_get_current_time({timezone: string})"), "{api}");
    assert!(!api.contains("convert_time"), "the hidden tool is not in the API: {api}");

    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs[0]["isError"], false, "{}", runs[0]);
    assert_eq!(runs[0]["structuredContent"]["result"], json!({"echo": "Echo: hi code", "zone": "Europe/Paris"}));
    assert_eq!(runs[0]["structuredContent"]["logs"], json!(["asked two tools"]));
    assert_eq!(runs[1]["structuredContent"]["result"], json!("undefined / Unknown tool: time_convert_time"));
    assert_eq!(runs[2]["structuredContent"]["result"], json!("run_code cannot be called from a script"));
    assert_eq!(runs[3]["isError"], true);
    assert!(text(&runs[3]).contains("time limit of 3 s"), "{}", runs[3]);
    assert_eq!(runs[4]["isError"], true);
    assert!(text(&runs[4]).contains("memory limit of 32 MiB"), "{}", runs[4]);
    assert_eq!(runs[5]["structuredContent"]["result"], json!(42));
    // Each limit stopped its script near its time: the loop at the wall limit, not the client's.
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());

    // Every tool call a script made is in the audit trail, under the real tool's name.
    let rows = mesh.manage_ok("AUDIT_QUERY", json!({"route": "code", "method": "tools/call", "limit": 100})).await;
    let rows = rows["items"].as_array().cloned().unwrap_or_default();
    let named = |name: &str, outcome: &str| rows.iter().any(|r| r["name"] == name && r["outcome"] == outcome);
    assert!(named("everything_echo", "ok"), "{rows:#?}");
    assert!(named("time_get_current_time", "ok"), "{rows:#?}");
    assert!(named("time_convert_time", "denied"), "{rows:#?}");

    // A script is a call: it spends the key's rate limit before it runs, and is refused and
    // audited as rate limited when the limit is spent.
    mesh.manage_ok("RATE_LIMIT_SET", json!({"scope": "key", "target": key_id, "perMinute": 1, "burst": 2})).await;
    let client = TestClient::connect_http(&mesh.endpoint("gateway/code"), &key, ClientBehaviour::default())
        .await
        .expect("session");
    for _ in 0..2 {
        let run = client.call_tool("run_code", json!({"code": "return 1"})).await.expect("within the limit");
        assert_eq!(run["structuredContent"]["result"], json!(1), "{run}");
    }
    let refused = client.call_tool("run_code", json!({"code": "return 1"})).await.expect_err("over the limit");
    assert!(format!("{refused:#}").contains("HTTP 429"), "{refused:#}");
    let rows = mesh.manage_ok("AUDIT_QUERY", json!({"route": "code", "method": "tools/call", "limit": 100})).await;
    let rows = rows["items"].as_array().cloned().unwrap_or_default();
    assert!(rows.iter().any(|r| r["name"] == "run_code" && r["outcome"] == "rate_limited"), "{rows:#?}");
    mesh.stop().await;
}

/// A mesh whose scripts may run for `wall`, with a code virtual MCP `code` over server-everything.
async fn code_over_everything(wall: Duration) -> TestMesh {
    let mesh = TestMesh::start_with(move |c| c.code_limits.wall = wall).await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    mesh.manage_ok(
        "COLLECTION_GATEWAYS_CREATE",
        json!({"slug": "code", "strategy": "code", "members": [{"connection": "everything"}]}),
    )
    .await;
    mesh
}

/// A client that cancels its `run_code` call stops the script: the four places of the
/// organisation, held by four scripts that would loop for a minute, are given back, so a fifth
/// script runs (without the cancellation it would wait 10 s for a place and be refused); each
/// cancelled call ends without a reply and is audited as cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_script_stops_and_gives_its_place_back() {
    let mesh = code_over_everything(Duration::from_secs(60)).await;
    let url = mesh.endpoint("gateway/code");
    let sid = raw::open_session(&url, &mesh.key, "2025-11-25").await;
    let run = |id: u64, code: &str| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "run_code", "arguments": {"code": code}}});
        let (url, headers) = (url.clone(), raw::post_headers(&mesh.key, Some(&sid)));
        tokio::spawn(async move { raw::post(&url, headers, body.to_string()).await })
    };
    let loops: Vec<_> = (1..=4).map(|id| (id, run(id, "while (true) {}"))).collect();
    let until = Instant::now() + Duration::from_secs(20);
    for (id, call) in &loops {
        // A cancellation that arrives before its request is known is ignored (as the spec
        // allows): send it until the call has ended.
        while !call.is_finished() {
            assert!(Instant::now() < until, "script {id} still runs after its cancellation");
            let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                "params": {"requestId": id, "reason": "the user stopped it"}});
            let (status, _, _) = raw::post(&url, raw::post_headers(&mesh.key, Some(&sid)), cancel.to_string()).await;
            assert_eq!(status, 202);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for (id, call) in loops {
        let (status, _, body) = call.await.expect("joined");
        assert_eq!(status, 200, "{body}");
        assert!(
            raw::messages(&body).iter().all(|m| m.get("result").is_none()),
            "call {id} ended without a reply: {body}"
        );
    }
    let (status, _, body) = run(5, "return 6 * 7").await.expect("joined");
    assert_eq!(status, 200, "{body}");
    let reply = raw::messages(&body).pop().expect("a reply");
    assert_eq!(reply["result"]["structuredContent"]["result"], json!(42), "{reply}");

    let rows = loop {
        let rows = mesh.manage_ok("AUDIT_QUERY", json!({"route": "code", "name": "run_code", "limit": 100})).await;
        let rows = rows["items"].as_array().cloned().unwrap_or_default();
        if rows.iter().filter(|r| r["outcome"] == "cancelled").count() == 4 || Instant::now() > until {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rows.iter().filter(|r| r["outcome"] == "cancelled").count(), 4, "{rows:#?}");
    mesh.stop().await;
}

/// A tool that asks the client something during a script's call (sampling, elicitation) reaches
/// the client on the `run_code` call's stream, and the client's answer goes back to the tool:
/// the script gets the tool's result (before, the question was lost and the call waited until
/// the script's time was up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_asks_the_client_during_a_script_is_answered() {
    let mesh = code_over_everything(Duration::from_secs(20)).await;
    let behaviour = ClientBehaviour {
        sampling_reply: Some("pong through a script".into()),
        elicitation_accept: Some(json!({"name": "Grace Hopper", "check": true})),
        ..ClientBehaviour::default()
    };
    let client = TestClient::connect_http(&mesh.endpoint("gateway/code"), &mesh.key, behaviour).await.expect("session");
    let script = r#"const sampled = callTool("everything_trigger-sampling-request", {prompt: "ping", maxTokens: 16});
                    const elicited = callTool("everything_trigger-elicitation-request", {});
                    return {sampled, elicited};"#;
    let run = client.call_tool("run_code", json!({"code": script})).await.expect("run_code");
    assert_eq!(run["isError"], false, "{run}");
    let result = run["structuredContent"]["result"].to_string();
    assert!(result.contains("pong through a script"), "{run}");
    assert!(result.contains("Grace Hopper"), "{run}");
    assert_eq!(client.sampling_requests_seen(), 1);
    mesh.stop().await;
}
