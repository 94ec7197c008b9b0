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
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Scripts running at once in this process (each holds a thread and up to its memory limit)…
const CONCURRENT_SCRIPTS: usize = 16;
/// …and per organisation, so that one cannot take them all.
const PER_ORG: usize = 4;
/// How long a script waits for a free place before it is refused.
const WAIT_FOR_SLOT: Duration = Duration::from_secs(10);
/// How long past its wall limit a script's thread may take to come back. The sandbox stops
/// itself; a thread that still does not return is abandoned (it keeps its memory).
const GRACE: Duration = Duration::from_secs(5);
/// Abandoned script threads after which the code strategy refuses scripts until a restart.
const MAX_ABANDONED: usize = 4;
/// Stack of a script's thread beyond the script's own stack limit (the engine and Rust frames).
const THREAD_STACK_EXTRA: usize = 2 << 20;

/// Threads whose scripts never came back.
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

fn slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(CONCURRENT_SCRIPTS))
}

/// Each organisation's places, while any is taken or awaited (a FIFO semaphore each, so the
/// oldest waiter is served first and one organisation's queue never holds another's).
fn places() -> &'static Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>> {
    static PLACES: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>> = OnceLock::new();
    PLACES.get_or_init(Mutex::default)
}

/// One organisation's place among the running scripts, given back when dropped.
struct OrgSlot {
    org: String,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl OrgSlot {
    /// The organisation's semaphore, made on first use.
    fn semaphore(org: &str) -> Arc<tokio::sync::Semaphore> {
        let mut all = places().lock().unwrap_or_else(|p| p.into_inner());
        all.entry(org.to_string()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(PER_ORG))).clone()
    }

    /// A place for `org`, waiting in turn for one to be given back until `deadline`: a burst of
    /// scripts queues briefly rather than failing.
    async fn wait(org: &str, deadline: tokio::time::Instant) -> Option<OrgSlot> {
        let semaphore = OrgSlot::semaphore(org);
        let permit = tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await.ok()?.ok()?;
        Some(OrgSlot { org: org.to_string(), permit: Some(permit) })
    }

    /// A place for `org` if one is free now.
    #[cfg(test)]
    fn take(org: &str) -> Option<OrgSlot> {
        let permit = OrgSlot::semaphore(org).try_acquire_owned().ok()?;
        Some(OrgSlot { org: org.to_string(), permit: Some(permit) })
    }
}

impl Drop for OrgSlot {
    fn drop(&mut self) {
        drop(self.permit.take());
        // Forget an organisation nobody runs or awaits a script of (a waiter holds the semaphore
        // too), so that the map holds only organisations busy now.
        let mut all = places().lock().unwrap_or_else(|p| p.into_inner());
        if all.get(&self.org).is_some_and(|s| Arc::strong_count(s) == 1 && s.available_permits() == PER_ORG) {
            all.remove(&self.org);
        }
    }
}

impl Gateway {
    /// The code strategy's answer to `tools/list` and to a call of `run_code`; `None` for
    /// everything else (routed as for any virtual MCP, so a client may still call a tool by name).
    /// A script is a call: it is refused here, before it runs, when the caller's rate limits are
    /// spent (and each tool call it makes is counted again, as its own call).
    pub(super) fn code_route(&self, me: &Arc<Session>, msg: &Message) -> Option<Result<Routing, RelayError>> {
        if self.strategy != Strategy::Code {
            return None;
        }
        let method = msg.method()?;
        if method == ListKind::Tools.method() {
            return Some(Ok(super::gateway::tools_listed_as(me, |merged| vec![run_code_tool(&merged.items)])));
        }
        if method != "tools/call" {
            return None;
        }
        let params = params_of(msg);
        if params.get("name").and_then(Value::as_str) != Some(RUN_CODE) {
            return None;
        }
        let code = params.get("arguments").and_then(|a| a.get("code")).and_then(Value::as_str).map(str::to_string);
        // Refused before it is counted: a denied call spends no quota.
        if !me.access().call_tools {
            let refused = tool_error("this key may not call tools, so it may not run scripts that do".into());
            return Some(Ok(Routing::Local(Box::pin(async move { Ok(refused) }))));
        }
        if let Err(e) = me.admit_local_tool(RUN_CODE) {
            return Some(Err(e));
        }
        let me = me.clone();
        let limits = self.code_limits;
        Some(Ok(Routing::Local(Box::pin(async move {
            let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
                return Ok(tool_error(format!("{RUN_CODE} needs arguments.code: the JavaScript to run")));
            };
            let abandoned = ABANDONED.load(Ordering::Relaxed);
            if abandoned >= MAX_ABANDONED {
                return Ok(tool_error(format!(
                    "scripts are switched off on this mesh until it restarts: {abandoned} did not stop at their limit"
                )));
            }
            let gw = me.gateway.as_ref().ok_or_else(|| RelayError::Internal("not a gateway".into()))?;
            let merged = gw.merged(&me, ListKind::Tools).await?;
            let names: Vec<String> =
                merged.items.iter().filter_map(|t| t.get("name").and_then(Value::as_str)).map(str::to_string).collect();
            let deadline = tokio::time::Instant::now() + WAIT_FOR_SLOT;
            let Some(org) = OrgSlot::wait(&me.principal.org_id, deadline).await else {
                return Ok(tool_error(format!(
                    "this organisation has run {PER_ORG} scripts at once for {} s; try again when one has finished",
                    WAIT_FOR_SLOT.as_secs()
                )));
            };
            let Ok(Ok(slot)) = tokio::time::timeout_at(deadline, slots().acquire()).await else {
                return Ok(tool_error("the mesh is running as many scripts as it may; try again shortly".into()));
            };
            let run_id = format!("{:016x}", rand::random::<u64>());
            // Dropping this future (the client cancelled the call, or left) tells the script to
            // stop; the places go back when its thread ends, not before.
            let stop = CancellationToken::new();
            let _stop_when_dropped = stop.clone().drop_guard();
            let outer = super::call::LOCAL_STREAM.try_with(|s| *s).ok();
            let host =
                Inner { session: me.clone(), handle: tokio::runtime::Handle::current(), run_id, next: 0, stop, outer };
            let (tx, rx) = tokio::sync::oneshot::channel();
            // A thread of its own, not the runtime's blocking pool: its stack fits the script's
            // stack limit, and a script that never returns neither holds a pool thread nor keeps
            // the runtime from shutting down.
            let spawned = std::thread::Builder::new()
                .name("mesh-script".into())
                .stack_size(limits.stack.min(mesh_sandbox::CEILING.stack) + THREAD_STACK_EXTRA)
                .spawn(move || {
                    let _places = (org, slot);
                    let _ = tx.send(mesh_sandbox::run(&code, &names, limits, Box::new(host)));
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a script's thread");
                return Ok(tool_error("the mesh could not start the script; try again".into()));
            }
            let out = match tokio::time::timeout(limits.wall + GRACE, rx).await {
                Ok(Ok(out)) => out,
                Ok(Err(_)) => return Ok(tool_error("the script failed inside the sandbox".into())),
                Err(_) => {
                    let n = ABANDONED.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::error!(session = %me.id, abandoned = n, "a script did not stop at its limit; its thread is abandoned");
                    return Ok(tool_error(format!(
                        "the script did not stop at its time limit of {} s",
                        limits.wall.as_secs()
                    )));
                }
            };
            tracing::debug!(session = %me.id, calls = out.calls, ok = out.result.is_ok(), "script ran");
            Ok(answer(out))
        }))))
    }
}

/// The script's way out: a tool call made as a request of the session.
struct Inner {
    session: Arc<Session>,
    handle: tokio::runtime::Handle,
    /// Random per run: the ids of a script's requests cannot be guessed or told apart across
    /// organisations.
    run_id: String,
    next: u64,
    /// Cancelled when the call of `run_code` is (or its answer is no longer awaited).
    stop: CancellationToken,
    /// The stream of the call of `run_code`: what a tool call of the script sends the client
    /// before its reply (a question to answer, a log line) goes there, so the client answers it
    /// as it would on a direct call.
    outer: Option<u64>,
}

impl Host for Inner {
    fn call(&mut self, name: &str, arguments: Value, deadline: Instant) -> Result<Value, String> {
        if name == RUN_CODE {
            // A script in a script would hold a second slot while the first waits on it: with
            // every slot so held, none would ever be freed.
            return Err(format!("{RUN_CODE} cannot be called from a script"));
        }
        // Stopped (the call of `run_code` was cancelled): no new call leaves, whatever the
        // script does with the error.
        if self.stop.is_cancelled() {
            return Err(format!("{name}: the script's call was cancelled"));
        }
        self.next += 1;
        let id = format!("\"mesh-code-{}-{}\"", self.run_id, self.next);
        let msg = Message::request(&id, "tools/call", Some(&json!({"name": name, "arguments": arguments})));
        let (session, stop, outer) = (self.session.clone(), self.stop.clone(), self.outer);
        let reply = self.handle.block_on(async move {
            let (stream, mut rx) = session.request(&msg).await.map_err(|e| format!("{name}: {e}"))?;
            let answered = async {
                loop {
                    match rx.recv().await {
                        Some(ev) if ev.last => break Message::parse(ev.data).map_err(|e| format!("{name}: {e}")),
                        Some(ev) => {
                            // Sampling, elicitation and roots requests (the client's answer
                            // comes back through the session's server-request ids), progress
                            // and log lines of the call.
                            if let Some(o) = outer {
                                session.lock().streams.push(o, ev.data);
                            }
                        }
                        None => break Err(format!("{name}: the call ended without an answer")),
                    }
                }
            };
            let why = tokio::select! {
                biased;
                () = stop.cancelled() => format!("{name}: the script's call was cancelled"),
                r = tokio::time::timeout_at(deadline.into(), answered) => match r {
                    Ok(reply) => return reply,
                    Err(_) => format!("{name}: no answer before the script's time limit"),
                },
            };
            // The call is given up: the upstream is told, and the audit row says cancelled.
            session.cancel_stream(stream).await;
            Err(why)
        })?;
        value_of(name, &reply)
    }

    fn stopped(&self) -> bool {
        self.stop.is_cancelled() || self.session.has_ended()
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
    fn an_organisation_runs_at_most_its_share_of_scripts() {
        let held: Vec<OrgSlot> = (0..PER_ORG).map(|_| OrgSlot::take("org-a").expect("a place")).collect();
        assert!(OrgSlot::take("org-a").is_none(), "the organisation's share is taken");
        let other = OrgSlot::take("org-b");
        assert!(other.is_some(), "another organisation is not affected");
        drop(held);
        assert!(OrgSlot::take("org-a").is_some(), "given back when the scripts end");
    }

    #[tokio::test(start_paused = true)]
    async fn a_script_waits_for_its_organisations_place() {
        let held: Vec<OrgSlot> = (0..PER_ORG).map(|_| OrgSlot::take("org-w").expect("a place")).collect();
        let start = tokio::time::Instant::now();
        // Nothing is given back: refused at the deadline, not before.
        assert!(OrgSlot::wait("org-w", start + Duration::from_secs(3)).await.is_none());
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        // A place given back while waiting goes to the waiter.
        let waiter =
            tokio::spawn(async move { OrgSlot::wait("org-w", start + Duration::from_secs(60)).await.is_some() });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(held);
        assert!(waiter.await.expect("joined"), "the place given back is taken");
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
