//! `subscriptions/listen`: the stateless revision's stream of list changes and resource updates,
//! fed by the pooled session's standalone stream (where an upstream's list changes and resource
//! updates, and the mesh's own list changes after a policy change, wait for a listener).
//!
//! The stream opens with `notifications/subscriptions/acknowledged` naming what is honoured;
//! every notification carries the listen request's id in `_meta`. What the client did not ask
//! about is never sent. `resourceSubscriptions` become `resources/subscribe` requests on the
//! pooled session, where its upstream (or a member of its virtual MCP) takes subscriptions: sent
//! like any request of the session, so policy, audit and a virtual MCP's routing apply to each;
//! those the upstream accepted are honoured. One listener per pooled session: a second
//! `subscriptions/listen` of the same key takes the stream over (the first one ends with its
//! result), subscribing what it asks for and unsubscribing what it no longer does; a listener
//! that ends otherwise (its client leaves, its stream falls too far behind) unsubscribes what it
//! held. The subscriptions change at most once a second ([`CHANGE_EVERY`]).

use super::pool::Pooled;
use super::{refuse, Ask};
use crate::ingress::Relay;
use crate::session::streams::Event;
use crate::session::Session;
use axum::response::Response;
use bytes::Bytes;
use mesh_protocol::{codes, modern, sse, Kind, Message};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Comment lines that keep idle proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(25);
/// Resources one listen may watch: each is a request to the upstream when the stream opens (and
/// one more when a later listen drops it), which a client can repeat with every listen.
const MAX_WATCHED: usize = 32;
/// The shortest time between two changes of a pooled session's subscriptions by its listeners: a
/// client taking its own listen over again and again, with other resources each time, would
/// otherwise have the mesh send up to twice [`MAX_WATCHED`] requests upstream per listen.
const CHANGE_EVERY: Duration = Duration::from_secs(1);

#[derive(serde::Deserialize)]
struct Params {
    notifications: Option<Filter>,
}

#[derive(serde::Deserialize, Default)]
struct Filter {
    #[serde(rename = "toolsListChanged", default)]
    tools: bool,
    #[serde(rename = "promptsListChanged", default)]
    prompts: bool,
    #[serde(rename = "resourcesListChanged", default)]
    resources: bool,
    #[serde(rename = "resourceSubscriptions", default)]
    watch: Vec<String>,
}

impl Filter {
    fn wants(&self, method: &str) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            _ => false,
        }
    }

    /// What the acknowledgement says is honoured: the lists asked for, and the resources `watched`.
    fn honoured(&self, watched: &BTreeSet<String>) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (on, name) in [
            (self.tools, "toolsListChanged"),
            (self.prompts, "promptsListChanged"),
            (self.resources, "resourcesListChanged"),
        ] {
            if on {
                out.insert(name.into(), true.into());
            }
        }
        if !watched.is_empty() {
            out.insert("resourceSubscriptions".into(), watched.iter().cloned().collect::<Vec<_>>().into());
        }
        out.into()
    }
}

/// What the listeners of each pooled session had subscribed to upstream, by session id.
#[derive(Default)]
pub(super) struct Watches(Mutex<HashMap<String, Arc<Watch>>>);

/// One pooled session's resource subscriptions and its listeners.
#[derive(Default)]
pub(super) struct Watch {
    /// The number of the session's latest listener: the one whose stream is live, and whose
    /// resources are the ones to watch. Taken with the stream, so the two agree.
    latest: AtomicU64,
    /// What is subscribed upstream; changed by one listener at a time.
    subscribed: tokio::sync::Mutex<Subscribed>,
}

/// A pooled session's resource subscriptions upstream, and when a listener last changed them.
#[derive(Default)]
struct Subscribed {
    uris: BTreeSet<String>,
    changed: Option<tokio::time::Instant>,
}

/// A listener that has just taken its session's stream.
struct Listener {
    /// What waited for a listener, and what comes next.
    queued: Vec<Event>,
    live: mpsc::Receiver<Event>,
    watch: Arc<Watch>,
    /// Its number among the session's listeners.
    me: u64,
}

impl Watch {
    fn superseded(&self, me: u64) -> bool {
        self.latest.load(Ordering::Acquire) != me
    }
}

impl Watches {
    /// Takes `session`'s listen stream for a new listener. `None` when the session cannot be
    /// listened to.
    fn take(&self, session: &Session) -> Option<Listener> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let watch = all.entry(session.id.clone()).or_default().clone();
        // Numbered before the stream changes hands: the listener it is taken from, seeing its
        // stream end, must find itself superseded (else it would release what this one keeps).
        let me = watch.latest.fetch_add(1, Ordering::AcqRel) + 1;
        let (queued, Some(live)) = session.listen(None)? else { return None };
        Some(Listener { queued, live, watch, me })
    }

    /// Forgets the sessions that ended (with their upstream subscriptions).
    pub(super) fn prune(&self, relay: &Relay) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|id, _| relay.sessions.get(id).is_some());
    }
}

/// Opens the listen stream of `pooled` for the request `msg`.
pub(super) fn open(relay: &Relay, pooled: &Pooled, ask: &Ask, msg: &Message) -> Response {
    let Some(filter) = msg.params::<Params>().and_then(|p| p.notifications) else {
        return refuse(&ask.id, codes::INVALID_PARAMS, "params.notifications is required", None);
    };
    if filter.watch.len() > MAX_WATCHED {
        let why = format!("at most {MAX_WATCHED} resourceSubscriptions per listen");
        return refuse(&ask.id, codes::INVALID_PARAMS, &why, None);
    }
    let Some(Listener { queued, mut live, watch: watches, me }) = relay.modern.watches.take(&pooled.session) else {
        return refuse(&ask.id, codes::INTERNAL_ERROR, "the session cannot be listened to", None);
    };
    let id: serde_json::Value = serde_json::from_str(&ask.id).unwrap_or(serde_json::Value::Null);
    let tag = serde_json::json!({ modern::META_SUBSCRIPTION: id });
    let session = pooled.session.clone();
    let subscribes =
        pooled.init.pointer("/capabilities/resources/subscribe").and_then(serde_json::Value::as_bool) == Some(true);
    // A copy: the stream outlives the request, whose body a slice would keep.
    let request_id = ask.id.copied();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        // Before the acknowledgement, which names the subscriptions the upstream took.
        let wanted = if subscribes { filter.watch.iter().cloned().collect() } else { BTreeSet::new() };
        let watched = watch(&session, &watches, &wanted, || tx.is_closed() || watches.superseded(me)).await;
        let ack = Message::notification(
            "notifications/subscriptions/acknowledged",
            Some(&serde_json::json!({"notifications": filter.honoured(&watched), "_meta": tag})),
        );
        let relay = |data: &Bytes| relayed(data, (&filter, &watched), &id).map(|m| frame(m.bytes()));
        async {
            if tx.send(frame(ack.bytes())).await.is_err() {
                return;
            }
            for ev in &queued {
                if let Some(f) = relay(&ev.data) {
                    if tx.send(f).await.is_err() {
                        return;
                    }
                }
            }
            let mut tick = tokio::time::interval(KEEP_ALIVE);
            tick.tick().await;
            loop {
                tokio::select! {
                    ev = live.recv() => match ev {
                        Some(ev) => {
                            if let Some(f) = relay(&ev.data) {
                                if tx.send(f).await.is_err() {
                                    return;
                                }
                            } else if let Ok(m) = Message::parse(ev.data.clone()) {
                                // An upstream request outside any call has no stateless client to ask.
                                if m.kind() == Kind::Request {
                                    let no = Message::error(m.id(), codes::METHOD_NOT_FOUND, "no client to ask outside a call", None);
                                    let _ = session.reply(&no).await;
                                }
                            }
                        }
                        None => break,
                    },
                    _ = tick.tick() => {
                        // A closed session keeps its stream's sender: its end is seen here.
                        if session.has_ended() || session.is_dead() {
                            break;
                        }
                        if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                            return;
                        }
                    }
                    () = tx.closed() => return,
                }
            }
            // The stream was taken over, the session ended, or the stream fell too far behind
            // and was detached: the listen request ends gracefully.
            let done = Message::response(&request_id, &serde_json::json!({"resultType": "complete", "_meta": tag}));
            let _ = tx.send(frame(done.bytes())).await;
        }
        .await;
        // The client left, or its stream fell too far behind and was ended: what it held is
        // unsubscribed (not when a later listener took over, nor when the session ended).
        release(&session, &watches, me).await;
    });
    super::sse_response(rx)
}

/// The notification in `data` as the listener gets it, tagged with the listen's `id`: when it is
/// one of the lists `filter` asks about, or an update of a resource `watched`.
fn relayed(data: &Bytes, (filter, watched): (&Filter, &BTreeSet<String>), id: &serde_json::Value) -> Option<Message> {
    let m = Message::parse(data.clone()).ok()?;
    if m.kind() != Kind::Notification {
        return None;
    }
    let mut params: serde_json::Value = m.params().unwrap_or_else(|| serde_json::json!({}));
    let asked = match m.method()? {
        "notifications/resources/updated" => {
            params.get("uri").and_then(serde_json::Value::as_str).is_some_and(|u| watched.contains(u))
        }
        other => filter.wants(other),
    };
    if !asked {
        return None;
    }
    let meta = params.as_object_mut()?.entry("_meta").or_insert_with(|| serde_json::json!({}));
    meta.as_object_mut()?.insert(modern::META_SUBSCRIPTION.into(), id.clone());
    Some(Message::notification(m.method()?, Some(&params)))
}

fn frame(data: &[u8]) -> Bytes {
    sse::encode(None, None, std::str::from_utf8(data).unwrap_or(""), None)
}

/// Makes `wanted` the resources the pooled session watches upstream, for its latest listener:
/// subscribes what it lacks and unsubscribes what it no longer asks for (what an earlier
/// listener held). Stops once the listener is `gone` — its client left, or a later one took the
/// stream, which then does the same in its turn. The resources now watched of those wanted.
async fn watch(
    session: &Session,
    watch: &Watch,
    wanted: &BTreeSet<String>,
    gone: impl Fn() -> bool,
) -> BTreeSet<String> {
    let mut held = watch.subscribed.lock().await;
    if gone() {
        return BTreeSet::new();
    }
    let unchanged = *wanted == held.uris;
    if let (false, Some(at)) = (unchanged, held.changed) {
        // At most one change a second; a listener taken over meanwhile changes nothing (the
        // lock is held: the next listener waits, then finds it superseded or not).
        tokio::time::sleep_until(at + CHANGE_EVERY).await;
        if gone() {
            return BTreeSet::new();
        }
    }
    let Subscribed { uris, changed } = &mut *held;
    if !unchanged {
        *changed = Some(tokio::time::Instant::now());
    }
    let stale: Vec<String> = uris.difference(wanted).cloned().collect();
    for uri in stale {
        // Forgotten whatever the upstream says: at worst it sends updates nobody relays.
        subscription(session, "resources/unsubscribe", &uri).await;
        uris.remove(&uri);
    }
    let missing: Vec<String> = wanted.difference(uris).cloned().collect();
    for uri in missing {
        if gone() {
            break;
        }
        if subscription(session, "resources/subscribe", &uri).await {
            uris.insert(uri);
        }
    }
    uris.intersection(wanted).cloned().collect()
}

/// Unsubscribes what the session's listener `me` held when it ended, unless a later listener has
/// taken the stream (and the subscriptions) over or the session ended with it.
async fn release(session: &Session, watch: &Watch, me: u64) {
    let mut held = watch.subscribed.lock().await;
    if watch.superseded(me) || session.is_dead() || session.has_ended() {
        return;
    }
    if !held.uris.is_empty() {
        held.changed = Some(tokio::time::Instant::now());
    }
    for uri in std::mem::take(&mut held.uris) {
        subscription(session, "resources/unsubscribe", &uri).await;
    }
}

/// Sends `method` (`resources/subscribe` or `resources/unsubscribe`) for `uri` on the pooled
/// session as a request of its own — routed, governed and audited as a client's would be —
/// and says whether the upstream accepted it.
async fn subscription(session: &Session, method: &str, uri: &str) -> bool {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = format!("\"mesh-watch-{}\"", NEXT.fetch_add(1, Ordering::Relaxed));
    let msg = Message::request(&id, method, Some(&serde_json::json!({ "uri": uri })));
    let (stream, mut rx) = match session.request(&msg).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(session = %session.id, method, error = %e, "a listen's resource subscription was refused");
            return false;
        }
    };
    let mut accepted = false;
    while let Some(ev) = rx.recv().await {
        if ev.last {
            accepted = Message::parse(ev.data).is_ok_and(|m| m.kind() == Kind::Response);
            break;
        }
    }
    session.forget_stream(stream);
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_hears_only_what_it_asked_for() {
        let filter: Filter = serde_json::from_value(serde_json::json!({"toolsListChanged": true})).expect("filter");
        let watched: BTreeSet<String> = ["file:///a".to_string()].into();
        let id = serde_json::json!(7);
        let note =
            |method: &str, params: serde_json::Value| Message::notification(method, Some(&params)).bytes().clone();
        let heard = |data: Bytes| relayed(&data, (&filter, &watched), &id).map(|m| m.as_str().to_string());
        let tools = heard(note("notifications/tools/list_changed", serde_json::json!({}))).expect("asked for");
        assert!(tools.contains(r#""io.modelcontextprotocol/subscriptionId":7"#), "{tools}");
        assert_eq!(heard(note("notifications/prompts/list_changed", serde_json::json!({}))), None);
        let a = heard(note("notifications/resources/updated", serde_json::json!({"uri": "file:///a"})));
        assert!(a.is_some_and(|a| a.contains("file:///a")));
        assert_eq!(heard(note("notifications/resources/updated", serde_json::json!({"uri": "file:///b"}))), None);
        assert_eq!(heard(note("notifications/resources/updated", serde_json::json!({}))), None);
        assert_eq!(heard(note("notifications/progress", serde_json::json!({"progressToken": 1}))), None);
    }
}
