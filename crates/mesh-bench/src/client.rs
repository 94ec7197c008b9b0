//! The load generator's MCP client: one initialised session per worker, over Streamable HTTP
//! (to the upstream directly or through the mesh) or over stdio (a child it spawns itself).
//!
//! Deliberately not `mesh_relay::client::McpClient`: the load client must cost the same on both
//! sides of an A/B pair and as little as possible, so it sends pre-built bytes and checks a reply
//! by looking for `"result"` instead of parsing it. Both sides use this same code.

use anyhow::{bail, Context};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The protocol revision the load client asks for.
pub const VERSION: &str = "2025-11-25";

/// The keep-alive HTTP client of one side of a comparison (each side its own connection pool).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().http1_only().tcp_nodelay(true).pool_max_idle_per_host(1024).build().unwrap_or_default()
}

/// What a call sends: `tools/call` of an echo tool, or `tools/list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `tools/call` of this tool (a plain JSON string, not escaped) with a small argument.
    Tool(&'static str),
    /// `tools/list`, first page.
    ListTools,
    /// `tools/call` of a smart virtual MCP's `call_tool`, naming this tool.
    ViaCallTool(&'static str),
    /// `tools/call` of a code virtual MCP's `run_code`, with a script that calls this tool once
    /// and returns its result.
    ViaRunCode(&'static str),
}

impl Call {
    fn body(self, id: u64) -> String {
        self.body_with(id, "")
    }

    /// The body, with `meta` (the member `"_meta":{…}` and a comma, or nothing) first in `params`.
    fn body_with(self, id: u64, meta: &str) -> String {
        match self {
            Call::Tool(name) => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{{meta}"name":"{name}","arguments":{{"text":"hello from mesh-bench"}}}}}}"#
            ),
            Call::ViaCallTool(name) => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{{meta}"name":"call_tool","arguments":{{"name":"{name}","arguments":{{"text":"hello from mesh-bench"}}}}}}}}"#
            ),
            Call::ViaRunCode(name) => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{{meta}"name":"run_code","arguments":{{"code":"return await tools.{name}({{text: 'hello from mesh-bench'}});"}}}}}}"#
            ),
            Call::ListTools => {
                let meta = meta.trim_end_matches(',');
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","params":{{{meta}}}}}"#)
            }
        }
    }
}

fn initialize_body() -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{VERSION}","capabilities":{{}},"clientInfo":{{"name":"mesh-bench","version":"{}"}}}}}}"#,
        env!("CARGO_PKG_VERSION")
    )
}

/// `tools/call` of the echo upstream's `echo` tool.
pub const ECHO: Call = Call::Tool("echo");

const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// True when a reply body is a JSON-RPC result (as JSON, or as the last SSE event).
fn is_result(body: &[u8]) -> bool {
    body.windows(9).any(|w| w == b"\"result\":")
}

/// True when a reply to `call` is a success: a result, and for a script, not a tool error (a
/// script refused for want of a place, or stopped, is answered as one).
fn succeeded(call: Call, body: &[u8]) -> bool {
    const TOOL_ERROR: &[u8] = b"\"isError\":true";
    is_result(body) && !(matches!(call, Call::ViaRunCode(_)) && body.windows(TOOL_ERROR.len()).any(|w| w == TOOL_ERROR))
}

/// The stateless revision the load client speaks on the stateless path.
pub const STATELESS_VERSION: &str = "2026-07-28";

/// The `_meta` envelope every stateless request carries, as the first member of `params`.
const STATELESS_META: &str = concat!(
    r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","#,
    r#""io.modelcontextprotocol/clientCapabilities":{},"#,
    r#""io.modelcontextprotocol/clientInfo":{"name":"mesh-bench","version":"1"}},"#
);

/// One MCP session over Streamable HTTP — or, for the stateless revision, one worker's stream of
/// independent requests (no session: each carries its own envelope and routing headers).
pub struct HttpSession {
    http: reqwest::Client,
    url: url::Url,
    headers: HeaderMap,
    next_id: u64,
    stateless: bool,
    /// A stateless worker's headers for the call it last made (with `Mcp-Method` and
    /// `Mcp-Name`): built once, cloned per call like a session's own headers.
    routed: Option<(Call, HeaderMap)>,
}

impl HttpSession {
    /// Opens a session at `url` (initialize, then `notifications/initialized`), with an optional
    /// bearer token.
    pub async fn open(http: &reqwest::Client, url: &url::Url, token: Option<&str>) -> anyhow::Result<HttpSession> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(t) = token {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}"))?);
        }
        let resp = http
            .post(url.clone())
            .headers(headers.clone())
            .body(initialize_body())
            .send()
            .await
            .with_context(|| format!("initialize at {url}"))?;
        let status = resp.status();
        let session = resp.headers().get("mcp-session-id").cloned();
        let body = resp.bytes().await?;
        if !status.is_success() || !is_result(&body) {
            bail!("initialize at {url} answered HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        let Some(session) = session else { bail!("initialize at {url} returned no Mcp-Session-Id") };
        headers.insert("mcp-session-id", session);
        headers.insert("mcp-protocol-version", HeaderValue::from_static(VERSION));
        let resp = http.post(url.clone()).headers(headers.clone()).body(INITIALIZED).send().await?;
        if resp.status() != reqwest::StatusCode::ACCEPTED {
            bail!("notifications/initialized at {url} answered HTTP {}", resp.status());
        }
        Ok(HttpSession { http: http.clone(), url: url.clone(), headers, next_id: 1, stateless: false, routed: None })
    }

    /// A stateless (2026-07-28) worker at `url`: nothing to open, so nothing is measured twice.
    pub fn stateless(http: &reqwest::Client, url: &url::Url, token: Option<&str>) -> anyhow::Result<HttpSession> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("mcp-protocol-version", HeaderValue::from_static(STATELESS_VERSION));
        if let Some(t) = token {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}"))?);
        }
        Ok(HttpSession { http: http.clone(), url: url.clone(), headers, next_id: 1, stateless: true, routed: None })
    }

    /// One request; Ok when the reply is a result.
    pub async fn call(&mut self, call: Call) -> anyhow::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        let (headers, body) = if self.stateless {
            let headers = match &self.routed {
                Some((last, h)) if *last == call => h.clone(),
                _ => {
                    let h = routed_headers(&self.headers, call);
                    self.routed = Some((call, h.clone()));
                    h
                }
            };
            (headers, call.body_with(id, STATELESS_META))
        } else {
            (self.headers.clone(), call.body(id))
        };
        let resp = self.http.post(self.url.clone()).headers(headers).body(body).send().await?;
        let status = resp.status();
        let body: Bytes = resp.bytes().await?;
        if status != reqwest::StatusCode::OK || !succeeded(call, &body) {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        Ok(())
    }

    /// Ends the session (DELETE); errors are ignored, the server may not care.
    pub async fn close(self) {
        if self.stateless {
            return;
        }
        let _ = self.http.delete(self.url.clone()).headers(self.headers.clone()).send().await;
    }
}

/// `headers` with the stateless revision's `Mcp-Method` and `Mcp-Name` for `call`.
fn routed_headers(headers: &HeaderMap, call: Call) -> HeaderMap {
    let (method, name) = match call {
        Call::Tool(name) => ("tools/call", Some(name)),
        Call::ViaCallTool(_) => ("tools/call", Some("call_tool")),
        Call::ViaRunCode(_) => ("tools/call", Some("run_code")),
        Call::ListTools => ("tools/list", None),
    };
    let mut headers = headers.clone();
    headers.insert("mcp-method", HeaderValue::from_static(method));
    if let Some(n) = name {
        headers.insert("mcp-name", HeaderValue::from_static(n));
    }
    headers
}

/// One MCP session with a stdio server this process started.
pub struct StdioSession {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
    line: String,
    next_id: u64,
}

impl StdioSession {
    /// Starts `program args…` and runs the handshake.
    pub async fn open(program: &Path, args: &[String]) -> anyhow::Result<StdioSession> {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("child pipes missing");
        };
        let mut s = StdioSession { child, stdin, stdout: BufReader::new(stdout), line: String::new(), next_id: 1 };
        s.send(&initialize_body()).await?;
        s.read_reply().await.context("stdio initialize")?;
        s.send(INITIALIZED).await?;
        Ok(s)
    }

    async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.stdin.write_all(&buf).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn read_reply(&mut self) -> anyhow::Result<()> {
        loop {
            self.line.clear();
            if self.stdout.read_line(&mut self.line).await? == 0 {
                bail!("the stdio server closed its output");
            }
            // The echo server sends nothing but replies; skip anything else defensively.
            if self.line.contains("\"id\"") {
                if is_result(self.line.as_bytes()) {
                    return Ok(());
                }
                bail!("error reply: {}", self.line.trim());
            }
        }
    }

    /// One request; Ok when the reply is a result.
    pub async fn call(&mut self, call: Call) -> anyhow::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&call.body(id)).await?;
        self.read_reply().await
    }

    /// Closes stdin and waits for the child (the spec's stdio shutdown: the server exits on EOF).
    pub async fn close(self) {
        let StdioSession { mut child, stdin, .. } = self;
        drop(stdin);
        if tokio::time::timeout(std::time::Duration::from_secs(2), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
}

/// A worker's session, whichever the transport.
pub enum Session {
    /// Streamable HTTP.
    Http(HttpSession),
    /// stdio.
    Stdio(StdioSession),
}

impl Session {
    /// One request; Ok when the reply is a result.
    pub async fn call(&mut self, call: Call) -> anyhow::Result<()> {
        match self {
            Session::Http(s) => s.call(call).await,
            Session::Stdio(s) => s.call(call).await,
        }
    }

    /// Ends the session.
    pub async fn close(self) {
        match self {
            Session::Http(s) => s.close().await,
            Session::Stdio(s) => s.close().await,
        }
    }
}
