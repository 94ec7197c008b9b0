//! The link's one `subscriptions/listen` to its stateless upstream: the list changes the upstream
//! announces, and the resources the session subscribed to.
//!
//! The stateless revision has no `resources/subscribe`: a listen stream's `resourceSubscriptions`
//! replaces it, and a stream's filter cannot change once open. So the link keeps the session's
//! subscribed resources itself, answers `resources/subscribe` and `resources/unsubscribe` at once,
//! and reopens the stream with the new set; the upstream's `notifications/resources/updated`
//! arrive on it like its list changes, and go to the session's standalone stream.
//!
//! What a client or an upstream does cannot make the link hammer the upstream: a stream is
//! reopened at most once a second, whatever the subscriptions do meanwhile (the changes of that
//! second go in one stream), and one the upstream keeps ending or refusing is reopened after a
//! growing wait, which a subscription does not cut short.

use super::ModernLink;
use futures_util::FutureExt;
use mesh_protocol::{codes, Kind, Message};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Resources one link watches at most: a client chooses how many it subscribes to, and every
/// reopened stream carries them all.
const MAX_SUBSCRIPTIONS: usize = 256;
/// The longest resource URI a subscription takes (what the relay's policy checks allow).
const MAX_URI: usize = 8 * 1024;
/// The watched URIs' bytes at most, all together: each reopened stream carries them all.
const MAX_WATCHED_BYTES: usize = 64 * 1024;
/// The shortest time between two listen streams of one link.
const REOPEN_EVERY: Duration = Duration::from_secs(1);
/// The first wait before reopening a stream the upstream ended (no shorter than
/// [`REOPEN_EVERY`]); it doubles up to [`LONGEST_WAIT`] while streams keep ending sooner than
/// [`LASTED`] or being refused.
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// A stream open this long ended normally: the next wait starts again from [`FIRST_WAIT`].
const LASTED: Duration = Duration::from_secs(10);

/// Listen requests of every link, numbered: a stream reopened at once must not reuse the id of
/// the one whose cancellation may still be on its way (over stdio the child sees both).
static LISTENS: AtomicU64 = AtomicU64::new(0);

impl ModernLink {
    /// Whether the upstream's `server/discover` says it takes resource subscriptions.
    pub(super) fn takes_subscriptions(&self) -> bool {
        self.discover.pointer("/capabilities/resources/subscribe").and_then(Value::as_bool) == Some(true)
    }

    /// The session's `resources/subscribe` or `resources/unsubscribe` (`msg`, with `id`): the
    /// watched set changes and the stream reopens with it. Answered `{}` without waiting for the
    /// upstream, as a session-based server answers before its first update; a URI the upstream
    /// does not know is its to ignore, as it may ignore any subscription it cannot honour. Once
    /// the upstream has answered a listen with "method not found", a subscription is refused the
    /// same way: nothing would ever carry its updates.
    pub(super) fn subscription(&self, id: &str, method: &str, msg: &Message) -> Message {
        #[derive(serde::Deserialize)]
        struct Params {
            uri: String,
        }
        let Some(uri) = msg.params::<Params>().map(|p| p.uri) else {
            return Message::error(Some(id), codes::INVALID_PARAMS, &format!("{method}: params.uri is required"), None);
        };
        if uri.len() > MAX_URI {
            let why = format!("{method}: the uri is longer than {MAX_URI} bytes");
            return Message::error(Some(id), codes::INVALID_PARAMS, &why, None);
        }
        let changed = {
            let mut st = self.lock();
            if st.no_listen && method == "resources/subscribe" {
                let why =
                    "resources/subscribe: the upstream does not take subscriptions (it has no subscriptions/listen)";
                return Message::error(Some(id), codes::METHOD_NOT_FOUND, why, None);
            }
            match method {
                "resources/subscribe" if st.resources.contains(&uri) => false,
                "resources/subscribe" if st.resources.len() >= MAX_SUBSCRIPTIONS => {
                    let why = format!("at most {MAX_SUBSCRIPTIONS} resource subscriptions per session");
                    return Message::error(Some(id), codes::INVALID_PARAMS, &why, None);
                }
                "resources/subscribe" if st.watched_bytes + uri.len() > MAX_WATCHED_BYTES => {
                    let why = format!("a session's subscribed URIs take at most {MAX_WATCHED_BYTES} bytes together");
                    return Message::error(Some(id), codes::INVALID_PARAMS, &why, None);
                }
                "resources/subscribe" => {
                    st.watched_bytes += uri.len();
                    st.resources.insert(uri)
                }
                _ => {
                    let gone = st.resources.remove(&uri);
                    if gone {
                        st.watched_bytes -= uri.len();
                    }
                    gone
                }
            }
        };
        if changed {
            self.relisten.notify_one();
        }
        Message::response(id, &json!({}))
    }

    /// Whether the upstream's `server/discover` announces changes of the list `kind`.
    fn announces(&self, kind: &str) -> bool {
        self.discover.pointer(&format!("/capabilities/{kind}/listChanged")).and_then(Value::as_bool) == Some(true)
    }

    /// What the listen stream asks for now: the list changes the upstream announces and the
    /// watched resources; `None` when there is nothing to listen for.
    fn filter(&self) -> Option<Value> {
        let on = |k: &str| self.announces(k);
        let watched: Vec<String> = self.lock().resources.iter().cloned().collect();
        if !(on("tools") || on("prompts") || on("resources")) && watched.is_empty() {
            return None;
        }
        let mut filter = json!({
            "toolsListChanged": on("tools"),
            "promptsListChanged": on("prompts"),
            "resourcesListChanged": on("resources"),
        });
        if !watched.is_empty() {
            filter["resourceSubscriptions"] = watched.into();
        }
        Some(filter)
    }

    /// Keeps one `subscriptions/listen` open for what [`ModernLink::filter`] asks, reopened when
    /// that changes, and passes what it carries on as the session-based revision's notifications.
    pub(super) fn listen(&self) {
        let lists = ["tools", "prompts", "resources"].iter().any(|k| self.announces(k));
        if !(lists || self.takes_subscriptions()) {
            return;
        }
        let (weak, closed, relisten) = (self.me.clone(), self.closed.clone(), self.relisten.clone());
        tokio::spawn(async move {
            let mut delay = FIRST_WAIT;
            // When the last stream opened, and the end of the wait after it ended.
            let (mut opened, mut not_before): (Option<Instant>, Option<Instant>) = (None, None);
            while !closed.is_cancelled() {
                // At most one stream a second, and none before the wait is out (a subscription
                // meanwhile waits too: the upstream is failing, or a second is the floor). The
                // changes made meanwhile are all in the next stream, so a wake-up they left
                // behind is spent here, not on a reopen.
                if let Some(next) = opened.map(|at| at + REOPEN_EVERY).max(not_before) {
                    tokio::select! {
                        () = tokio::time::sleep_until(next) => {}
                        () = closed.cancelled() => return,
                    }
                    let _ = relisten.notified().now_or_never();
                }
                // Held only while a stream is open: a link dropped without `close` still goes.
                let Some(me) = weak.upgrade() else { return };
                let Some(filter) = me.filter() else {
                    drop(me);
                    // Nothing to listen for until the session subscribes to something.
                    tokio::select! {
                        () = relisten.notified() => continue,
                        () = closed.cancelled() => return,
                    }
                };
                let params = {
                    let m = Message::request("0", "subscriptions/listen", Some(&json!({"notifications": filter})));
                    me.enveloped(&m)
                };
                let id = format!("\"mesh-listen-{}\"", LISTENS.fetch_add(1, Ordering::Relaxed));
                let none = HeaderMap::new();
                let listen = me.post(&id, "subscriptions/listen", &params, None, &none);
                let at = Instant::now();
                opened = Some(at);
                let ended = tokio::select! {
                    r = listen => r,
                    // The watched set changed: this stream closes (which cancels it) and the
                    // next one carries the new set.
                    () = relisten.notified() => continue,
                    () = closed.cancelled() => return,
                };
                // A stream that lasted ended normally, however it ended (a proxy cutting idle
                // streams, a dropped connection): the waits start again from the first.
                if at.elapsed() >= LASTED {
                    delay = FIRST_WAIT;
                }
                let wait = match ended {
                    // The upstream has no listen after all: nothing to wait for, and nothing to
                    // subscribe to from now on.
                    Ok(m) if m.error_object().is_some_and(|e| e.code == codes::METHOD_NOT_FOUND) => {
                        tracing::info!(link = %me.name, "the upstream has no subscriptions/listen; its list changes and resource updates are not followed");
                        me.lock().no_listen = true;
                        return;
                    }
                    // A graceful end of a stream that lasted: listen again soon.
                    Ok(m) if m.kind() == Kind::Response && at.elapsed() >= LASTED => delay,
                    // Refused for a resource it does not know: the subscriptions it carried go
                    // (the list changes must not stop for them), said in the log; one made since
                    // was never sent, and stays. The waits grow as for any refusal: a client
                    // subscribing unknown URIs again and again is not a listen a second. Any other
                    // refusal (overloaded, rate-limited) is waited out with them kept.
                    Ok(m) if filter.get("resourceSubscriptions").is_some() && refuses_resources(&m) => {
                        let why = m.error_object().map(|e| e.message).unwrap_or_default();
                        tracing::info!(link = %me.name, error = %why, "the upstream refused a listen with resource subscriptions; they are dropped");
                        let sent = filter["resourceSubscriptions"].as_array().into_iter().flatten();
                        let mut st = me.lock();
                        for uri in sent.filter_map(Value::as_str) {
                            if st.resources.remove(uri) {
                                st.watched_bytes -= uri.len();
                            }
                        }
                        grown(&mut delay)
                    }
                    // Refused, failed, or ended at once (an upstream that ends every stream
                    // would otherwise be asked again twice a second for ever).
                    _ => grown(&mut delay),
                };
                drop(me);
                not_before = Some(Instant::now() + wait);
            }
        });
    }
}

/// Whether `m`, the answer to a listen, refuses it for what it names (an unknown or invalid
/// resource): -32602, or the earlier revisions' resource-not-found (-32002).
fn refuses_resources(m: &Message) -> bool {
    const RESOURCE_NOT_FOUND: i64 = -32002;
    m.error_object().is_some_and(|e| e.code == codes::INVALID_PARAMS || e.code == RESOURCE_NOT_FOUND)
}

/// The wait before the next listen, `delay`, which doubles for the one after (to 30 s at most).
fn grown(delay: &mut Duration) -> Duration {
    let wait = *delay;
    *delay = (wait * 2).min(LONGEST_WAIT);
    wait
}
