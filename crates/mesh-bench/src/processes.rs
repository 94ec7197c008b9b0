//! The processes under test: the mesh (a real `mcp-mesh serve`) and the echo upstream, each a
//! separate process, so memory and CPU are the kernel's figures for that process alone.

use anyhow::{bail, Context};
use mesh_core::Secret;
use mesh_relay::client::McpClient;
use mesh_relay::{TransportSpec, UpstreamSpec};
use serde_json::Value;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the mesh may take to become ready before the run gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Readiness is polled this often: the resolution of the cold-start figure.
const READY_POLL: Duration = Duration::from_millis(1);

/// Which program runs the mesh.
#[derive(Debug, Clone)]
pub enum MeshBin {
    /// The product binary: `mcp-mesh serve --listen … --data-dir …`.
    Cli(PathBuf),
    /// `mesh-bench mesh-serve …`: the same server library inside this crate's binary. For the
    /// smoke test, which cannot build the release `mcp-mesh` first.
    Bench(PathBuf),
}

impl MeshBin {
    /// The program's path.
    pub fn path(&self) -> &Path {
        match self {
            MeshBin::Cli(p) | MeshBin::Bench(p) => p,
        }
    }

    fn command(&self, port: u16, data_dir: &Path) -> Command {
        let (program, sub) = match self {
            MeshBin::Cli(p) => (p, "serve"),
            MeshBin::Bench(p) => (p, "mesh-serve"),
        };
        let mut cmd = Command::new(program);
        cmd.arg(sub).arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--data-dir").arg(data_dir);
        // The mesh reads its settings from MESH_*, DATABASE_URL and OTEL_* too: none of the
        // caller's may leak in (a traced "plain" mesh would measure the wrong thing).
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("MESH_") || k.starts_with("OTEL_") || k == "DATABASE_URL") {
                cmd.env_remove(k);
            }
        }
        // The bench opens its sessions through one key, far faster and more of them than a
        // client would: the session caps and open rate are lifted (variables, so that a mesh
        // binary from before they existed still starts).
        for (k, v) in BENCH_SESSION_LIMITS {
            cmd.env(k, v);
        }
        cmd
    }
}

/// The session limits a benchmarked mesh runs with: none that the bench's load could reach.
/// (And the registry's agents stay healthy without heartbeats: the capability path's providers
/// beat once.)
pub const BENCH_SESSION_LIMITS: [(&str, &str); 5] = [
    ("MESH_REGISTRY_UNHEALTHY_SECS", "86400"),
    ("MESH_MAX_SESSIONS", "1000000"),
    ("MESH_MAX_SESSIONS_PER_ORG", "1000000"),
    ("MESH_MAX_SESSIONS_PER_KEY", "1000000"),
    ("MESH_SESSION_OPEN_PER_MINUTE", "0"),
];

/// A port the OS just handed out on loopback. The mesh binds it a moment later; another process
/// taking it in between is possible but not seen in practice, and the start then fails loudly.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running mesh.
pub struct MeshProcess {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// `http://127.0.0.1:{port}`.
    pub base: url::Url,
    /// The owner API key.
    pub key: String,
    /// Spawn → first `200` from `/health/ready`.
    pub ready_after: Duration,
    /// When it was spawned.
    pub spawned: Instant,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl MeshProcess {
    /// Starts the mesh on a free loopback port with `data_dir`, and waits until it is ready.
    pub async fn start(bin: &MeshBin, data_dir: &Path) -> anyhow::Result<MeshProcess> {
        Self::start_with(bin, data_dir, &[]).await
    }

    /// [`MeshProcess::start`] with extra environment variables.
    pub async fn start_with(bin: &MeshBin, data_dir: &Path, env: &[(String, String)]) -> anyhow::Result<MeshProcess> {
        let port = free_port()?;
        let spawned = Instant::now();
        let mut child = bin
            .command(port, data_dir)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the mesh: {}", bin.path().display()))?;
        let pid = child.id().context("mesh exited at once")?;
        // Drain the log continuously (a full pipe would stall the mesh), keeping the tail for errors.
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let tail = stderr_tail.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == 40 {
                        t.pop_front();
                    }
                    t.push_back(l);
                }
            });
        }
        let base = url::Url::parse(&format!("http://127.0.0.1:{port}"))?;
        let probe = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let ready_url = base.join("/health/ready")?;
        let ready_after = loop {
            if let Some(status) = child.try_wait()? {
                bail!("the mesh exited during start-up ({status}):\n{}", tail_text(&stderr_tail));
            }
            if let Ok(r) = probe.get(ready_url.clone()).send().await {
                if r.status().is_success() {
                    break spawned.elapsed();
                }
            }
            if spawned.elapsed() > READY_TIMEOUT {
                bail!("the mesh was not ready after {READY_TIMEOUT:?}:\n{}", tail_text(&stderr_tail));
            }
            tokio::time::sleep(READY_POLL).await;
        };
        let key_path = mesh_admin::bootstrap::owner_key_path(data_dir);
        let key = std::fs::read_to_string(&key_path)
            .with_context(|| format!("no owner key at {}", key_path.display()))?
            .trim()
            .to_string();
        Ok(MeshProcess { child, pid, base, key, ready_after, spawned, stderr_tail })
    }

    /// The URL of `path` on the mesh.
    pub fn url(&self, path: &str) -> url::Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    /// The last lines the mesh logged.
    pub fn log_tail(&self) -> String {
        tail_text(&self.stderr_tail)
    }

    /// Calls a management tool at `/mcp` as the owner; a tool error is an error.
    pub async fn manage(&self, tool: &str, args: Value) -> anyhow::Result<Value> {
        let spec = UpstreamSpec {
            name: "mesh".into(),
            transport: TransportSpec::Http {
                url: self.url("/mcp"),
                headers: vec![("Authorization".into(), Secret::new(format!("Bearer {}", self.key)))],
            },
            timeout: Duration::from_secs(60),
            reach: Default::default(),
            credential: None,
        };
        let http = mesh_relay::UpstreamClients::default();
        let client = McpClient::connect(&spec, &http, "mesh-bench").await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let out = client.call_tool(tool, args).await;
        client.close().await;
        let out = out.map_err(|e| anyhow::anyhow!("{tool}: {e}"))?;
        if out.get("isError").and_then(Value::as_bool) == Some(true) {
            bail!("{tool} failed: {out}");
        }
        Ok(out)
    }

    /// SIGTERM, then waits for a graceful exit (SIGKILL after 15 s).
    pub async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    tail.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect::<Vec<_>>().join("\n")
}

/// The echo upstream over Streamable HTTP (`mesh-bench upstream`), or the bare relay in front
/// of it (`mesh-bench relay`), as a child process.
pub struct UpstreamProcess {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Its MCP endpoint.
    pub url: url::Url,
}

impl UpstreamProcess {
    /// Starts `bench_exe upstream --port 0 --tools N` and reads the address it prints.
    pub async fn start(bench_exe: &Path, tools: usize) -> anyhow::Result<UpstreamProcess> {
        let args = ["upstream", "--port", "0", "--tools", &tools.to_string()].map(String::from);
        Self::spawn(bench_exe, &args, crate::upstream_banner(), "the echo upstream").await
    }

    /// Starts the bare relay (`bench_exe relay`) in front of `upstream`.
    pub async fn relay(bench_exe: &Path, upstream: &url::Url) -> anyhow::Result<UpstreamProcess> {
        let args = ["relay", "--port", "0", "--upstream", upstream.as_str()].map(String::from);
        Self::spawn(bench_exe, &args, crate::relay::BANNER, "the bare relay").await
    }

    /// Runs `bench_exe args…` and reads the `banner` + address line it prints.
    async fn spawn(bench_exe: &Path, args: &[String], banner: &str, what: &str) -> anyhow::Result<UpstreamProcess> {
        let mut child = Command::new(bench_exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {what}: {}", bench_exe.display()))?;
        let pid = child.id().with_context(|| format!("{what} exited at once"))?;
        let out = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(30), BufReader::new(out).read_line(&mut line))
            .await
            .with_context(|| format!("{what} did not say where it listens"))??;
        let url = line
            .trim()
            .strip_prefix(banner)
            .and_then(|addr| url::Url::parse(&format!("http://{addr}/mcp")).ok())
            .with_context(|| format!("unexpected banner from {what}: {line:?}"))?;
        Ok(UpstreamProcess { child, pid, url })
    }

    /// Ends it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
