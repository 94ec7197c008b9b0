//! A virtual MCP over the conformance fixture (stdio), server-everything (Streamable HTTP) and
//! mcp-server-time (stdio), all prefixed: the merged tools/list is exactly each member's own list
//! under its prefix, and calls, progress, sampling, elicitation and roots work through it for
//! members on each transport.

use mesh_core::gateway::{FailureMode, MemberConfig};
use mesh_relay::ports::{ResolvedGateway, ResolvedMember};
use mesh_relay::{TransportSpec, UpstreamSpec};
use mesh_testkit::bare::{BareRelay, KEY};
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{text_of, upstreams};
use serde_json::json;
use std::time::Duration;

const ROOT: &str = "file:///tmp/trio-root";

fn spec(name: &str, transport: TransportSpec) -> UpstreamSpec {
    UpstreamSpec {
        name: name.into(),
        transport,
        timeout: Duration::from_secs(30),
        reach: Default::default(),
        credential: None,
    }
}

fn stdio(command: &str, args: &[&str]) -> TransportSpec {
    TransportSpec::Stdio {
        command: command.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: vec![],
        cwd: None,
    }
}

fn member(slug: &str, spec: UpstreamSpec) -> ResolvedMember {
    ResolvedMember {
        connection_id: format!("conn_{slug}"),
        slug: slug.into(),
        config: MemberConfig::all_of(slug),
        spec,
    }
}

fn behaviour() -> ClientBehaviour {
    ClientBehaviour {
        sampling_reply: Some("sampled through the trio".into()),
        elicitation_accept: Some(json!({"name": "Ada", "username": "ada", "email": "ada@example.com", "check": true})),
        roots: vec![ROOT.into()],
        url_elicitations: None,
    }
}

#[tokio::test]
async fn fixture_everything_and_time_behind_one_prefixed_gateway() -> anyhow::Result<()> {
    let everything = upstreams::everything_http().await;
    let (python, time_args) = upstreams::time_command();
    let time_args: Vec<&str> = time_args.iter().map(String::as_str).collect();
    let fixture = env!("CARGO_BIN_EXE_mesh-fixture");
    let gateway = ResolvedGateway {
        strategy: Default::default(),
        id: "gw_trio".into(),
        slug: "trio".into(),
        mode: FailureMode::Degrade,
        page_size: 1000,
        members: vec![
            member("fx", spec("fx", stdio(fixture, &["stdio"]))),
            member("web", spec("web", TransportSpec::Http { url: everything.url.parse()?, headers: vec![] })),
            member("time", spec("time", stdio(&python, &time_args))),
        ],
    };
    // Each member's own list, asked directly, is the reference.
    let direct_everything = TestClient::connect_http(&everything.url, "", behaviour()).await?;
    let everything_tools = direct_everything.list_tool_names().await?;
    direct_everything.close().await?;

    let relay = BareRelay::start(vec![gateway]).await;
    let client = TestClient::connect_http(&relay.gateway("trio"), KEY, behaviour()).await?;
    let names = client.list_tool_names().await?;
    let of = |p: &str| names.iter().filter_map(|n| n.strip_prefix(p).map(String::from)).collect::<Vec<_>>();
    assert_eq!(of("web_"), everything_tools, "exactly everything's tools, in its order");
    assert_eq!(of("time_"), ["get_current_time", "convert_time"]);
    let fx = of("fx_");
    for t in ["test_simple_text", "test_tool_with_progress", "test_sampling", "test_elicitation", "test_reconnection"] {
        assert!(fx.iter().any(|n| n == t), "fx_{t} missing: {names:?}");
    }
    assert_eq!(names.len(), fx.len() + everything_tools.len() + 2, "nothing unprefixed: {names:?}");

    // stdio member (the fixture): text, progress, sampling, elicitation.
    assert!(text_of(&client.call_tool("fx_test_simple_text", json!({})).await?).contains("simple text"));
    let (done, progress) = client.call_tool_with_progress("fx_test_tool_with_progress", json!({})).await?;
    assert!(progress >= 3, "{progress} progress notifications: {done}");
    let sampled = client.call_tool("fx_test_sampling", json!({"prompt": "hello"})).await?;
    assert!(text_of(&sampled).contains("sampled through the trio"), "{sampled}");
    let elicited = client.call_tool("fx_test_elicitation", json!({"message": "Who are you?"})).await?;
    assert_ne!(elicited["isError"], true, "{elicited}");
    // HTTP member: sampling, elicitation and roots go back to this client too.
    let sampled = client.call_tool("web_trigger-sampling-request", json!({"prompt": "hi", "maxTokens": 8})).await?;
    assert!(text_of(&sampled).contains("sampled through the trio"), "{sampled}");
    assert!(text_of(&client.call_tool("web_trigger-elicitation-request", json!({})).await?).contains("Ada"));
    client.wait_until("roots/list from the HTTP member", |c| c.roots_requests_seen() >= 1).await?;
    assert!(text_of(&client.call_tool("web_get-roots-list", json!({})).await?).contains(ROOT));
    // stdio member from PyPI.
    let now = client.call_tool("time_get_current_time", json!({"timezone": "UTC"})).await?;
    assert!(text_of(&now).contains("UTC"), "{now}");
    client.close().await?;
    relay.stop().await;
    everything.stop().await;
    Ok(())
}

/// The virtual MCP `eras` over two fixture children: `old` speaks the session-based revision
/// only, `new` the stateless one only.
fn eras() -> ResolvedGateway {
    let fixture = env!("CARGO_BIN_EXE_mesh-fixture");
    ResolvedGateway {
        strategy: Default::default(),
        id: "gw_eras".into(),
        slug: "eras".into(),
        mode: FailureMode::Strict,
        page_size: 1000,
        members: vec![
            member("old", spec("old", stdio(fixture, &["stdio", "--era", "legacy"]))),
            member("new", spec("new", stdio(fixture, &["stdio", "--era", "modern"]))),
        ],
    }
}

/// A session-based client through a virtual MCP whose members are child processes of either
/// revision only: the one of the stateless revision refuses `initialize`, is asked
/// `server/discover`, and is bridged (its input-required results become this client's sampling
/// and elicitation requests); the session-based one is spoken to as before.
#[tokio::test]
async fn a_gateway_bridges_a_stdio_member_of_the_stateless_revision_only() -> anyhow::Result<()> {
    let relay = BareRelay::start(vec![eras()]).await;
    let client = TestClient::connect_http(&relay.gateway("eras"), KEY, behaviour()).await?;
    let names = client.list_tool_names().await?;
    for t in ["old_test_simple_text", "new_test_simple_text", "new_test_sampling", "new_test_elicitation"] {
        assert!(names.iter().any(|n| n == t), "{t} missing: {names:?}");
    }
    for member in ["old", "new"] {
        let text = client.call_tool(&format!("{member}_test_simple_text"), json!({})).await?;
        assert!(text_of(&text).contains("simple text"), "{member}: {text}");
    }
    let sampled = client.call_tool("new_test_sampling", json!({"prompt": "hello"})).await?;
    assert!(text_of(&sampled).contains("sampled through the trio"), "{sampled}");
    let elicited = client.call_tool("new_test_elicitation", json!({"message": "Who are you?"})).await?;
    assert_ne!(elicited["isError"], true, "{elicited}");
    client.close().await?;
    relay.stop().await;
    Ok(())
}

/// A stateless client through a virtual MCP whose members are child processes of either
/// revision only — both bridges at once: `server/discover` and the merged list in the stateless
/// form, with caching hints; a call to each member; and sampling asked by each member in its own
/// revision (a server request of the session-based one, an input-required result of the
/// stateless one) reaching the client as an input-required result whose retry completes the call.
#[tokio::test]
async fn a_stateless_client_through_a_gateway_over_members_of_both_revisions() -> anyhow::Result<()> {
    use mesh_testkit::raw;
    use serde_json::Value;
    const V: &str = "2026-07-28";
    let request = |id: i64, method: &str, mut params: Value| {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": V,
            "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
            "io.modelcontextprotocol/clientInfo": {"name": "stateless-eras", "version": "1"},
        });
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
    };
    let relay = BareRelay::start(vec![eras()]).await;
    let url = relay.gateway("eras");
    let post = |method: &'static str, name: Option<&'static str>, body: String| {
        let url = url.clone();
        async move {
            let (status, _, text) = raw::post(&url, raw::stateless_headers(KEY, method, name), body).await;
            (status, raw::messages(&text).last().cloned().unwrap_or(Value::Null))
        }
    };

    let (status, body) = post("server/discover", None, request(1, "server/discover", json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["resultType"], "complete", "{body}");
    assert!(body["result"]["capabilities"]["tools"].is_object(), "{body}");

    let (status, body) = post("tools/list", None, request(2, "tools/list", json!({}))).await;
    assert_eq!((status, &body["id"]), (200, &json!(2)), "{body}");
    let listed = &body["result"];
    assert_eq!(listed["resultType"], "complete", "{body}");
    assert!(listed["cacheScope"].is_string() && listed["ttlMs"].is_u64(), "caching hints: {listed}");
    let names: Vec<&str> =
        listed["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
    for t in ["old_test_simple_text", "new_test_simple_text", "old_test_sampling", "new_test_sampling"] {
        assert!(names.contains(&t), "{t} missing: {names:?}");
    }

    let mut id = 10;
    for member in ["old", "new"] {
        let tool: &'static str = if member == "old" { "old_test_simple_text" } else { "new_test_simple_text" };
        id += 1;
        let (status, body) = post("tools/call", Some(tool), request(id, "tools/call", json!({"name": tool}))).await;
        assert_eq!((status, &body["id"]), (200, &json!(id)), "{member}: {body}");
        assert_eq!(body["result"]["resultType"], "complete", "{member}: {body}");
        assert!(body["result"]["content"].to_string().contains("simple text"), "{member}: {body}");

        // Sampling, asked in the member's own revision, reaches this client one way.
        let tool: &'static str = if member == "old" { "old_test_sampling" } else { "new_test_sampling" };
        let ask = json!({"name": tool, "arguments": {"prompt": format!("hello {member}")}});
        id += 1;
        let (status, body) = post("tools/call", Some(tool), request(id, "tools/call", ask.clone())).await;
        assert_eq!(status, 200, "{member}: {body}");
        let r = &body["result"];
        assert_eq!(r["resultType"], "input_required", "{member}: {body}");
        let asked = r["inputRequests"].as_object().expect("inputRequests");
        assert_eq!(asked.len(), 1, "{member}: {body}");
        let (k, input) = asked.iter().next().expect("one");
        assert_eq!(input["method"], "sampling/createMessage", "{member}: {body}");
        assert!(input["params"].to_string().contains(&format!("hello {member}")), "{member}: {input}");
        let mut retry = ask.clone();
        retry["inputResponses"] = json!({k: {
            "role": "assistant",
            "content": {"type": "text", "text": format!("sampled for {member}")},
            "model": "stateless-eras",
            "stopReason": "endTurn",
        }});
        retry["requestState"] = r["requestState"].clone();
        id += 1;
        let (status, body) = post("tools/call", Some(tool), request(id, "tools/call", retry)).await;
        assert_eq!((status, &body["id"]), (200, &json!(id)), "{member}: {body}");
        assert_eq!(body["result"]["resultType"], "complete", "{member}: {body}");
        assert!(body["result"]["content"].to_string().contains(&format!("sampled for {member}")), "{member}: {body}");
    }
    relay.stop().await;
    Ok(())
}

/// What a member's reply points to is named as the virtual MCP serves it, for a stateless client
/// (on the pooled session, whose replies are completed afterwards) and in a task's result: an
/// embedded resource, a read's contents, and a task's resource link that the client then reads.
#[tokio::test]
async fn resources_a_member_points_to_are_named_as_the_virtual_mcp_serves_them() -> anyhow::Result<()> {
    use mesh_testkit::raw;
    use serde_json::Value;
    let relay = BareRelay::start(vec![eras()]).await;
    let url = relay.gateway("eras");
    let post = |method: &'static str, name: Option<String>, params: Value| {
        let url = url.clone();
        let mut params = params;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}},
        });
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        async move {
            let (status, _, text) = raw::post(&url, raw::stateless_headers(KEY, method, name.as_deref()), body).await;
            assert_eq!(status, 200, "{method}: {text}");
            raw::messages(&text).last().cloned().unwrap_or(Value::Null)
        }
    };
    let tool = |name: &str| Some(name.to_string());

    let embedded =
        post("tools/call", tool("new_test_embedded_resource"), json!({"name": "new_test_embedded_resource"}));
    let embedded = embedded.await;
    assert_eq!(embedded["result"]["content"][0]["resource"]["uri"], "new+test://embedded-resource", "{embedded}");
    assert_eq!(embedded["result"]["resultType"], "complete", "completed after the rewrite: {embedded}");

    let uri = "old+test://static-text";
    let read = post("resources/read", tool(uri), json!({"uri": uri})).await;
    assert_eq!(read["result"]["contents"][0]["uri"], uri, "{read}");

    let compute =
        json!({"name": "new_slow_compute", "arguments": {"seconds": 0, "label": "l", "link": "test://static-text"}});
    let created = post("tools/call", tool("new_slow_compute"), compute).await;
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    let task = created["result"]["taskId"].as_str().expect("a task id").to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let done = loop {
        let got = post("tasks/get", Some(task.clone()), json!({"taskId": task})).await;
        if got["result"]["status"] != "working" || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["result"]["status"], "completed", "{done}");
    let linked = &done["result"]["result"]["content"][1]["uri"];
    assert_eq!(linked, "new+test://static-text", "{done}");
    let uri = linked.as_str().expect("a URI");
    let read = post("resources/read", tool(uri), json!({"uri": uri})).await;
    assert_eq!(read["result"]["contents"][0]["uri"], uri, "the link reads through the virtual MCP: {read}");
    relay.stop().await;
    Ok(())
}

/// A stateless client with calls at two members of a virtual MCP at once. The session-based
/// member asks its second question (over stdio, nothing ties a question to its call) while the
/// other member's call is newer and in flight: the question comes back in its own member's call,
/// never in the other's, whose answer would have gone to the wrong upstream.
#[tokio::test]
async fn a_members_question_is_put_in_that_members_call_not_a_newer_one_elsewhere() -> anyhow::Result<()> {
    use mesh_testkit::raw;
    use serde_json::Value;
    let relay = BareRelay::start(vec![eras()]).await;
    let url = relay.gateway("eras");
    let call = |id: i64, tool: &str, mut params: Value| {
        params["name"] = json!(tool);
        params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
        params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({"elicitation": {}});
        params["_meta"]["io.modelcontextprotocol/clientInfo"] = json!({"name": "two-members", "version": "1"});
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string()
    };
    let headers = |tool: &str| raw::stateless_headers(KEY, "tools/call", Some(tool));
    let asking = "old_multi_input";
    let post = |body: String| {
        let (url, headers) = (url.clone(), headers(asking));
        async move {
            let answered = raw::post(&url, headers, body);
            let (status, _, text) =
                tokio::time::timeout(Duration::from_secs(20), answered).await.expect("the asking call answers");
            assert_eq!(status, 200, "{text}");
            raw::messages(&text).last().cloned().unwrap_or(Value::Null)
        }
    };

    // The session-based member asks its first question.
    let first = post(call(1, asking, json!({"arguments": {}}))).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    assert!(first["result"]["inputRequests"]["user_name"].is_object(), "{first}");

    // The other member's call, newer, is in flight (its first progress says so).
    let slow = call(2, "new_slow_compute", json!({"arguments": {"seconds": 60}, "_meta": {"progressToken": "slow"}}));
    let resp = reqwest::Client::new().post(&url).headers(headers("new_slow_compute")).body(slow).send().await?;
    let mut other = raw::Events::new(resp);
    let (_, progress) = other.next().await.expect("the slow call's progress");
    assert_eq!(progress["method"], "notifications/progress", "{progress}");

    // The answer lets the member ask its second question: it comes back in the asking call.
    let mut retry = json!({"arguments": {},
        "inputResponses": {"user_name": {"action": "accept", "content": {"name": "Ada"}}},
        "requestState": first["result"]["requestState"]});
    let second = post(call(3, asking, retry.clone())).await;
    assert_eq!(second["result"]["resultType"], "input_required", "{second}");
    assert!(second["result"]["inputRequests"]["confirm"].is_object(), "{second}");

    retry["inputResponses"] = json!({"confirm": {"action": "accept", "content": {"confirm": true}}});
    retry["requestState"] = second["result"]["requestState"].clone();
    let done = post(call(4, asking, retry)).await;
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(done["result"]["content"].to_string().contains("name=Ada, confirmed=true"), "{done}");
    drop(other);
    relay.stop().await;
    Ok(())
}
