//! Deadlines of forwarded requests: one timer per request still waiting, moved when progress
//! extends it, and on expiry an error for the client and a cancellation for the upstream.

use super::Session;
use crate::upstream::Link;
use crate::RelayError;
use mesh_protocol::Message;
use tokio::time::Instant;

impl Session {
    pub(super) fn watch_deadline(&self, up: u64, first: Instant) -> tokio::task::AbortHandle {
        let me = self.me.clone();
        let task = tokio::spawn(async move {
            let mut deadline = first;
            loop {
                tokio::time::sleep_until(deadline).await;
                let Some(s) = me.upgrade() else { return };
                let current = s.lock().pending.get(&up).map(|p| p.deadline);
                match current {
                    None => return,
                    Some(d) if d > Instant::now() => deadline = d,
                    Some(_) => {
                        s.expire(up).await;
                        return;
                    }
                }
            }
        });
        task.abort_handle()
    }

    /// The error for a send still unfinished at the request's deadline (the send is dropped,
    /// which closes its connection); the upstream is told, as when a reply is late.
    pub(super) fn send_timed_out(&self, link: &Link, up: u64) -> RelayError {
        tracing::warn!(session = %self.id, route = %self.label, up, "upstream request timed out before it was answered");
        let cancellable = self.lock().pending.get(&up).is_some_and(|p| p.cancellable);
        if cancellable {
            let link = link.clone();
            tokio::spawn(async move { cancel_upstream(&link, up).await });
        }
        self.timed_out(link)
    }

    /// The error for a request the upstream did not answer in time, with what the link noticed.
    pub(super) fn timed_out(&self, link: &Link) -> RelayError {
        let note = link.diagnostics().map(|d| format!("; {d}")).unwrap_or_default();
        RelayError::UpstreamTimeout(self.timeout, note)
    }

    pub(super) async fn expire(&self, up: u64) {
        // Called from the timer task itself: detach its handle first, or ending the request
        // would abort this very task before it tells the upstream.
        let (member, cancellable) = match self.lock().pending.get_mut(&up) {
            Some(p) => {
                p.timer = None;
                (p.member, p.cancellable)
            }
            None => return,
        };
        let Ok(link) = self.link(member) else { return };
        tracing::warn!(session = %self.id, route = %self.label, up, "upstream request timed out");
        self.fail(up, &self.timed_out(&link));
        if cancellable {
            cancel_upstream(&link, up).await;
        }
    }
}

/// Tells the upstream that the mesh gave up waiting for its request `up` (best effort).
pub(super) async fn cancel_upstream(link: &Link, up: u64) {
    let params = serde_json::json!({"requestId": up, "reason": "timed out in MCP Mesh"});
    let _ = link.send(Message::notification("notifications/cancelled", Some(&params))).await;
}
