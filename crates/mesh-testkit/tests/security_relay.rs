//! Issue #16, "the trust boundary", items 4–6, end to end: the real mesh on port 0 against a
//! hand-written hostile Streamable HTTP upstream on loopback.
//!
//! 4. Sessions are capped per API key, per organisation and in total, and opened at a bounded
//!    rate; a session whose clients all left is reaped, whatever they left behind.
//! 5. A call whose client disconnects mid-flight still ends in exactly one audit row.
//! 6. An upstream cannot grow one SSE event without bound, and its streams end with the session.

use mesh_admin::audit::AuditQuery;
use mesh_testkit::raw::{self, post_headers};
use mesh_testkit::{text_of, TestMesh};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const VERSION: &str = "2025-11-25";
/// How long any wait in these tests may take before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A Streamable HTTP upstream written by hand, so that it can misbehave where no SDK would.
/// `tools/call` by name: `ok` answers; `hold` never answers; `stream_hold` opens an SSE stream,
/// sends one notification and never answers; `huge_event` opens an SSE stream and sends
/// `data:` lines of 1 MiB without ever ending the event. Held streams wait for the mesh to close
/// them, and say so in the log. With `hold_get`, GET opens a standalone stream that is held too.
struct Hostile {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Hostile {
    fn start(hold_get: bool) -> Hostile {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { return };
                let l = l.clone();
                std::thread::spawn(move || serve(sock, hold_get, &l));
            }
        });
        Hostile { url, log }
    }

    fn seen(&self, entry: &str) -> bool {
        self.log.lock().unwrap().iter().any(|e| e == entry)
    }

    fn count_prefix(&self, prefix: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|e| e.starts_with(prefix)).count()
    }

    /// Waits (bounded) until the log has `entry`.
    async fn until_seen(&self, entry: &str) {
        let end = Instant::now() + PATIENCE;
        while !self.seen(entry) {
            assert!(Instant::now() < end, "the upstream never logged {entry:?}: {:?}", self.log.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded) until the log has an entry starting with `prefix`; returns the rest of it.
    async fn until_prefix(&self, prefix: &str) -> String {
        let end = Instant::now() + PATIENCE;
        loop {
            let found = self.log.lock().unwrap().iter().find_map(|e| e.strip_prefix(prefix).map(str::to_string));
            if let Some(rest) = found {
                return rest;
            }
            assert!(Instant::now() < end, "the upstream never logged {prefix:?}…: {:?}", self.log.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn serve(mut sock: std::net::TcpStream, hold_get: bool, log: &Mutex<Vec<String>>) {
    let note = |e: String| log.lock().unwrap().push(e);
    while let Some((method, body)) = raw::read_request(&mut sock) {
        let answer = match method.as_str() {
            "GET" if hold_get => {
                let _ = sock.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n: open\n\n",
                );
                note("get:open".into());
                wait_for_close(&mut sock);
                note("get:closed".into());
                return;
            }
            "GET" => "HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n".to_string(),
            "DELETE" => "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_string(),
            _ => {
                let Ok(msg) = serde_json::from_slice::<Value>(&body) else { return };
                if msg.get("id").is_none() {
                    note(format!("note:{}:{}", msg["method"].as_str().unwrap_or(""), msg["params"]["requestId"]));
                    let _ = sock.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
                    continue;
                }
                let result = match msg["method"].as_str().unwrap_or_default() {
                    "initialize" => {
                        note("init".into());
                        json!({"protocolVersion": VERSION, "capabilities": {"tools": {}},
                                           "serverInfo": {"name": "hostile", "version": "1"}})
                    }
                    "tools/call" => {
                        let name = msg["params"]["name"].as_str().unwrap_or_default().to_string();
                        note(format!("call:{name}:{}", msg["id"]));
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
                        match name.as_str() {
                            "hold" => {}
                            "stream_hold" => {
                                let ev = json!({"jsonrpc": "2.0", "method": "notifications/message",
                                                "params": {"level": "info", "data": "working"}});
                                let _ = sock.write_all(format!("{head}data: {ev}\n\n").as_bytes());
                            }
                            "huge_event" => {
                                let line = format!("data: {}\n", "x".repeat(1024 * 1024));
                                let _ = sock.write_all(head.as_bytes());
                                for _ in 0..20 {
                                    if sock.write_all(line.as_bytes()).is_err() {
                                        break;
                                    }
                                }
                            }
                            _ => {
                                let reply = json!({"jsonrpc": "2.0", "id": msg["id"],
                                                   "result": {"content": [{"type": "text", "text": "fine"}]}});
                                let reply = reply.to_string();
                                let _ = sock.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}", reply.len()).as_bytes());
                                continue;
                            }
                        }
                        wait_for_close(&mut sock);
                        note(format!("closed:{name}"));
                        return;
                    }
                    _ => json!({}),
                };
                let reply = json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}).to_string();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: up-1\r\ncontent-length: {}\r\n\r\n{reply}",
                    reply.len()
                )
            }
        };
        if sock.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Blocks until the peer closes the connection (whatever it still sends is ignored).
fn wait_for_close(sock: &mut std::net::TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(sock.read(&mut buf), Ok(n) if n > 0) {}
}

/// A mesh with one connection, `hostile`, to `upstream`.
async fn mesh_for(upstream: &Hostile, tune: impl FnOnce(&mut mesh_server::Config)) -> TestMesh {
    let mesh = TestMesh::start_with(tune).await;
    mesh.add_connection(json!({"slug": "hostile", "url": upstream.url, "timeoutMs": 15000})).await;
    mesh
}

/// An initialize on `hostile` with `key`: (status, Retry-After, the JSON-RPC body, session id).
async fn initialize(mesh: &TestMesh, key: &str) -> (u16, Option<String>, Value, Option<String>) {
    let (status, h, body) =
        raw::post(&mesh.endpoint("hostile"), post_headers(key, None), raw::initialize_body(1, VERSION)).await;
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, header("retry-after"), serde_json::from_str(&body).unwrap_or(Value::Null), header("mcp-session-id"))
}

async fn open(mesh: &TestMesh, key: &str) -> String {
    let (status, _, body, sid) = initialize(mesh, key).await;
    assert_eq!(status, 200, "{body}");
    sid.expect("a session id")
}

async fn delete(mesh: &TestMesh, key: &str, sid: &str) {
    let resp = reqwest::Client::new()
        .delete(mesh.endpoint("hostile"))
        .headers(post_headers(key, Some(sid)))
        .send()
        .await
        .expect("DELETE reaches the mesh");
    assert_eq!(resp.status(), 200);
}

fn tool_call(id: i64, name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}}).to_string()
}

/// POSTs `body` on a raw connection and returns it unread: dropping it is a client that left.
async fn post_then_leave(mesh: &TestMesh, sid: &str, body: &str) -> tokio::net::TcpStream {
    let addr = mesh.url.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.expect("connect to the mesh");
    let head = format!(
        "POST /mcp/hostile HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nmcp-session-id: {sid}\r\nmcp-protocol-version: {VERSION}\r\n\
         content-length: {}\r\n\r\n{body}",
        mesh.key,
        body.len()
    );
    sock.write_all(head.as_bytes()).await.expect("request written");
    sock
}

/// The audit rows of the owner's organisation with method `tools/call` (after a flush).
async fn tool_call_rows(mesh: &TestMesh) -> Vec<Value> {
    let q = AuditQuery { method: Some("tools/call".into()), limit: Some(1000), ..Default::default() };
    let page = mesh.admin.query_audit(&mesh.owner(), q).await.expect("audit query");
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Waits (bounded) until the audit has a `tools/call` row with request id `id`; returns all such rows.
async fn rows_for(mesh: &TestMesh, id: i64) -> Vec<Value> {
    let end = Instant::now() + PATIENCE;
    loop {
        let rows: Vec<Value> = tool_call_rows(mesh)
            .await
            .into_iter()
            .filter(|r| r["requestId"] == json!(id.to_string()) || r["requestId"] == json!(id))
            .collect();
        if !rows.is_empty() {
            return rows;
        }
        assert!(Instant::now() < end, "no audit row for request {id}: {:?}", tool_call_rows(mesh).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn issue16_item4_session_caps_per_key_org_and_total() {
    let upstream = Hostile::start(false);
    let mesh = mesh_for(&upstream, |cfg| {
        cfg.max_sessions_per_key = 2;
        cfg.max_sessions_per_org = 3;
    })
    .await;
    let viewer = mesh.extra_key("viewer").await;
    let v1 = open(&mesh, &viewer).await;
    let _v2 = open(&mesh, &viewer).await;
    let (status, _, body, sid) = initialize(&mesh, &viewer).await;
    assert_eq!((status, sid), (429, None), "the key's third session: {body}");
    assert_eq!(body["error"]["code"], -31030);
    assert_eq!(
        body["error"]["message"],
        "too many sessions for this API key (2); close some (DELETE) or wait for idle ones to expire"
    );
    // Another key of the organisation has room of its own, until the organisation is full.
    let _o1 = open(&mesh, &mesh.key).await;
    let (status, _, body, _) = initialize(&mesh, &mesh.key).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        body["error"]["message"],
        "too many sessions for this organisation (3); close some (DELETE) or wait for idle ones to expire"
    );
    // A closed session frees its place at once.
    delete(&mesh, &viewer, &v1).await;
    open(&mesh, &mesh.key).await;
    assert_eq!(mesh.session_count(), 3);
    mesh.stop().await;

    // The installation's total (503), and the rate at which one key opens sessions (429 with
    // Retry-After), which is counted first: refusals of either kind spend it.
    let mesh = mesh_for(&upstream, |cfg| {
        cfg.max_sessions = 2;
        cfg.session_open_per_minute = 3;
    })
    .await;
    let inits = upstream.count_prefix("init");
    open(&mesh, &mesh.key).await;
    open(&mesh, &mesh.key).await;
    let (status, retry_after, body, _) = initialize(&mesh, &mesh.key).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"), "a full mesh says when to come back");
    assert_eq!(
        (body["error"]["code"].clone(), body["error"]["message"].clone()),
        (json!(-31030), json!("the mesh is at its limit of 2 sessions; try again later"))
    );
    let (status, retry_after, body, _) = initialize(&mesh, &mesh.key).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], -31029);
    assert!(body["error"]["message"].as_str().unwrap().contains("sessions opened per API key: 3 a minute"), "{body}");
    let secs: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=20).contains(&secs), "one open comes back every 20 s: {secs}");
    // Refused opens reached no upstream: two initializes only.
    assert_eq!(upstream.count_prefix("init") - inits, 2);
    mesh.stop().await;
}

#[tokio::test]
async fn issue16_item4_idle_reaping_covers_sessions_whose_listener_left() {
    let upstream = Hostile::start(false);
    let mesh = mesh_for(&upstream, |_| {}).await;
    let url = mesh.endpoint("hostile");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;

    // A listener on the GET stream keeps the session: it is in use.
    let mut get_headers = post_headers(&mesh.key, Some(&sid));
    get_headers.insert("accept", "text/event-stream".parse().unwrap());
    let listener = reqwest::Client::new().get(&url).headers(get_headers).send().await.expect("GET stream");
    assert_eq!(listener.status(), 200);
    tokio::time::sleep(Duration::from_millis(5)).await; // the reaper's cutoff is in whole ms
    assert_eq!(mesh.reap_idle(Duration::ZERO).await, 0, "a session with a listener is not idle");

    // The listener leaves, and a call's client leaves while the upstream holds the call.
    drop(listener);
    let gone = post_then_leave(&mesh, &sid, &tool_call(5, "hold")).await;
    upstream.until_prefix("call:hold:").await;
    drop(gone);

    // Nothing is left to wait for: the session goes on the reaper's next pass after its idle time.
    let end = Instant::now() + PATIENCE;
    while mesh.has_session(&sid) {
        assert!(Instant::now() < end, "a session whose clients all left was never reaped");
        mesh.reap_idle(Duration::ZERO).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Closing it ended the upstream session too, and the held call was let go.
    upstream.until_seen("closed:hold").await;
    mesh.stop().await;
}

#[tokio::test]
async fn issue16_item5_client_gone_call_is_audited_once() {
    let upstream = Hostile::start(false);
    let mesh = mesh_for(&upstream, |_| {}).await;
    let url = mesh.endpoint("hostile");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;

    let gone = post_then_leave(&mesh, &sid, &tool_call(7, "hold")).await;
    let up_id = upstream.until_prefix("call:hold:").await;
    drop(gone);

    let rows = rows_for(&mesh, 7).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!((row["outcome"].as_str(), row["name"].as_str()), (Some("client_gone"), Some("hold")), "{row}");
    assert!(row["error"].as_str().unwrap_or("").contains("client disconnected"), "{row}");
    // The upstream is told it may stop, with its own id, and the mesh stopped reading its reply.
    upstream.until_seen(&format!("note:notifications/cancelled:{up_id}")).await;
    upstream.until_seen("closed:hold").await;
    // Queryable by outcome, as `mcp-mesh audit --outcome client_gone` asks.
    let q = AuditQuery { outcome: Some("client_gone".into()), ..Default::default() };
    let page = mesh.admin.query_audit(&mesh.owner(), q).await.expect("audit query by outcome");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");

    // Nothing is pending: the session is idle and the next call is served as before.
    let (status, _, body) = raw::post(&url, post_headers(&mesh.key, Some(&sid)), tool_call(8, "ok")).await;
    assert_eq!(status, 200);
    assert_eq!(text_of(&raw::messages(&body)[0]["result"]), "fine");
    assert_eq!(rows_for(&mesh, 7).await.len(), 1, "still exactly one row for the call that lost its client");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(mesh.reap_idle(Duration::ZERO).await, 1, "no pending entry keeps the session");
    mesh.stop().await;
}

#[tokio::test]
async fn issue16_item6_oversized_upstream_sse_event_is_refused() {
    let upstream = Hostile::start(false);
    let mesh = mesh_for(&upstream, |_| {}).await;
    let url = mesh.endpoint("hostile");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;

    let call = raw::post(&url, post_headers(&mesh.key, Some(&sid)), tool_call(2, "huge_event"));
    let (status, _, body) = tokio::time::timeout(PATIENCE, call).await.expect("an answer, not a hang");
    assert_eq!(status, 200);
    let reply = &raw::messages(&body)[0];
    assert_eq!(reply["error"]["code"], -31010, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("SSE event larger than 16777216 bytes"), "the error names the limit: {message}");
    // The mesh closed the stream rather than reading on.
    upstream.until_seen("closed:huge_event").await;
    let rows = rows_for(&mesh, 2).await;
    assert_eq!((rows.len(), rows[0]["outcome"].as_str()), (1, Some("upstream_down")), "{rows:?}");

    // The same session and a new one are served as before.
    let (status, _, body) = raw::post(&url, post_headers(&mesh.key, Some(&sid)), tool_call(3, "ok")).await;
    assert_eq!((status, text_of(&raw::messages(&body)[0]["result"])), (200, "fine".to_string()));
    let other = raw::open_session(&url, &mesh.key, VERSION).await;
    let (status, _, body) = raw::post(&url, post_headers(&mesh.key, Some(&other)), tool_call(4, "ok")).await;
    assert_eq!((status, text_of(&raw::messages(&body)[0]["result"])), (200, "fine".to_string()));
    mesh.stop().await;
}

#[tokio::test]
async fn issue16_item6_upstream_streams_end_with_their_session() {
    let upstream = Hostile::start(true);
    let mesh = mesh_for(&upstream, |_| {}).await;
    let url = mesh.endpoint("hostile");
    let sid = raw::open_session(&url, &mesh.key, VERSION).await;
    // After initialized the mesh opens the upstream's GET stream.
    upstream.until_seen("get:open").await;

    // A call whose reply the upstream streams and never finishes; its client is still listening.
    let (key, sid2, url2) = (mesh.key.clone(), sid.clone(), url.clone());
    let call =
        tokio::spawn(
            async move { raw::post(&url2, post_headers(&key, Some(&sid2)), tool_call(9, "stream_hold")).await },
        );
    upstream.until_prefix("call:stream_hold:").await;

    delete(&mesh, &mesh.key, &sid).await;
    // Both of the upstream's streams end with the session.
    upstream.until_seen("get:closed").await;
    upstream.until_seen("closed:stream_hold").await;
    // The listening client is told, and the call has its one audit row.
    let (status, _, body) = tokio::time::timeout(PATIENCE, call).await.expect("the stream ends").expect("task");
    assert_eq!(status, 200);
    let last = raw::messages(&body).pop().expect("a message");
    assert_eq!(
        last["error"]["message"], "upstream unavailable: the session was closed before the upstream answered",
        "{body}"
    );
    let rows = rows_for(&mesh, 9).await;
    assert_eq!((rows.len(), rows[0]["outcome"].as_str()), (1, Some("client_gone")), "{rows:?}");
    mesh.stop().await;
}
