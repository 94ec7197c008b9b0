//! What an upstream says, and where it goes: replies to their request's stream, server requests
//! and notifications to the stream of the request they belong to (see the module docs of
//! `session`), and on a pooled session only ever to the call that could be asking.

use super::record::Ending;
use super::{streams, Pending, ServerRequest, Session, State, Target};
use crate::upstream::Inbound;
use crate::RelayError;
use mesh_protocol::{Kind, Message};
use std::sync::atomic::Ordering;
use tokio::time::Instant;

impl Session {
    pub(super) fn on_inbound(&self, member: usize, inbound: Inbound) {
        match inbound {
            Inbound::Message { msg, related } => match msg.kind() {
                Kind::Response | Kind::Error => self.on_reply(msg),
                Kind::Request => self.on_server_request(member, msg, related.as_deref()),
                Kind::Notification => {
                    let msg = match &self.gateway {
                        Some(gw) => match gw.on_notification(self, member, msg) {
                            Some(m) => m,
                            None => return,
                        },
                        None => msg,
                    };
                    if !self.may_hear(&msg) {
                        return;
                    }
                    self.on_notification(member, msg, related.as_deref())
                }
            },
            Inbound::StreamLost { request, reason } => {
                if let Ok(up) = request.parse::<u64>() {
                    self.fail(up, &RelayError::UpstreamUnavailable(reason));
                }
            }
            Inbound::Refused { request, error, again } => {
                if let Ok(up) = request.parse::<u64>() {
                    self.refused(member, up, error, again);
                }
            }
            Inbound::Down { reason } => {
                let ups: Vec<u64> = {
                    let mut st = self.lock();
                    withdraw_questions(&mut st, |r| r.member == member);
                    st.pending.iter().filter(|(_, p)| p.member == member).map(|(k, _)| *k).collect()
                };
                let err = RelayError::UpstreamUnavailable(reason.clone());
                for up in ups {
                    self.fail(up, &err);
                }
                if let Some(gw) = &self.gateway {
                    gw.member_down(self, member, &reason);
                }
            }
            Inbound::Up => {
                if let Some(gw) = &self.gateway {
                    gw.member_up(self, member);
                }
            }
        }
    }

    /// Ends the call `up`, which the upstream of `member` refused (`Inbound::Refused`), as a
    /// failed send would: refused credentials are given up first, and an insufficient scope
    /// becomes the user's authorization request — asked in-band of a client that shows URLs,
    /// with `again` (the request as it was sent) sent once more when the user has authorized,
    /// as `Session::forward_traced` does for a failed send. Both are asynchronous; everything
    /// else ends the call at once.
    fn refused(&self, member: usize, up: u64, error: RelayError, again: Option<Message>) {
        let unauthorized = matches!(error, RelayError::UpstreamFailed { cause: crate::Cause::Status(401), .. });
        let scope = matches!(error, RelayError::InsufficientScope { .. });
        let me = self.me.upgrade().filter(|_| unauthorized || scope);
        let Some(me) = me else { return self.fail(up, &error) };
        tokio::spawn(async move {
            let error = me.upstream_refused(member, error).await;
            if let (true, RelayError::AuthorizationRequired(links), Some(again)) =
                (me.asks_by_url(&error), &error, again)
            {
                if let Ok(link) = me.link(member) {
                    let auth = links[0].clone();
                    return me.elicit_then_retry(up, link, again, auth).await;
                }
            }
            me.fail(up, &error);
        });
    }

    /// Whether the client may hear `msg`, a notification (resource URIs as the client sees
    /// them): the update of a resource the rules hide now is dropped, though the subscription was
    /// allowed when it was made. Everything else passes.
    fn may_hear(&self, msg: &Message) -> bool {
        #[derive(serde::Deserialize)]
        struct Updated<'a> {
            #[serde(borrow)]
            uri: std::borrow::Cow<'a, str>,
        }
        if msg.method() != Some("notifications/resources/updated") {
            return true;
        }
        // An update whose resource cannot be read is not one the rules can be asked about.
        let Some(updated) = msg.params::<Updated<'_>>() else { return false };
        let heard = self.may_use(mesh_core::policy::ItemKind::Resource, &updated.uri);
        if !heard {
            tracing::debug!(session = %self.id, route = %self.label, "an update of a resource policy now hides; dropped");
        }
        heard
    }

    fn on_reply(&self, msg: Message) {
        let Some(up) = msg.id().and_then(|i| i.parse::<u64>().ok()) else {
            tracing::warn!(session = %self.id, route = %self.label, "upstream sent a reply without a usable id; dropped");
            return;
        };
        let Some(p) = self.take_pending(up) else {
            tracing::debug!(session = %self.id, up, "reply to a request no longer pending (timed out or cancelled)");
            return;
        };
        let out = match p.target {
            // A pooled session's calls are followed by the stateless ingress, which writes the
            // client's id in the same copy that makes the reply stateless
            // (`modern::completed_as`): one copy of every reply instead of two.
            Target::Stream(_) if self.is_pooled() => msg.clone(),
            _ => msg.with_id(&p.down_id),
        };
        self.finish(p, out, |c| Ending::of_reply(c, &msg));
    }

    /// On a pooled session, the stream of the call an upstream request (`asking`) or log line of
    /// `member` belongs to: the one it names, else the only call of that member that could be
    /// asking. Several could: the newest for a key's own calls (all of them its own), none for
    /// anonymous callers (different people share that principal, and one must never see
    /// another's questions).
    fn pooled_owner(&self, st: &State, member: usize, related: Option<&str>, asking: bool) -> Option<u64> {
        let named = related.and_then(|r| r.parse::<u64>().ok()).and_then(|up| st.pending.get(&up));
        if let Some(Target::Stream(s)) = named.filter(|p| p.member == member).map(|p| &p.target) {
            return Some(*s);
        }
        let mut candidates = askers(st, member, asking);
        let first = candidates.next();
        match (first, candidates.max_by_key(|(up, _)| *up)) {
            (Some((_, s)), None) => Some(s),
            (Some(a), Some(b)) if !self.principal.is_anonymous() => Some(if a.0 > b.0 { a.1 } else { b.1 }),
            _ => None,
        }
    }

    fn on_server_request(&self, member: usize, msg: Message, related: Option<&str>) {
        let down = self.next_down.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        let mut stream = target_stream(&st, related);
        let owner = if self.is_pooled() { self.pooled_owner(&st, member, related, true) } else { Some(stream) };
        if let Some(s) = owner {
            stream = s;
        }
        if self.is_pooled() && (owner.is_none() || stream == streams::STANDALONE) {
            // A stateless client is only ever asked within a call (as an input-required result),
            // and no call could be told to be the one asking.
            drop(st);
            let no = Message::error(
                msg.id(),
                mesh_protocol::codes::METHOD_NOT_FOUND,
                "the client cannot be asked outside a call",
                None,
            );
            if let Ok(link) = self.link(member) {
                tokio::spawn(async move { link.send(no).await });
            }
            return;
        }
        let up_id: Box<str> = msg.id().unwrap_or("null").into();
        st.server_requests.insert(down, ServerRequest { up_id, stream, member, mesh: None });
        let out = msg.with_id(&down.to_string());
        st.streams.push(stream, out.bytes().clone());
    }

    fn on_notification(&self, member: usize, msg: Message, related: Option<&str>) {
        let mut st = self.lock();
        match msg.method() {
            Some("notifications/progress") => {
                let owner = msg.progress_notification_token().and_then(|t| st.progress.get(&t).copied());
                if let Some(p) = owner.and_then(|up| st.pending.get_mut(&up)) {
                    // Progress shows the upstream is alive: the request's timeout starts over.
                    p.deadline = Instant::now() + self.timeout;
                    if let Target::Stream(stream) = p.target {
                        st.streams.push(stream, msg.bytes().clone());
                        return;
                    }
                }
            }
            Some("notifications/cancelled") => {
                // The upstream withdrew one of its own requests to the client: map its id.
                let Some(target) = msg.cancelled_request_id() else { return };
                let found = st
                    .server_requests
                    .iter()
                    .find(|(_, r)| *r.up_id == target && r.member == member)
                    .map(|(d, r)| (*d, r.stream));
                let Some((down, stream)) = found else { return };
                st.server_requests.remove(&down);
                let mut params: serde_json::Value = msg.params().unwrap_or_else(|| serde_json::json!({}));
                params["requestId"] = serde_json::json!(down);
                let out = Message::notification("notifications/cancelled", Some(&params));
                st.streams.push(stream, out.bytes().clone());
                return;
            }
            Some("notifications/message") if self.is_pooled() => {
                if let Some(stream) = self.pooled_owner(&st, member, related, false) {
                    st.streams.push(stream, msg.bytes().clone());
                }
                return;
            }
            Some("notifications/message") => {}
            // Stateless requests have no session for list changes and resource updates to ride
            // on: they go to `subscriptions/listen`, which reads the standalone stream.
            _ if self.is_pooled() => {
                st.streams.push(streams::STANDALONE, msg.bytes().clone());
                return;
            }
            _ => {}
        }
        let stream = target_stream(&st, related);
        st.streams.push(stream, msg.bytes().clone());
    }
}

/// Withdraws from the client the questions (server requests) of `st` that `which` picks: their
/// call is ending, or the upstream that asked went away, so no answer will be used. Each is
/// forgotten and its stream carries `notifications/cancelled`, so that a dialog the client shows
/// for it closes (on the call's own stream, ahead of the call's end).
///
/// Returns the upstream's own questions among them (not the mesh's), for a caller that answers
/// them to the upstream as well.
pub(super) fn withdraw_questions(st: &mut State, which: impl Fn(&ServerRequest) -> bool) -> Vec<Asked> {
    if st.server_requests.is_empty() {
        return Vec::new();
    }
    let gone: Vec<u64> = st.server_requests.iter().filter(|(_, r)| which(r)).map(|(down, _)| *down).collect();
    let mut upstreams = Vec::new();
    for down in gone {
        let Some(r) = st.server_requests.remove(&down) else { continue };
        let params = serde_json::json!({"requestId": down, "reason": "the request it was asked for has ended"});
        st.streams.push(r.stream, Message::notification("notifications/cancelled", Some(&params)).bytes().clone());
        if r.mesh.is_none() {
            upstreams.push((r.member, r.up_id));
        }
    }
    upstreams
}

/// An upstream's question to the client: the member that asked, and its id there.
pub(super) type Asked = (usize, Box<str>);

/// The calls of `st` that could be the one a message of `member` (a virtual MCP's member, or the
/// one upstream) is about: each call in flight at that member (for a question, one a stateless
/// client can be asked during: the revision's input-required results are for `tools/call`,
/// `prompts/get` and `resources/read` only), less those waiting on a question of their own
/// (their upstream handler is blocked on it). Another member's call never is: its answer would
/// go to the wrong upstream.
fn askers(st: &State, member: usize, asking: bool) -> impl Iterator<Item = (u64, u64)> + '_ {
    let askable = move |p: &Pending| {
        p.member == member
            && (!asking || p.call.as_ref().is_some_and(|c| mesh_protocol::modern::MAY_NEED_INPUT.contains(&&*c.method)))
    };
    st.pending.iter().filter_map(move |(up, p)| match p.target {
        Target::Stream(s) if askable(p) && !st.server_requests.values().any(|r| r.stream == s) => Some((*up, s)),
        _ => None,
    })
}

pub(super) fn target_stream(st: &State, related: Option<&str>) -> u64 {
    let stream_of = |p: &Pending| match p.target {
        Target::Stream(s) => Some(s),
        Target::Internal(_) => None,
    };
    if let Some(s) = related.and_then(|r| r.parse::<u64>().ok()).and_then(|up| st.pending.get(&up)).and_then(stream_of)
    {
        return s;
    }
    st.pending
        .iter()
        .filter_map(|(up, p)| stream_of(p).map(|s| (*up, s)))
        .max_by_key(|(up, _)| *up)
        .map(|(_, s)| s)
        .unwrap_or(streams::STANDALONE)
}
