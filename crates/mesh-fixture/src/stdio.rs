//! stdio front: newline-delimited JSON-RPC on stdin/stdout, with the era gate in front of rmcp.
//!
//! rmcp serves both eras on one stdio process by itself (a `server/discover` probe first, then
//! either `initialize` or modern requests). The gate answers, in the process's place, what the
//! served era does not cover ([`crate::era::refuse_stdio`]) and keeps serving: a legacy-only
//! server answers a modern probe with `-32601`, a modern-only one answers `initialize` with
//! `-32022` — rmcp itself would end the process after a refused `initialize`.
//!
//! Shape: stdin → gate → pipe → rmcp → pipe → writer → stdout; the gate's own answers go to the
//! same writer, so a line is never interleaved with another.

use crate::era::{self, Era};
use crate::{Fixture, Shared};
use rmcp::service::ServerInitializeError;
use rmcp::ServiceExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Capacity of the in-process pipes between the gate, rmcp and the writer.
const PIPE: usize = 64 * 1024;

/// Serves one stdio peer on `input`/`output` until `input` ends.
pub async fn serve<R, W>(era: Era, input: R, output: W) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (lines_tx, lines_rx) = mpsc::channel::<String>(64);
    let writer = tokio::spawn(write_lines(lines_rx, output));

    // The gate writes into `gate_side`, rmcp reads `rmcp_in`; rmcp writes `rmcp_out`, the pump reads `pump_side`.
    let (gate_side, rmcp_in) = tokio::io::duplex(PIPE);
    let (rmcp_out, pump_side) = tokio::io::duplex(PIPE);
    let pump = tokio::spawn(pump(pump_side, lines_tx.clone()));
    let gate = tokio::spawn(gate(era, input, gate_side, lines_tx));

    let shared = Shared::new(era);
    let result = async {
        let running = match Fixture::with(shared.clone()).serve((rmcp_in, rmcp_out)).await {
            Ok(running) => running,
            // The peer left before choosing an era: a modern client that only probed with
            // `server/discover` (the TypeScript SDK probes on a throwaway process) is done, not
            // failed.
            Err(ServerInitializeError::ConnectionClosed(_)) => return anyhow::Ok(()),
            Err(e) => return Err(e.into()),
        };
        running.waiting().await?;
        anyhow::Ok(())
    }
    .await;
    shared.shut_down();
    // rmcp is done (stdin ended, or the handshake failed): nothing more reaches it; flush the rest.
    gate.abort();
    let _ = pump.await;
    let _ = writer.await;
    result
}

/// Reads stdin line by line: refused requests are answered here, everything else goes to rmcp.
async fn gate<R, W>(era: Era, input: R, mut to_rmcp: W, answers: mpsc::Sender<String>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut lines = BufReader::new(input).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let message: serde_json::Value = serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
        if let Some(error) = era::refuse_stdio(era, era::classify(&message, None), &message) {
            let _ = answers.send(era::error_response(&message, error).to_string()).await;
            continue;
        }
        let forwarded = async {
            to_rmcp.write_all(line.as_bytes()).await?;
            to_rmcp.write_all(b"\n").await?;
            to_rmcp.flush().await
        };
        if forwarded.await.is_err() {
            break; // rmcp has stopped reading
        }
    }
    // Dropping `to_rmcp` is rmcp's end of input.
}

/// Passes rmcp's output on, one line at a time.
async fn pump<R: AsyncRead + Unpin>(from_rmcp: R, lines: mpsc::Sender<String>) {
    let mut from_rmcp = BufReader::new(from_rmcp).lines();
    while let Ok(Some(line)) = from_rmcp.next_line().await {
        if lines.send(line).await.is_err() {
            break;
        }
    }
}

async fn write_lines<W: AsyncWrite + Unpin>(mut lines: mpsc::Receiver<String>, mut output: W) {
    while let Some(line) = lines.recv().await {
        let written = async {
            output.write_all(line.as_bytes()).await?;
            output.write_all(b"\n").await?;
            output.flush().await
        };
        if written.await.is_err() {
            break; // stdout closed: the peer is gone
        }
    }
}

/// The stdio front in-process (no child process, no mesh-testkit): a 2026-07-28 peer, and each
/// era's refusal of the other one.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::Duration;
    use tokio::io::{DuplexStream, Lines};

    struct Peer {
        to_fixture: DuplexStream,
        from_fixture: Lines<BufReader<DuplexStream>>,
        served: tokio::task::JoinHandle<anyhow::Result<()>>,
    }

    impl Peer {
        fn start(era: Era) -> Self {
            let (to_fixture, input) = tokio::io::duplex(PIPE);
            let (output, from_fixture) = tokio::io::duplex(PIPE);
            let served = tokio::spawn(serve(era, input, output));
            Self { to_fixture, from_fixture: BufReader::new(from_fixture).lines(), served }
        }

        /// Sends one request and returns its response (notifications before it are skipped).
        async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
            let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
            self.to_fixture.write_all(format!("{line}\n").as_bytes()).await.unwrap();
            loop {
                let next = tokio::time::timeout(Duration::from_secs(10), self.from_fixture.next_line());
                let line = next.await.expect("an answer in time").unwrap().expect("output open");
                let message: Value = serde_json::from_str(&line).unwrap();
                if message["id"] == id && message.get("method").is_none() {
                    return message;
                }
            }
        }

        /// Closing stdin ends the process's service.
        async fn close(self) -> anyhow::Result<()> {
            drop(self.to_fixture);
            self.served.await.unwrap()
        }
    }

    fn envelope(capabilities: Value) -> Value {
        json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": capabilities,
            "io.modelcontextprotocol/clientInfo": {"name": "stdio-unit-test", "version": "0"}
        })
    }

    #[tokio::test]
    async fn a_modern_peer_discovers_calls_and_answers_an_input_required_result() {
        let mut peer = Peer::start(Era::Dual);
        let discover = peer.request(1, "server/discover", json!({"_meta": envelope(json!({}))})).await;
        assert_eq!(discover["result"]["resultType"], "complete");
        let versions = discover["result"]["supportedVersions"].as_array().unwrap();
        assert!(versions.contains(&json!("2026-07-28")) && versions.contains(&json!("2025-11-25")));

        let simple = json!({"name": "test_simple_text", "arguments": {}, "_meta": envelope(json!({}))});
        let call = peer.request(2, "tools/call", simple).await;
        assert_eq!(call["result"]["resultType"], "complete");
        assert_eq!(call["result"]["content"][0]["text"], "This is a simple text response for testing.");

        // Round one: the question and a sealed state; round two: the answer and the state echoed.
        let tool = "test_input_required_result_request_state";
        let caps = json!({"elicitation": {}});
        let first = peer
            .request(3, "tools/call", json!({"name": tool, "arguments": {}, "_meta": envelope(caps.clone())}))
            .await;
        let irr = &first["result"];
        assert_eq!(irr["resultType"], "input_required");
        assert_eq!(irr["inputRequests"]["user_name"]["method"], "elicitation/create");
        let state = irr["requestState"].as_str().unwrap().to_owned();
        let answer = json!({"user_name": {"action": "accept", "content": {"name": "Alice"}}});
        let retry = |state: &str| json!({"name": tool, "arguments": {}, "inputResponses": answer, "requestState": state, "_meta": envelope(caps.clone())});
        let done = peer.request(4, "tools/call", retry(&state)).await;
        assert_eq!(done["result"]["resultType"], "complete");
        assert_eq!(done["result"]["content"][0]["text"], "Input received: name=Alice");
        let tampered = peer.request(5, "tools/call", retry(&format!("{state}-TAMPERED"))).await;
        assert_eq!(tampered["error"]["code"], -32602);
        peer.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_modern_peer_that_declares_the_tasks_extension_gets_a_task_and_polls_it() {
        let mut peer = Peer::start(Era::Dual);
        let tasks = json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
        let call = json!({"name": "slow_compute", "arguments": {"seconds": 0.1}, "_meta": envelope(tasks.clone())});
        let created = peer.request(1, "tools/call", call).await;
        assert_eq!(created["result"]["resultType"], "task");
        let id = created["result"]["taskId"].as_str().unwrap().to_owned();
        let get = |caps: Value| json!({"taskId": id, "_meta": envelope(caps)});
        let undeclared = peer.request(2, "tasks/get", get(json!({}))).await;
        assert_eq!(undeclared["error"]["code"], -32021);
        for n in 3.. {
            let polled = peer.request(n, "tasks/get", get(tasks.clone())).await;
            if polled["result"]["status"] == "completed" {
                assert_eq!(polled["result"]["result"]["content"][0]["text"], "Computed 'unlabelled' in 0.1 s");
                break;
            }
            assert_eq!(polled["result"]["status"], "working");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peer.close().await.unwrap();
    }

    /// The params of a 2025-11-25 `initialize`.
    fn legacy_initialize() -> serde_json::Value {
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}})
    }

    #[tokio::test]
    async fn a_legacy_fixture_answers_a_modern_probe_with_method_not_found_and_keeps_serving() {
        let mut peer = Peer::start(Era::Legacy);
        let probe = peer.request(1, "server/discover", json!({"_meta": envelope(json!({}))})).await;
        assert_eq!(probe["error"]["code"], -32601);
        let init = peer.request(2, "initialize", legacy_initialize()).await;
        assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
        peer.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_modern_fixture_refuses_initialize_with_the_supported_version_and_keeps_serving() {
        let mut peer = Peer::start(Era::Modern);
        let init = peer.request(1, "initialize", legacy_initialize()).await;
        assert_eq!(init["error"]["code"], -32022);
        assert_eq!(init["error"]["data"]["supported"], json!(["2026-07-28"]));
        let discover = peer.request(2, "server/discover", json!({"_meta": envelope(json!({}))})).await;
        assert_eq!(discover["result"]["supportedVersions"], json!(["2026-07-28"]));
        peer.close().await.unwrap();
    }
}
