//! The audit side of a request: what is captured when it starts, and its outcome when it ends.

use crate::RelayError;
use mesh_core::audit::Outcome;
use mesh_protocol::{Kind, Message};
use std::borrow::Cow;
use std::time::Duration;

/// The spec's request methods, most frequent first: a record names them without allocating.
const METHODS: &[&str] = &[
    "tools/call",
    "tools/list",
    "resources/read",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
    "completion/complete",
    "ping",
    "initialize",
    "resources/subscribe",
    "resources/unsubscribe",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
];

/// The method as audit records name it: the spec's methods without an allocation.
pub(crate) fn method_name(m: &str) -> Cow<'static, str> {
    match METHODS.iter().find(|k| **k == m) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(m.to_string()),
    }
}

/// What a request's audit record needs, captured when it arrives.
pub(super) struct Call {
    pub time_ms: i64,
    pub started: std::time::Instant,
    pub method: Cow<'static, str>,
    pub name: Option<String>,
    pub arguments: Option<String>,
    pub bytes_in: u64,
    /// `params._meta.progressToken` as raw JSON, read in the same pass (the session routes
    /// progress notifications by it); taken by `forward`.
    pub progress: Option<String>,
    /// The request's server span, when tracing is on; ended with the audit record.
    pub span: Option<Box<dyn mesh_core::trace::CallSpan>>,
    /// The span of its upstream leg, once forwarded.
    pub up_span: Option<Box<dyn mesh_core::trace::CallSpan>>,
    /// The JSON-RPC error code the client was answered with, if it was an error (for its span).
    pub rpc_code: Option<i64>,
    /// For a task's request through a virtual MCP: the id the member knows the task by, and
    /// the virtual MCP's, by which its reply names it again (`Gateway::tasks_named`).
    pub task: Option<Box<(String, String)>>,
}

/// What the ingress already read of a request's `params` for its audit record — the stateless
/// ingress scans them for its envelope — so that [`Call::of`] need not read them again: the
/// request's name, its arguments' JSON text and its progress token's, as [`Audited::read`]
/// reads them from the request the session receives (whose progress token is the mesh's own).
#[derive(Debug, PartialEq, Eq)]
pub struct Audited {
    /// `params.name`, or for `resources/*` `params.uri` (each falling back on the other).
    pub name: Option<String>,
    /// `params.arguments`, its JSON text.
    pub arguments: Option<String>,
    /// `params._meta.progressToken`, its JSON text.
    pub progress: Option<String>,
}

impl Call {
    /// What the record of `msg` needs, reading its `params` unless `audited` already did.
    pub fn of(msg: &Message, audited: Option<Audited>) -> Call {
        let a = audited.unwrap_or_else(|| Audited::read(msg));
        Call {
            time_ms: mesh_core::id::now_ms(),
            started: std::time::Instant::now(),
            method: method_name(msg.method().unwrap_or("")),
            name: a.name,
            arguments: a.arguments,
            bytes_in: msg.bytes().len() as u64,
            progress: a.progress,
            span: None,
            up_span: None,
            rpc_code: None,
            task: None,
        }
    }
}

impl Audited {
    /// What the audit record of `msg` names, read from its `params`.
    pub fn read(msg: &Message) -> Audited {
        #[derive(serde::Deserialize)]
        struct Params<'a> {
            #[serde(borrow)]
            name: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            uri: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            arguments: Option<&'a serde_json::value::RawValue>,
            // Kept raw: a malformed `_meta` must not make the name unreadable (that refuses
            // governed requests), only the token absent, as `Message::progress_token` reads it.
            #[serde(borrow, rename = "_meta")]
            meta: Option<&'a serde_json::value::RawValue>,
        }
        let method = msg.method().unwrap_or("");
        let p: Option<Params<'_>> = msg.params();
        // `None` when the params do not read as this shape (a duplicate key, a number for a
        // name): access control refuses a governed request without a name (`admit_call`).
        let progress = match &p {
            Some(p) => p.meta.and_then(mesh_protocol::message::progress_token_in),
            // Unreadable as this shape (a duplicate name): the token may still be readable.
            None => msg.progress_token(),
        };
        let (name, arguments) = match p {
            // A resource is what its `uri` says, whatever else the request carries.
            Some(p) if mesh_protocol::message::named_by_uri(method) => {
                (p.uri.or(p.name).map(|n| n.into_owned()), p.arguments.map(|a| a.get().to_string()))
            }
            Some(p) => (p.name.or(p.uri).map(|n| n.into_owned()), p.arguments.map(|a| a.get().to_string())),
            None => (None, None),
        };
        Audited { name, arguments, progress }
    }
}

/// How a request ended: its audit outcome and error text, and whether its reply refuses the call
/// for a rate limit — decided here, once, so the ingress never reads the reply to find out.
pub(super) struct Ending {
    pub outcome: Outcome,
    pub error: Option<String>,
    /// For a rate-limit refusal: how long until a call would be accepted.
    pub retry_after: Option<Duration>,
    /// The JSON-RPC error code of the reply, when it is an error.
    pub code: Option<i64>,
}

impl Ending {
    /// An ending that refuses nothing for a rate limit.
    pub fn new(outcome: Outcome, error: Option<String>) -> Ending {
        Ending { outcome, error, retry_after: None, code: None }
    }

    /// A request ended by the mesh's own error.
    pub fn of_error(e: &RelayError) -> Ending {
        Ending {
            outcome: outcome_of(e),
            error: Some(e.to_string()),
            retry_after: e.retry_after(),
            code: Some(e.rpc_code()),
        }
    }

    /// A request ended by `reply`: tool results are inspected for `isError`; the mesh's own
    /// upstream error codes are told apart from the upstream's protocol errors. A rate-limit
    /// refusal (-31029: the mesh's own, or an upstream's — another mesh in front of it) keeps
    /// its `data.retryAfterMs` (1 s without one).
    pub fn of_reply(call: &Call, reply: &Message) -> Ending {
        #[derive(serde::Deserialize)]
        struct ToolError {
            #[serde(default)]
            content: Vec<Block>,
        }
        #[derive(serde::Deserialize)]
        struct Block {
            text: Option<String>,
        }
        match reply.kind() {
            Kind::Error => match reply.error_object() {
                Some(e) => {
                    let outcome = match e.code {
                        mesh_protocol::codes::UPSTREAM_UNAVAILABLE | mesh_protocol::codes::UPSTREAM_PROTOCOL => {
                            Outcome::UpstreamDown
                        }
                        mesh_protocol::codes::UPSTREAM_TIMEOUT => Outcome::Timeout,
                        mesh_protocol::codes::RATE_LIMITED => Outcome::RateLimited,
                        _ => Outcome::ProtocolError,
                    };
                    let retry_after = (outcome == Outcome::RateLimited).then(|| {
                        let ms =
                            e.data.as_ref().and_then(|d| d.get("retryAfterMs")).and_then(serde_json::Value::as_u64);
                        Duration::from_millis(ms.unwrap_or(1000))
                    });
                    Ending { outcome, error: Some(e.message), retry_after, code: Some(e.code) }
                }
                None => Ending::new(Outcome::ProtocolError, None),
            },
            // The flag was read with the rest of the reply (`Message::parse`); only a failed call
            // pays for reading its content: the tool's own words are the error text (capped by
            // the writer).
            _ if &*call.method == "tools/call" && reply.result_is_error() == Some(true) => {
                let content = reply.result::<ToolError>().map(|e| e.content).unwrap_or_default();
                let text: Vec<String> = content.into_iter().filter_map(|b| b.text).take(4).collect();
                Ending::new(Outcome::ToolError, (!text.is_empty()).then(|| text.join("\n")))
            }
            _ => Ending::new(Outcome::Ok, None),
        }
    }
}

/// The audit outcome of a relay error.
pub(crate) fn outcome_of(e: &RelayError) -> Outcome {
    match e {
        RelayError::UpstreamTimeout(..) => Outcome::Timeout,
        RelayError::Unauthorized | RelayError::Forbidden(_) | RelayError::Hidden(_) => Outcome::Denied,
        RelayError::RateLimited { .. } => Outcome::RateLimited,
        RelayError::UpstreamUnavailable(_) | RelayError::UpstreamFailed { .. } | RelayError::UpstreamProtocol(_) => {
            Outcome::UpstreamDown
        }
        _ => Outcome::ProtocolError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &'static str) -> Message {
        Message::parse(bytes::Bytes::from_static(s.as_bytes())).expect("message")
    }

    #[test]
    fn a_rate_limit_refusal_carries_its_wait_whoever_sent_it() {
        let call = Call::of(&msg(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#), None);
        let own = RelayError::RateLimited { limit: "key limit".into(), retry_after: Duration::from_millis(1500) };
        assert_eq!(Ending::of_error(&own).retry_after, Some(Duration::from_millis(1500)));
        // An upstream's refusal (another mesh in front of it) is the same refusal.
        let upstream = msg(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-31029,"message":"slow down","data":{"retryAfterMs":2500}}}"#,
        );
        let end = Ending::of_reply(&call, &upstream);
        assert_eq!((end.outcome, end.retry_after), (Outcome::RateLimited, Some(Duration::from_millis(2500))));
        let bare = msg(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-31029,"message":"slow down"}}"#);
        assert_eq!(Ending::of_reply(&call, &bare).retry_after, Some(Duration::from_secs(1)));
        let other = msg(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool: t"}}"#);
        assert_eq!(Ending::of_reply(&call, &other).retry_after, None);
        assert_eq!(Ending::of_error(&RelayError::Hidden("Unknown tool: t".into())).retry_after, None);
    }
}
