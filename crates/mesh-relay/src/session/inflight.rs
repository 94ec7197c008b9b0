//! Requests whose client is gone: every request that reached an upstream still ends in exactly
//! one audit record, and none is left pending for ever (a pending request keeps its session from
//! being reaped).
//!
//! Three ways a client leaves a request behind, and what happens:
//! - It disconnects while the request is being *sent* (for an HTTP upstream the send carries
//!   the reply, read by the request's own task, so its future is dropped with the client's
//!   connection): the [`Sending`] guard ends the request at once — the reply can no longer be
//!   read — records `client_gone`, and tells the upstream it may stop (`notifications/cancelled`).
//!   The guard is a value on the stack: no task or timer per call; work happens only on drop.
//! - It disconnects after the send, while waiting for the reply: the request stays pending
//!   until the reply or the deadline; `finish` then sees that no client took the reply and
//!   records `client_gone`, with how the upstream answered in the error text.
//! - Its session is closed (DELETE, expiry, shutdown, a gateway removed): `Session::close`
//!   ends what is still pending, recorded `client_gone` too.

use super::deadline::cancel_upstream;
use super::record::Ending;
use super::{Session, Target};
use crate::RelayError;
use mesh_core::audit::Outcome;

/// Ends request `up` if the future sending it is dropped before the send finished.
pub(super) struct Sending<'a> {
    session: &'a Session,
    up: u64,
    armed: bool,
}

impl<'a> Sending<'a> {
    pub fn new(session: &'a Session, up: u64) -> Sending<'a> {
        Sending { session, up, armed: true }
    }

    /// The send finished (either way): its caller goes on as before.
    pub fn done(mut self) {
        self.armed = false;
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.session.abandoned(self.up);
        }
    }
}

/// The audit outcome and error of a request whose reply reached no client: `client_gone`,
/// saying how the upstream's side ended.
pub(super) fn client_gone(outcome: Outcome, error: Option<String>) -> (Outcome, Option<String>) {
    let upstream = match error {
        Some(e) => format!("{}: {e}", outcome.as_str()),
        None => outcome.as_str().to_string(),
    };
    (Outcome::ClientGone, Some(format!("the client was gone when the request ended (upstream: {upstream})")))
}

impl Session {
    /// The send of request `up` was dropped: its client disconnected.
    fn abandoned(&self, up: u64) {
        // Already answered (a transport may deliver the reply before its send returns).
        let Some(p) = self.take_pending(up) else { return };
        tracing::info!(session = %self.id, route = %self.label, up, "the client left while its request was being sent upstream");
        let (member, cancellable) = (p.member, p.cancellable);
        if let Target::Stream(stream) = p.target {
            self.lock().streams.end(stream);
        }
        if let Some(c) = p.call {
            let error = "the client disconnected before the upstream answered; the mesh stopped waiting \
                         (the upstream may have run the request)";
            self.audit_end(c, p.down_id, Outcome::ClientGone, Some(error.into()), 0);
        }
        // Nobody will read the answer: let the upstream stop working on it. A task only here,
        // on the rare path; a runtime shutting down has nobody to tell.
        if let (true, Ok(link), Ok(rt)) = (cancellable, self.link(member), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move { cancel_upstream(&link, up).await });
        }
    }

    /// Ends every request still pending: the session is closing, nobody can get their replies.
    pub(super) fn end_pending(&self) {
        let ups: Vec<u64> = self.lock().pending.keys().copied().collect();
        let err = RelayError::UpstreamUnavailable("the session was closed before the upstream answered".into());
        for up in ups {
            let Some(p) = self.take_pending(up) else { continue };
            let out = err.to_message(Some(&p.down_id));
            self.finish_as(p, out, |_| Ending::new(Outcome::ClientGone, Some(err.to_string())), true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_gone_keeps_the_upstream_side() {
        let (o, e) = client_gone(Outcome::Ok, None);
        assert_eq!(
            (o, e.as_deref()),
            (Outcome::ClientGone, Some("the client was gone when the request ended (upstream: ok)"))
        );
        let (_, e) = client_gone(Outcome::Timeout, Some("upstream did not answer within 1s".into()));
        assert_eq!(
            e.as_deref(),
            Some("the client was gone when the request ended (upstream: timeout: upstream did not answer within 1s)")
        );
    }
}
