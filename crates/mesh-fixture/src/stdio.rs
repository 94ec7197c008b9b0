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
        let running = Fixture::with(shared.clone()).serve((rmcp_in, rmcp_out)).await?;
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
