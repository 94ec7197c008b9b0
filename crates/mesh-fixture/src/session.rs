//! Per-session state: whether it is a 2025-11-25 session, the client's logging level and its
//! resource subscriptions.
//!
//! Over HTTP every MCP session gets its own [`crate::Fixture`] (rmcp calls the factory once per
//! `initialize`), so this state never leaks between sessions; over stdio there is exactly one.

// The 2025-11-25 wire still has logging; rmcp deprecates it for 2026-07-28 (SEP-2577).
#![allow(deprecated)]

use crate::era::Wire;
use crate::input::wire_of;
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The `logger` name on every `notifications/message` the fixture sends.
const LOGGER: &str = "mesh-fixture";

#[derive(Debug, Default)]
pub(crate) struct Session {
    /// Set by `initialize`: this handler serves a 2025-11-25 session (over HTTP a modern request
    /// gets a handler of its own, so this never leaks onto one).
    legacy: AtomicBool,
    /// Minimum level set by `logging/setLevel`; `None` until the client sets one, and then every
    /// message is sent (the spec leaves the default to the server; sending all is what makes a
    /// missing relay of `notifications/message` visible in tests).
    log_level: Mutex<Option<LoggingLevel>>,
    /// URIs the client subscribed to with `resources/subscribe`.
    subscriptions: Mutex<HashSet<String>>,
}

impl Session {
    pub(crate) fn mark_legacy(&self) {
        self.legacy.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_legacy(&self) -> bool {
        self.legacy.load(Ordering::Relaxed)
    }

    pub(crate) fn set_log_level(&self, level: LoggingLevel) {
        *lock(&self.log_level) = Some(level);
    }

    /// Sends `notifications/message` unless the client's level filters it out. A send failure
    /// means the client went away; the tool still completes, so it is only logged.
    ///
    /// At 2026-07-28 the level is per request and opt-in: no `_meta` logLevel, no message (spec
    /// `server/utilities/logging.mdx`; `server-stateless` checks it), and the message goes on
    /// that request's own response stream.
    pub(crate) async fn log(&self, cx: &RequestContext<RoleServer>, level: LoggingLevel, message: &str) {
        let threshold = match wire_of(cx) {
            Wire::Legacy => *lock(&self.log_level),
            Wire::Modern => match cx.meta.log_level() {
                Some(requested) => Some(requested),
                None => return,
            },
        };
        if threshold.is_some_and(|t| severity(level) < severity(t)) {
            return;
        }
        let mut param = LoggingMessageNotificationParam::new(level, message.into());
        param.logger = Some(LOGGER.into());
        if let Err(e) = cx.peer.notify_logging_message(param).await {
            tracing::debug!(error = %e, "could not send notifications/message");
        }
    }

    pub(crate) fn subscribe(&self, uri: &str) {
        lock(&self.subscriptions).insert(uri.to_owned());
    }

    pub(crate) fn unsubscribe(&self, uri: &str) {
        lock(&self.subscriptions).remove(uri);
    }

    pub(crate) fn is_subscribed(&self, uri: &str) -> bool {
        lock(&self.subscriptions).contains(uri)
    }

    /// The URIs the client subscribed to, in order.
    pub(crate) fn subscribed(&self) -> Vec<String> {
        let mut uris: Vec<String> = lock(&self.subscriptions).iter().cloned().collect();
        uris.sort_unstable();
        uris
    }
}

/// RFC 5424 order, least severe first, as `logging/setLevel` defines it.
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// A poisoned lock only means another handler panicked mid-update of a plain value; the value is
/// still usable, and a fixture should keep answering rather than cascade the panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_follows_the_spec_order() {
        let order = [
            LoggingLevel::Debug,
            LoggingLevel::Info,
            LoggingLevel::Notice,
            LoggingLevel::Warning,
            LoggingLevel::Error,
            LoggingLevel::Critical,
            LoggingLevel::Alert,
            LoggingLevel::Emergency,
        ];
        assert!(order.windows(2).all(|w| severity(w[0]) < severity(w[1])));
    }
}
