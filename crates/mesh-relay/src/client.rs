//! A minimal MCP client over any link: used by `CONNECTION_TEST`, `mcp-mesh call` and the CLI.
//!
//! It declares no client capabilities, so servers have no reason to ask it anything; a `ping`
//! from the server is still answered, and any other request gets "method not found".

use crate::upstream::{self, Inbound, InboundSink, Link};
use crate::{RelayError, UpstreamSpec};
use mesh_protocol::{codes, version, Kind, Message};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What a client call can end with besides a result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The transport failed.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The server answered with a JSON-RPC error.
    #[error("{message} (code {code})")]
    Rpc {
        /// The JSON-RPC error code.
        code: i64,
        /// The server's message.
        message: String,
    },
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Message, RelayError>>>>>;

struct ClientSink {
    waiters: Waiters,
    requests: mpsc::UnboundedSender<Message>,
}

impl InboundSink for ClientSink {
    fn deliver(&self, inbound: Inbound) {
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        match inbound {
            Inbound::Message { msg, .. } if msg.kind().is_reply() => {
                if let Some(tx) = msg.id().and_then(|i| i.parse::<u64>().ok()).and_then(|id| w.remove(&id)) {
                    let _ = tx.send(Ok(msg));
                }
            }
            Inbound::Message { msg, .. } if msg.kind() == Kind::Request => {
                let _ = self.requests.send(msg);
            }
            Inbound::Message { .. } | Inbound::Up => {}
            Inbound::StreamLost { request, reason } => {
                if let Some(tx) = request.parse::<u64>().ok().and_then(|id| w.remove(&id)) {
                    let _ = tx.send(Err(RelayError::UpstreamUnavailable(reason)));
                }
            }
            Inbound::Refused { request, error, .. } => {
                if let Some(tx) = request.parse::<u64>().ok().and_then(|id| w.remove(&id)) {
                    let _ = tx.send(Err(error));
                }
            }
            Inbound::Down { reason } => {
                for (_, tx) in w.drain() {
                    let _ = tx.send(Err(RelayError::UpstreamUnavailable(reason.clone())));
                }
            }
        }
    }
}

/// An initialised MCP client session.
pub struct McpClient {
    link: Link,
    waiters: Waiters,
    next: AtomicU64,
    timeout: Duration,
    init: Value,
}

impl McpClient {
    /// Connects to `spec`, runs the initialize handshake, and returns the ready client.
    pub async fn connect(
        spec: &UpstreamSpec,
        http: &upstream::UpstreamClients,
        client_name: &str,
    ) -> Result<McpClient, ClientError> {
        let waiters: Waiters = Arc::default();
        let (req_tx, mut req_rx) = mpsc::unbounded_channel::<Message>();
        let sink = Arc::new(ClientSink { waiters: waiters.clone(), requests: req_tx });
        let link = upstream::connect(spec, http, sink).await?;
        let answer_link = link.clone();
        tokio::spawn(async move {
            while let Some(req) = req_rx.recv().await {
                let id = req.id().unwrap_or("null");
                let reply = match req.method() {
                    Some("ping") => Message::response(id, &json!({})),
                    _ => Message::error(Some(id), codes::METHOD_NOT_FOUND, "this client has no such capability", None),
                };
                let _ = answer_link.send(reply).await;
            }
        });
        let mut client = McpClient { link, waiters, next: AtomicU64::new(1), timeout: spec.timeout, init: Value::Null };
        let params = json!({
            "protocolVersion": version::LATEST,
            "capabilities": {},
            "clientInfo": {"name": client_name, "version": env!("CARGO_PKG_VERSION")},
        });
        let init = match client.request("initialize", params).await {
            Ok(v) => v,
            Err(e) => {
                client.link.close().await;
                return Err(e);
            }
        };
        client.init = init;
        client.link.send(Message::notification("notifications/initialized", None)).await?;
        Ok(client)
    }

    /// The server's `InitializeResult`.
    pub fn initialize_result(&self) -> &Value {
        &self.init
    }

    /// Sends a request and waits for its result, bounded by the spec's timeout.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        let msg = Message::request(&id.to_string(), method, Some(&params));
        if let Err(e) = self.link.send(msg).await {
            self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            return Err(e.into());
        }
        let reply = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(RelayError::UpstreamUnavailable("the connection closed".into()).into()),
            Err(_) => {
                self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                let note = self.link.diagnostics().map(|d| format!("; {d}")).unwrap_or_default();
                return Err(RelayError::UpstreamTimeout(self.timeout, note).into());
            }
        };
        #[derive(serde::Deserialize)]
        struct Reply {
            result: Option<Value>,
            error: Option<RpcError>,
        }
        #[derive(serde::Deserialize)]
        struct RpcError {
            code: i64,
            message: String,
        }
        let r: Reply = serde_json::from_slice(reply.bytes())
            .map_err(|e| RelayError::UpstreamProtocol(format!("malformed reply: {e}")))?;
        match (r.result, r.error) {
            (_, Some(e)) => Err(ClientError::Rpc { code: e.code, message: e.message }),
            (Some(v), None) => Ok(v),
            (None, None) => Err(RelayError::UpstreamProtocol("reply has neither result nor error".into()).into()),
        }
    }

    /// Every tool, following pagination.
    pub async fn list_tools(&self) -> Result<Vec<Value>, ClientError> {
        self.list_all("tools/list", "tools").await
    }

    /// Every item of a paginated list (`tools/list` → `tools`, `prompts/list` → `prompts`, …).
    pub async fn list_all(&self, method: &str, key: &str) -> Result<Vec<Value>, ClientError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        // Bounded: a server that keeps handing out cursors is broken, not infinite.
        for _ in 0..1000 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = self.request(method, params).await?;
            out.extend(page.get(key).and_then(|t| t.as_array()).cloned().unwrap_or_default());
            cursor = page.get("nextCursor").and_then(|c| c.as_str()).map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Calls a tool and returns its `CallToolResult`.
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<Value, ClientError> {
        self.request("tools/call", json!({"name": name, "arguments": arguments})).await
    }

    /// Ends the session.
    pub async fn close(self) {
        self.link.close().await;
    }
}
