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

use super::modern::ModernLink;
use super::stdio::StdioLink;
use super::{Inbound, InboundSink, Link, Transport, UpstreamClients};
use crate::{RelayError, TransportSpec, UpstreamSpec};
use mesh_protocol::{codes, modern, Kind, Message};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a command's "not the stateless revision" is remembered.
const NO_FOR: Duration = Duration::from_secs(300);
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
    /// The link over the child, told when the child goes down (set once the link is made).
    link: OnceLock<Weak<ModernLink>>,
}

impl InboundSink for Demux {
    fn deliver(&self, inbound: Inbound) {
        let live = self.live.load(Ordering::Acquire);
        match inbound {
            Inbound::Message { msg, .. } => match msg.kind() {
                Kind::Response | Kind::Error => {
                    let waiting = {
                        let mut waiting = self.lock();
                        match msg.id() {
                            Some(id) => waiting.remove(id),
                            // An error without an id answers a request the child could not read:
                            // the one waiting, when only one is.
                            None if waiting.len() == 1 => waiting.drain().next().map(|(_, tx)| tx),
                            None => None,
                        }
                    };
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
                // Every request waiting on the child fails now (their senders are dropped), and
                // the link's exchanges end before the session hears of it: none may go on to
                // the child's successor.
                self.lock().clear();
                if let Some(link) = self.link.get().and_then(Weak::upgrade) {
                    link.child_down();
                }
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
        // Registered before the line goes out: the child's answer may come at once.
        self.demux.lock().insert(id.to_string(), tx);
        struct Cancel<'a> {
            wire: &'a StdioWire,
            id: &'a str,
            sent: bool,
        }
        impl Drop for Cancel<'_> {
            fn drop(&mut self) {
                let waiting = self.wire.demux.lock().remove(self.id).is_some();
                // Only a request the child got, and has not answered, is cancelled there.
                if !(waiting && self.sent) {
                    return;
                }
                let request_id = serde_json::from_str::<Value>(self.id).unwrap_or(Value::Null);
                let note = Message::notification("notifications/cancelled", Some(&json!({"requestId": request_id})));
                let child = self.wire.child.clone();
                // Dropped outside a runtime (one shutting down), there is no child left to tell.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move { child.send(note).await });
                }
            }
        }
        let mut cancel = Cancel { wire: self, id, sent: false };
        self.child.send(Message::request(id, method, Some(params))).await?;
        cancel.sent = true;
        rx.await.map_err(|_| RelayError::UpstreamUnavailable(format!("{name}: the upstream process went away")))
    }

    pub(super) async fn close(&self) {
        self.child.close().await;
    }

    /// What the child did wrong on its stdout, for error messages (the child's own link's note).
    pub(super) fn diagnostics(&self) -> Option<String> {
        self.child.diagnostics()
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
    Some(modern_link(spec, clients, sink, stateless_clients).await?.map(ModernLink::owned))
}

/// [`link`], as the link itself.
pub(super) async fn modern_link(
    spec: &UpstreamSpec,
    clients: &UpstreamClients,
    sink: Arc<dyn InboundSink>,
    stateless_clients: bool,
) -> Option<Result<Arc<ModernLink>, RelayError>> {
    let key = era_key(spec)?;
    // A command's answer does not come and go as a network's can: a no is kept as long as a yes
    // (each ask starts a child).
    let known = clients.remembered(&key, NO_FOR);
    if known == Some(None) {
        return None;
    }
    let demux = Arc::new(Demux {
        session: sink.clone(),
        replies: Mutex::default(),
        live: AtomicBool::new(false),
        link: OnceLock::new(),
    });
    let child = match StdioLink::spawn(spec, demux.clone()) {
        Ok(c) => c,
        Err(e) => return Some(Err(e)),
    };
    // Marked before it can exit: a stateless child that dies between its answer and its first
    // request is restarted like any other (a probe child is closed, which stops restarts).
    child.set_stateless();
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
                    // Stopped off the request's path (a stop takes up to a few seconds).
                    tokio::spawn(async move { child.close().await });
                    return None;
                }
            }
        }
    };
    tracing::info!(connection = %spec.name, "the upstream process speaks the stateless revision");
    let link = ModernLink::over_stdio(&spec.name, wire, sink, discover, stateless_clients);
    let _ = demux.link.set(Arc::downgrade(&link));
    demux.live.store(true, Ordering::Release);
    Some(Ok(link))
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
    // Each part length-prefixed, so that no two specs feed the hash the same bytes.
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(b"stdio");
    part(command.as_bytes());
    part(&(args.len() as u64).to_le_bytes());
    for a in args {
        part(a.as_bytes());
    }
    part(&(env.len() as u64).to_le_bytes());
    for (k, v) in env {
        part(k.as_bytes());
        part(v.expose().as_bytes());
    }
    part(cwd.as_ref().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default().as_bytes());
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
