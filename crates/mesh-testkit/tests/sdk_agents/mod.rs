//! Unmodified agents of the mcp-mesh SDK (PyPI `mcp-mesh`, scripts in `py/`), started against the
//! mesh's registry, for the registry tests (#22).
#![allow(dead_code)] // each test crate uses its own part

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A test dependency named by `var` (set by `.test-deps/env.sh`).
pub fn dep(var: &str) -> PathBuf {
    let p = PathBuf::from(std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: source .test-deps/env.sh")));
    assert!(p.exists(), "{} is missing: run scripts/test-deps", p.display());
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One agent process.
pub struct Agent {
    pub child: tokio::process::Child,
    pub port: u16,
    /// Held open: the agent exits when it closes, so a test that dies leaves no agent behind.
    _stdin: Option<tokio::process::ChildStdin>,
}

impl Agent {
    /// Starts `script` beating every `beat_secs` to `registry`, with `env` besides.
    pub fn start(script: &str, registry: &str, beat_secs: u64, env: &[(&str, &str)]) -> Agent {
        let port = free_port();
        let mut child = tokio::process::Command::new(dep("MESH_TEST_MCPMESH_PYTHON"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(script))
            // Bind and advertise loopback only.
            .env("HOST", "127.0.0.1")
            .env("MCP_MESH_HTTP_HOST", "127.0.0.1")
            .env("MCP_MESH_HTTP_PORT", port.to_string())
            .env("MCP_MESH_REGISTRY_URL", registry)
            .env("MCP_MESH_HEALTH_INTERVAL", beat_secs.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the mcp-mesh agent starts");
        let stdin = child.stdin.take();
        Agent { child, port, _stdin: stdin }
    }

    /// Where it listens, as the registry shows it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends it a signal (`-KILL`, `-TERM`).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill").args([sig, &pid]).status().expect("kill runs").success();
        assert!(ok, "kill {sig} {pid}");
    }
}

/// The registry's `GET /agents`.
pub async fn agents(http: &reqwest::Client, registry: &str) -> Vec<Value> {
    let v: Value = http.get(format!("{registry}/agents")).send().await.unwrap().json().await.unwrap();
    v["agents"].as_array().cloned().unwrap_or_default()
}

/// The agent listening at `endpoint`.
pub fn by_endpoint<'a>(all: &'a [Value], endpoint: &str) -> Option<&'a Value> {
    all.iter().find(|a| a["endpoint"] == endpoint)
}

/// Polls `check` every 250 ms until it returns `Ok`, for at most `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("{what} within {limit:?}; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
