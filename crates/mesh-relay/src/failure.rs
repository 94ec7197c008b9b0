//! What a connection test may say about a failure: a kind from a closed set and a message the
//! mesh wrote, never the upstream's own bytes.
//!
//! Why: `CONNECTION_TEST` lets an organisation's admin make the mesh connect to an address of
//! their choosing. If its answer carried what the other side said (an HTML page, a banner, a
//! parse error quoting the reply), the mesh would be a port scanner with readable output. The
//! kind is decided on the typed error ([`Cause`], the `RelayError` variant), never by reading a
//! message; the whole error goes to the log, where operators see it.

use crate::client::ClientError;
use crate::{Cause, RelayError};
use serde_json::{json, Value};

/// A failure, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing accepts connections there.
    Refused,
    /// No answer in time (connecting, or to initialize).
    Timeout,
    /// The TLS handshake failed.
    Tls,
    /// The host name does not resolve.
    Dns,
    /// The address is internal and the connection may only reach public ones.
    Blocked,
    /// The upstream answered with this HTTP status.
    HttpStatus(u16),
    /// The upstream answered, but not with MCP.
    NotMcp,
    /// The upstream answered with this JSON-RPC error code.
    Rpc(i64),
    /// The upstream could not be used, for another reason (a stdio child that would not start,
    /// a connection closed mid-answer).
    Unavailable,
    /// The mesh itself failed (see its log).
    Internal,
}

impl Failure {
    /// The class of `e`.
    pub fn of(e: &ClientError) -> Failure {
        match e {
            ClientError::Rpc { code, .. } => Failure::Rpc(*code),
            ClientError::Relay(e) => Failure::of_relay(e),
        }
    }

    /// The class of a relay error.
    pub fn of_relay(e: &RelayError) -> Failure {
        match e {
            RelayError::UpstreamFailed { cause, .. } => match cause {
                Cause::Refused => Failure::Refused,
                Cause::Timeout => Failure::Timeout,
                Cause::Tls => Failure::Tls,
                Cause::Dns => Failure::Dns,
                Cause::NotPublic => Failure::Blocked,
                Cause::Status(n) => Failure::HttpStatus(*n),
                Cause::Other => Failure::Unavailable,
            },
            RelayError::UpstreamTimeout(..) => Failure::Timeout,
            RelayError::UpstreamProtocol(_) | RelayError::Parse(_) => Failure::NotMcp,
            RelayError::Internal(_) => Failure::Internal,
            _ => Failure::Unavailable,
        }
    }

    /// The kind, as reported: `refused`, `timeout`, `tls`, `dns`, `blocked`, `http_status`,
    /// `not_mcp`, `rpc_error`, `unavailable`, `internal`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Timeout => "timeout",
            Failure::Tls => "tls",
            Failure::Dns => "dns",
            Failure::Blocked => "blocked",
            Failure::HttpStatus(_) => "http_status",
            Failure::NotMcp => "not_mcp",
            Failure::Rpc(_) => "rpc_error",
            Failure::Unavailable => "unavailable",
            Failure::Internal => "internal",
        }
    }

    /// A message written by the mesh, the same for every failure of the kind (with the status or
    /// code, which are numbers the mesh parsed, not text it relays).
    pub fn message(&self) -> String {
        match self {
            Failure::Refused => "connection refused".into(),
            Failure::Timeout => "no answer in time".into(),
            Failure::Tls => "TLS handshake failed: the certificate is not trusted or does not name the host".into(),
            Failure::Dns => "the host name does not resolve".into(),
            Failure::Blocked => {
                "the address is not public; only installation operators may connect to internal networks".into()
            }
            Failure::HttpStatus(n) => format!("the upstream answered HTTP {n}"),
            Failure::NotMcp => "the upstream's answer is not MCP (JSON-RPC)".into(),
            Failure::Rpc(code) => format!("the upstream answered with JSON-RPC error {code}"),
            Failure::Unavailable => "the upstream could not be used (details in the mesh's log)".into(),
            Failure::Internal => "the mesh could not run the test (details in its log)".into(),
        }
    }

    /// `{"kind": …, "message": …}`, with `status` or `code` when there is one.
    pub fn to_json(&self) -> Value {
        let mut out = json!({"kind": self.kind(), "message": self.message()});
        match self {
            Failure::HttpStatus(n) => out["status"] = json!(n),
            Failure::Rpc(code) => out["code"] = json!(code),
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_error_gets_a_kind_and_a_message_of_the_meshs_own() {
        let failed = |cause| RelayError::UpstreamFailed { cause, detail: "c: <html>secret banner</html>".into() };
        let table: Vec<(ClientError, &str)> = vec![
            (failed(Cause::Refused).into(), "refused"),
            (failed(Cause::Timeout).into(), "timeout"),
            (failed(Cause::Tls).into(), "tls"),
            (failed(Cause::Dns).into(), "dns"),
            (failed(Cause::NotPublic).into(), "blocked"),
            (failed(Cause::Status(502)).into(), "http_status"),
            (failed(Cause::Other).into(), "unavailable"),
            (RelayError::UpstreamProtocol("c: the reply is not JSON-RPC: <html>".into()).into(), "not_mcp"),
            (RelayError::UpstreamTimeout(Duration::from_secs(5), String::new()).into(), "timeout"),
            (RelayError::UpstreamUnavailable("c: <html>".into()).into(), "unavailable"),
            (ClientError::Rpc { code: -32601, message: "<html>".into() }, "rpc_error"),
        ];
        for (e, kind) in table {
            let out = Failure::of(&e).to_json();
            assert_eq!(out["kind"], kind, "{e}");
            assert!(!out.to_string().contains("html"), "{out}");
        }
        assert_eq!(Failure::HttpStatus(502).to_json()["status"], 502);
    }
}
