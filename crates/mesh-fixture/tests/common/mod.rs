//! Shared by the end-to-end tests: the binary under test, bounded waits, and an SSE reader.

#![allow(dead_code)] // each test binary uses a different subset

use serde_json::Value;
use std::future::Future;
use std::time::Duration;

/// The `mesh-fixture` binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_mesh-fixture");

/// Upper bound on any single step; generous for a loaded CI machine, small enough to fail fast.
pub const STEP: Duration = Duration::from_secs(15);

/// Awaits `f`, failing the test with `what` if it takes longer than [`STEP`].
pub async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// The `data` payloads of a complete SSE body, with each event's `id` (if any).
pub fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let mut id = None;
            let mut data = Vec::new();
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim_start().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            (id, data.join("\n"))
        })
        .collect()
}

/// The JSON-RPC message with this `id` among an SSE body's events.
pub fn message_with_id(body: &str, id: u64) -> Option<Value> {
    sse_events(body)
        .into_iter()
        .filter_map(|(_, data)| serde_json::from_str::<Value>(&data).ok())
        .find(|m| m["id"] == id && m.get("method").is_none())
}

/// Starts `mesh-fixture http --port 0 --era ERA`; the child (killed when dropped) and its URL.
pub async fn fixture_http(era: &str) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(BIN)
        .args(["http", "--port", "0", "--era", era])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("fixture starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = bounded("the fixture's URL", lines.next_line()).await.expect("read").expect("a line");
    (child, line.strip_prefix("listening on ").expect("announcement").trim().to_string())
}
