//! The loopback OTLP/HTTP trace receiver (`fixtures/otlp-receiver/receiver.py`, built on the
//! `opentelemetry-proto` definitions), run as a child for the tracing tests.

use serde_json::Value;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// A running receiver, killed when dropped.
pub struct Receiver {
    child: tokio::process::Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Receiver {
    /// Starts the receiver with `$MESH_TEST_OTEL_PYTHON` (or the deps dir's `venv-otel`) and
    /// waits for its `listening <port>` line.
    pub async fn start(extra: &[&str]) -> Receiver {
        let python = std::env::var_os("MESH_TEST_OTEL_PYTHON")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| crate::deps::path("venv-otel/bin/python"));
        let script = crate::upstreams::fixture("otlp-receiver/receiver.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .args(["--port", "0"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the OTLP receiver starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the receiver announced its port in time")
            .expect("read")
            .expect("a line");
        let port = line.strip_prefix("listening ").expect("`listening <port>`").trim().to_string();
        Receiver { child, url: format!("http://127.0.0.1:{port}") }
    }

    /// The traces endpoint to configure the mesh with.
    pub fn endpoint(&self) -> String {
        format!("{}/v1/traces", self.url)
    }

    /// The metrics endpoint to configure the mesh with.
    pub fn metrics_endpoint(&self) -> String {
        format!("{}/v1/metrics", self.url)
    }

    /// Every metric data point received so far (`name`, `type`, `attributes`, `value` or
    /// `count`/`sum`/`bucket_counts`/`explicit_bounds`, …).
    pub async fn points(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/metrics-points", self.url))
            .await
            .expect("GET /metrics-points")
            .json()
            .await
            .expect("JSON");
        v.as_array().cloned().unwrap_or_default()
    }

    /// Every span received so far.
    pub async fn spans(&self) -> Vec<Value> {
        let v: Value =
            reqwest::get(format!("{}/spans", self.url)).await.expect("GET /spans").json().await.expect("JSON");
        v.as_array().cloned().unwrap_or_default()
    }

    /// Waits (at most 30 s) until `done` holds for the spans received, and returns them.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans().await;
            if done(&spans) {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {} span(s) so far",
                spans.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the receiver (a collector that went down).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
