//! Test harness for MCP Mesh: the real mesh on `127.0.0.1:0`, real upstream servers from npm and
//! PyPI (installed by `scripts/test-deps`), and real clients.
//!
//! Nothing here waits by sleeping: readiness is polled with a deadline, every child process is
//! killed on drop, and every port is picked by the OS.

pub mod bare;
pub mod deps;
pub mod mesh;
pub mod oauth;
pub mod otlp;
pub mod pg;
pub mod procs;
pub mod raw;
pub mod rmcp_client;
pub mod upstreams;

pub use mesh::TestMesh;

/// Installs a log subscriber once per test binary (`RUST_LOG` picks the level; default warn).
pub fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    });
}

/// The text of every `text` content block of a `CallToolResult`, joined by newlines.
pub fn text_of(result: &serde_json::Value) -> String {
    let blocks = result["content"].as_array().cloned().unwrap_or_default();
    let texts: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
    texts.join("\n")
}
