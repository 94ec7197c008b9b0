//! An MCP client made of the mesh's own upstream client, for the official conformance suite's
//! client scenarios at 2026-07-28 (`conformance client --command mesh-upstream-client …`).
//!
//! Every byte on the wire is written by `mesh_relay::upstream` — `probe()` asks `server/discover`,
//! `ModernLink` sends the requests. This driver only plays the session layer above the link: it
//! sends `initialize` first, then the scenario's requests, and answers the server requests the
//! link reports (elicitation, sampling, roots: what a stateless upstream's input-required results
//! become) with canned replies sent back through the link, as a session relays its client's.
//!
//! usage: `mesh-upstream-client URL`, with `MCP_CONFORMANCE_SCENARIO` and, for some scenarios,
//! `MCP_CONFORMANCE_CONTEXT` (JSON) in the environment — as the suite runs it.

use anyhow::{anyhow, bail, Context};
use mesh_protocol::{Kind, Message};
use mesh_relay::upstream::{self, Inbound, InboundSink, Link, UpstreamClients};
use mesh_relay::{Reach, TransportSpec, UpstreamSpec};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long one request may take, input rounds included (the suite allows the run 30 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Hands what the link reports to the reader task, as a session's sink hands it to the session.
struct Sink(mpsc::UnboundedSender<Inbound>);

impl InboundSink for Sink {
    fn deliver(&self, inbound: Inbound) {
        let _ = self.0.send(inbound);
    }
}

type Reply = Result<Value, String>;

/// The session's side of one link: requests by id, waiting for their replies.
struct Client {
    link: Link,
    next: AtomicU64,
    pending: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
}

impl Client {
    /// Sends one request through the link and waits for its reply.
    async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next.fetch_add(1, Ordering::Relaxed).to_string();
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending").insert(id.clone(), tx);
        self.link.send(Message::request(&id, method, Some(&params))).await?;
        let reply = tokio::time::timeout(CALL_TIMEOUT, rx)
            .await
            .map_err(|_| anyhow!("{method}: no reply within {CALL_TIMEOUT:?}"))?
            .map_err(|_| anyhow!("{method}: the link went away"))?;
        reply.map_err(|e| anyhow!("{method}: {e}"))
    }

    /// Reads the link's reports: replies to their requests, server requests to `asks`.
    async fn read(
        self: Arc<Self>,
        mut inbound: mpsc::UnboundedReceiver<Inbound>,
        asks: mpsc::UnboundedSender<Message>,
    ) {
        while let Some(report) = inbound.recv().await {
            let (id, reply) = match report {
                Inbound::Message { msg, .. } => match msg.kind() {
                    Kind::Request => {
                        let _ = asks.send(msg);
                        continue;
                    }
                    Kind::Notification => {
                        eprintln!("notification: {}", msg.as_str());
                        continue;
                    }
                    Kind::Response => (msg.id().unwrap_or_default().to_string(), Ok(msg.result().unwrap_or_default())),
                    Kind::Error => (msg.id().unwrap_or_default().to_string(), Err(msg.as_str().to_string())),
                },
                Inbound::StreamLost { request, reason } => (request.to_string(), Err(reason)),
                Inbound::Refused { request, error, .. } => (request.to_string(), Err(error.to_string())),
                Inbound::Down { reason } => {
                    for (_, tx) in self.pending.lock().expect("pending").drain() {
                        let _ = tx.send(Err(reason.clone()));
                    }
                    continue;
                }
                Inbound::Up => continue,
            };
            if let Some(tx) = self.pending.lock().expect("pending").remove(&id) {
                let _ = tx.send(reply);
            }
        }
    }

    /// Answers one server request through the link, as the session relays its client's reply.
    async fn answer(&self, ask: &Message) -> anyhow::Result<()> {
        let id = ask.id().unwrap_or("null");
        let reply = match canned(ask) {
            Some(result) => Message::response(id, &result),
            None => Message::error(Some(id), -32601, "not supported by this client", None),
        };
        Ok(self.link.send(reply).await?)
    }

    /// Answers every server request from now on.
    fn answer_all(self: &Arc<Self>, mut asks: mpsc::UnboundedReceiver<Message>) {
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(ask) = asks.recv().await {
                if let Err(e) = me.answer(&ask).await {
                    eprintln!("could not answer {:?}: {e}", ask.method());
                }
            }
        });
    }
}

/// What a user would answer: accept an elicitation with a value for each field of its schema,
/// a fixed sampling reply, no roots.
fn canned(ask: &Message) -> Option<Value> {
    let params: Value = ask.params().unwrap_or_default();
    match ask.method()? {
        "elicitation/create" => {
            let fields = params["requestedSchema"]["properties"].as_object().cloned().unwrap_or_default();
            let content: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(name, schema)| {
                    let value = match schema["type"].as_str() {
                        Some("boolean") => json!(true),
                        Some("number" | "integer") => json!(1),
                        _ => json!("mesh"),
                    };
                    (name.clone(), value)
                })
                .collect();
            Some(json!({"action": "accept", "content": content}))
        }
        "sampling/createMessage" => Some(json!({
            "role": "assistant",
            "content": {"type": "text", "text": "a canned answer"},
            "model": "mesh-upstream-client",
            "stopReason": "endTurn",
        })),
        "roots/list" => Some(json!({"roots": []})),
        _ => None,
    }
}

/// The `name` of each tool a `tools/list` result lists.
fn tool_names(list: &Value) -> Vec<String> {
    let tools = list["tools"].as_array().cloned().unwrap_or_default();
    tools.iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect()
}

/// A value of the right type for each required argument of a tool's input schema.
fn arguments_for(schema: &Value) -> Value {
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    let arguments: serde_json::Map<String, Value> = required
        .iter()
        .filter_map(Value::as_str)
        .map(|name| {
            let value = match schema["properties"][name]["type"].as_str() {
                Some("boolean") => json!(true),
                Some("number" | "integer") => json!(1),
                Some("object") => json!({}),
                Some("array") => json!([]),
                Some("null") => Value::Null,
                _ => json!("mesh"),
            };
            (name.to_string(), value)
        })
        .collect();
    Value::Object(arguments)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args().next_back().context("usage: mesh-upstream-client URL")?;
    let url = url::Url::parse(&url).with_context(|| format!("not a URL: {url}"))?;
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let context: Value =
        std::env::var("MCP_CONFORMANCE_CONTEXT").ok().and_then(|c| serde_json::from_str(&c).ok()).unwrap_or_default();

    // The link the mesh would open for this upstream: probe (server/discover), then ModernLink.
    let spec = UpstreamSpec {
        name: "conformance".into(),
        transport: TransportSpec::Http { url, headers: vec![] },
        timeout: CALL_TIMEOUT,
        reach: Reach::Any,
        credential: None,
    };
    let (tx, inbound) = mpsc::unbounded_channel();
    let link = upstream::stateless_link(&spec, &UpstreamClients::default(), Arc::new(Sink(tx)), false)
        .await
        .context("the upstream does not speak MCP 2026-07-28 (server/discover probe)")??;
    let client = Arc::new(Client { link, next: AtomicU64::new(1), pending: Mutex::default() });
    let (asks_tx, mut asks) = mpsc::unbounded_channel();
    tokio::spawn(client.clone().read(inbound, asks_tx));

    // The session layer's first message; the link answers it from the discover result.
    let capabilities = json!({"roots": {}, "sampling": {}, "elicitation": {}});
    let init = client
        .call(
            "initialize",
            json!({
                "protocolVersion": "2025-11-25",
                "capabilities": capabilities,
                "clientInfo": {"name": "mesh-upstream-client", "version": env!("CARGO_PKG_VERSION")},
            }),
        )
        .await?;
    eprintln!("initialize: {init}");
    client.link.send(Message::notification("notifications/initialized", None)).await?;

    let call = |name: &str, arguments: Value| {
        let client = client.clone();
        let params = json!({"name": name, "arguments": arguments});
        async move { client.call("tools/call", params).await }
    };
    match scenario.as_str() {
        "tools_call" => {
            client.answer_all(asks);
            let tools = tool_names(&client.call("tools/list", json!({})).await?);
            if !tools.iter().any(|t| t == "add_numbers") {
                bail!("tools/list has no add_numbers: {tools:?}");
            }
            let sum = call("add_numbers", json!({"a": 5, "b": 3})).await?;
            eprintln!("add_numbers: {sum}");
        }
        "sep-2322-client-request-state" => {
            client.call("tools/list", json!({})).await?;
            // While test_mrtr_echo_state waits for its elicitation, another call goes out: it
            // must carry neither the answers nor the state of the first.
            let echo = tokio::spawn(call("test_mrtr_echo_state", json!({})));
            let ask = asks.recv().await.context("test_mrtr_echo_state asked nothing")?;
            call("test_mrtr_unrelated", json!({})).await?;
            client.answer(&ask).await?;
            client.answer_all(asks);
            eprintln!("echo_state: {}", echo.await??);
            eprintln!("no_state: {}", call("test_mrtr_no_state", json!({})).await?);
            eprintln!("no_result_type: {}", call("test_mrtr_no_result_type", json!({})).await?);
        }
        "http-standard-headers" => {
            client.answer_all(asks);
            for tool in tool_names(&client.call("tools/list", json!({})).await?) {
                call(&tool, json!({})).await?;
            }
            let resources = client.call("resources/list", json!({})).await?;
            for r in resources["resources"].as_array().cloned().unwrap_or_default() {
                client.call("resources/read", json!({"uri": r["uri"]})).await?;
            }
            let prompts = client.call("prompts/list", json!({})).await?;
            for p in prompts["prompts"].as_array().cloned().unwrap_or_default() {
                client.call("prompts/get", json!({"name": p["name"]})).await?;
            }
        }
        "http-invalid-tool-headers" => {
            // Every tool the link lists is called: the link must have dropped the invalid ones.
            client.answer_all(asks);
            let list = client.call("tools/list", json!({})).await?;
            for tool in list["tools"].as_array().cloned().unwrap_or_default() {
                call(tool["name"].as_str().unwrap_or_default(), arguments_for(&tool["inputSchema"])).await?;
            }
        }
        // request-metadata, json-schema-ref-no-deref, http-custom-headers and the rest: list the
        // tools, then make the calls the scenario's context names, if any.
        _ => {
            client.answer_all(asks);
            client.call("tools/list", json!({})).await?;
            for c in context["toolCalls"].as_array().cloned().unwrap_or_default() {
                call(c["name"].as_str().unwrap_or_default(), c["arguments"].clone()).await?;
            }
        }
    }
    client.link.close().await;
    Ok(())
}
