//! What the mesh reports about every request it handles, for the audit trail.
//!
//! The relay (and the control plane, for REST and OAuth events) builds one [`CallRecord`] when a
//! request ends (reply, error, timeout, cancel) and hands it to an [`AuditSink`], which must not
//! block: the sink (`mesh-audit`) queues it and writes in batches off the request path. The
//! record and the sink live here, in the shared vocabulary, so that the reporters and the writer
//! agree on them without the writer depending on the relay.

use crate::Principal;
use std::borrow::Cow;
use std::sync::Arc;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A result (for tools: `isError` false or absent).
    Ok,
    /// A tool result with `isError: true`.
    ToolError,
    /// A JSON-RPC error from the upstream (or the management server).
    ProtocolError,
    /// Refused by policy.
    Denied,
    /// Refused by a rate limit.
    RateLimited,
    /// The upstream was unreachable, down, or answered garbage.
    UpstreamDown,
    /// The upstream did not answer in time.
    Timeout,
    /// The client cancelled it.
    Cancelled,
    /// The client went away (disconnected, or its session was closed) before the request ended:
    /// the reply, if any, reached nobody. The error text says how it ended upstream.
    ClientGone,
}

impl Outcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::ProtocolError => "protocol_error",
            Outcome::Denied => "denied",
            Outcome::RateLimited => "rate_limited",
            Outcome::UpstreamDown => "upstream_down",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::ClientGone => "client_gone",
        }
    }
}

/// Who sent a request, on which session and route: what every record of one session shares.
/// Built once per session and shared by `Arc`, so a call's record copies none of it.
#[derive(Debug)]
pub struct Origin {
    /// Who sent it.
    pub principal: Principal,
    /// The downstream session (empty outside MCP sessions, e.g. REST).
    pub session_id: String,
    /// `clientInfo.name` and `.version` from the session's initialize.
    pub client: Option<(String, String)>,
    /// `connection`, `gateway`, `management` or `rest`.
    pub route_kind: &'static str,
    /// The connection or gateway slug (or `management`, or the REST path).
    pub route: String,
}

/// One request through the mesh.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// When it arrived, ms since the epoch.
    pub time_ms: i64,
    /// Who sent it, where.
    pub origin: Arc<Origin>,
    /// The JSON-RPC method (static for the methods the spec defines: no allocation per call).
    pub method: Cow<'static, str>,
    /// The tool, prompt name or resource URI it addresses, if any.
    pub name: Option<String>,
    /// The request's `params.arguments` (tools, prompts) as raw JSON, not yet redacted or capped:
    /// the sink redacts secret-looking values and caps the size before storing.
    pub arguments: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The error message, for outcomes other than `Ok`.
    pub error: Option<String>,
    /// Time from arrival to the end, in microseconds.
    pub latency_us: u64,
    /// Request bytes.
    pub bytes_in: u64,
    /// Reply bytes (0 when there was none).
    pub bytes_out: u64,
    /// The client's request id, as raw JSON.
    pub request_id: Box<str>,
}

impl CallRecord {
    /// The name to count this request under in metrics and usage. A client may send any name,
    /// so only what bounds itself is kept:
    /// - a name the server answered as its own (a result, or a tool result with `isError`) and no
    ///   longer than [`MAX_COUNTED_NAME`] bytes (the spec's limit on tool names is 128);
    /// - [`REFUSED_NAME`] when the mesh or the server refused the request;
    /// - [`UNANSWERED_NAME`] when it timed out, was cancelled, lost its client or its upstream;
    /// - [`OTHER_NAME`] for a longer name.
    ///
    /// Those who count cap the distinct names again (a server may answer made-up names).
    pub fn counted_name(&self) -> Option<&str> {
        let name = self.name.as_deref()?;
        Some(match self.outcome {
            Outcome::Denied | Outcome::RateLimited | Outcome::ProtocolError => REFUSED_NAME,
            Outcome::Timeout | Outcome::Cancelled | Outcome::ClientGone | Outcome::UpstreamDown => UNANSWERED_NAME,
            Outcome::Ok | Outcome::ToolError if name.len() > MAX_COUNTED_NAME => OTHER_NAME,
            Outcome::Ok | Outcome::ToolError => name,
        })
    }

    /// The method to count this request under: the spec's (static in [`CallRecord::method`]),
    /// else `_OTHER` — a method a client made up, or a REST request's verb and path.
    pub fn counted_method(&self) -> &str {
        match &self.method {
            Cow::Borrowed(m) => m,
            Cow::Owned(_) => OTHER_METHOD,
        }
    }
}

/// Longest name [`CallRecord::counted_name`] keeps, in bytes.
pub const MAX_COUNTED_NAME: usize = 128;

/// What [`CallRecord::counted_name`] answers for a refused request that named something.
pub const REFUSED_NAME: &str = "(refused)";

/// What [`CallRecord::counted_name`] answers for a request that got no answer.
pub const UNANSWERED_NAME: &str = "(unanswered)";

/// What counters use for a name too long, or once their cap on distinct names is reached.
pub const OTHER_NAME: &str = "(other)";

/// What [`CallRecord::counted_method`] answers for a method outside the spec.
pub const OTHER_METHOD: &str = "_OTHER";

/// Receives call records. Implementations must return at once (queue, never write inline).
pub trait AuditSink: Send + Sync + 'static {
    /// Takes one record.
    fn record(&self, rec: CallRecord);

    /// A downstream session of `route_kind` ended after `lived` (for the session-duration
    /// metric; the audit trail itself records requests only).
    fn session_ended(&self, _route_kind: &'static str, _lived: std::time::Duration) {}

    /// The tracer requests are traced with, when tracing is on (off by default).
    fn tracer(&self) -> Option<&dyn crate::trace::Tracer> {
        None
    }
}

/// A sink that drops everything (tests, tools that need no audit).
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn record(&self, _rec: CallRecord) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, outcome: Outcome, method: Cow<'static, str>) -> CallRecord {
        CallRecord {
            time_ms: 0,
            origin: Arc::new(Origin {
                principal: crate::Principal {
                    user_id: "u".into(),
                    key_id: "k".into(),
                    role: crate::Role::Member,
                    ..crate::Principal::anonymous("o")
                },
                session_id: String::new(),
                client: None,
                route_kind: "connection",
                route: "r".into(),
            }),
            method,
            name: Some(name.into()),
            arguments: None,
            outcome,
            error: None,
            latency_us: 0,
            bytes_in: 0,
            bytes_out: 0,
            request_id: "1".into(),
        }
    }

    #[test]
    fn only_names_a_server_answered_and_short_ones_are_counted() {
        let m = || Cow::Borrowed("tools/call");
        assert_eq!(rec("echo", Outcome::Ok, m()).counted_name(), Some("echo"));
        assert_eq!(rec("echo", Outcome::ToolError, m()).counted_name(), Some("echo"));
        assert_eq!(rec("x", Outcome::Denied, m()).counted_name(), Some(REFUSED_NAME));
        assert_eq!(rec("x", Outcome::Timeout, m()).counted_name(), Some(UNANSWERED_NAME));
        assert_eq!(rec("x", Outcome::UpstreamDown, m()).counted_name(), Some(UNANSWERED_NAME));
        assert_eq!(rec(&"n".repeat(129), Outcome::Ok, m()).counted_name(), Some(OTHER_NAME));
        assert_eq!(rec("x", Outcome::Ok, Cow::Owned("made/up".into())).counted_method(), OTHER_METHOD);
        assert_eq!(rec("x", Outcome::Ok, m()).counted_method(), "tools/call");
    }
}
