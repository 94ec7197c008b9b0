//! Resource subscriptions across the two revisions, with the fixture as the upstream (its
//! `test://watched-resource` is updated once shortly after each subscription to it):
//!
//! - a stateless client's `subscriptions/listen` with `resourceSubscriptions`, through the mesh to
//!   an upstream of the session-based revision (the mesh subscribes on the pooled session) and to
//!   one of the stateless revision (the pooled session's link reopens its own listen), at a
//!   connection and through a virtual MCP;
//! - a session-based client's `resources/subscribe` through the mesh to an upstream of the
//!   stateless revision only, whose update reaches the client's GET stream.

use futures_util::StreamExt;
use mesh_core::gateway::{FailureMode, MemberConfig};
use mesh_relay::ports::{ResolvedGateway, ResolvedMember};
use mesh_relay::{TransportSpec, UpstreamSpec};
use mesh_testkit::bare::BareRelay;
use mesh_testkit::{raw, TestMesh};
use serde_json::{json, Value};
use std::time::Duration;

const V: &str = "2026-07-28";
const WATCHED: &str = "test://watched-resource";

fn fixture(era: &str) -> TransportSpec {
    TransportSpec::Stdio {
        command: env!("CARGO_BIN_EXE_mesh-fixture").into(),
        args: vec!["stdio".into(), "--era".into(), era.into()],
        env: vec![],
        cwd: None,
    }
}

/// A listen request of the stateless revision for `filter`.
fn listen_body(id: i64, filter: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": {
        "notifications": filter,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": V,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "listen-test", "version": "1"},
        },
    }})
    .to_string()
}

/// POSTs a listen request of the stateless revision with `filter` to `url`.
async fn open_listen(url: &str, key: &str, id: i64, filter: Value) -> reqwest::Response {
    let h = raw::stateless_headers(key, "subscriptions/listen", None);
    reqwest::Client::new().post(url).headers(h).body(listen_body(id, filter)).send().await.expect("listen")
}

/// An SSE response read as it arrives.
struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    text: String,
    seen: Vec<Value>,
}

impl Sse {
    fn of(resp: reqwest::Response) -> Sse {
        assert_eq!(resp.status(), 200);
        Sse { body: Box::pin(resp.bytes_stream()), text: String::new(), seen: Vec::new() }
    }

    /// Every message so far, once `enough` says so (15 s at most, else the test fails).
    async fn until(&mut self, enough: impl Fn(&[Value]) -> bool) -> &[Value] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !enough(&self.seen) {
            let seen = &self.seen;
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .unwrap_or_else(|_| panic!("timed out; the stream said: {seen:?}"));
            let Some(Ok(chunk)) = chunk else { panic!("the stream ended; it said: {seen:?}") };
            self.text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = self.text.find("\n\n") {
                let event: String = self.text.drain(..end + 2).collect();
                self.seen.extend(raw::messages(&event));
            }
        }
        &self.seen
    }
}

fn method_is(m: &Value, method: &str) -> bool {
    m["method"] == method
}

/// Opens a listen at `url` watching `uris` (and tool list changes), read until the watched
/// resource's update: the stream, its acknowledgement and the update.
async fn listen_for_update(url: &str, key: &str, uris: &[&str]) -> (Sse, Value, Value) {
    let mut sse =
        Sse::of(open_listen(url, key, 7, json!({"toolsListChanged": true, "resourceSubscriptions": uris})).await);
    let seen = sse.until(|s| s.iter().any(|m| method_is(m, "notifications/resources/updated"))).await;
    assert!(method_is(&seen[0], "notifications/subscriptions/acknowledged"), "the acknowledgement first: {seen:?}");
    let ack = seen[0].clone();
    let update = seen.iter().find(|m| method_is(m, "notifications/resources/updated")).expect("update").clone();
    (sse, ack, update)
}

/// A mesh with the fixture of `era` as the connection of that name, and its endpoint.
async fn mesh_over(era: &str) -> (TestMesh, String) {
    let mesh = TestMesh::start().await;
    let TransportSpec::Stdio { command, args, .. } = fixture(era) else { unreachable!() };
    mesh.add_connection(json!({"slug": era, "command": command, "args": args})).await;
    let url = mesh.endpoint(era);
    (mesh, url)
}

#[tokio::test]
async fn a_stateless_listen_watches_resources_of_a_session_based_upstream() {
    let (mesh, url) = mesh_over("legacy").await;

    // Offered in server/discover, as the upstream offers it: a listen's resourceSubscriptions
    // are what carries it.
    let discover = listen_body(6, json!({})).replace("subscriptions/listen", "server/discover");
    let (status, _, text) = raw::post(&url, raw::stateless_headers(&mesh.key, "server/discover", None), discover).await;
    let found = raw::messages(&text).pop().unwrap_or_default();
    assert_eq!((status, &found["result"]["capabilities"]["resources"]["subscribe"]), (200, &json!(true)), "{found}");

    // The upstream refuses a subscription to what it does not have: not honoured.
    let (mut first, ack, update) = listen_for_update(&url, &mesh.key, &[WATCHED, "test://no-such-resource"]).await;
    let honoured = &ack["params"]["notifications"];
    assert_eq!(honoured["resourceSubscriptions"], json!([WATCHED]), "{ack}");
    assert_eq!(honoured["toolsListChanged"], true, "{ack}");
    assert_eq!(update["params"]["uri"], WATCHED, "{update}");
    assert_eq!(update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 7, "tagged: {update}");

    // The subscription went through the session like a client's request: audited.
    audited(&mesh, "resources/subscribe").await;
    // A second listen of the key, asking for no resources, takes the stream over and
    // unsubscribes what the first one watched — while the first one's client is still there —
    // and the first one ends with its result.
    let mut second = Sse::of(open_listen(&url, &mesh.key, 8, json!({"toolsListChanged": true})).await);
    let seen = second.until(|s| !s.is_empty()).await;
    assert!(seen[0]["params"]["notifications"].get("resourceSubscriptions").is_none(), "{seen:?}");
    audited(&mesh, "resources/unsubscribe").await;
    let seen = first.until(|s| s.iter().any(|m| m["id"] == 7)).await;
    let end = seen.iter().find(|m| m["id"] == 7).expect("result");
    assert_eq!(end["result"]["resultType"], "complete", "{end}");
    // Streams still open would hold the mesh's graceful shutdown.
    drop((first, second));
    mesh.stop().await;
}

/// A client taking its own listen over again and again, with other resources each time: each
/// takeover changes the pooled session's subscriptions upstream (a request per resource), so the
/// mesh changes them at most once a second. The takeovers' acknowledgements come a second apart,
/// each naming what its own listen asked for.
#[tokio::test]
async fn issue18_listen_takeovers_change_the_upstream_subscriptions_at_most_once_a_second() {
    let (mesh, url) = mesh_over("legacy").await;
    let sets = [["test://static-text"], ["test://static-binary"]];
    let (mut streams, mut acked) = (Vec::new(), Vec::new());
    for i in 0..4 {
        let uris = sets[i % 2];
        let mut sse =
            Sse::of(open_listen(&url, &mesh.key, 10 + i as i64, json!({"resourceSubscriptions": uris})).await);
        let seen = sse.until(|s| !s.is_empty()).await;
        assert_eq!(seen[0]["params"]["notifications"]["resourceSubscriptions"], json!(uris), "{seen:?}");
        acked.push(tokio::time::Instant::now());
        streams.push(sse);
    }
    let gaps: Vec<Duration> = acked.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(900)), "changed within a second: {gaps:?}");
    // Streams still open would hold the mesh's graceful shutdown.
    drop(streams);
    mesh.stop().await;
}

/// Waits (10 s at most) for the audit row of `method` on the watched resource; the trail is
/// written asynchronously.
async fn audited(mesh: &TestMesh, method: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, rows) = mesh.manage(&mesh.key, "AUDIT_QUERY", json!({"method": method, "name": WATCHED})).await;
        assert!(ok, "{rows}");
        if rows["items"].as_array().is_some_and(|i| i.len() == 1) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no audit row of {method}: {rows}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn gateway(slug: &str, era: &str) -> ResolvedGateway {
    ResolvedGateway {
        strategy: Default::default(),
        id: format!("gw_{slug}"),
        slug: slug.into(),
        mode: FailureMode::Strict,
        page_size: 1000,
        members: vec![ResolvedMember {
            connection_id: format!("conn_{slug}"),
            slug: era.into(),
            config: MemberConfig::all_of(era),
            spec: UpstreamSpec {
                name: era.into(),
                transport: fixture(era),
                timeout: Duration::from_secs(30),
                reach: Default::default(),
                credential: None,
            },
        }],
    }
}

#[tokio::test]
async fn a_stateless_listen_watches_resources_through_virtual_mcps_of_either_revision() {
    let relay = BareRelay::start(vec![gateway("old", "legacy"), gateway("new", "modern")]).await;
    for (slug, era) in [("old", "legacy"), ("new", "modern")] {
        // The member's resources under its prefix, as the virtual MCP lists them.
        let watched = format!("{era}+{WATCHED}");
        let (_stream, ack, update) =
            listen_for_update(&relay.gateway(slug), mesh_testkit::bare::KEY, &[&watched]).await;
        assert_eq!(ack["params"]["notifications"]["resourceSubscriptions"], json!([watched]), "{slug}: {ack}");
        assert_eq!(update["params"]["uri"], watched, "{slug}: {update}");
        assert_eq!(update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 7, "{slug}: {update}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_session_based_client_subscribes_to_a_resource_of_a_stateless_upstream() {
    let (mesh, url) = mesh_over("modern").await;
    let (status, h, body) =
        raw::post(&url, raw::post_headers(&mesh.key, None), raw::initialize_body(1, "2025-11-25")).await;
    assert_eq!(status, 200, "{body}");
    let init = &raw::messages(&body)[0];
    assert_eq!(init["result"]["capabilities"]["resources"]["subscribe"], true, "offered: {init}");
    let sid = h.get("mcp-session-id").and_then(|v| v.to_str().ok()).expect("session").to_string();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    assert_eq!(raw::post(&url, raw::post_headers(&mesh.key, Some(&sid)), note).await.0, 202);

    let mut get = raw::post_headers(&mesh.key, Some(&sid));
    get.insert("mcp-protocol-version", "2025-11-25".parse().expect("header"));
    let stream = reqwest::Client::new().get(&url).headers(get).send().await.expect("GET stream");
    assert_eq!(stream.status(), 200);
    let rpc = |id: i64, method: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"uri": WATCHED}}).to_string()
    };
    let mut h = raw::post_headers(&mesh.key, Some(&sid));
    h.insert("mcp-protocol-version", "2025-11-25".parse().expect("header"));
    let (status, _, body) = raw::post(&url, h.clone(), rpc(2, "resources/subscribe")).await;
    assert_eq!((status, &raw::messages(&body)[0]["result"]), (200, &json!({})), "{body}");
    let mut stream = Sse::of(stream);
    let seen = stream.until(|s| s.iter().any(|m| method_is(m, "notifications/resources/updated"))).await;
    let update = seen.iter().find(|m| method_is(m, "notifications/resources/updated")).expect("update");
    assert_eq!(update["params"]["uri"], WATCHED, "{update}");
    let (status, _, body) = raw::post(&url, h, rpc(3, "resources/unsubscribe")).await;
    assert_eq!((status, &raw::messages(&body)[0]["result"]), (200, &json!({})), "{body}");
    drop(stream);
    mesh.stop().await;
}
