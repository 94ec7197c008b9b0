//! Raw HTTP against the mesh, for tests of the transport itself (status codes, headers, bodies).

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

/// The headers a well-behaved client sends on POST.
pub fn post_headers(key: &str, session: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_str(&format!("Bearer {key}")).expect("ascii key"));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("accept", HeaderValue::from_static("application/json, text/event-stream"));
    if let Some(s) = session {
        h.insert("mcp-session-id", HeaderValue::from_str(s).expect("ascii session"));
        h.insert("mcp-protocol-version", HeaderValue::from_static("2025-11-25"));
    }
    h
}

/// The headers a stateless (2026-07-28) client sends on POST: the revision, and the body's
/// method and name mirrored (`Mcp-Method`, `Mcp-Name`).
pub fn stateless_headers(key: &str, method: &str, name: Option<&str>) -> HeaderMap {
    let mut h = post_headers(key, None);
    h.insert("mcp-protocol-version", HeaderValue::from_static("2026-07-28"));
    h.insert("mcp-method", HeaderValue::from_str(method).expect("ascii method"));
    if let Some(n) = name {
        h.insert("mcp-name", HeaderValue::from_str(n).expect("ascii name"));
    }
    h
}

/// An `initialize` request body.
pub fn initialize_body(id: i64, version: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize",
           "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw-test", "version": "0"}}})
    .to_string()
}

/// POSTs `body` and returns (status, headers, body text).
pub async fn post(url: &str, headers: HeaderMap, body: impl Into<reqwest::Body>) -> (u16, HeaderMap, String) {
    let resp =
        reqwest::Client::new().post(url).headers(headers).body(body).send().await.expect("POST reaches the mesh");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, h, resp.text().await.unwrap_or_default())
}

/// Opens a session with `initialize` + `notifications/initialized`; returns the session id.
pub async fn open_session(url: &str, key: &str, version: &str) -> String {
    let (status, h, body) = post(url, post_headers(key, None), initialize_body(1, version)).await;
    assert_eq!(status, 200, "initialize failed: {body}");
    let sid = h.get("mcp-session-id").and_then(|v| v.to_str().ok()).expect("session id header").to_string();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let (status, _, _) = post(url, post_headers(key, Some(&sid)), note).await;
    assert_eq!(status, 202);
    sid
}

/// The JSON-RPC message(s) of a response body: the JSON itself, or every `data:` of an SSE body.
pub fn messages(body: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return vec![v];
    }
    body.lines().filter_map(|l| l.strip_prefix("data:")).filter_map(|d| serde_json::from_str(d.trim()).ok()).collect()
}

/// Reads one HTTP request (head and Content-Length body) from a hand-written test upstream's
/// socket: its method and body; `None` when the peer closed.
pub fn read_request(sock: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    read_request_head(sock).map(|(head, body)| (head.split(' ').next().unwrap_or_default().to_ascii_uppercase(), body))
}

/// [`read_request`] with the request's whole head, lowercased (request line and header lines).
pub fn read_request_head(sock: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                return Some((head, buf[end + 4..end + 4 + len].to_vec()));
            }
        }
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What a hand-written stateless upstream ([`stateless_upstream`]) answers to one request.
pub enum Reply {
    /// A JSON body with this HTTP status; the request's id and `jsonrpc` are added.
    Json(u16, Value),
    /// An SSE stream that stays open, with nothing on it, until the mesh closes it.
    Hold,
    /// [`Reply::Hold`], and a word on the channel when the mesh has closed it.
    HoldTelling(std::sync::mpsc::Sender<()>),
    /// This JSON text with this HTTP status, as it is (no id added).
    Verbatim(u16, String),
    /// An SSE stream of events that are not JSON-RPC, each this many bytes, without end: until
    /// the mesh closes it.
    Flood(usize),
}

/// A hand-written upstream of MCP 2026-07-28 only, on a loopback port, for what no real server
/// does on purpose: `initialize` is refused as an unsupported revision, `server/discover`
/// offers `capabilities`, and every other request is `answer`'s. Its `/mcp` URL.
pub fn stateless_upstream(capabilities: Value, answer: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> String {
    stateless_upstream_seeing(capabilities, move |msg, _| answer(msg))
}

/// [`stateless_upstream`] whose `answer` also sees each request's head, lowercased.
pub fn stateless_upstream_seeing(
    capabilities: Value,
    answer: impl Fn(&Value, &str) -> Reply + Send + Sync + 'static,
) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            let (answer, capabilities) = (answer.clone(), capabilities.clone());
            std::thread::spawn(move || {
                while let Some((head, body)) = read_request_head(&mut sock) {
                    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let reply = match msg["method"].as_str().unwrap_or_default() {
                        "initialize" => Reply::Json(
                            400,
                            json!({"error": {"code": -32022, "message": "unsupported protocol version",
                                             "data": {"supported": ["2026-07-28"]}}}),
                        ),
                        "server/discover" => Reply::Json(
                            200,
                            json!({"result": {"resultType": "complete", "supportedVersions": ["2026-07-28"],
                                   "capabilities": capabilities,
                                   "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "hand-written", "version": "1"}}}}),
                        ),
                        _ => answer(&msg, &head),
                    };
                    let (status, reply) = match reply {
                        Reply::Json(status, mut reply) => {
                            reply["jsonrpc"] = json!("2.0");
                            reply["id"] = msg["id"].clone();
                            (status, reply.to_string())
                        }
                        Reply::Verbatim(status, text) => (status, text),
                        Reply::Flood(size) => {
                            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";
                            let event = format!("data: {}\n\n", "x".repeat(size));
                            // The body is the connection's rest (no length): written until closed.
                            let _ = sock.write_all(head.as_bytes());
                            while sock.write_all(event.as_bytes()).is_ok() {}
                            return;
                        }
                        held @ (Reply::Hold | Reply::HoldTelling(_)) => {
                            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                            if sock.write_all(head.as_bytes()).is_err() {
                                return;
                            }
                            // Until the mesh closes the stream (which is how it cancels).
                            let mut sink = [0u8; 1024];
                            while matches!(sock.read(&mut sink), Ok(n) if n > 0) {}
                            if let Reply::HoldTelling(closed) = held {
                                let _ = closed.send(());
                            }
                            return;
                        }
                    };
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        reply.len()
                    );
                    if sock.write_all(head.as_bytes()).and_then(|()| sock.write_all(reply.as_bytes())).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// Reads the SSE events of a response as they come, with a deadline per event.
pub struct Events {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    decoder: mesh_protocol::sse::Decoder,
    queue: std::collections::VecDeque<mesh_protocol::sse::Event>,
}

impl Events {
    /// The events of `resp`, which must be an SSE stream.
    pub fn new(resp: reqwest::Response) -> Events {
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Events {
            body: Box::pin(resp.bytes_stream()),
            decoder: mesh_protocol::sse::Decoder::new(),
            queue: Default::default(),
        }
    }

    /// The next event's id and message, or `None` when the stream ends.
    pub async fn next(&mut self) -> Option<(String, Value)> {
        use futures_util::StreamExt;
        loop {
            if let Some(ev) = self.queue.pop_front() {
                let id = ev.id.clone().unwrap_or_default();
                return Some((id, serde_json::from_str(&ev.data).expect("events carry JSON-RPC")));
            }
            let next = tokio::time::timeout(std::time::Duration::from_secs(20), self.body.next());
            let chunk = next.await.expect("event in time")?;
            self.queue.extend(self.decoder.push(&chunk.expect("body chunk")).expect("valid SSE"));
        }
    }
}
