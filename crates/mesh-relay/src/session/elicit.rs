//! Asking the user in-band. When the upstream refuses a call for want of scope and the client can
//! show a URL (it declared `elicitation.url` at `initialize`), the mesh does not fail the call:
//! it sends the client a URL-mode `elicitation/create` on the call's own stream, waits while the
//! user authorizes in their browser, tells the client (`notifications/elicitation/complete`), and
//! sends the call again — with the new token, which the control plane has pushed to the
//! session's live credential by then. A client that cannot show a URL, declines, or does not
//! finish in time gets the `-32042` error with the same link instead (MCP 2025-11-25,
//! client/elicitation "URL Elicitation Required Error").

use super::{ServerRequest, Session, Target};
use crate::upstream::Link;
use crate::{AuthorizationLink, RelayError};
use futures_util::future::BoxFuture;
use mesh_protocol::Message;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long the mesh waits for the user: the answer to the elicitation, then the authorization
/// in the browser (the control plane's own wait is bounded too).
pub(super) const USER_WAIT: Duration = Duration::from_secs(300);

/// Waits until the authorization named by an elicitation id is complete (`Session::on_authorized`).
pub(super) type Authorized = Box<dyn Fn(String) -> BoxFuture<'static, bool> + Send + Sync>;

/// The server-request slot of a question the mesh itself asks (not any upstream's).
pub(super) const MESH: usize = usize::MAX;

impl Session {
    /// How to wait for an authorization the client was sent to (see the module docs).
    pub fn on_authorized(&self, f: impl Fn(String) -> BoxFuture<'static, bool> + Send + Sync + 'static) {
        let _ = self.on_authorized.set(Box::new(f));
    }

    /// Whether a step-up can be asked in-band rather than refused: a session of its own (a pooled
    /// one's clients are asked within a call only, as input-required results), to one
    /// connection, whose client shows URLs.
    pub(super) fn asks_by_url(&self, e: &RelayError) -> bool {
        matches!(e, RelayError::AuthorizationRequired(links) if links.len() == 1 && links[0].url.starts_with("http"))
            && self.url_elicitation.load(Ordering::Acquire)
            && !self.is_pooled()
            && self.gateway.is_none()
            && self.on_authorized.get().is_some()
    }

    /// Asks the client to send the user to `auth`, then sends `msg` (the call `up`, already
    /// addressed upstream) again once they have authorized; fails the call with the `-32042`
    /// error otherwise. The call stays pending (and cancellable) all along.
    pub(super) async fn elicit_then_retry(self: Arc<Self>, up: u64, link: Link, msg: Message, auth: AuthorizationLink) {
        let refused = RelayError::AuthorizationRequired(vec![auth.clone()]);
        let stream = {
            let mut st = self.lock();
            let Some(p) = st.pending.get_mut(&up) else { return };
            // Once per call: a token still short of scope after the user's authorization fails
            // the call (a stateless upstream's second refusal comes back here), rather than
            // asking the user again and again.
            if std::mem::replace(&mut p.asked, true) {
                None
            } else {
                // The user needs longer than an upstream does to answer.
                p.deadline = Instant::now() + USER_WAIT;
                match &p.target {
                    Target::Stream(s) => Some(*s),
                    _ => None,
                }
            }
        };
        let Some(stream) = stream else { return self.fail(up, &refused) };
        let down = self.next_down.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let ask = Message::request(
            &down.to_string(),
            "elicitation/create",
            Some(&serde_json::json!({
                "mode": "url",
                "message": auth.message(),
                "url": auth.url,
                "elicitationId": auth.elicitation_id(),
            })),
        );
        {
            let mut st = self.lock();
            st.server_requests.insert(down, ServerRequest { up_id: "".into(), stream, member: MESH, mesh: Some(tx) });
            st.streams.push(stream, ask.bytes().clone());
        }
        // Every wait ends with the call too (cancelled by the client, expired, the session
        // closed): nothing is held for a call nobody waits for.
        let answer = tokio::select! {
            a = tokio::time::timeout(USER_WAIT, rx) => a.ok().and_then(Result::ok),
            () = self.call_ends(up) => {
                self.lock().server_requests.remove(&down);
                return;
            }
        };
        let accepted = answer.and_then(|m| m.result::<serde_json::Value>()).is_some_and(|r| r["action"] == "accept");
        if !accepted {
            self.lock().server_requests.remove(&down);
            tracing::info!(session = %self.id, route = %self.label, "the client did not take the authorization request in-band");
            return self.fail(up, &refused);
        }
        let done = match self.on_authorized.get() {
            Some(wait) => tokio::select! {
                done = wait(auth.elicitation_id().to_string()) => done,
                () = self.call_ends(up) => return,
            },
            None => false,
        };
        if !done {
            return self.fail(up, &refused);
        }
        let complete = Message::notification(
            "notifications/elicitation/complete",
            Some(&serde_json::json!({"elicitationId": auth.elicitation_id()})),
        );
        {
            let mut st = self.lock();
            st.streams.push(stream, complete.bytes().clone());
            if let Some(p) = st.pending.get_mut(&up) {
                p.deadline = Instant::now() + self.timeout;
            }
        }
        tracing::info!(session = %self.id, route = %self.label, up, "authorized in-band; the call is sent again");
        // As any send: bounded by the request's timeout, and a refused token ends the session.
        match tokio::time::timeout(self.timeout, link.send(msg)).await {
            Ok(Ok(())) => {}
            // Refused again (asked once per call): the same ending as a stateless upstream's
            // second refusal — credentials given up on a 401, a fresh link for a scope still short.
            Ok(Err(e)) => {
                let e = self.upstream_refused(0, e).await;
                self.fail(up, &e);
            }
            Err(_) => self.fail(up, &self.timed_out(&link)),
        }
    }

    /// Resolves when the call `up` is no longer pending (answered, cancelled, expired, or its
    /// session closed).
    async fn call_ends(&self, up: u64) {
        while self.lock().pending.contains_key(&up) {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
