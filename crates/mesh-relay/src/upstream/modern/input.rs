//! Input-required results (MRTR) of a stateless upstream, bridged to a session-based client: each
//! input request becomes a server request on the client's session, its answer the retry's
//! `inputResponses`, the upstream's `requestState` kept here and sent back with them.

use super::{took_param_headers, Inbound, ModernLink, Wire, INPUT_KEY};
use futures_util::stream::{FuturesUnordered, StreamExt};
use mesh_protocol::{codes, Kind, Message};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Questions one input-required result of an upstream may carry.
const MAX_QUESTIONS: usize = 16;
/// Input-required rounds one request may take before the mesh gives up (as the SDKs do).
const MAX_ROUNDS: usize = 10;
/// The longest the link waits for the client to answer one input request.
const ASK_FOR: Duration = Duration::from_secs(600);
/// The largest `requestState`, and the largest `inputRequests` (as JSON), an upstream may hand
/// the link to keep for a round: each is kept, copied into the retry, for as long as the client
/// takes to answer (the SDKs' states are a few kilobytes).
const MAX_STATE: usize = 1 << 20;

impl ModernLink {
    /// Runs one request to its final reply, across input-required rounds.
    async fn exchange(self: Arc<Self>, msg: Message) {
        let id = msg.id().unwrap_or("null").to_string();
        let method = msg.method().unwrap_or_default().to_string();
        let mut params = self.enveloped(&msg);
        // The client's own `Mcp-Param-*` values are never sent on: the ingress could check them
        // only against annotations it has seen listed. The headers are made from the body, which
        // policy and audit read, by what the upstream's tools/list asks for; a client that sent
        // some for a tool this link has not seen listed has the list asked for first.
        let sent = took_param_headers(&mut params);
        let custom = match method == "tools/call" {
            true => {
                if sent {
                    self.learn_tools(&params).await;
                }
                self.mirror(&params)
            }
            false => reqwest::header::HeaderMap::new(),
        };
        let mut answers: Option<(Value, Option<String>)> = None;
        for round in 0..=MAX_ROUNDS {
            let mut p = params.clone();
            if let Some((responses, state)) = &answers {
                p["inputResponses"] = responses.clone();
                if let Some(s) = state {
                    p["requestState"] = s.clone().into();
                }
            }
            // A retry is a new request: a new id (the session's id stays the client-facing one).
            let wire_id = if round == 0 { id.clone() } else { format!("\"{}-{round}\"", id.trim_matches('"')) };
            let reply = match self.post(&wire_id, &method, &p, Some(&id), &custom).await {
                Ok(r) => r,
                Err(error) => {
                    self.sink.deliver(Inbound::Refused { request: id.as_str().into(), error, again: Some(msg) });
                    return;
                }
            };
            let result: Option<Value> = (reply.kind() == Kind::Response).then(|| reply.result()).flatten();
            let needs_input =
                result.as_ref().is_some_and(|r| r.get("resultType").and_then(Value::as_str) == Some("input_required"));
            if !needs_input {
                let http = matches!(self.wire, Wire::Http { .. });
                if let (true, true, Some(mut r)) = (http, method == "tools/list", result) {
                    // A tool whose header annotations are invalid cannot be called correctly:
                    // it is left out (2026-07-28 streamable-http, "Custom Headers").
                    if self.learn_mirrored(&mut r) {
                        self.deliver(Message::response(&id, &r), None);
                        return;
                    }
                }
                self.deliver(reply_to(reply, &id), None);
                return;
            }
            if round == MAX_ROUNDS {
                // Answers asked for now could never be sent: the client is not asked again.
                break;
            }
            let r = result.unwrap_or_default();
            let state = r.get("requestState").and_then(Value::as_str).map(str::to_string);
            let requests = r.get("inputRequests").and_then(Value::as_object).cloned().unwrap_or_default();
            if requests.len() > MAX_QUESTIONS {
                let why = format!("the upstream asked {} questions at once (at most {MAX_QUESTIONS})", requests.len());
                self.deliver(Message::error(Some(&id), codes::UPSTREAM_PROTOCOL, &why, None), None);
                return;
            }
            let asked_bytes = r.get("inputRequests").map_or(0, |q| q.to_string().len());
            if state.as_ref().map_or(0, String::len) > MAX_STATE || asked_bytes > MAX_STATE {
                let why = format!("the upstream's input request or its requestState exceeds {MAX_STATE} bytes");
                self.deliver(Message::error(Some(&id), codes::UPSTREAM_PROTOCOL, &why, None), None);
                return;
            }
            // Asked together, as the upstream asked them; answered in any order.
            let (me, related) = (&self, id.as_str());
            let mut asked: FuturesUnordered<_> = requests
                .iter()
                .map(|(key, request)| async move { (key.clone(), me.ask(related, key, request).await) })
                .collect();
            let mut responses = serde_json::Map::new();
            let mut refused = None;
            while let Some((key, answer)) = asked.next().await {
                match answer {
                    Asked::Answered(a) => {
                        responses.insert(key, a);
                    }
                    // One refusal ends the call: the round's other questions are not waited for
                    // but withdrawn from the client (each as its ask is dropped).
                    Asked::Refused(e) => {
                        refused = Some(e);
                        break;
                    }
                    Asked::Unanswered => {}
                }
            }
            drop(asked);
            // The revision has no way to tell the upstream of a refusal (answers are results):
            // the call fails, as a client of the stateless revision fails it, rather than being
            // asked the same again.
            if let Some((method, e)) = refused {
                let why = format!("the client refused the upstream's {method}: {}", e.message);
                self.deliver(Message::error(Some(&id), e.code, &why, e.data), None);
                return;
            }
            if responses.is_empty() {
                // Nothing asked (or nothing answered): the upstream is waiting on something of
                // its own. Back off as the SDKs do rather than spend the rounds at once.
                tokio::time::sleep(Duration::from_millis(50 << round.min(2))).await;
            }
            answers = Some((Value::Object(responses), state));
        }
        let e = Message::error(
            Some(&id),
            codes::UPSTREAM_PROTOCOL,
            "the upstream asked for input more than 10 times",
            None,
        );
        self.deliver(e, None);
    }

    /// Asks the client one input request as a server request: its result, its refusal, or
    /// nothing (the link closed, or no answer in time: the upstream then asks again or gives up).
    async fn ask(&self, related: &str, key: &str, request: &Value) -> Asked {
        let Some(method) = request.get("method").and_then(Value::as_str) else { return Asked::Unanswered };
        let mut params = request.get("params").cloned().unwrap_or_else(|| json!({}));
        if let Some(p) = params.as_object_mut() {
            let meta = p.entry("_meta").or_insert_with(|| json!({}));
            if let Some(m) = meta.as_object_mut() {
                m.insert(INPUT_KEY.into(), key.into());
            }
            if method == "elicitation/create" && p.get("mode").and_then(Value::as_str) == Some("url") {
                // The session-based revision requires an id for URL elicitations.
                p.insert("elicitationId".into(), mesh_core::id::random_base62(16).into());
            }
        }
        let (tx, rx) = oneshot::channel();
        let sid = {
            let mut st = self.lock();
            st.next += 1;
            let sid = format!("\"mrtr-{}\"", st.next);
            st.waiting.insert(sid.clone(), tx);
            sid
        };
        // However this ends (answered, link closed, request cancelled, given up), the entry goes;
        // a question left unanswered is withdrawn from the client, whose dialog would stay open.
        struct Forget<'a>(&'a ModernLink, &'a str, &'a str);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                let unanswered = self.0.lock().waiting.remove(self.1).is_some();
                if unanswered && !self.0.closed.is_cancelled() {
                    let id = serde_json::from_str::<Value>(self.1).unwrap_or(Value::Null);
                    let note = json!({"requestId": id, "reason": "the request it was asked for has ended"});
                    self.0.deliver(Message::notification("notifications/cancelled", Some(&note)), Some(self.2));
                }
            }
        }
        let _forget = Forget(self, &sid, related);
        self.deliver(Message::request(&sid, method, Some(&params)), Some(related));
        let reply = tokio::select! {
            r = rx => r,
            () = self.closed.cancelled() => return Asked::Unanswered,
            // Bounded even when nothing else ends the wait (the session lost the call when its
            // child went down): a user gets as long as an in-band authorization.
            () = tokio::time::sleep(ASK_FOR) => return Asked::Unanswered,
        };
        let Ok(reply) = reply else { return Asked::Unanswered };
        match (reply.result(), reply.error_object()) {
            (Some(result), _) => Asked::Answered(result),
            (None, Some(e)) => Asked::Refused((method.to_string(), e)),
            (None, None) => Asked::Unanswered,
        }
    }

    pub(super) async fn exchange_then_forget(self: Arc<Self>, msg: Message) {
        let id = msg.id().unwrap_or("null").to_string();
        self.clone().exchange(msg).await;
        self.lock().inflight.remove(&id);
    }
}

/// What became of one input request put to the client ([`ModernLink::ask`]).
enum Asked {
    /// Its result, for `inputResponses`.
    Answered(Value),
    /// The client answered the request (its method) with an error.
    Refused((String, mesh_protocol::ErrorObject)),
    /// No answer.
    Unanswered,
}

/// `reply` to the request the link sent as `id`: over either wire the link knows which request a
/// reply answers (one POST each, or the child's reply found by its id), so an upstream error
/// without an id of its own (`"id": null`, its usual shape for a request it could not read)
/// still reaches the call instead of being dropped as nobody's.
pub(super) fn reply_to(reply: Message, id: &str) -> Message {
    // Read only when it has no id: an error object is parsed out of the whole message.
    match reply.id().is_none().then(|| reply.error_object()).flatten() {
        Some(e) => Message::error(Some(id), e.code, &e.message, e.data),
        None => reply.with_id(id),
    }
}

#[cfg(test)]
mod tests {
    use crate::upstream::{Inbound, InboundSink, Transport, UpstreamClients};
    use crate::{Reach, TransportSpec, UpstreamSpec};
    use mesh_protocol::{Kind, Message};
    use serde_json::{json, Value};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::mpsc;

    /// A child of the stateless revision whose `ask` tool asks the client one question, naming
    /// its pid, and answers a retry with the `requestState` it was given.
    const CHILD: &str = r#"
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("id") is None:
        continue
    method, p = m.get("method"), m.get("params") or {}
    if method == "server/discover":
        r = {"resultType": "complete", "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}}
    elif method == "tools/call" and "requestState" in p:
        r = {"resultType": "complete", "content": [{"type": "text", "text": "retried " + p["requestState"]}]}
    elif method == "tools/call":
        ask = {"method": "elicitation/create", "params": {"mode": "form", "message": str(os.getpid()),
               "requestedSchema": {"type": "object", "properties": {}}}}
        r = {"resultType": "input_required", "requestState": str(os.getpid()), "inputRequests": {"who": ask}}
    else:
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": r}), flush=True)
"#;

    struct Sink(mpsc::UnboundedSender<Inbound>);

    impl InboundSink for Sink {
        fn deliver(&self, inbound: Inbound) {
            let _ = self.0.send(inbound);
        }
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Inbound>, what: &str) -> Inbound {
        tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect(what).expect(what)
    }

    /// The child dies while a call waits on the client's answer: the session fails the call, and
    /// the link's exchange for it ends with it. Before, it waited out its ten minutes for an
    /// answer and then posted the retry, with the dead child's `requestState`, to its successor.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_child_that_dies_while_its_call_waits_on_the_client_ends_the_calls_exchange() {
        let spec = UpstreamSpec {
            name: "asker".into(),
            transport: TransportSpec::Stdio {
                command: "python3".into(),
                args: vec!["-c".into(), CHILD.into()],
                env: vec![],
                cwd: None,
            },
            timeout: Duration::from_secs(20),
            reach: Reach::Any,
            credential: None,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let clients = UpstreamClients::default();
        let link = crate::upstream::modern_stdio::modern_link(&spec, &clients, Arc::new(Sink(tx)), false)
            .await
            .expect("the child speaks the stateless revision")
            .expect("started");
        let init = json!({"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
                          "clientInfo": {"name": "t", "version": "1"}});
        link.send(Message::request("1", "initialize", Some(&init))).await.expect("initialize");
        assert!(matches!(next(&mut rx, "initialized").await, Inbound::Message { msg, .. } if msg.id() == Some("1")));
        let call = json!({"name": "ask", "arguments": {}});
        link.send(Message::request("2", "tools/call", Some(&call))).await.expect("call");
        let (question, pid) = loop {
            if let Inbound::Message { msg, .. } = next(&mut rx, "the question").await {
                if msg.kind() == Kind::Request {
                    let params: Value = msg.params().expect("params");
                    let pid: i32 = params["message"].as_str().and_then(|p| p.parse().ok()).expect("the child's pid");
                    break (msg.id().expect("id").to_string(), pid);
                }
            }
        };
        assert_eq!(link.lock().inflight.len(), 1, "the call's exchange waits on the client");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("kill");
        while !matches!(next(&mut rx, "the child's end").await, Inbound::Down { .. }) {}
        {
            let st = link.lock();
            assert!(st.inflight.is_empty(), "the exchange ended with the child");
            assert!(!st.waiting.contains_key(&question), "its question is forgotten");
        }
        // The client's late answer reaches nothing: no retry goes to the restarted child.
        let late = Message::response(&question, &json!({"action": "accept", "content": {}}));
        link.send(late).await.expect("the answer is taken");
        assert!(link.lock().inflight.is_empty());
        link.close().await;
    }
}
