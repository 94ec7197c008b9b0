//! The stdio transport: a supervised child process speaking newline-delimited JSON-RPC.
//!
//! Supervision: the child runs in its own process group (so `npx` and the node process it starts
//! are stopped together); stderr goes to the log line by line; stdout lines that are not JSON-RPC
//! are logged and counted, never forwarded. When a child that had completed its handshake exits,
//! every pending request fails at once (the session is told `Down`), and the child is restarted
//! with exponential backoff and re-initialised by replaying the client's own `initialize`, so the
//! downstream session survives a crash without reconnecting. Stopping closes stdin, then sends
//! SIGTERM, then SIGKILL to the group (the MCP spec's stdio shutdown order).

use super::{Inbound, InboundSink, Transport};
use crate::{RelayError, TransportSpec, UpstreamSpec};
use bytes::{Bytes, BytesMut};
use mesh_protocol::{Kind, Message};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

/// Environment variables passed through from the mesh to children. Everything else — notably
/// `MESH_ENCRYPTION_KEY` and `DATABASE_URL` — is withheld: a child gets only what it needs to run
/// plus the connection's own configured env.
const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "TERM",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// The longest stdout line accepted; longer lines are dropped whole (a hostile or broken child).
const MAX_LINE: usize = 32 * 1024 * 1024;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that lived this long is considered healthy again: the backoff starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A link to a supervised child process.
pub struct StdioLink {
    name: String,
    command: String,
    args: Vec<String>,
    env: Vec<(String, mesh_core::Secret<String>)>,
    cwd: Option<PathBuf>,
    sink: Arc<dyn InboundSink>,
    inner: Mutex<Inner>,
    closed: AtomicBool,
    garbage_lines: AtomicU64,
    me: Weak<StdioLink>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    stdin: Option<mpsc::Sender<Bytes>>,
    pid: Option<i32>,
    exited: Option<watch::Receiver<bool>>,
    down: Option<String>,
    started: Option<Instant>,
    restarts: u32,
    /// The client's `initialize` and `notifications/initialized`, replayed after a restart.
    handshake: Option<Message>,
    initialized: Option<Message>,
    /// While replaying the handshake: the id of our `initialize` and who waits for its reply.
    reinit: Option<(String, oneshot::Sender<()>)>,
    /// The child speaks the stateless revision: no handshake, so a restart replays nothing.
    stateless: bool,
}

impl StdioLink {
    /// Starts the child. Fails at once if the program cannot be started at all.
    pub fn spawn(spec: &UpstreamSpec, sink: Arc<dyn InboundSink>) -> Result<Arc<StdioLink>, RelayError> {
        let TransportSpec::Stdio { command, args, env, cwd } = &spec.transport else {
            return Err(RelayError::Internal("stdio link for a non-stdio spec".into()));
        };
        let link = Arc::new_cyclic(|me| StdioLink {
            name: spec.name.clone(),
            command: command.clone(),
            args: args.clone(),
            env: env.clone(),
            cwd: cwd.clone(),
            sink,
            inner: Mutex::new(Inner::default()),
            closed: AtomicBool::new(false),
            garbage_lines: AtomicU64::new(0),
            me: me.clone(),
        });
        link.start_child()?;
        Ok(link)
    }

    /// Marks the child as one of the stateless revision (it answered `server/discover`): it is
    /// restarted when it exits although it never had a handshake, and nothing is replayed.
    pub fn set_stateless(&self) {
        self.lock().stateless = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start_child(&self) -> Result<(), RelayError> {
        let mut cmd = tokio::process::Command::new(&self.command);
        cmd.args(&self.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        for key in PASSED_ENV {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v.expose());
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|e| {
            RelayError::UpstreamUnavailable(format!(
                "cannot start '{}' for connection {}: {e}",
                self.command, self.name
            ))
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(RelayError::Internal("child stdio pipes missing".into()));
        };
        let pid = child.id().map(|p| p as i32);
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        let (exit_tx, exit_rx) = watch::channel(false);
        let generation = {
            let mut inner = self.lock();
            inner.generation += 1;
            inner.stdin = Some(tx);
            inner.pid = pid;
            inner.exited = Some(exit_rx);
            inner.started = Some(Instant::now());
            inner.generation
        };
        tracing::info!(connection = %self.name, pid = ?pid, command = %self.command, "started upstream process");
        tokio::spawn(write_loop(stdin, rx));
        tokio::spawn(read_loop(self.me.clone(), generation, stdout));
        tokio::spawn(stderr_loop(self.name.clone(), stderr));
        let me = self.me.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = exit_tx.send(true);
            if let Some(link) = me.upgrade() {
                link.on_exit(generation, status);
            }
        });
        Ok(())
    }

    fn on_line(&self, line: &[u8]) {
        let msg = match Message::parse(Bytes::copy_from_slice(line)) {
            Ok(m) => m,
            Err(e) => {
                self.garbage_lines.fetch_add(1, Ordering::Relaxed);
                let shown: String = String::from_utf8_lossy(line).chars().take(160).collect();
                tracing::warn!(connection = %self.name, error = %e, line = %shown, "upstream wrote a non-JSON-RPC line to stdout; dropped");
                return;
            }
        };
        {
            let mut inner = self.lock();
            let is_reinit =
                matches!((&inner.reinit, msg.id()), (Some((id, _)), Some(got)) if id == got && msg.kind().is_reply());
            if is_reinit {
                if let Some((_, done)) = inner.reinit.take() {
                    let _ = done.send(());
                }
                return;
            }
        }
        self.sink.deliver(Inbound::Message { msg, related: None });
    }

    fn on_exit(&self, generation: u64, status: std::io::Result<std::process::ExitStatus>) {
        let pid = {
            let mut inner = self.lock();
            if inner.generation != generation {
                return;
            }
            inner.stdin = None;
            inner.pid.take()
        };
        // Stragglers of the group (e.g. the node process under npx) go with the leader.
        if let Some(pid) = pid {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
        }
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let what = match status {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        let reason = format!("upstream process '{}' of connection {} exited ({what})", self.command, self.name);
        tracing::warn!(connection = %self.name, "{reason}");
        let restart = {
            let mut inner = self.lock();
            inner.down = Some(reason.clone());
            inner.reinit = None;
            let lived = inner.started.map(|s| s.elapsed()).unwrap_or_default();
            if lived >= HEALTHY_AFTER {
                inner.restarts = 0;
            }
            // Only a child that completed a handshake is restarted: one that dies during the
            // first initialize fails that initialize, and the session is never created.
            inner.initialized.is_some() || inner.stateless
        };
        crate::stats::upstream_failed();
        self.sink.deliver(Inbound::Down { reason });
        if restart {
            self.schedule_restart();
        }
    }

    fn schedule_restart(&self) {
        let delay = {
            let mut inner = self.lock();
            let d = FIRST_BACKOFF.saturating_mul(1 << inner.restarts.min(8)).min(MAX_BACKOFF);
            inner.restarts += 1;
            d
        };
        let me = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(link) = me.upgrade() else { return };
            if link.closed.load(Ordering::Acquire) {
                return;
            }
            match link.restart().await {
                Ok(()) => {
                    crate::stats::stdio_restarted();
                    tracing::info!(connection = %link.name, "upstream process restarted and re-initialised");
                    link.lock().down = None;
                    link.sink.deliver(Inbound::Up);
                }
                Err(e) => {
                    tracing::warn!(connection = %link.name, error = %e, "restart failed; will retry");
                    link.kill_current(Signal::SIGKILL);
                    // A child that did start will report its exit and schedule the next try.
                    if link.lock().pid.is_none() {
                        link.schedule_restart();
                    }
                }
            }
        });
    }

    async fn restart(&self) -> Result<(), RelayError> {
        self.start_child()?;
        if self.lock().stateless {
            return Ok(());
        }
        let (init, initialized, tx, generation) = {
            let inner = self.lock();
            (inner.handshake.clone(), inner.initialized.clone(), inner.stdin.clone(), inner.generation)
        };
        let (Some(init), Some(tx)) = (init, tx) else {
            return Err(RelayError::Internal("nothing to replay".into()));
        };
        let id = format!("\"mesh-reinit-{generation}\"");
        let (done_tx, done_rx) = oneshot::channel();
        self.lock().reinit = Some((id.clone(), done_tx));
        let send = |m: Message| {
            let tx = tx.clone();
            async move { tx.send(line_bytes(&m)).await.map_err(|_| RelayError::UpstreamUnavailable("stdin closed".into())) }
        };
        send(init.with_id(&id)).await?;
        tokio::time::timeout(Duration::from_secs(30), done_rx)
            .await
            .map_err(|_| RelayError::UpstreamUnavailable("restarted process did not answer initialize".into()))?
            .map_err(|_| RelayError::UpstreamUnavailable("restarted process exited during initialize".into()))?;
        if let Some(n) = initialized {
            send(n).await?;
        }
        Ok(())
    }

    fn kill_current(&self, sig: Signal) {
        if let Some(pid) = self.lock().pid {
            let _ = killpg(Pid::from_raw(pid), sig);
        }
    }
}

/// The message as one stdio line. A raw CR or LF in JSON text can only be insignificant
/// whitespace (inside strings they must be escaped), so blanking them is exact.
fn line_bytes(msg: &Message) -> Bytes {
    let raw = msg.bytes();
    if !raw.iter().any(|b| *b == b'\n' || *b == b'\r') {
        return raw.clone();
    }
    Bytes::from(raw.iter().map(|b| if *b == b'\n' || *b == b'\r' { b' ' } else { *b }).collect::<Vec<u8>>())
}

async fn write_loop(mut stdin: tokio::process::ChildStdin, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(line) = rx.recv().await {
        let ok =
            stdin.write_all(&line).await.is_ok() && stdin.write_all(b"\n").await.is_ok() && stdin.flush().await.is_ok();
        if !ok {
            break;
        }
    }
    // Dropping stdin closes the pipe: the first step of a graceful stop.
}

async fn read_loop(me: Weak<StdioLink>, generation: u64, mut stdout: tokio::process::ChildStdout) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut skipping = false;
    loop {
        match stdout.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line = buf.split_to(pos + 1);
            if std::mem::take(&mut skipping) {
                continue;
            }
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let Some(link) = me.upgrade() else { return };
            if link.lock().generation != generation {
                return;
            }
            link.on_line(line);
        }
        if buf.len() > MAX_LINE {
            if let Some(link) = me.upgrade() {
                link.garbage_lines.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(connection = %link.name, "upstream stdout line longer than {MAX_LINE} bytes; dropped");
            }
            buf.clear();
            skipping = true;
        }
    }
}

async fn stderr_loop(name: String, stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "mcp_mesh::upstream::stderr", connection = %name, "{line}");
    }
}

#[async_trait::async_trait]
impl Transport for StdioLink {
    fn transport_kind(&self) -> &'static str {
        "pipe"
    }

    async fn send(&self, msg: Message) -> Result<(), RelayError> {
        let tx = {
            let mut inner = self.lock();
            if self.closed.load(Ordering::Acquire) {
                return Err(RelayError::UpstreamUnavailable("the upstream session was closed".into()));
            }
            if let Some(reason) = &inner.down {
                return Err(RelayError::UpstreamUnavailable(format!("{reason}; restarting")));
            }
            match (msg.kind(), msg.method()) {
                (Kind::Request, Some("initialize")) => inner.handshake = Some(msg.clone()),
                (Kind::Notification, Some("notifications/initialized")) => inner.initialized = Some(msg.clone()),
                _ => {}
            }
            inner.stdin.clone()
        };
        let Some(tx) = tx else {
            return Err(RelayError::UpstreamUnavailable(format!("upstream process of {} is not running", self.name)));
        };
        tx.send(line_bytes(&msg))
            .await
            .map_err(|_| RelayError::UpstreamUnavailable(format!("upstream process of {} closed its stdin", self.name)))
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (exited, pid) = {
            let mut inner = self.lock();
            inner.stdin = None; // closes stdin once the writer drains
            (inner.exited.clone(), inner.pid)
        };
        let Some(mut exited) = exited else { return };
        let wait = |rx: &mut watch::Receiver<bool>, t| {
            let mut rx = rx.clone();
            async move { tokio::time::timeout(t, rx.wait_for(|e| *e)).await.is_ok() }
        };
        if !wait(&mut exited, STOP_GRACE).await {
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
            }
            if !wait(&mut exited, STOP_GRACE).await {
                if let Some(pid) = pid {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                wait(&mut exited, STOP_GRACE).await;
            }
        }
        tracing::debug!(connection = %self.name, "upstream process stopped");
    }

    fn diagnostics(&self) -> Option<String> {
        match self.garbage_lines.load(Ordering::Relaxed) {
            0 => None,
            n => Some(format!("the upstream wrote {n} non-JSON-RPC line(s) to stdout; see the mesh log")),
        }
    }
}

impl Drop for StdioLink {
    fn drop(&mut self) {
        // A session dropped without close (e.g. mesh shutdown racing) must not leave orphans.
        if !self.closed.load(Ordering::Acquire) {
            if let Some(pid) = self.inner.get_mut().map(|i| i.pid).unwrap_or(None) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}
