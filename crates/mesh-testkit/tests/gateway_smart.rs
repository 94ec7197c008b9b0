//! The `smart` strategy of a virtual MCP (#23), end to end: a client lists three meta-tools
//! instead of the catalogue, searches by what it wants done, describes and calls what it found,
//! with the official Python SDK as the client and two real servers behind the gateway
//! (server-everything and mcp-server-time); a tool policy hides is absent from search and refused
//! through `call_tool`; every call through `call_tool` is audited under the real tool's name; bad
//! arguments come back as errors the model can read; switching back to passthrough lists the
//! catalogue again.

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{deps, text_of, TestMesh};
use serde_json::{json, Value};
use std::time::Duration;

const META: [&str; 3] = ["search_tools", "describe_tools", "call_tool"];

fn found(search: &Value) -> Vec<String> {
    search["structuredContent"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smart_virtual_mcp_searches_describes_and_calls_under_policy() {
    let mesh = TestMesh::start().await;
    // A member who may use everything but converting times.
    let (key, _) = mesh.strategy_over_everything_and_time("smart", "smart").await;
    let refused =
        mesh.manage(&mesh.key, "COLLECTION_GATEWAYS_UPDATE", json!({"id": "smart", "strategy": "clever"})).await;
    assert!(!refused.0 && refused.1.to_string().contains("unknown variant `clever`"), "{refused:?}");
    let url = mesh.endpoint("gateway/smart");

    // The official Python SDK: list, search, describe, call, and the hidden tool called anyway.
    let (ok, stdout, stderr) = deps::run_python(
        "smart_client.py",
        &[
            "--url",
            &url,
            "--key",
            &key,
            "--query",
            "echo a message back to me",
            "--query",
            "what time is it now in a timezone",
            "--query",
            "convert a time from one timezone to another",
            "--tool",
            "everything_echo",
            "--args",
            r#"{"message": "hi smart"}"#,
            "--denied",
            "time_convert_time",
        ],
        Duration::from_secs(90),
    )
    .await;
    assert!(ok, "smart_client.py:\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    assert_eq!(report["tools"], json!(META), "only the meta-tools are listed");
    let searches = &report["searches"];
    let echo = found(&searches["echo a message back to me"]);
    assert_eq!(echo.first().map(String::as_str), Some("everything_echo"), "{echo:?}");
    let now = found(&searches["what time is it now in a timezone"]);
    assert_eq!(now.first().map(String::as_str), Some("time_get_current_time"), "{now:?}");
    // The hidden tool is not in any result, not even for the question it answers best.
    for (query, result) in searches.as_object().expect("searches") {
        assert!(!found(result).contains(&"time_convert_time".to_string()), "{query}: {result}");
        assert!(!result.to_string().contains("convert_time"), "{query}: {result}");
    }
    let described = &report["described"]["structuredContent"]["tools"][0];
    assert_eq!(described["name"], "everything_echo");
    assert!(described["inputSchema"]["properties"]["message"].is_object(), "{described}");
    assert_eq!(text_of(&report["called"]), "Echo: hi smart");
    let denied = report["denied"]["error"].as_str().unwrap_or_default();
    assert!(denied.contains("Unknown tool: time_convert_time"), "{}", report["denied"]);

    // For the owner the same question finds the tool: its absence above was the policy.
    let owner = TestClient::connect_http(&url, &mesh.key, ClientBehaviour::default()).await.expect("owner session");
    let all = owner.call_tool("search_tools", json!({"query": "convert a time from one timezone to another"})).await;
    assert_eq!(found(&all.expect("search")).first().map(String::as_str), Some("time_convert_time"));

    // Bad arguments are tool errors a model can read, not protocol failures.
    for (tool, args, says) in [
        ("search_tools", json!({}), "query"),
        ("search_tools", json!({"query": "time", "k": 0}), "k must be"),
        ("describe_tools", json!({"names": []}), "names"),
        ("call_tool", json!({"arguments": {}}), "name"),
    ] {
        let r = owner.call_tool(tool, args.clone()).await.expect("answered");
        assert_eq!(r["isError"], true, "{tool} {args}: {r}");
        assert!(text_of(&r).contains(says), "{tool} {args}: {r}");
    }
    let unknown = owner.call_tool("describe_tools", json!({"names": ["everything_echo", "nope"]})).await.expect("ok");
    assert_eq!(unknown["structuredContent"]["unknown"], json!(["nope"]), "{unknown}");
    assert_eq!(unknown["structuredContent"]["tools"][0]["name"], "everything_echo");
    // A real tool can still be called by its own name (clients that learnt it from describe).
    let direct = owner.call_tool("everything_echo", json!({"message": "direct"})).await.expect("direct call");
    assert_eq!(text_of(&direct), "Echo: direct");

    // The audit trail names the real tool of a call made through call_tool, and the refusal.
    let rows = mesh.manage_ok("AUDIT_QUERY", json!({"route": "smart", "method": "tools/call", "limit": 100})).await;
    let rows = rows["items"].as_array().cloned().unwrap_or_default();
    let named = |name: &str, outcome: &str| rows.iter().any(|r| r["name"] == name && r["outcome"] == outcome);
    assert!(named("everything_echo", "ok"), "{rows:#?}");
    assert!(named("time_convert_time", "denied"), "{rows:#?}");
    assert!(!rows.iter().any(|r| r["name"] == "call_tool" && r["outcome"] == "ok"), "{rows:#?}");

    // Back to passthrough: a new session lists the catalogue.
    mesh.manage_ok("COLLECTION_GATEWAYS_UPDATE", json!({"id": "smart", "strategy": "passthrough"})).await;
    let again = TestClient::connect_http(&url, &mesh.key, ClientBehaviour::default()).await.expect("session");
    let names = again.list_tool_names().await.expect("list");
    assert!(
        names.contains(&"everything_echo".to_string()) && !names.contains(&"search_tools".to_string()),
        "{names:?}"
    );
    owner.close().await.ok();
    again.close().await.ok();
    mesh.stop().await;
}
