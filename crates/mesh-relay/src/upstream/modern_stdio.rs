//! The stateless revision (MCP 2026-07-28) over a child's stdio.
//!
//! The child is the same supervised process as for the session-based revision ([`StdioLink`]);
//! what changes is what goes over it. Each request is one line carrying the envelope, answered by
//! one line with the same id; there is no handshake, so a restarted child needs nothing replayed.
//! A request is cancelled with `notifications/cancelled` (stdio has no stream to close). Progress
//! and log lines come untied to a request, and the session routes them as it does a stdio
//! child's: progress by its token, the rest to the one call that could be asking.
//!
//! Whether a command speaks the revision is asked by starting it and sending `server/discover`.
//! A child that does not answer in kind is stopped rather than initialised: a server of the
//! earlier revision may refuse, or even stop on, a request before its handshake, so the
//! session-based link starts a fresh one. The answer is remembered per command, arguments,
//! environment and directory ([`UpstreamClients::remembered`]), so a command is asked again only
//! when that memory expires.

use super::stdio::StdioLink;
use super::{Inbound, InboundSink, Link, Transport, UpstreamClients};
use crate::{RelayError, TransportSpec, UpstreamSpec};
use mesh_protocol::{codes, modern, Kind, Message};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The longest a command is given to start and answer `server/discover` (npx may fetch first).
const PROBE_WITHIN: Duration = Duration::from_secs(10);

/// A child process spoken to in the stateless revision.
pub(super) struct StdioWire {
    child: Arc<StdioLink>,
    demux: Arc<Demux>,
}

/// Between the child and the session: replies go to the request waiting for them, the rest on to
/// the session (once the child is known to be stateless; until then nothing else is expected).
struct Demux {
    session: Arc<dyn InboundSink>,
    replies: Mutex<HashMap<String, oneshot::Sender<Message>>>,
    /// Probed and found stateless: messages other than replies reach the session.
    live: AtomicBool,
}

impl InboundSink for Demux {
    fn deliver(&self, inbound: Inbound) {
        let live = self.live.load(Ordering::Acquire);
        match inbound {
            Inbound::Message { msg, .. } => match msg.kind() {
                Kind::Response | Kind::Error => {
                    let waiting = msg.id().and_then(|id| self.lock().remove(id));
                    // A reply nobody waits for answers a cancelled request: dropped.
                    if let Some(tx) = waiting {
                        let _ = tx.send(msg);
                    }
                }
                // The revision has no server requests; an acknowledgement is the listen's own.
                Kind::Request => {}
                Kind::Notification if msg.method() == Some("notifications/subscriptions/acknowledged") => {}
                Kind::Notification if live => self.session.deliver(Inbound::Message { msg, related: None }),
                Kind::Notification => {}
            },
            Inbound::Down { reason } => {
                // Every request waiting on the child fails now (their senders are dropped).
                self.lock().clear();
                if live {
                    self.session.deliver(Inbound::Down { reason });
                }
            }
            other if live => self.session.deliver(other),
            _ => {}
        }
    }
}

impl Demux {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Message>>> {
        self.replies.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StdioWire {
    /// Sends one request and waits for its reply. Dropped before the reply (the session cancelled
    /// the call, or the link closed), it tells the child with `notifications/cancelled`.
    pub(super) async fn request(
        &self,
        name: &str,
        id: &str,
        method: &str,
        params: &Value,
    ) -> Result<Message, RelayError> {
        let (tx, rx) = oneshot::channel();
        self.demux.lock().insert(id.to_string(), tx);
        struct Cancel<'a> {
            wire: &'a StdioWire,
            id: &'a str,
        }
        impl Drop for Cancel<'_> {
            fn drop(&mut self) {
                if self.wire.demux.lock().remove(self.id).is_some() {
                    let request_id = serde_json::from_str::<Value>(self.id).unwrap_or(Value::Null);
                    let note =
                        Message::notification("notifications/cancelled", Some(&json!({"requestId": request_id})));
                    let child = self.wire.child.clone();
                    tokio::spawn(async move { child.send(note).await });
                }
            }
        }
        let _cancel = Cancel { wire: self, id };
        self.child.send(Message::request(id, method, Some(params))).await?;
        rx.await.map_err(|_| RelayError::UpstreamUnavailable(format!("{name}: the upstream process went away")))
    }

    pub(super) async fn close(&self) {
        self.child.close().await;
    }
}

/// A [`super::modern::ModernLink`] over `spec`'s child when its command speaks the stateless
/// revision; `None` when it does not (or did not answer in time), and the caller starts it in the
/// session-based one.
pub(super) async fn link(
    spec: &UpstreamSpec,
    clients: &UpstreamClients,
    sink: Arc<dyn InboundSink>,
    stateless_clients: bool,
) -> Option<Result<Link, RelayError>> {
    let key = era_key(spec)?;
    let known = clients.remembered(&key);
    if known == Some(None) {
        return None;
    }
    let demux = Arc::new(Demux { session: sink.clone(), replies: Mutex::default(), live: AtomicBool::new(false) });
    let child = match StdioLink::spawn(spec, demux.clone()) {
        Ok(c) => c,
        Err(e) => return Some(Err(e)),
    };
    let wire = StdioWire { child: child.clone(), demux: demux.clone() };
    let discover = match known.flatten() {
        Some(d) => d,
        None => {
            let probed = tokio::time::timeout(PROBE_WITHIN.min(spec.timeout), probe(&wire, &spec.name)).await;
            let era = probed.ok().flatten().map(Arc::new);
            clients.remember(key, era.clone());
            match era {
                Some(d) => d,
                None => {
                    child.close().await;
                    return None;
                }
            }
        }
    };
    child.set_stateless();
    demux.live.store(true, Ordering::Release);
    tracing::info!(connection = %spec.name, "the upstream process speaks the stateless revision");
    let link = super::modern::ModernLink::over_stdio(&spec.name, wire, sink, discover, stateless_clients);
    Some(Ok(link as Link))
}

/// `server/discover` to the child: its result when it lists the stateless revision. A `-32022`
/// listing it is asked once more, as over HTTP (`modern::probe`).
async fn probe(wire: &StdioWire, name: &str) -> Option<Value> {
    let params = json!({"_meta": {
        modern::META_VERSION: super::modern::REVISION,
        modern::META_CAPABILITIES: {},
        modern::META_CLIENT_INFO: {"name": "mcp-mesh", "version": env!("CARGO_PKG_VERSION")},
    }});
    let lists_us = |versions: Option<&Value>| {
        versions
            .and_then(Value::as_array)
            .is_some_and(|vs| vs.iter().any(|v| v.as_str() == Some(super::modern::REVISION)))
    };
    for attempt in 1..=2 {
        let id = format!("\"mesh-probe-{attempt}\"");
        let reply = wire.request(name, &id, "server/discover", &params).await.ok()?;
        if let Some(e) = reply.error_object() {
            let supported = e.data.as_ref().and_then(|d| d.get("supported"));
            if e.code == codes::UNSUPPORTED_PROTOCOL_VERSION && lists_us(supported) {
                continue;
            }
            return None;
        }
        let result: Value = reply.result()?;
        return lists_us(result.get("supportedVersions")).then_some(result);
    }
    None
}

/// What a stdio upstream's answer is remembered under: everything that decides which program
/// runs, hashed (the environment may hold secrets).
fn era_key(spec: &UpstreamSpec) -> Option<String> {
    use sha2::Digest;
    let TransportSpec::Stdio { command, args, env, cwd } = &spec.transport else { return None };
    let mut h = sha2::Sha256::new();
    h.update(b"stdio\0");
    h.update(command.as_bytes());
    for part in args {
        h.update([0]);
        h.update(part.as_bytes());
    }
    h.update([1]);
    for (k, v) in env {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.expose().as_bytes());
        h.update([0]);
    }
    h.update([1]);
    if let Some(dir) = cwd {
        h.update(dir.to_string_lossy().as_bytes());
    }
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
