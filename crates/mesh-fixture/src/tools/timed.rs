//! Tools that take time and talk while they run: logging, progress, and the reconnection tool.

// The 2025-11-25 wire still has logging; rmcp deprecates it for 2026-07-28 (SEP-2577).
#![allow(deprecated)]

use super::text_result;
use crate::session::Session;
use rmcp::model::{LoggingLevel, ProgressNotificationParam};
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use serde_json::Value;
use std::time::Duration;

/// Pause between the messages of one tool run. The scenarios ask for ~50 ms so that a client (or
/// a relay) must handle several notifications arriving *during* the call, not batched at its end.
const STEP: Duration = Duration::from_millis(50);

/// How long `test_reconnection` works after its stream was closed. Over HTTP the response is held
/// by `crate::polling` until the client resumes, so this only has to outlast the cut itself.
const RECONNECTION_WORK: Duration = Duration::from_millis(300);

pub(super) async fn with_logging(session: &Session, cx: &RequestContext<RoleServer>) -> Value {
    session.log(cx, LoggingLevel::Info, "Tool execution started").await;
    tokio::time::sleep(STEP).await;
    session.log(cx, LoggingLevel::Info, "Tool processing data").await;
    tokio::time::sleep(STEP).await;
    session.log(cx, LoggingLevel::Info, "Tool execution completed").await;
    text_result("Tool with logging executed successfully")
}

/// Progress 0, 50, 100 of 100 on the caller's token. Without a token there is nowhere to report
/// to (spec: progress is opt-in per request), so the tool just takes the same time.
pub(super) async fn with_progress(cx: &RequestContext<RoleServer>) -> Value {
    let token = cx.meta.get_progress_token();
    for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(STEP).await;
        }
        if let Some(token) = &token {
            let param = ProgressNotificationParam::new(token.clone(), progress).with_total(100.0);
            if let Err(e) = cx.peer.notify_progress(param).await {
                tracing::debug!(error = %e, "could not send notifications/progress");
            }
        }
    }
    text_result("Tool with progress executed successfully")
}

pub(super) async fn reconnection() -> Value {
    tokio::time::sleep(RECONNECTION_WORK).await;
    text_result("Reconnection test completed: the response arrived after the stream was closed")
}
