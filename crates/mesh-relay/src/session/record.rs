//! The audit side of a request: what is captured when it starts, and its outcome when it ends.

use crate::audit::Outcome;
use crate::RelayError;
use mesh_protocol::{Kind, Message};
use std::borrow::Cow;

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

fn method_name(m: &str) -> Cow<'static, str> {
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
}

impl Call {
    pub fn of(msg: &Message) -> Call {
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
            Some(p) if method.starts_with("resources/") => {
                (p.uri.or(p.name).map(|n| n.into_owned()), p.arguments.map(|a| a.get().to_string()))
            }
            Some(p) => (p.name.or(p.uri).map(|n| n.into_owned()), p.arguments.map(|a| a.get().to_string())),
            None => (None, None),
        };
        Call {
            time_ms: mesh_core::id::now_ms(),
            started: std::time::Instant::now(),
            method: method_name(method),
            name,
            arguments,
            bytes_in: msg.bytes().len() as u64,
            progress,
        }
    }
}

/// The audit outcome of a relay error.
pub(super) fn outcome_of(e: &RelayError) -> Outcome {
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

/// The audit outcome of a reply: tool results are inspected for `isError`; the mesh's own
/// upstream error codes are told apart from the upstream's protocol errors.
pub(super) fn reply_outcome(call: &Call, reply: &Message) -> (Outcome, Option<String>) {
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
                (outcome, Some(e.message))
            }
            None => (Outcome::ProtocolError, None),
        },
        // The flag was read with the rest of the reply (`Message::parse`); only a failed call pays
        // for reading its content: the tool's own words are the error text (capped by the writer).
        _ if &*call.method == "tools/call" && reply.result_is_error() == Some(true) => {
            let content = reply.result::<ToolError>().map(|e| e.content).unwrap_or_default();
            let text: Vec<String> = content.into_iter().filter_map(|b| b.text).take(4).collect();
            (Outcome::ToolError, (!text.is_empty()).then(|| text.join("\n")))
        }
        _ => (Outcome::Ok, None),
    }
}
