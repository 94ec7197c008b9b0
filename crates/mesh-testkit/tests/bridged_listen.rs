//! The one `subscriptions/listen` the mesh keeps to an upstream of MCP 2026-07-28 for a
//! session-based client (bridged), against hand-written upstreams that misbehave on purpose: one
//! without a listen at all, one that ends every listen at once, and a client that toggles its
//! subscriptions as fast as it can. Neither side can make the mesh hammer the other.

use mesh_testkit::raw::{self, post_headers, Reply};
use mesh_testkit::TestMesh;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The listens an upstream was sent: when, and the resources each watched.
#[derive(Clone, Default)]
struct Listens(Arc<Mutex<Vec<(Instant, Value)>>>);

impl Listens {
    fn record(&self, msg: &Value) {
        let watched = msg["params"]["notifications"]["resourceSubscriptions"].clone();
        self.0.lock().expect("listens").push((Instant::now(), watched));
    }

    fn count(&self) -> usize {
        self.0.lock().expect("listens").len()
    }

    fn last(&self) -> Option<Value> {
        self.0.lock().expect("listens").last().map(|(_, w)| w.clone())
    }
}

/// A stateless upstream offering resource subscriptions and `capabilities`' extras, whose
/// listens are answered by `listen`; its URL and what it was sent.
fn upstream(extra: Value, listen: impl Fn() -> Reply + Send + Sync + 'static) -> (String, Listens) {
    let listens = Listens::default();
    let seen = listens.clone();
    let mut capabilities = json!({"resources": {"subscribe": true}});
    if let (Some(c), Some(e)) = (capabilities.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let url = raw::stateless_upstream(capabilities, move |msg| match msg["method"].as_str().unwrap_or_default() {
        "subscriptions/listen" => {
            seen.record(msg);
            listen()
        }
        "resources/list" => Reply::Json(200, json!({"result": {"resultType": "complete", "resources": []}})),
        _ => Reply::Json(200, json!({"error": {"code": -32601, "message": "method not found"}})),
    });
    (url, listens)
}

/// A mesh with `url` as the connection `hand`, and a session-based client's session on it.
async fn session_on(url: &str) -> (TestMesh, String, String) {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "hand", "url": url})).await;
    let endpoint = mesh.endpoint("hand");
    let sid = raw::open_session(&endpoint, &mesh.key, "2025-11-25").await;
    (mesh, endpoint, sid)
}

/// `method` (`resources/subscribe` or `resources/unsubscribe`) of `uri` on the session; the reply.
async fn subscription(mesh: &TestMesh, endpoint: &str, sid: &str, id: i64, method: &str, uri: &str) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"uri": uri}});
    let (status, _, text) = raw::post(endpoint, post_headers(&mesh.key, Some(sid)), body.to_string()).await;
    assert_eq!(status, 200, "{text}");
    raw::messages(&text).into_iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("no reply: {text}"))
}

/// An upstream that offers subscriptions but answers the listen that would carry them with
/// "method not found": from then on a subscription is refused the same way, rather than answered
/// `{}` for updates that can never come, and the listen is not asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_subscriptions_are_refused_once_the_upstream_says_it_has_no_listen() {
    let (url, listens) =
        upstream(json!({}), || Reply::Json(200, json!({"error": {"code": -32601, "message": "method not found"}})));
    let (mesh, endpoint, sid) = session_on(&url).await;
    // The first is answered before the upstream is asked (as a session-based server answers
    // before its first update); it opens the listen, which the upstream refuses.
    let first = subscription(&mesh, &endpoint, &sid, 2, "resources/subscribe", "file:///a").await;
    assert_eq!(first["result"], json!({}), "{first}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 3;
    // A subscription made while the listen is on its way reopens it with both (at most once a
    // second); the upstream refuses that one too.
    let refused = loop {
        let r = subscription(&mesh, &endpoint, &sid, id, "resources/subscribe", &format!("file:///b{id}")).await;
        if r["error"].is_object() || Instant::now() > deadline {
            break r;
        }
        id += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refused["error"]["code"], -32601, "{refused}");
    assert!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("no subscriptions/listen")), "{refused}");
    let asked = listens.count();
    assert!(asked >= 1, "the listen was asked for");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(listens.count(), asked, "a listen refused as unknown is not asked again");
    // Unsubscribing still answers: there is nothing to undo upstream.
    let gone = subscription(&mesh, &endpoint, &sid, 1000, "resources/unsubscribe", "file:///a").await;
    assert_eq!(gone["result"], json!({}), "{gone}");
    mesh.stop().await;
}

/// An upstream that ends every listen as soon as it opens (a result at once): the mesh listens
/// again after 1 s, then 2, 4… s, not twice a second for ever. Four seconds see three listens
/// (0, 1, 3 s) and one of slack at most, against eight or more at a fixed half second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_listen_the_upstream_ends_at_once_is_asked_again_ever_later() {
    let (url, listens) = upstream(json!({"tools": {"listChanged": true}}), || {
        Reply::Json(200, json!({"result": {"resultType": "complete"}}))
    });
    let (mesh, _, _sid) = session_on(&url).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while listens.count() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listens.count(), 1, "the session listens for the upstream's list changes");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let n = listens.count();
    assert!((2..=4).contains(&n), "{n} listens in four seconds: asked again, each time later");
    let times: Vec<Instant> = listens.0.lock().expect("listens").iter().map(|(t, _)| *t).collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] > g[0]), "each wait longer than the last: {gaps:?}");
    mesh.stop().await;
}

/// An upstream that refuses every listen for the unknown resources it carries, and a client
/// that keeps subscribing unknown URIs: the refused URIs go, and the listens are asked ever later
/// (1, 2, 4… s) as for any refusal, not once a second for as long as the client goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_listens_refused_for_their_resources_are_asked_ever_later() {
    let (url, listens) =
        upstream(json!({}), || Reply::Json(200, json!({"error": {"code": -32602, "message": "unknown resource"}})));
    let (mesh, endpoint, sid) = session_on(&url).await;
    let started = Instant::now();
    let mut id = 2;
    while started.elapsed() < Duration::from_millis(4500) {
        let r = subscription(&mesh, &endpoint, &sid, id, "resources/subscribe", &format!("file:///unknown{id}")).await;
        assert_eq!(r["result"], json!({}), "{r}");
        id += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let n = listens.count();
    assert!((2..=4).contains(&n), "{n} listens in 4.5 s of subscriptions, each refused");
    let times: Vec<Instant> = listens.0.lock().expect("listens").iter().map(|(t, _)| *t).collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] > g[0]), "each wait longer than the last: {gaps:?}");
    mesh.stop().await;
}

/// A client that subscribes and unsubscribes as fast as it can: each change would reopen the
/// listen with every watched URI, so the mesh reopens it at most once a second, and the stream it
/// ends with carries the last state — nothing is lost by waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_subscription_toggles_reopen_the_listen_at_most_once_a_second() {
    let (url, listens) = upstream(json!({}), || Reply::Hold);
    let (mesh, endpoint, sid) = session_on(&url).await;
    let started = Instant::now();
    for id in 0..40 {
        let method = if id % 2 == 0 { "resources/subscribe" } else { "resources/unsubscribe" };
        let r = subscription(&mesh, &endpoint, &sid, id + 2, method, "file:///toggled").await;
        assert_eq!(r["result"], json!({}), "{r}");
    }
    let r = subscription(&mesh, &endpoint, &sid, 100, "resources/subscribe", "file:///kept").await;
    assert_eq!(r["result"], json!({}), "{r}");
    let toggling = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    while listens.last() != Some(json!(["file:///kept"])) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listens.last(), Some(json!(["file:///kept"])), "the last stream carries the last state");
    // One to open, one a second while the client toggled, one for the last state — and never
    // two within a second, however long the toggling took.
    let most = 2 + toggling.as_secs() as usize + 1;
    let n = listens.count();
    assert!(n <= most, "{n} listens for 41 changes in {toggling:?} (at most {most})");
    let times: Vec<Instant> = listens.0.lock().expect("listens").iter().map(|(t, _)| *t).collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(900)), "listens within a second: {gaps:?}");
    // And a subscription past the bytes a session may watch is refused, not carried.
    let long = format!("file:///{}", "x".repeat(8000));
    let mut refused = Value::Null;
    for id in 200..220 {
        let r = subscription(&mesh, &endpoint, &sid, id, "resources/subscribe", &format!("{long}{id}")).await;
        if r["error"].is_object() {
            refused = r;
            break;
        }
    }
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("bytes together")), "{refused}");
    mesh.stop().await;
}

/// Reports nothing anywhere: the test below watches the upstream, not the session.
struct Nowhere;

impl mesh_relay::upstream::InboundSink for Nowhere {
    fn deliver(&self, _: mesh_relay::upstream::Inbound) {}
}

/// A session dropped without closing its links must not leave a listen stream open behind it:
/// the listen task holds the link while a stream is open, so without a handle of the session's
/// own the link never went, and its stream stayed open for as long as the upstream kept it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue18_a_link_dropped_without_close_ends_its_listen() {
    use mesh_relay::upstream::{stateless_link, UpstreamClients};
    let (closed_tx, closed) = std::sync::mpsc::channel();
    let listens = Listens::default();
    let seen = listens.clone();
    let closed_tx = Mutex::new(closed_tx);
    let url = raw::stateless_upstream(json!({"tools": {"listChanged": true}}), move |msg| {
        match msg["method"].as_str().unwrap_or_default() {
            "subscriptions/listen" => {
                seen.record(msg);
                Reply::HoldTelling(closed_tx.lock().expect("sender").clone())
            }
            _ => Reply::Json(200, json!({"error": {"code": -32601, "message": "method not found"}})),
        }
    });
    let spec = mesh_relay::UpstreamSpec {
        name: "hand".into(),
        transport: mesh_relay::TransportSpec::Http { url: url.parse().expect("url"), headers: vec![] },
        timeout: Duration::from_secs(10),
        reach: mesh_relay::Reach::Any,
        credential: None,
    };
    let link = stateless_link(&spec, &UpstreamClients::default(), Arc::new(Nowhere), false)
        .await
        .expect("the upstream speaks 2026-07-28")
        .expect("a link");
    let init =
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}});
    link.send(mesh_protocol::Message::request("1", "initialize", Some(&init))).await.expect("initialize");
    let deadline = Instant::now() + Duration::from_secs(10);
    while listens.count() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listens.count(), 1, "the link listens for the list changes its upstream announces");
    drop(link);
    let ended = tokio::task::spawn_blocking(move || closed.recv_timeout(Duration::from_secs(10))).await;
    assert!(matches!(ended, Ok(Ok(()))), "the listen stream is still open after its link went");
}
