//! `subscriptions/listen` (2026-07-28, spec `basic/patterns/subscriptions.mdx`): the process-wide
//! change feed behind the modern listen streams.
//!
//! rmcp does the protocol: it intersects the requested filter with what `server/discover`
//! advertises, sends `notifications/subscriptions/acknowledged` first, tags every notification
//! with the subscription id, refuses to send a kind the client did not ask for, and answers the
//! listen request with the final result when [`listen`] returns. The fixture only decides *when*
//! something changed: the two trigger tools announce a list change to every open stream (over HTTP
//! each request has its own handler, so the feed is shared by the whole process), and a stream
//! that watches `test://watched-resource` gets one `notifications/resources/updated` shortly after
//! it opens — the same as a legacy `resources/subscribe` does.

use crate::resources::{UPDATE_AFTER, WATCHED};
use rmcp::service::{SubscriptionContext, SubscriptionSendError};
use rmcp::ErrorData as McpError;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Something a listen stream may be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Tools,
    Prompts,
}

/// The process-wide feed of changes, and the token that ends every stream at shutdown.
#[derive(Debug)]
pub(crate) struct Hub {
    changes: broadcast::Sender<Change>,
    shutdown: CancellationToken,
}

impl Default for Hub {
    fn default() -> Self {
        Self { changes: broadcast::channel(64).0, shutdown: CancellationToken::new() }
    }
}

impl Hub {
    /// Announces `change` to every open stream; returns how many there are.
    pub(crate) fn announce(&self, change: Change) -> usize {
        self.changes.send(change).unwrap_or(0)
    }

    /// Ends every listen stream gracefully (with the final `SubscriptionsListenResult`).
    pub(crate) fn shut_down(&self) {
        self.shutdown.cancel();
    }
}

/// Runs one listen stream until the client goes away or the fixture shuts down.
pub(crate) async fn listen(hub: &Hub, subscription: SubscriptionContext) -> Result<(), McpError> {
    let mut changes = hub.changes.subscribe();
    let sink = subscription.sink().clone();
    let watches =
        subscription.accepted().resource_subscriptions.as_ref().is_some_and(|uris| uris.iter().any(|u| u == WATCHED));
    if watches {
        let sink = sink.clone();
        tokio::spawn(async move {
            tokio::time::sleep(UPDATE_AFTER).await;
            report(sink.notify_resource_updated(WATCHED).await);
        });
    }
    loop {
        tokio::select! {
            () = subscription.cancelled() => return Ok(()),
            () = hub.shutdown.cancelled() => return Ok(()),
            change = changes.recv() => match change {
                Ok(Change::Tools) => report(sink.notify_tool_list_changed().await),
                Ok(Change::Prompts) => report(sink.notify_prompt_list_changed().await),
                // Missed some: a list-changed notification says nothing about how many, so the
                // next one covers them.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

/// A kind the client did not ask for is refused by rmcp, which is exactly the filter the spec
/// wants; anything else means the stream is going away, which the loop notices on its own.
fn report(sent: Result<(), SubscriptionSendError>) {
    match sent {
        Ok(()) | Err(SubscriptionSendError::NotificationNotAccepted(_)) => {}
        Err(e) => tracing::debug!(error = %e, "could not send on a listen stream"),
    }
}
