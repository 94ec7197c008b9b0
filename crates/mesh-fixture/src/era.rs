//! Which protocol eras the fixture serves, and how one message is classified and, if its era is
//! not served, refused.
//!
//! Terms from the spec (`basic/versioning.mdx`): **legacy** = 2025-11-25 and earlier (the
//! `initialize` handshake, sessions), **modern** = 2026-07-28 (per-request `_meta` envelope, no
//! sessions), **dual** = both on one endpoint. rmcp serves both eras by itself; the era switch
//! exists so that the mesh's bridges can be tested against an upstream that speaks only one:
//!
//! - `dual` (default): rmcp decides per request; the fronts only fill one gap (an `initialize`
//!   that carries a modern claim, which rmcp would start a legacy session for);
//! - `legacy`: what a 2025-11-25-only server answers to modern traffic (HTTP 400 without a
//!   JSON-RPC body, as rmcp and the TypeScript SDK 1.x answer a session-less request; over stdio
//!   `-32601`, and the process keeps serving);
//! - `modern`: what a 2026-07-28-only server answers to legacy traffic (`initialize` is a removed
//!   method: HTTP 404 + `-32601`; over stdio `-32022` naming the supported version; GET/DELETE 405).
//!
//! The decisions are pure functions of the message, so both transports share them
//! ([`crate::http`], [`crate::stdio`]) and they are table-tested below.

use rmcp::model::ProtocolVersion;
use serde_json::{json, Value};
use std::borrow::Cow;

/// The `_meta` key that makes a request modern (spec `basic/index.mdx` §`_meta`).
pub(crate) const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// Which eras the fixture serves (`--era`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Era {
    /// 2025-11-25 (and earlier) and 2026-07-28 on the same endpoint.
    #[default]
    Dual,
    /// 2025-11-25 and earlier only: modern requests are answered as a legacy-only server would.
    Legacy,
    /// 2026-07-28 only: `initialize` and sessions are refused.
    Modern,
}

impl Era {
    /// What `server/discover` lists, what `initialize` may agree to, and what a per-request version
    /// is checked against (rmcp's `ServerHandler::supported_protocol_versions`).
    pub(crate) fn supported_versions(self) -> Cow<'static, [ProtocolVersion]> {
        match self {
            Era::Dual => Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2026_07_28)),
            Era::Legacy => Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25)),
            Era::Modern => Cow::Owned(vec![ProtocolVersion::V_2026_07_28]),
        }
    }
}

/// The era one message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    Legacy,
    Modern,
}

/// Classifies by the body first, as the TypeScript SDK does: a request that carries
/// `_meta.protocolVersion` is modern whatever it is; so are the two methods that exist only in the
/// modern era. Otherwise the `MCP-Protocol-Version` header decides (HTTP only): a version after
/// the last handshake revision, or one this SDK does not know, is modern (so an unknown version is
/// answered with `-32022`, as py does). No claim at all is legacy.
pub(crate) fn classify(message: &Value, header_version: Option<&str>) -> Wire {
    let claims_modern = message["params"]["_meta"].get(META_PROTOCOL_VERSION).is_some()
        || matches!(message["method"].as_str(), Some("server/discover" | "subscriptions/listen"));
    let header_modern = header_version.is_some_and(|v| {
        let known = ProtocolVersion::KNOWN_VERSIONS.iter().find(|k| k.as_str() == v);
        known.is_none_or(|k| !k.has_initialize())
    });
    if claims_modern || header_modern {
        Wire::Modern
    } else {
        Wire::Legacy
    }
}

/// How a message the served era does not cover is answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// A JSON-RPC error for the request's id; over HTTP with this status.
    Error { status: u16, error: Value },
    /// Over HTTP: a bare status with a plain-text body and no JSON-RPC (a legacy server has no
    /// idea the body was a request it could answer).
    Plain { status: u16, text: &'static str },
}

/// Over HTTP: `None` lets rmcp answer. `method` is `None` for GET and DELETE.
pub(crate) fn refuse_http(era: Era, wire: Wire, method: Option<&str>, message: &Value) -> Option<Refusal> {
    match (era, wire, method) {
        // rmcp would start a legacy session for it; a dual-era server reads the modern claim and
        // answers as for any removed method (server-stateless probes exactly this).
        (Era::Dual, Wire::Modern, Some("initialize")) => Some(method_not_found(message, 404)),
        (Era::Dual, _, _) => None,
        // rmcp 3.11's answer to a session-less non-initialize POST in its legacy session mode,
        // and the TypeScript SDK 1.x's answer is the same status.
        (Era::Legacy, Wire::Modern, _) => {
            Some(Refusal::Plain { status: 400, text: "Bad Request: Session ID is required" })
        }
        (Era::Legacy, Wire::Legacy, _) => None,
        // spec `basic/transports/streamable-http.mdx` "Earlier Streamable HTTP Revisions": a
        // modern-only server answers the legacy GET stream and session DELETE with 405.
        (Era::Modern, _, None) => Some(Refusal::Plain { status: 405, text: "Method Not Allowed" }),
        (Era::Modern, _, Some("initialize")) => Some(method_not_found(message, 404)),
        (Era::Modern, _, Some(_)) => None,
    }
}

/// Over stdio: `None` lets rmcp answer. Only requests are ever refused.
pub(crate) fn refuse_stdio(era: Era, wire: Wire, message: &Value) -> Option<Value> {
    let method = message["method"].as_str()?;
    message.get("id")?;
    match (era, wire, method) {
        // What legacy SDK servers answer to a modern probe over stdio (research §1.9: the
        // reference servers answer -32601 and keep serving `initialize`).
        (Era::Legacy, Wire::Modern, _) => error_of(method_not_found(message, 404)),
        // The brief's and the spec's answer to a handshake at a modern-only server: the client
        // learns which version to speak instead.
        (Era::Modern, _, "initialize") => {
            let requested = message["params"]["protocolVersion"].as_str().unwrap_or("");
            Some(json!({
                "code": -32022,
                "message": "Unsupported protocol version: this server speaks 2026-07-28 only",
                "data": {"supported": [ProtocolVersion::V_2026_07_28.as_str()], "requested": requested}
            }))
        }
        // `ping` is removed at 2026-07-28; rmcp still answers it before the first modern request.
        (Era::Modern, _, "ping") => error_of(method_not_found(message, 404)),
        _ => None,
    }
}

fn method_not_found(message: &Value, status: u16) -> Refusal {
    let method = message["method"].as_str().unwrap_or("");
    Refusal::Error { status, error: json!({"code": -32601, "message": format!("Method not found: {method}")}) }
}

fn error_of(refusal: Refusal) -> Option<Value> {
    match refusal {
        Refusal::Error { error, .. } => Some(error),
        Refusal::Plain { .. } => None,
    }
}

/// The JSON-RPC error response for `message` (its id echoed, `null` if it had none).
pub(crate) fn error_response(message: &Value, error: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": message.get("id").cloned().unwrap_or(Value::Null), "error": error})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, modern: bool) -> Value {
        let meta = if modern { json!({META_PROTOCOL_VERSION: "2026-07-28"}) } else { json!({}) };
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": meta}})
    }

    #[test]
    fn classification_reads_the_body_then_the_header() {
        let cases = [
            (request("tools/list", true), None, Wire::Modern),
            (request("tools/list", false), None, Wire::Legacy),
            (request("tools/list", false), Some("2025-11-25"), Wire::Legacy),
            (request("tools/list", false), Some("2026-07-28"), Wire::Modern),
            (request("tools/list", false), Some("v999.0.0"), Wire::Modern),
            (request("server/discover", false), None, Wire::Modern),
            (request("initialize", false), None, Wire::Legacy),
            (request("initialize", true), None, Wire::Modern),
        ];
        for (message, header, wire) in cases {
            assert_eq!(classify(&message, header), wire, "{message} {header:?}");
        }
    }

    #[test]
    fn http_refusals_per_era() {
        let status = |era, method: &str, modern: bool| {
            let m = request(method, modern);
            let wire = classify(&m, None);
            refuse_http(era, wire, Some(method), &m).map(|r| match r {
                Refusal::Error { status, error } => (status, error["code"].as_i64()),
                Refusal::Plain { status, .. } => (status, None),
            })
        };
        assert_eq!(status(Era::Dual, "tools/list", true), None);
        assert_eq!(status(Era::Dual, "initialize", false), None);
        assert_eq!(status(Era::Dual, "initialize", true), Some((404, Some(-32601))));
        assert_eq!(status(Era::Legacy, "tools/list", false), None);
        assert_eq!(status(Era::Legacy, "tools/list", true), Some((400, None)));
        assert_eq!(status(Era::Legacy, "server/discover", false), Some((400, None)));
        assert_eq!(status(Era::Modern, "initialize", false), Some((404, Some(-32601))));
        assert_eq!(status(Era::Modern, "tools/list", true), None);
        assert!(matches!(
            refuse_http(Era::Modern, Wire::Legacy, None, &Value::Null),
            Some(Refusal::Plain { status: 405, .. })
        ));
        assert_eq!(refuse_http(Era::Legacy, Wire::Legacy, None, &Value::Null), None);
    }

    #[test]
    fn stdio_refusals_per_era() {
        let code = |era, method: &str, modern: bool| {
            let m = request(method, modern);
            refuse_stdio(era, classify(&m, None), &m).map(|e| e["code"].as_i64().unwrap())
        };
        assert_eq!(code(Era::Legacy, "server/discover", false), Some(-32601));
        assert_eq!(code(Era::Legacy, "tools/call", true), Some(-32601));
        assert_eq!(code(Era::Legacy, "initialize", false), None);
        assert_eq!(code(Era::Modern, "initialize", false), Some(-32022));
        assert_eq!(code(Era::Modern, "ping", false), Some(-32601));
        assert_eq!(code(Era::Modern, "tools/list", true), None);
        assert_eq!(code(Era::Dual, "server/discover", false), None);
        // Notifications are never answered.
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(refuse_stdio(Era::Modern, Wire::Legacy, &note), None);
    }

    #[test]
    fn modern_refusal_of_initialize_names_the_supported_version() {
        let m = json!({"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}});
        let e = refuse_stdio(Era::Modern, Wire::Legacy, &m).unwrap();
        assert_eq!(e["data"], json!({"supported": ["2026-07-28"], "requested": "2025-11-25"}));
        assert_eq!(error_response(&m, e)["id"], 3);
    }
}
