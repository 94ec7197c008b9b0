//! A client request's way through its session: the one driver both revisions' requests run
//! through (a stateless request reaches it through its pooled session), and how each request
//! ends — with its reply, a refusal, a timeout or a cancellation — and is audited.
//!
//! Authentication and the endpoint's route are settled before a request reaches a session (the
//! ingress admits the principal and opens or finds the session bound to it and to the route).
//! From there the order is [`Session::request`]'s, and it is part of the security model:
//! 1. route: a virtual MCP decides the member and the name the request has there (a tool the
//!    caller may not see is absent from its index, so it is unknown, not forbidden); a
//!    connection's session has one member;
//! 2. authorize, then rate-limit (`admit_call`, `governance.rs`), under the member's own name,
//!    because policy names the member's items; a denied call spends no quota;
//! 3. forward with an upstream id of the session's own, or answer in the mesh (merged lists,
//!    ping); lists are filtered on their way back (`finish`);
//! 4. audit on every exit — a refusal here, a failed send in `forward`, a reply, timeout or
//!    cancellation when the request ends — through the `AuditSink`, which queues and returns.

use super::record::{outcome_of, Call, Ending};
use super::routing::Routing;
use super::streams::{self, Event};
use super::{inflight, Pending, Session, Target};
use crate::RelayError;
use mesh_core::audit::{CallRecord, Origin, Outcome};
use mesh_protocol::{Kind, Message};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

tokio::task_local! {
    /// In the task answering a request the mesh answers itself: that request's stream, for
    /// what the work relays to the client meanwhile (a script's tool asking the client).
    pub(super) static LOCAL_STREAM: u64;
}

impl Session {
    /// The driver of a client request, in the order the module's docs give (route, authorize and
    /// rate-limit, forward or answer, audit on every exit). Returns its stream: events end with
    /// the reply.
    pub async fn request(&self, msg: &Message) -> Result<(u64, mpsc::Receiver<Event>), RelayError> {
        self.request_traced(msg, (None, None), None).await
    }

    /// [`Session::request`] for a request about an item it does not name itself (a task's
    /// requests carry only its id): the audit row names `item`, the tool the task belongs to;
    /// with what the ingress already read of its `params` for the audit row (`audited`); and
    /// with the trace context of its HTTP headers (`params._meta` wins over them).
    pub async fn request_traced(
        &self,
        msg: &Message,
        (item, audited): (Option<&str>, Option<super::Audited>),
        headers: Option<mesh_core::trace::Parent<'_>>,
    ) -> Result<(u64, mpsc::Receiver<Event>), RelayError> {
        self.touch();
        // A smart virtual MCP's `call_tool` is, from here on, the call of the tool it names.
        let unwrapped = self.gateway.as_ref().and_then(|gw| gw.unwrap_call(msg));
        let msg = unwrapped.as_ref().unwrap_or(msg);
        if msg.method() == Some("initialize") {
            self.note_client(msg);
        }
        let (stream, rx) = self.lock().streams.open();
        // What the ingress read describes the request it sent, not the call a smart virtual MCP
        // unwrapped from it.
        let audited = audited.filter(|_| unwrapped.is_none());
        let mut call = Call::of(msg, audited);
        // A task's request names its task's tool, whatever name its params may carry besides.
        if let Some(item) = item {
            call.name = Some(item.to_string());
        }
        if let Some(tracer) = self.audit.tracer() {
            call.span = self.server_span(tracer, msg, &call, headers);
        }
        // 1. Route (traced: what a virtual MCP fetches from its members meanwhile is the
        // request's child).
        let parent = call.span.as_ref().map(|s| s.traceparent());
        let routing = match &self.gateway {
            // Boxed: a virtual MCP's routing future is large, and a direct session's request
            // would carry it (and copy it) for nothing.
            Some(gw) => Box::pin(super::trace::under(parent.clone(), gw.route(self, msg))).await,
            None => Ok(Routing::direct(msg)),
        };
        // 2. Authorize, then rate-limit: where the request goes, under the name it has there.
        let routing = routing.and_then(|r| match r {
            Routing::Forward { member, request, original } => {
                self.admit_call(member, msg, &call, original.as_deref())?;
                Ok(Routing::Forward { member, request, original })
            }
            local => Ok(local),
        });
        // 3. Forward or answer; 4. audit: here for a refusal, later for everything that went on.
        let result = match routing {
            Ok(Routing::Forward { member, request, original }) => {
                // A task's id at a virtual MCP's member and its own, for the reply
                // (`Gateway::tasks_named`).
                if call.method.starts_with("tasks/") && self.gateway.is_some() {
                    let params = super::gateway::params_of(msg);
                    let ours = params.get("taskId").and_then(serde_json::Value::as_str).map(str::to_string);
                    call.task = original.zip(ours).map(Box::new);
                }
                self.forward(member, &request, msg.id().unwrap_or("null"), Target::Stream(stream), Some(call)).await
            }
            Ok(Routing::Local(task)) => {
                // Answered by the mesh (merged lists, ping, search, scripts): computed off this
                // task so the caller's stream sees it like any upstream reply, and stopped (the
                // task dropped) if the client cancels it or leaves.
                let me = self.me.clone();
                let id = msg.id().unwrap_or("null").to_string();
                let cancel = tokio_util::sync::CancellationToken::new();
                self.lock().local.insert(stream, super::Local { down_id: id.as_str().into(), cancel: cancel.clone() });
                tokio::spawn(async move {
                    let answered = tokio::select! {
                        // A cancellation that raced the answer wins: its stream has ended.
                        biased;
                        () = cancel.cancelled() => None,
                        r = super::trace::under(parent, LOCAL_STREAM.scope(stream, task)) => Some(r),
                    };
                    let Some(s) = me.upgrade() else { return };
                    s.lock().local.remove(&stream);
                    match answered.filter(|_| !cancel.is_cancelled()) {
                        Some(Ok(result)) => s.answer(stream, Message::response(&id, &result), call),
                        Some(Err(e)) => s.answer(stream, e.to_message(Some(&id)), call),
                        // Its stream was ended by the cancellation (which may have come just as the
                        // answer did).
                        None => s.audit_end(call, id.into(), Outcome::Cancelled, None, 0),
                    }
                });
                Ok(())
            }
            Err(e) => {
                // Refused by the mesh itself: the audit outcome comes from the error (denied,
                // rate limited), not from the JSON-RPC code it travels as; so does the mark
                // that makes a rate-limit refusal a 429.
                let reply = e.to_message(msg.id());
                let end = Ending::of_error(&e);
                self.lock().streams.push_reply(stream, reply.bytes().clone(), end.retry_after);
                let id = reply.id().unwrap_or("null").to_string();
                call.rpc_code = end.code;
                self.audit_end(call, id.into(), end.outcome, end.error, reply.bytes().len() as u64);
                Ok(())
            }
        };
        match result {
            Ok(()) => Ok((stream, rx)),
            Err(e) => {
                self.lock().streams.end(stream);
                Err(e)
            }
        }
    }

    /// Sends `msg` to `member` with a fresh upstream id; the reply goes to `target`.
    pub(super) async fn forward(
        &self,
        member: usize,
        msg: &Message,
        down_id: &str,
        target: Target,
        call: Option<Call>,
    ) -> Result<(), RelayError> {
        self.forward_traced(member, msg, down_id, target, call, None).await
    }

    /// [`Session::forward`]; a request of the mesh's own (no `call`) that is traced already
    /// carries its context in `_meta` and gives its `traceparent` for the transport's header.
    async fn forward_traced(
        &self,
        member: usize,
        msg: &Message,
        down_id: &str,
        target: Target,
        mut call: Option<Call>,
        own_trace: Option<String>,
    ) -> Result<(), RelayError> {
        let link = match self.link(member) {
            Ok(l) => l,
            Err(e) => {
                if let Some(mut c) = call {
                    c.rpc_code = Some(e.rpc_code());
                    self.audit_end(c, down_id.into(), outcome_of(&e), Some(e.to_string()), 0);
                }
                return Err(e);
            }
        };
        let up = self.next_up.fetch_add(1, Ordering::Relaxed);
        // Traced: the upstream leg gets a span of its own, whose context the upstream receives.
        let (msg, traceparent) = match call.as_mut() {
            Some(c) if c.span.is_some() => self.client_span(c, member, &link, msg),
            _ => (std::borrow::Cow::Borrowed(msg), own_trace),
        };
        let msg = msg.as_ref();
        let handshake = msg.method() == Some("initialize");
        // A pooled session's handshake carries the stateless client's tasks extension, and its
        // calls the client's `Mcp-Param-*` headers, under keys of the mesh's own, for a link of
        // that revision; no other upstream sees them. Only the ingress puts them there, so a link
        // that reads them never gets a session-based client's calls with them: the client could
        // otherwise set the headers an intermediary routes by to other values than the arguments
        // policy read. (A handshake keeps them: a session is marked pooled only once it is open,
        // and the link reads the extensions only on a pooled session's link.)
        let strip = match link.reads_mesh_keys() {
            true => !(handshake || self.is_pooled()),
            false => handshake || self.is_pooled(),
        };
        let stripped = strip.then(|| crate::upstream::modern::without_mesh_keys(msg));
        let stripped = stripped.flatten();
        let msg = stripped.as_ref().unwrap_or(msg);
        let progress = match call.as_mut() {
            // Read with the rest of the client's params (`Call::of`, or for a stateless request
            // the mesh's own token its rewrite set); a gateway's rewrite keeps it.
            Some(c) => c.progress.take(),
            None => msg.progress_token(),
        };
        let deadline = Instant::now() + self.timeout;
        {
            let mut st = self.lock();
            if let Some(t) = &progress {
                st.progress.insert(t.clone(), up);
            }
            let cancellable = !handshake;
            let pending = Pending {
                down_id: down_id.into(),
                target,
                member,
                progress,
                deadline,
                cancellable,
                call,
                asked: false,
                timer: None,
            };
            st.pending.insert(up, pending);
        }
        // Registered before sending: a transport may deliver the reply before `send` returns.
        // The deadline covers the send too: an HTTP upstream answers a POST with its reply (or
        // the head of its stream), and one that never does must not hold the call for ever.
        // Should the client leave during the send, the guard ends the request (`inflight.rs`).
        let sending = inflight::Sending::new(self, up);
        // Written on the stack: the id is rewritten on every request.
        let outgoing = msg.with_id(itoa::Buffer::new().format(up));
        let sending_it = match &traceparent {
            Some(t) => link.send_traced(outgoing, t),
            None => link.send(outgoing),
        };
        let sent = match tokio::time::timeout_at(deadline, sending_it).await {
            Ok(sent) => sent,
            Err(_) => Err(self.send_timed_out(&link, up)),
        };
        sending.done();
        if let Err(e) = sent {
            let e = self.upstream_refused(member, e).await;
            // Not the handshake: the client cannot be asked before its session exists.
            if let (true, RelayError::AuthorizationRequired(links), Some(me)) =
                (!handshake && self.asks_by_url(&e), &e, self.me.upgrade())
            {
                // Asked in-band, and sent again once authorized: the call stays pending.
                let again = msg.with_id(itoa::Buffer::new().format(up));
                tokio::spawn(me.elicit_then_retry(up, link.clone(), again, links[0].clone()));
                let mut st = self.lock();
                if let Some(p) = st.pending.get_mut(&up) {
                    p.timer = Some(self.watch_deadline(up, p.deadline));
                }
                return Ok(());
            }
            if let Some(p) = self.take_pending(up) {
                if let Some(mut c) = p.call {
                    c.rpc_code = Some(e.rpc_code());
                    self.audit_end(c, p.down_id, outcome_of(&e), Some(e.to_string()), 0);
                }
            }
            return Err(e);
        }
        // Only a request still waiting needs a timer (a fast reply may already have arrived).
        let mut st = self.lock();
        if let Some(p) = st.pending.get_mut(&up) {
            p.timer = Some(self.watch_deadline(up, deadline));
        }
        Ok(())
    }

    /// Sends a request of the mesh's own to `member` and waits for its result.
    pub(crate) async fn internal(
        &self,
        member: usize,
        method: &str,
        params: &serde_json::Value,
    ) -> Result<serde_json::Value, RelayError> {
        let (tx, rx) = oneshot::channel();
        let msg = Message::request("0", method, Some(params));
        // Sent while serving a traced request (a virtual MCP's merged list): a span of its own.
        let (msg, span, traceparent) = self.internal_span(member, msg);
        let sent = self.forward_traced(member, &msg, "0", Target::Internal(tx), None, traceparent).await;
        let reply = match sent {
            Ok(()) => rx.await.map_err(|_| RelayError::UpstreamUnavailable("the member went away".into())),
            Err(e) => Err(e),
        };
        if let Some(span) = span {
            let outcome = match &reply {
                Ok(r) if r.kind() != Kind::Error => Outcome::Ok,
                Ok(_) => Outcome::ProtocolError,
                Err(e) => super::record::outcome_of(e),
            };
            span.end(mesh_core::trace::End { outcome, error: None, code: None });
        }
        let reply = reply?;
        match reply.kind() {
            Kind::Error => Err(match reply.error_object() {
                Some(e) if e.code == mesh_protocol::codes::UPSTREAM_TIMEOUT => {
                    RelayError::UpstreamTimeout(self.timeout, String::new())
                }
                Some(e) => RelayError::UpstreamProtocol(format!("{} (code {})", e.message, e.code)),
                None => RelayError::UpstreamProtocol("malformed error".into()),
            }),
            _ => reply.result().ok_or_else(|| RelayError::UpstreamProtocol(format!("{method}: reply has no result"))),
        }
    }

    /// Delivers a reply the mesh produced itself (a gateway's merged list, an error).
    pub(super) fn answer(&self, stream: u64, reply: Message, mut call: Call) {
        let end = Ending::of_reply(&call, &reply);
        call.rpc_code = end.code;
        let delivery = self.lock().streams.push_reply(stream, reply.bytes().clone(), end.retry_after);
        let (mut outcome, mut error) = (end.outcome, end.error);
        if delivery != streams::Delivery::Live {
            (outcome, error) = inflight::client_gone(outcome, error);
        }
        let id = reply.id().unwrap_or("null").to_string();
        self.audit_end(call, id.into(), outcome, error, reply.bytes().len() as u64);
    }

    pub(super) fn take_pending(&self, up: u64) -> Option<Pending> {
        let mut st = self.lock();
        let mut p = st.pending.remove(&up)?;
        p.stop_timer();
        if let Some(t) = &p.progress {
            st.progress.remove(t);
        }
        Some(p)
    }

    pub(super) fn fail(&self, up: u64, err: &RelayError) {
        let Some(p) = self.take_pending(up) else { return };
        let out = err.to_message(Some(&p.down_id));
        self.finish(p, out, |_| Ending::of_error(err));
    }

    /// Ends a request with its reply `out` (carrying the client's id, except an upstream's reply on
    /// a pooled session's stream, whose follower writes it: `on_reply`): to the mesh's own
    /// waiter, or to the client's stream and the audit trail.
    pub(super) fn finish(&self, p: Pending, out: Message, ending: impl FnOnce(&Call) -> Ending) {
        self.finish_as(p, out, ending, false)
    }

    /// `finish`; a reply no connected client took is recorded `client_gone` unless `decided`.
    pub(super) fn finish_as(&self, p: Pending, out: Message, ending: impl FnOnce(&Call) -> Ending, decided: bool) {
        match p.target {
            Target::Internal(tx) => {
                let _ = tx.send(out);
            }
            Target::Stream(stream) => {
                let out = match &p.call {
                    Some(c) => self.filter_list(c, out),
                    None => out,
                };
                let out = match (&self.gateway, &p.call) {
                    (Some(gw), Some(c)) => {
                        let out = match gw.stateless_clients {
                            true => gw.tasks_named(p.member, c, out),
                            false => out,
                        };
                        gw.exposed_reply(p.member, &c.method, out)
                    }
                    _ => out,
                };
                // Before the push: a rate-limit refusal is marked on the reply it travels with.
                let end = p.call.as_ref().map(ending);
                let retry_after = end.as_ref().and_then(|e| e.retry_after);
                let delivery = {
                    let mut st = self.lock();
                    // The call's questions still open go with it.
                    super::inbound::withdraw_questions(&mut st, |r| r.stream == stream);
                    st.streams.push_reply(stream, out.bytes().clone(), retry_after)
                };
                if let (Some(mut c), Some(end)) = (p.call, end) {
                    c.rpc_code = end.code;
                    let (mut outcome, mut error) = (end.outcome, end.error);
                    if !decided && delivery != streams::Delivery::Live {
                        (outcome, error) = inflight::client_gone(outcome, error);
                    }
                    // What the client is sent: under its own id (see `on_reply`).
                    let bytes_out = match out.id() {
                        Some(written) => out.bytes().len() - written.len() + p.down_id.len(),
                        None => out.bytes().len(),
                    };
                    self.audit_end(c, p.down_id, outcome, error, bytes_out as u64);
                }
            }
        }
    }

    pub(super) fn note_client(&self, init: &Message) {
        #[derive(serde::Deserialize)]
        struct Info {
            name: Option<String>,
            version: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Init {
            #[serde(rename = "clientInfo")]
            client_info: Option<Info>,
            #[serde(default)]
            capabilities: serde_json::Value,
        }
        let Some(init) = init.params::<Init>() else { return };
        if init.capabilities["elicitation"]["url"].is_object() {
            self.url_elicitation.store(true, Ordering::Release);
        }
        if let Some(info) = init.client_info {
            let _ = self.client.set((info.name.unwrap_or_default(), info.version.unwrap_or_default()));
        }
    }

    /// The audit row of `msg`, a request the mesh refused before it reached the session's
    /// upstream (a stateless task request whose tool the rules now deny), under `name` when the
    /// request names something else (a task request, its tool).
    pub(crate) fn audit_refused(&self, msg: &Message, name: Option<&str>, outcome: Outcome, error: &str) {
        let mut call = Call::of(msg, None);
        if let Some(n) = name {
            call.name = Some(n.to_string());
        }
        let id: Box<str> = msg.id().unwrap_or("null").into();
        self.audit_end(call, id, outcome, Some(error.to_string()), 0);
    }

    pub(super) fn audit_end(
        &self,
        mut c: Call,
        down_id: Box<str>,
        outcome: Outcome,
        error: Option<String>,
        bytes_out: u64,
    ) {
        let end = mesh_core::trace::End { outcome, error: error.as_deref(), code: c.rpc_code };
        if let Some(s) = c.up_span.take() {
            s.end(end);
        }
        if let Some(s) = c.span.take() {
            s.end(end);
        }
        self.audit.record(CallRecord {
            time_ms: c.time_ms,
            origin: self.origin(),
            method: c.method,
            name: c.name,
            arguments: c.arguments,
            outcome,
            error,
            latency_us: c.started.elapsed().as_micros() as u64,
            bytes_in: c.bytes_in,
            bytes_out,
            request_id: down_id,
        });
    }

    /// What every audit record of this session shares, kept once the client has introduced
    /// itself (`initialize`, noted by `request` before it is forwarded): it never changes after.
    /// Before that — or for a client that sent no `clientInfo` — each record gets its own.
    pub(super) fn origin(&self) -> Arc<Origin> {
        if let Some(o) = self.origin.get() {
            return o.clone();
        }
        let origin = Arc::new(Origin {
            principal: self.principal.clone(),
            session_id: self.id.clone(),
            client: self.client.get().cloned(),
            route_kind: self.route_kind.as_str(),
            route: self.label.clone(),
        });
        if origin.client.is_some() {
            let _ = self.origin.set(origin.clone());
        }
        origin
    }
}
