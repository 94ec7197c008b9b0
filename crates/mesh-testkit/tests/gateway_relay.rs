//! Virtual MCPs in the data plane, against a bare relay with fixed gateway definitions and real
//! upstreams: members on every transport, curation (allow-lists, renames, prefixes), collisions,
//! pagination, list_changed fan-out counted exactly, partial failure in degrade and strict mode
//! with a member killed mid-session, and server→client requests from members.

use mesh_core::gateway::{FailureMode, MemberConfig, Selection};
use mesh_core::Secret;
use mesh_relay::ports::{ResolvedGateway, ResolvedMember};
use mesh_relay::{TransportSpec, UpstreamSpec};
use mesh_testkit::bare::{BareRelay, KEY};
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{deps, procs, raw, text_of, upstreams};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ROOT: &str = "file:///tmp/gateway-root";

fn stdio(name: &str, command: &str, args: &[&str], env: &[(&str, &str)]) -> UpstreamSpec {
    UpstreamSpec {
        name: name.into(),
        transport: TransportSpec::Stdio {
            command: command.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), Secret::new(v.to_string()))).collect(),
            cwd: None,
        },
        timeout: Duration::from_secs(20),
        reach: Default::default(),
        credential: None,
    }
}

fn http(name: &str, url: &str) -> UpstreamSpec {
    UpstreamSpec {
        name: name.into(),
        transport: TransportSpec::Http { url: url.parse().expect("url"), headers: vec![] },
        timeout: Duration::from_secs(20),
        reach: Default::default(),
        credential: None,
    }
}

fn fixture(name: &str, env: &[(&str, &str)]) -> UpstreamSpec {
    let script = upstreams::fixture("misbehaving_server.py").display().to_string();
    stdio(name, &deps::python().display().to_string(), &[&script, "normal"], env)
}

fn everything_stdio(name: &str) -> UpstreamSpec {
    stdio(name, &upstreams::everything_bin().display().to_string(), &["stdio"], &[])
}

fn member(slug: &str, spec: UpstreamSpec, tune: impl FnOnce(&mut MemberConfig)) -> ResolvedMember {
    let mut config = MemberConfig::all_of(slug);
    tune(&mut config);
    ResolvedMember { connection_id: format!("conn_{slug}"), slug: slug.into(), config, spec }
}

fn gateway(slug: &str, mode: FailureMode, page_size: usize, members: Vec<ResolvedMember>) -> ResolvedGateway {
    ResolvedGateway {
        id: format!("gw_{slug}"),
        slug: slug.into(),
        mode,
        page_size,
        strategy: Default::default(),
        members,
    }
}

fn full_client() -> ClientBehaviour {
    ClientBehaviour {
        sampling_reply: Some("pong through the gateway".into()),
        elicitation_accept: Some(json!({"name": "Ada", "check": true})),
        roots: vec![ROOT.into()],
        url_elicitations: None,
    }
}

#[tokio::test]
async fn members_on_every_transport_behind_one_endpoint() -> anyhow::Result<()> {
    let up = upstreams::everything_http().await;
    let (python, time_args) = upstreams::time_command();
    let time_args: Vec<&str> = time_args.iter().map(String::as_str).collect();
    let relay = BareRelay::start(vec![gateway(
        "dev",
        FailureMode::Degrade,
        1000,
        vec![
            member("ev", everything_stdio("ev"), |_| {}),
            member("evh", http("evh", &up.url), |_| {}),
            member("time", stdio("time", &python, &time_args, &[]), |_| {}),
        ],
    )])
    .await;
    let client = TestClient::connect_http(&relay.gateway("dev"), KEY, full_client()).await?;
    let info = client.server_info();
    assert_eq!(info["serverInfo"]["name"], "mcp-mesh/gateway/dev", "{info}");

    let names = client.list_tool_names().await?;
    let everything: Vec<&str> = names.iter().filter_map(|n| n.strip_prefix("ev_")).collect();
    let everything_http: Vec<&str> = names.iter().filter_map(|n| n.strip_prefix("evh_")).collect();
    let time: Vec<&str> = names.iter().filter_map(|n| n.strip_prefix("time_")).collect();
    assert_eq!(time, ["get_current_time", "convert_time"], "{names:?}");
    assert_eq!(everything, everything_http, "the same server on two transports exposes the same tools");
    assert!(everything.contains(&"echo") && everything.contains(&"trigger-sampling-request"), "{names:?}");
    assert_eq!(names.len(), everything.len() * 2 + 2, "nothing but prefixed names: {names:?}");

    assert_eq!(text_of(&client.call_tool("ev_echo", json!({"message": "a"})).await?), "Echo: a");
    assert_eq!(text_of(&client.call_tool("evh_echo", json!({"message": "b"})).await?), "Echo: b");
    let now = client.call_tool("time_get_current_time", json!({"timezone": "UTC"})).await?;
    assert!(text_of(&now).contains("UTC"), "{now}");

    let sampled = client.call_tool("evh_trigger-sampling-request", json!({"prompt": "p", "maxTokens": 8})).await?;
    assert!(text_of(&sampled).contains("pong through the gateway"), "{sampled}");
    let elicited = client.call_tool("ev_trigger-elicitation-request", json!({})).await?;
    assert!(text_of(&elicited).contains("Ada"), "{elicited}");
    let (done, progress) = client
        .call_tool_with_progress("ev_trigger-long-running-operation", json!({"duration": 0.3, "steps": 3}))
        .await?;
    assert!(text_of(&done).contains("Steps: 3") && progress == 3, "{done} {progress}");
    client.wait_until("roots/list from both everything members", |c| c.roots_requests_seen() >= 2).await?;
    let roots = client.call_tool("evh_get-roots-list", json!({})).await?;
    assert!(text_of(&roots).contains(ROOT), "{roots}");

    let read = client.read_resource("ev+demo://resource/dynamic/text/1").await?;
    assert!(read["contents"][0]["text"].is_string(), "{read}");
    let prompt = client.get_prompt("evh_simple-prompt", Value::Null).await?;
    assert!(prompt["messages"].as_array().is_some_and(|m| !m.is_empty()), "{prompt}");
    assert!(client.call_tool("echo", json!({"message": "x"})).await.is_err(), "unprefixed names are unknown");
    client.close().await?;
    relay.stop().await;
    up.stop().await;
    Ok(())
}

/// POSTs one request on a raw session and returns the reply.
async fn rpc(url: &str, sid: &str, id: i64, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    let (status, _, text) = raw::post(url, raw::post_headers(KEY, Some(sid)), body).await;
    assert_eq!(status, 200, "{text}");
    raw::messages(&text).into_iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("no reply: {text}"))
}

fn names(reply: &Value, key: &str, field: &str) -> Vec<String> {
    reply["result"][key]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t[field].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn curation_collisions_renames_and_pagination() {
    let only = |names: &[&str]| Selection::Only(names.iter().map(|n| n.to_string()).collect());
    let relay = BareRelay::start(vec![
        gateway(
            "clash",
            FailureMode::Degrade,
            100,
            vec![
                member("one", fixture("one", &[]), |m| {
                    m.prefix = Some(String::new());
                    m.tools = only(&["ok", "hang"]);
                }),
                member("two", fixture("two", &[]), |m| {
                    m.prefix = Some(String::new());
                    m.tools = only(&["ok"]);
                }),
            ],
        ),
        gateway(
            "curated",
            FailureMode::Degrade,
            3,
            vec![
                member("one", fixture("one", &[]), |m| {
                    m.prefix = Some(String::new());
                    m.tools = only(&["ok"]);
                    m.renames.insert("ok".into(), "fine".into());
                    m.descriptions.insert("ok".into(), "Says fine.".into());
                }),
                member("two", fixture("two", &[]), |_| {}),
            ],
        ),
    ])
    .await;

    // A collision is never resolved by "first wins": neither is served, and the client is told.
    let url = relay.gateway("clash");
    let sid = raw::open_session(&url, KEY, "2025-11-25").await;
    let listed = rpc(&url, &sid, 2, "tools/list", json!({})).await;
    assert_eq!(names(&listed, "tools", "name"), ["hang"], "{listed}");
    let call = rpc(&url, &sid, 3, "tools/call", json!({"name": "ok", "arguments": {}})).await;
    assert_eq!(call["error"]["code"], -32602, "{call}");
    assert_eq!(call["error"]["message"], "Unknown tool: ok");

    // Renames, description overrides, allow-lists, prefixes, and a cursor the gateway owns.
    let url = relay.gateway("curated");
    let sid = raw::open_session(&url, KEY, "2025-11-25").await;
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = cursor.as_ref().map(|c| json!({"cursor": c})).unwrap_or_else(|| json!({}));
        let page = rpc(&url, &sid, 10 + pages, "tools/list", params).await;
        let tools = page["result"]["tools"].as_array().cloned().unwrap_or_default();
        assert!(tools.len() <= 3, "page size 3: {page}");
        if pages == 0 {
            assert_eq!(tools[0]["description"], "Says fine.", "{page}");
        }
        all.extend(tools.iter().filter_map(|t| t["name"].as_str().map(String::from)));
        pages += 1;
        match page["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(all, ["fine", "two_ok", "two_die", "two_hang", "two_garbage", "two_change", "two_same"]);
    assert_eq!(pages, 3);
    let bad = rpc(&url, &sid, 30, "tools/list", json!({"cursor": "not-ours"})).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    let fine = rpc(&url, &sid, 31, "tools/call", json!({"name": "fine", "arguments": {}})).await;
    assert_eq!(fine["result"]["content"][0]["text"], "fine", "{fine}");
    let hidden = rpc(&url, &sid, 32, "tools/call", json!({"name": "ok", "arguments": {}})).await;
    assert_eq!(hidden["error"]["code"], -32602, "not in the allow-list, not callable: {hidden}");
    relay.stop().await;
}

#[tokio::test]
async fn resources_prompts_and_completions_route_by_namespace() {
    let relay = BareRelay::start(vec![gateway(
        "docs",
        FailureMode::Degrade,
        1000,
        vec![member("ev", everything_stdio("ev"), |_| {}), member("my_ev", everything_stdio("my_ev"), |_| {})],
    )])
    .await;
    let url = relay.gateway("docs");
    let sid = raw::open_session(&url, KEY, "2025-11-25").await;
    let resources = names(&rpc(&url, &sid, 2, "resources/list", json!({})).await, "resources", "uri");
    assert!(resources.iter().any(|u| u == "ev+demo://resource/static/document/architecture.md"), "{resources:?}");
    assert!(resources.iter().any(|u| u == "my-ev+demo://resource/static/document/architecture.md"), "{resources:?}");
    let templates =
        names(&rpc(&url, &sid, 3, "resources/templates/list", json!({})).await, "resourceTemplates", "uriTemplate");
    assert!(templates.contains(&"my-ev+demo://resource/dynamic/text/{resourceId}".to_string()), "{templates:?}");
    let read = rpc(&url, &sid, 4, "resources/read", json!({"uri": "my-ev+demo://resource/dynamic/text/5"})).await;
    assert!(read["result"]["contents"][0]["text"].is_string(), "{read}");
    assert_eq!(read["result"]["contents"][0]["uri"], "my-ev+demo://resource/dynamic/text/5", "what was asked for");
    // What a member's tools point to is named as the virtual MCP serves it, and can be read there.
    let links = rpc(&url, &sid, 12, "tools/call", json!({"name": "ev_get-resource-links", "arguments": {"count": 2}}));
    let links = links.await;
    let linked: Vec<&str> = links["result"]["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == "resource_link")
        .filter_map(|c| c["uri"].as_str())
        .collect();
    assert_eq!(linked, ["ev+demo://resource/dynamic/blob/1", "ev+demo://resource/dynamic/text/2"], "{links}");
    for (k, uri) in linked.iter().enumerate() {
        let read = rpc(&url, &sid, 13 + k as i64, "resources/read", json!({"uri": uri})).await;
        assert_eq!(read["result"]["contents"][0]["uri"], *uri, "{read}");
    }
    let reference =
        json!({"name": "my_ev_get-resource-reference", "arguments": {"resourceType": "Text", "resourceId": 3}});
    let reference = rpc(&url, &sid, 15, "tools/call", reference).await;
    let embedded = &reference["result"]["content"][1]["resource"];
    assert_eq!(embedded["uri"], "my-ev+demo://resource/dynamic/text/3", "{reference}");
    let unknown = rpc(&url, &sid, 5, "resources/read", json!({"uri": "nobody+demo://x"})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let sub = rpc(&url, &sid, 6, "resources/subscribe", json!({"uri": "ev+demo://resource/dynamic/text/1"})).await;
    assert_eq!(sub["result"], json!({}), "{sub}");
    let prompts = names(&rpc(&url, &sid, 7, "prompts/list", json!({})).await, "prompts", "name");
    assert!(prompts.contains(&"my_ev_simple-prompt".to_string()), "{prompts:?}");
    let got =
        rpc(&url, &sid, 8, "prompts/get", json!({"name": "ev_args-prompt", "arguments": {"city": "Porto"}})).await;
    assert!(got.to_string().contains("Porto"), "{got}");
    let completed = rpc(
        &url,
        &sid,
        9,
        "completion/complete",
        json!({
        "ref": {"type": "ref/prompt", "name": "my_ev_completable-prompt"},
        "argument": {"name": "department", "value": "Eng"}}),
    )
    .await;
    assert_eq!(completed["result"]["completion"]["values"], json!(["Engineering"]), "{completed}");
    let level = rpc(&url, &sid, 10, "logging/setLevel", json!({"level": "debug"})).await;
    assert_eq!(level["result"], json!({}), "{level}");
    let ping = rpc(&url, &sid, 11, "ping", json!({})).await;
    assert_eq!(ping["result"], json!({}));
    relay.stop().await;
}

#[tokio::test]
async fn list_changed_reaches_the_client_once_and_only_for_visible_changes() -> anyhow::Result<()> {
    let relay = BareRelay::start(vec![gateway(
        "live",
        FailureMode::Degrade,
        100,
        vec![member("a", fixture("a", &[]), |_| {}), member("b", fixture("b", &[]), |_| {})],
    )])
    .await;
    let client = TestClient::connect_http(&relay.gateway("live"), KEY, ClientBehaviour::default()).await?;
    let changed = "notifications/tools/list_changed";
    let before = client.list_tool_names().await?;
    assert!(!before.contains(&"a_extra".to_string()));

    client.call_tool("a_change", json!({})).await?;
    client.wait_until("one list_changed", |c| c.notifications_seen(changed) >= 1).await?;
    assert!(client.list_tool_names().await?.contains(&"a_extra".to_string()));
    // Announced, but nothing visible changed: the client hears nothing.
    client.call_tool("a_same", json!({})).await?;
    client.call_tool("b_same", json!({})).await?;
    client.call_tool("a_change", json!({})).await?;
    client.wait_until("the second list_changed", |c| c.notifications_seen(changed) >= 2).await?;
    assert_eq!(client.list_tool_names().await?, before);
    client.call_tool("a_change", json!({})).await?;
    client.wait_until("the third list_changed", |c| c.notifications_seen(changed) >= 3).await?;
    client.call_tool("a_change", json!({})).await?;
    client.wait_until("the fourth list_changed", |c| c.notifications_seen(changed) >= 4).await?;
    assert_eq!(client.notifications_seen(changed), 4, "one per visible change, none for the two 'same'");
    client.close().await?;
    relay.stop().await;
    Ok(())
}

async fn kill_marked(marker: &str) {
    let pids = procs::with_marker(marker);
    assert_eq!(pids.len(), 1, "one child to kill: {pids:?}");
    std::process::Command::new("kill").args(["-9", &pids[0].to_string()]).status().expect("kill");
}

#[tokio::test]
async fn degrade_serves_the_healthy_members_and_recovers_a_restarted_one() {
    let marker = mesh_core::id::random_base62(12);
    let relay = BareRelay::start(vec![gateway(
        "soft",
        FailureMode::Degrade,
        100,
        vec![
            member("flaky", fixture("flaky", &[("MESH_TEST_MARKER", &marker)]), |_| {}),
            member("steady", fixture("steady", &[]), |_| {}),
            member("broken", stdio("broken", "/nonexistent/mcp-server", &[], &[]), |_| {}),
        ],
    )])
    .await;
    let url = relay.gateway("soft");
    // A member that cannot start does not stop the others.
    let sid = raw::open_session(&url, KEY, "2025-11-25").await;
    let tools = names(&rpc(&url, &sid, 2, "tools/list", json!({})).await, "tools", "name");
    assert!(tools.contains(&"flaky_ok".to_string()) && tools.contains(&"steady_ok".to_string()), "{tools:?}");
    assert!(!tools.iter().any(|t| t.starts_with("broken_")), "{tools:?}");

    kill_marked(&marker).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut id = 100;
    let mut saw_down = false;
    loop {
        id += 1;
        let steady = rpc(&url, &sid, id, "tools/call", json!({"name": "steady_ok", "arguments": {}})).await;
        assert_eq!(steady["result"]["content"][0]["text"], "fine", "the healthy member keeps working: {steady}");
        id += 1;
        let flaky = rpc(&url, &sid, id, "tools/call", json!({"name": "flaky_ok", "arguments": {}})).await;
        if flaky["result"]["content"][0]["text"] == "fine" && saw_down {
            break; // restarted and re-initialised, same session, no reconnect
        }
        if flaky.get("error").is_some() {
            assert_eq!(flaky["error"]["code"], -31010, "{flaky}");
            saw_down = true;
        }
        assert!(Instant::now() < deadline, "the member never came back: {flaky}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn strict_fails_at_open_and_ends_the_session_when_a_member_dies() {
    let marker = mesh_core::id::random_base62(12);
    let relay = BareRelay::start(vec![
        gateway(
            "hard-broken",
            FailureMode::Strict,
            100,
            vec![
                member("ok", fixture("ok", &[]), |_| {}),
                member("broken", stdio("broken", "/nonexistent/x", &[], &[]), |_| {}),
            ],
        ),
        gateway(
            "hard",
            FailureMode::Strict,
            100,
            vec![
                member("victim", fixture("victim", &[("MESH_TEST_MARKER", &marker)]), |_| {}),
                member("ok", fixture("ok", &[]), |_| {}),
            ],
        ),
    ])
    .await;
    let (status, h, body) =
        raw::post(&relay.gateway("hard-broken"), raw::post_headers(KEY, None), raw::initialize_body(1, "2025-11-25"))
            .await;
    assert_eq!(status, 200);
    assert!(h.get("mcp-session-id").is_none(), "no session");
    let err = &raw::messages(&body)[0]["error"];
    assert_eq!(err["code"], -31010, "{body}");
    assert!(err["message"].as_str().unwrap_or("").contains("member broken"), "{body}");

    let url = relay.gateway("hard");
    let sid = raw::open_session(&url, KEY, "2025-11-25").await;
    let ok = rpc(&url, &sid, 2, "tools/call", json!({"name": "ok_ok", "arguments": {}})).await;
    assert_eq!(ok["result"]["content"][0]["text"], "fine");
    kill_marked(&marker).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}).to_string();
        let (status, _, _) = raw::post(&url, raw::post_headers(KEY, Some(&sid)), body).await;
        if status == 404 {
            break; // the session ended: the client must initialise again
        }
        assert!(Instant::now() < deadline, "a strict gateway kept a session with a dead member");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_definition_change_reaches_open_sessions_as_one_list_changed() -> anyhow::Result<()> {
    let only = |names: &[&str]| Selection::Only(names.iter().map(|n| n.to_string()).collect());
    let def = |members: Vec<ResolvedMember>| gateway("team", FailureMode::Degrade, 100, members);
    let relay = BareRelay::start(vec![def(vec![member("a", fixture("a", &[]), |_| {})])]).await;
    let client = TestClient::connect_http(&relay.gateway("team"), KEY, ClientBehaviour::default()).await?;
    let changed = "notifications/tools/list_changed";
    assert_eq!(client.list_tool_names().await?.len(), 6);

    // Narrow a member's allow-list: one notification, and the list shows it.
    relay.change_gateway("team", Some(def(vec![member("a", fixture("a", &[]), |m| m.tools = only(&["ok"]))])));
    client.wait_until("list_changed after narrowing", |c| c.notifications_seen(changed) >= 1).await?;
    assert_eq!(client.list_tool_names().await?, ["a_ok"]);

    // Add a member: connected and initialised in the open session, its tools callable.
    relay.change_gateway(
        "team",
        Some(def(vec![
            member("a", fixture("a", &[]), |m| m.tools = only(&["ok"])),
            member("b", fixture("b", &[]), |m| m.tools = only(&["ok"])),
        ])),
    );
    client.wait_until("list_changed after adding", |c| c.notifications_seen(changed) >= 2).await?;
    assert_eq!(client.list_tool_names().await?, ["a_ok", "b_ok"]);
    assert_eq!(text_of(&client.call_tool("b_ok", json!({})).await?), "fine");

    // The same definition again changes nothing visible: no notification. Then remove `a`.
    relay.change_gateway(
        "team",
        Some(def(vec![
            member("a", fixture("a", &[]), |m| m.tools = only(&["ok"])),
            member("b", fixture("b", &[]), |m| m.tools = only(&["ok"])),
        ])),
    );
    relay.change_gateway("team", Some(def(vec![member("b", fixture("b", &[]), |m| m.tools = only(&["ok"]))])));
    client.wait_until("list_changed after removing", |c| c.notifications_seen(changed) >= 3).await?;
    assert_eq!(client.list_tool_names().await?, ["b_ok"]);
    assert_eq!(client.notifications_seen(changed), 3, "nothing for the unchanged definition");
    assert!(client.call_tool("a_ok", json!({})).await.is_err(), "a removed member is gone");
    client.close().await?;

    // Deleting the gateway ends its sessions.
    let sid = raw::open_session(&relay.gateway("team"), KEY, "2025-11-25").await;
    relay.change_gateway("team", None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}).to_string();
        if raw::post(&relay.gateway("team"), raw::post_headers(KEY, Some(&sid)), ping).await.0 == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the session of a deleted gateway lives on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.stop().await;
    Ok(())
}
