//! End to end over Streamable HTTP: the real binary on port 0, driven with raw HTTP (reqwest), so
//! the wire details a relay must preserve (session header, SSE, status codes) are asserted as such.

mod common;

use common::{bounded, message_with_id, sse_events, BIN};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SESSION: &str = "mcp-session-id";
const PROTOCOL: &str = "2025-11-25";

struct HttpFixture {
    /// Killed on drop (`kill_on_drop`), so a failing test leaves no server behind.
    _child: Child,
    url: String,
    client: reqwest::Client,
}

impl HttpFixture {
    /// Starts `mesh-fixture http --port 0` and waits for the URL it prints once it listens.
    async fn spawn() -> Self {
        let mut child = Command::new(BIN)
            .args(["http", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mesh-fixture http");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = bounded("the listening line", lines.next_line()).await.unwrap().expect("stdout closed");
        let url =
            line.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line: {line}")).to_owned();
        assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"), "{url}");
        Self { _child: child, url, client: reqwest::Client::new() }
    }

    fn post(&self, session: Option<&str>, message: &Value) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(&self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .body(message.to_string());
        if let Some(session) = session {
            request = request.header(SESSION, session).header("mcp-protocol-version", PROTOCOL);
        }
        request
    }

    /// initialize + notifications/initialized; returns the session id.
    async fn open_session(&self) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "http-test", "version": "0"}
        }});
        let response = bounded("initialize", self.post(None, &init).send()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let session = response.headers()[SESSION].to_str().unwrap().to_owned();
        // Visible ASCII only (spec: session management; the server-initialize scenario checks it).
        assert!(session.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{session}");
        let body = bounded("initialize body", response.text()).await.unwrap();
        assert_eq!(message_with_id(&body, 1).unwrap()["result"]["protocolVersion"], PROTOCOL);

        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let response = bounded("initialized", self.post(Some(&session), &initialized).send()).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        session
    }

    /// One request on the session; returns the whole SSE body of its response stream.
    async fn request(&self, session: &str, message: &Value) -> String {
        let response = bounded("request", self.post(Some(session), message).send()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
        bounded("response body", response.text()).await.unwrap()
    }
}

#[tokio::test]
async fn initialize_list_and_call_over_http() {
    let fixture = HttpFixture::spawn().await;
    let session = fixture.open_session().await;

    let body = fixture.request(&session, &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    let list = message_with_id(&body, 2).expect("tools/list response");
    let names: Vec<&str> =
        list["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"test_simple_text"), "{names:?}");

    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "test_simple_text"}});
    let body = fixture.request(&session, &call).await;
    let (first_id, first_data) = &sse_events(&body)[0];
    assert!(first_id.is_some() && first_data.is_empty(), "a POST stream starts with a priming event: {body}");
    let result = message_with_id(&body, 3).expect("tools/call response");
    assert_eq!(result["result"]["content"][0]["text"], "This is a simple text response for testing.");
}

/// What the dns-rebinding-protection scenario sends: a foreign Host and Origin get 403, loopback 2xx.
#[tokio::test]
async fn non_loopback_host_or_origin_is_forbidden() {
    let fixture = HttpFixture::spawn().await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "dns", "version": "0"}
    }});
    let attacker = fixture
        .post(None, &init)
        .header(header::HOST, "evil.example.com")
        .header(header::ORIGIN, "http://evil.example.com");
    assert_eq!(bounded("attacker", attacker.send()).await.unwrap().status(), StatusCode::FORBIDDEN);

    let origin_only = fixture.post(None, &init).header(header::ORIGIN, "http://evil.example.com");
    assert_eq!(bounded("origin only", origin_only.send()).await.unwrap().status(), StatusCode::FORBIDDEN);

    let host = fixture.url.trim_start_matches("http://").trim_end_matches("/mcp").to_owned();
    let loopback = fixture.post(None, &init).header(header::ORIGIN, format!("http://{host}"));
    assert_eq!(bounded("loopback", loopback.send()).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_deleted_session_answers_404() {
    let fixture = HttpFixture::spawn().await;
    let session = fixture.open_session().await;
    let delete = fixture.client.delete(&fixture.url).header(SESSION, &session).header("mcp-protocol-version", PROTOCOL);
    assert!(bounded("delete", delete.send()).await.unwrap().status().is_success());
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let after = bounded("after delete", fixture.post(Some(&session), &list).send()).await.unwrap();
    assert_eq!(after.status(), StatusCode::NOT_FOUND);
}

/// SEP-1699: the reconnection tool's stream ends after the priming event; the response is
/// fetched with GET + Last-Event-ID — here deliberately *after* the tool has finished, which is
/// what an SDK client honouring `retry`, or a relay, will often do.
#[tokio::test]
async fn reconnection_tool_response_is_resumable_after_the_tool_finished() {
    let fixture = HttpFixture::spawn().await;
    let session = fixture.open_session().await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "test_reconnection"}});
    let body = fixture.request(&session, &call).await;
    let events = sse_events(&body);
    assert_eq!(events.len(), 1, "only the priming event before the cut: {body}");
    let (Some(last_event_id), data) = &events[0] else { panic!("priming event without id: {body}") };
    assert!(data.is_empty());
    assert!(body.contains("retry:"), "priming event tells the client when to come back: {body}");

    tokio::time::sleep(Duration::from_millis(1_000)).await; // the tool takes 300 ms
    let resume = fixture
        .client
        .get(&fixture.url)
        .header(header::ACCEPT, "text/event-stream")
        .header(SESSION, &session)
        .header("mcp-protocol-version", PROTOCOL)
        .header("last-event-id", last_event_id.as_str());
    let response = bounded("resume", resume.send()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let replay = bounded("replay body", response.text()).await.unwrap();
    assert!(
        !replay.contains(&format!("id: {last_event_id}\n")),
        "events up to Last-Event-ID are not repeated: {replay}"
    );
    let result = message_with_id(&replay, 7).expect("tools/call response on the resumed stream");
    assert_eq!(result["result"]["isError"], Value::Null);
    assert!(result["result"]["content"][0]["text"].as_str().unwrap().starts_with("Reconnection test completed"));
}
