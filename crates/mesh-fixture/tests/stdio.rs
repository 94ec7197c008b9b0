//! End to end over stdio: the real binary as a child process, driven with newline-delimited JSON-RPC.

mod common;

use common::{bounded, BIN};
use serde_json::{json, Value};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

struct StdioFixture {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl StdioFixture {
    fn spawn() -> Self {
        let mut child = Command::new(BIN)
            .arg("stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mesh-fixture stdio");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, stdin, stdout }
    }

    async fn send(&mut self, message: Value) {
        let line = format!("{message}\n");
        bounded("write to stdin", self.stdin.write_all(line.as_bytes())).await.unwrap();
    }

    /// Next message on stdout; every line must be one JSON-RPC message (nothing else on stdout).
    async fn next(&mut self) -> Value {
        let line = bounded("read from stdout", self.stdout.next_line()).await.unwrap().expect("stdout closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("non-JSON line on stdout ({e}): {line}"))
    }

    /// Reads until the response to request `id`, returning it and whatever came before it.
    async fn response(&mut self, id: u64) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let message = self.next().await;
            if message["id"] == id && message.get("method").is_none() {
                return (message, before);
            }
            before.push(message);
        }
    }

    async fn initialize(&mut self, capabilities: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": capabilities,
            "clientInfo": {"name": "stdio-test", "version": "0"}
        }}))
        .await;
        let (response, _) = self.response(1).await;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        response
    }

    /// Closing stdin ends the session; the process must then exit by itself.
    async fn close(mut self) {
        drop(self.stdin);
        let status = bounded("exit after stdin closed", self.child.wait()).await.unwrap();
        assert!(status.success(), "exit status {status}");
    }
}

#[tokio::test]
async fn initialize_list_and_call_over_stdio() {
    let mut fixture = StdioFixture::spawn();
    let init = fixture.initialize(json!({})).await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(init["result"]["serverInfo"]["name"], "mesh-fixture");
    assert_eq!(init["result"]["capabilities"]["resources"]["subscribe"], true);

    fixture.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    let (list, _) = fixture.response(2).await;
    let names: Vec<&str> =
        list["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"test_simple_text"), "{names:?}");

    fixture
        .send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "test_simple_text"}}))
        .await;
    let (call, _) = fixture.response(3).await;
    assert_eq!(
        call["result"]["content"],
        json!([{"type": "text", "text": "This is a simple text response for testing."}])
    );

    fixture.close().await;
}

/// A server→client request over stdio: the fixture asks for sampling mid-call and uses the answer.
#[tokio::test]
async fn sampling_round_trip_over_stdio() {
    let mut fixture = StdioFixture::spawn();
    fixture.initialize(json!({"sampling": {}})).await;
    fixture
        .send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "test_sampling", "arguments": {"prompt": "say hi"}}}))
        .await;
    let request = fixture.next().await;
    assert_eq!(request["method"], "sampling/createMessage");
    assert_eq!(request["params"]["messages"][0]["content"]["text"], "say hi");
    assert_eq!(request["params"]["maxTokens"], 100);
    fixture
        .send(json!({"jsonrpc": "2.0", "id": request["id"], "result": {
            "role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "test-model"
        }}))
        .await;
    let (call, _) = fixture.response(2).await;
    assert_eq!(call["result"]["content"][0]["text"], "LLM response: hi");
    fixture.close().await;
}

/// Progress goes to the caller's token, before the result, in order.
#[tokio::test]
async fn progress_notifications_precede_the_result() {
    let mut fixture = StdioFixture::spawn();
    fixture.initialize(json!({})).await;
    fixture
        .send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "test_tool_with_progress", "_meta": {"progressToken": "tok"}}}))
        .await;
    let (_, before) = fixture.response(2).await;
    let progress: Vec<(&str, f64)> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| (m["params"]["progressToken"].as_str().unwrap(), m["params"]["progress"].as_f64().unwrap()))
        .collect();
    assert_eq!(progress, [("tok", 0.0), ("tok", 50.0), ("tok", 100.0)]);
    fixture.close().await;
}
