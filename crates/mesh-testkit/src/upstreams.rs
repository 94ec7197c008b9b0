//! Real upstream MCP servers run as child processes for tests.

use crate::deps;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// How long a server may take to open its port.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// An HTTP MCP server child, killed when dropped.
pub struct HttpServer {
    child: Child,
    /// Its MCP endpoint.
    pub url: String,
    /// Its port.
    pub port: u16,
    stderr: tempfile::NamedTempFile,
}

impl HttpServer {
    /// Starts `bin args…` with `PORT` set to a free port and waits until it accepts connections.
    /// The port is picked by binding port 0 and releasing it; if another process takes it first
    /// the server exits and we retry on a new port.
    pub async fn spawn(bin: &Path, args: &[&str], path: &str) -> HttpServer {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_spawn(bin, args, path).await {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("{} did not start: {last}", bin.display());
    }

    async fn try_spawn(bin: &Path, args: &[&str], path: &str) -> Result<HttpServer, String> {
        Self::spawn_on(bin, args, path, free_port()).await
    }

    /// Starts the server on a given port (to restart one where clients expect it).
    pub async fn spawn_on(bin: &Path, args: &[&str], path: &str, port: u16) -> Result<HttpServer, String> {
        let stderr = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .args(args)
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr.reopen().map_err(|e| e.to_string())?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
        let mut s = HttpServer { child, url: format!("http://127.0.0.1:{port}{path}"), port, stderr };
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                return Err(format!("exited with {status}: {}", s.stderr()));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(s);
            }
            if Instant::now() > deadline {
                return Err(format!("port {port} not open after {READY_WITHIN:?}: {}", s.stderr()));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// Kills the server now.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// `@modelcontextprotocol/server-everything` over Streamable HTTP (endpoint `/mcp`).
pub async fn everything_http() -> HttpServer {
    HttpServer::spawn(&everything_bin(), &["streamableHttp"], "/mcp").await
}

/// `@modelcontextprotocol/server-everything` over the legacy HTTP+SSE transport (endpoint `/sse`).
pub async fn everything_sse() -> HttpServer {
    HttpServer::spawn(&everything_bin(), &["sse"], "/sse").await
}

/// The server-everything binary (run with `stdio` for the stdio transport).
pub fn everything_bin() -> PathBuf {
    deps::npm_bin("mcp-server-everything")
}

/// The server-filesystem binary.
pub fn filesystem_bin() -> PathBuf {
    deps::npm_bin("mcp-server-filesystem")
}

/// Arguments to run `mcp-server-time` through the venv's Python.
pub fn time_command() -> (String, Vec<String>) {
    (deps::python().display().to_string(), vec!["-m".into(), "mcp_server_time".into(), "--local-timezone=UTC".into()])
}

/// A test fixture script under `crates/mesh-testkit/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}
