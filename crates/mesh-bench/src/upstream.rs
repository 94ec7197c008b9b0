//! The echo upstream: a minimal MCP server over Streamable HTTP or stdio, fast enough that the
//! benchmark measures the mesh and not the server behind it.
//!
//! It answers `initialize` (with an `Mcp-Session-Id` over HTTP), `ping`, `tools/list` (N tools,
//! serialised once at start) and `tools/call` (echoes the arguments back as text), always as one
//! JSON body, never SSE. Notifications and responses get 202. `GET` answers 405, so the mesh's
//! HTTP link opens no standalone stream to it (the spec allows a server to offer none). It keeps
//! no per-session state: every session id it mints is accepted, and any id is.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Protocol revisions the echo server agrees to; anything else is answered with the first.
const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// What the echo server says about itself and its tools.
pub struct Echo {
    /// The `result` of `tools/list`, serialised once.
    tools_list: String,
    sessions: AtomicU64,
}

/// What one inbound message gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// A JSON-RPC reply; `opens_session` for `initialize`.
    Reply { body: String, opens_session: bool },
    /// A notification or a response: nothing to say (HTTP 202).
    Accepted,
    /// Not a JSON-RPC message.
    Invalid,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InitParams<'a> {
    #[serde(borrow, rename = "protocolVersion", default)]
    protocol_version: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

impl Echo {
    /// An echo server offering `tools` tools named `echo`, `echo_1`, … (at least one: `echo`).
    pub fn new(tools: usize) -> Echo {
        let list: Vec<serde_json::Value> = (0..tools.max(1))
            .map(|i| {
                let name = if i == 0 { "echo".to_string() } else { format!("echo_{i}") };
                serde_json::json!({
                    "name": name,
                    "description": "Returns its arguments as text. A fixture of the MCP Mesh benchmark.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {"text": {"type": "string", "description": "Anything."}},
                    },
                })
            })
            .collect();
        let tools_list = serde_json::json!({ "tools": list }).to_string();
        Echo { tools_list, sessions: AtomicU64::new(0) }
    }

    /// The answer to one message (one HTTP body or one stdio line).
    pub fn answer(&self, body: &[u8]) -> Answer {
        let Ok(env) = serde_json::from_slice::<Envelope<'_>>(body) else {
            return Answer::Invalid;
        };
        let (Some(id), Some(method)) = (env.id, env.method.as_deref()) else {
            return Answer::Accepted;
        };
        let params = env.params.map(RawValue::get).unwrap_or("{}");
        let result = match method {
            "initialize" => {
                let asked = serde_json::from_str::<InitParams<'_>>(params).ok().and_then(|p| p.protocol_version);
                let version = asked.as_deref().filter(|v| VERSIONS.contains(v)).unwrap_or(VERSIONS[0]);
                format!(
                    r#"{{"protocolVersion":"{version}","capabilities":{{"tools":{{"listChanged":false}}}},"serverInfo":{{"name":"mesh-bench-echo","version":"{}"}}}}"#,
                    env!("CARGO_PKG_VERSION")
                )
            }
            "ping" => "{}".to_string(),
            "tools/list" => self.tools_list.clone(),
            "tools/call" => {
                let args = serde_json::from_str::<CallParams<'_>>(params).ok().and_then(|p| p.arguments);
                let text = serde_json::to_string(args.map(RawValue::get).unwrap_or("{}")).unwrap_or_default();
                format!(r#"{{"content":[{{"type":"text","text":{text}}}],"isError":false}}"#)
            }
            _ => {
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32601,"message":"method not found"}}}}"#,
                    id.get()
                );
                return Answer::Reply { body, opens_session: false };
            }
        };
        let body = format!(r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#, id.get());
        Answer::Reply { body, opens_session: method == "initialize" }
    }

    fn new_session_id(&self) -> String {
        format!("echo-{}", self.sessions.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// The Streamable HTTP routes: the MCP endpoint at `/mcp`.
pub fn router(echo: Arc<Echo>) -> Router {
    Router::new().route("/mcp", any(endpoint)).with_state(echo)
}

async fn endpoint(State(echo): State<Arc<Echo>>, method: Method, body: Bytes) -> Response {
    match method {
        Method::POST => match echo.answer(&body) {
            Answer::Reply { body, opens_session } => {
                let mut resp = (StatusCode::OK, [(CONTENT_TYPE, "application/json")], body).into_response();
                if opens_session {
                    if let Ok(v) = HeaderValue::from_str(&echo.new_session_id()) {
                        resp.headers_mut().insert("mcp-session-id", v);
                    }
                }
                resp
            }
            Answer::Accepted => StatusCode::ACCEPTED.into_response(),
            Answer::Invalid => StatusCode::BAD_REQUEST.into_response(),
        },
        // No standalone stream (spec: the server MAY answer 405); sessions end with a 200.
        Method::GET => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        Method::DELETE => StatusCode::OK.into_response(),
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

/// Serves Streamable HTTP on `listener` until the process ends.
pub async fn serve_http(listener: tokio::net::TcpListener, tools: usize) -> std::io::Result<()> {
    axum::serve(listener, router(Arc::new(Echo::new(tools)))).await
}

/// Serves newline-delimited JSON-RPC on stdin/stdout until stdin closes (spec: stdio transport).
pub fn serve_stdio(tools: usize) -> std::io::Result<()> {
    let echo = Echo::new(tools);
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Answer::Reply { body, .. } = echo.answer(&line) {
            out.write_all(body.as_bytes())?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_each_method() {
        let echo = Echo::new(3);
        let init =
            echo.answer(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#);
        let Answer::Reply { body, opens_session: true } = init else { panic!("{init:?}") };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["result"]["protocolVersion"], "2025-06-18");

        let Answer::Reply { body, .. } = echo.answer(br#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#) else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((v["id"].as_str(), v["result"]["tools"].as_array().map(Vec::len)), (Some("a"), Some(3)));

        let call =
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
        let Answer::Reply { body, .. } = echo.answer(call) else { panic!() };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["result"]["content"][0]["text"], r#"{"text":"hi"}"#);

        assert_eq!(echo.answer(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), Answer::Accepted);
        assert_eq!(echo.answer(b"nope"), Answer::Invalid);
    }
}
