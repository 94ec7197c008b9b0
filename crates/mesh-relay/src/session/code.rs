//! The `code` strategy of a virtual MCP (#23): the client lists one tool, `run_code`, whose
//! description is the catalogue as a typed API (`mesh_core::search::code`); the model sends a
//! script, which runs in the sandbox (`mesh_sandbox`: QuickJS, no I/O, limits) on a blocking
//! thread.
//!
//! Every tool call the script makes is a request of this session (`Session::request`), as if the
//! client had sent it: routing, policy (a hidden tool is unknown), key narrowing, rate limits,
//! the audit row naming the real tool, spans and metrics are a direct call's. The script sees
//! only the tools of the session's merged list, which policy has already filtered.

use super::gateway::{params_of, Gateway, ListKind};
use super::routing::Routing;
use super::Session;
use crate::RelayError;
use mesh_core::gateway::Strategy;
use mesh_core::search::code::{run_code_tool, RUN_CODE};
use mesh_protocol::{Kind, Message};
use mesh_sandbox::Host;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Scripts running at once in this process; more wait (each holds a blocking thread and up to
/// its memory limit).
const CONCURRENT_SCRIPTS: usize = 16;

/// Ids of the requests scripts make: unique in the process, and a string no client's integer
/// ids can equal.
static NEXT: AtomicU64 = AtomicU64::new(1);

fn slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(CONCURRENT_SCRIPTS))
}

impl Gateway {
    /// The code strategy's answer to `tools/list` and to a call of `run_code`; `None` for
    /// everything else (routed as for any virtual MCP, so a client may still call a tool by name).
    pub(super) fn code_route(&self, me: &Arc<Session>, msg: &Message) -> Option<Routing> {
        if self.strategy != Strategy::Code {
            return None;
        }
        let method = msg.method()?;
        if method == ListKind::Tools.method() {
            let me = me.clone();
            return Some(Routing::Local(Box::pin(async move {
                let gw = me.gateway.as_ref().ok_or_else(|| RelayError::Internal("not a gateway".into()))?;
                let merged = gw.merged(&me, ListKind::Tools).await?;
                Ok(json!({ "tools": [run_code_tool(&merged.items)] }))
            })));
        }
        if method != "tools/call" {
            return None;
        }
        let params = params_of(msg);
        if params.get("name").and_then(Value::as_str) != Some(RUN_CODE) {
            return None;
        }
        let code = params.get("arguments").and_then(|a| a.get("code")).and_then(Value::as_str).map(str::to_string);
        let me = me.clone();
        let limits = self.code_limits;
        Some(Routing::Local(Box::pin(async move {
            let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
                return Ok(tool_error(format!("{RUN_CODE} needs arguments.code: the JavaScript to run")));
            };
            let gw = me.gateway.as_ref().ok_or_else(|| RelayError::Internal("not a gateway".into()))?;
            let merged = gw.merged(&me, ListKind::Tools).await?;
            let names: Vec<String> =
                merged.items.iter().filter_map(|t| t.get("name").and_then(Value::as_str)).map(str::to_string).collect();
            let _slot = slots().acquire().await.map_err(|_| RelayError::Internal("scripts are shut down".into()))?;
            let host = Inner { session: me.clone(), handle: tokio::runtime::Handle::current() };
            let run = tokio::task::spawn_blocking(move || mesh_sandbox::run(&code, &names, limits, Box::new(host)));
            let out = run.await.map_err(|e| RelayError::Internal(format!("the script's thread failed: {e}")))?;
            tracing::debug!(session = %me.id, calls = out.calls, ok = out.result.is_ok(), "script ran");
            Ok(answer(out))
        })))
    }
}

/// The script's way out: a tool call made as a request of the session.
struct Inner {
    session: Arc<Session>,
    handle: tokio::runtime::Handle,
}

impl Host for Inner {
    fn call(&mut self, name: &str, arguments: Value, deadline: Instant) -> Result<Value, String> {
        if name == RUN_CODE {
            // A script in a script would hold a second slot while the first waits on it: with
            // every slot so held, none would ever be freed.
            return Err(format!("{RUN_CODE} cannot be called from a script"));
        }
        let id = format!("\"mesh-code-{}\"", NEXT.fetch_add(1, Ordering::Relaxed));
        let msg = Message::request(&id, "tools/call", Some(&json!({"name": name, "arguments": arguments})));
        let session = self.session.clone();
        let asked = async move {
            let (_, mut rx) = session.request(&msg).await.map_err(|e| format!("{name}: {e}"))?;
            loop {
                match rx.recv().await {
                    Some(ev) if ev.last => break Message::parse(ev.data).map_err(|e| format!("{name}: {e}")),
                    Some(_) => continue, // progress and log lines of the call
                    None => break Err(format!("{name}: the call ended without an answer")),
                }
            }
        };
        let reply = self
            .handle
            .block_on(async { tokio::time::timeout_at(deadline.into(), asked).await })
            .map_err(|_| format!("{name}: no answer before the script's time limit"))??;
        value_of(name, &reply)
    }
}

/// What a script gets from a tool's reply: its structured content, else its text, else its
/// content; a protocol error or a tool error is thrown with its text.
fn value_of(name: &str, reply: &Message) -> Result<Value, String> {
    if reply.kind() == Kind::Error {
        let e = reply.error_object();
        return Err(e.map_or_else(|| format!("{name}: failed"), |e| e.message));
    }
    let result: Value = reply.result().unwrap_or(Value::Null);
    let content = result.get("content").and_then(Value::as_array).cloned().unwrap_or_default();
    let texts: Vec<&str> = content.iter().filter_map(|c| c.get("text").and_then(Value::as_str)).collect();
    if result.get("isError") == Some(&Value::Bool(true)) {
        let text = texts.join("\n");
        return Err(if text.is_empty() { format!("{name} failed") } else { text });
    }
    if let Some(structured) = result.get("structuredContent").filter(|v| !v.is_null()) {
        return Ok(structured.clone());
    }
    if !content.is_empty() && texts.len() == content.len() {
        return Ok(Value::String(texts.join("\n")));
    }
    Ok(Value::Array(content))
}

/// `run_code`'s result: what the script returned (as JSON text, and structured), and its log.
fn answer(out: mesh_sandbox::Outcome) -> Value {
    let log = out.logs.join("\n");
    match out.result {
        Ok(value) => {
            let mut content = vec![json!({"type": "text", "text": value.to_string()})];
            if !log.is_empty() {
                content.push(json!({"type": "text", "text": format!("log:\n{log}")}));
            }
            json!({"content": content, "structuredContent": {"result": value, "logs": out.logs, "toolCalls": out.calls}, "isError": false})
        }
        Err(why) => {
            let text = if log.is_empty() { why } else { format!("{why}\nlog:\n{log}") };
            tool_error(text)
        }
    }
}

fn tool_error(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(raw: &str) -> Message {
        Message::parse(bytes::Bytes::from(raw.to_string())).unwrap()
    }

    #[test]
    fn a_tools_answer_becomes_a_value_or_an_error() {
        let text = reply(
            r#"{"jsonrpc":"2.0","id":"x","result":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}"#,
        );
        assert_eq!(value_of("t", &text), Ok(json!("a\nb")));
        let structured = reply(r#"{"jsonrpc":"2.0","id":"x","result":{"content":[],"structuredContent":{"n":1}}}"#);
        assert_eq!(value_of("t", &structured), Ok(json!({"n": 1})));
        let image = reply(
            r#"{"jsonrpc":"2.0","id":"x","result":{"content":[{"type":"image","data":"AA==","mimeType":"image/png"}]}}"#,
        );
        assert_eq!(value_of("t", &image).unwrap()[0]["type"], "image");
        let failed = reply(
            r#"{"jsonrpc":"2.0","id":"x","result":{"content":[{"type":"text","text":"bad city"}],"isError":true}}"#,
        );
        assert_eq!(value_of("t", &failed), Err("bad city".into()));
        let unknown = reply(r#"{"jsonrpc":"2.0","id":"x","error":{"code":-32602,"message":"Unknown tool: t"}}"#);
        assert_eq!(value_of("t", &unknown), Err("Unknown tool: t".into()));
    }
}
