//! The balanced link's decisions that need no state: which requests may be repeated or stay
//! with one provider, what an error says about the provider, and the rewrites of ids and tool
//! lists.

use crate::{Cause, RelayError};
use mesh_protocol::Message;

/// The prefix of the ids given to a provider's requests to the client.
const ASKED_PREFIX: &str = "mesh-balance-";

/// Methods whose repetition changes nothing: sent again when a provider may have dropped them.
pub(super) fn safe_to_repeat(method: &str) -> bool {
    matches!(
        method,
        "ping"
            | "tools/list"
            | "prompts/list"
            | "prompts/get"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
            | "completion/complete"
    )
}

/// Methods that carry a provider's own state (a page cursor it issued, a subscription it holds,
/// its log level): they go to one provider, the one that answered the handshake, while it serves.
pub(super) fn sticky(method: &str) -> bool {
    matches!(
        method,
        "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "logging/setLevel"
    )
}

/// The provider certainly never processed the request: another may have it, whatever it is.
/// Connect-time failures only: the causes are decided where the error is made, and `Timeout`
/// and `Tls` are the connect phase's (the fast path's connect timeout, reqwest's
/// `connect_timeout` and handshake; no overall request timeout is set on either).
pub(super) fn undelivered(e: &RelayError) -> bool {
    matches!(
        e,
        RelayError::UpstreamFailed {
            cause: Cause::Refused | Cause::Dns | Cause::NotPublic | Cause::Timeout | Cause::Tls,
            ..
        }
    ) || refused(e)
}

/// The provider refused the mesh's credentials: the request was not processed, and the session
/// (whose other providers are fine) must not take it for its own connection's refusal.
pub(super) fn refused(e: &RelayError) -> bool {
    matches!(
        e,
        RelayError::UpstreamFailed { cause: Cause::Status(401 | 403), .. }
            | RelayError::InsufficientScope { .. }
            | RelayError::AuthorizationRequired(_)
    )
}

/// The provider, not the request, is at fault: leave it out for a while.
pub(super) fn sick(e: &RelayError) -> bool {
    match e {
        RelayError::UpstreamFailed { cause: Cause::Status(s), .. } => matches!(s, 401 | 403 | 502..=504),
        RelayError::UpstreamFailed { .. } | RelayError::UpstreamUnavailable(_) | RelayError::UpstreamTimeout(..) => {
            true
        }
        e => refused(e),
    }
}

/// What the session hears of a provider's failure: a refusal of credentials becomes the
/// provider being unavailable (the session would otherwise end itself, or ask the user to
/// authorize a connection that has no authorization of its own).
pub(super) fn for_session(e: RelayError, name: &str) -> RelayError {
    if refused(&e) {
        RelayError::UpstreamUnavailable(format!("{name}: a provider refused the mesh's credentials"))
    } else {
        e
    }
}

/// The id the client sees for request `raw` (raw JSON) of provider `serial`.
pub(super) fn asked_id(serial: u64, raw: &str) -> String {
    serde_json::Value::String(format!("{ASKED_PREFIX}{serial}:{raw}")).to_string()
}

/// The provider and original id behind an id made by [`asked_id`].
pub(super) fn asked_by(id: &str) -> Option<(u64, String)> {
    let text: String = serde_json::from_str(id).ok()?;
    let (serial, raw) = text.strip_prefix(ASKED_PREFIX)?.split_once(':')?;
    Some((serial.parse().ok()?, raw.to_string()))
}

/// A provider's `notifications/cancelled` of its own request `raw`, naming it as the client
/// knows it.
pub(super) fn cancelled_as_asked(msg: &Message, serial: u64) -> Message {
    let Some(mut params) = msg.params::<serde_json::Value>() else { return msg.clone() };
    let Some(raw) = msg.cancelled_request_id() else { return msg.clone() };
    let id: serde_json::Value = serde_json::from_str(&asked_id(serial, &raw)).unwrap_or_default();
    params["requestId"] = id;
    Message::notification("notifications/cancelled", Some(&params))
}

/// `params.name` of a `tools/call`.
pub(super) fn tool_name(msg: &Message) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(borrow)]
        name: std::borrow::Cow<'a, str>,
    }
    msg.params::<Params>().map(|p| p.name.into_owned())
}

/// A `tools/list` reply with only the tools in `keep` (the rest of the result as it was).
pub(super) fn only_tools(msg: &Message, keep: &[String]) -> Message {
    let Some(mut result) = msg.result::<serde_json::Value>() else { return msg.clone() };
    if let Some(tools) = result.get_mut("tools").and_then(|t| t.as_array_mut()) {
        tools.retain(|t| t["name"].as_str().is_some_and(|n| keep.iter().any(|k| k == n)));
    }
    Message::response(msg.id().unwrap_or("null"), &result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_providers_request_id_goes_there_and_back() {
        for raw in ["7", "\"abc\"", "\"a:b\\\"c\""] {
            let id = asked_id(42, raw);
            assert!(id.starts_with('"'), "a JSON string: {id}");
            assert_eq!(asked_by(&id), Some((42, raw.to_string())));
        }
        assert_eq!(asked_by("7"), None);
        assert_eq!(asked_by("\"something-else:7\""), None);
        let cancel = Message::parse(Bytes::from(
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"r"}}"#,
        ))
        .unwrap();
        let named = cancelled_as_asked(&cancel, 9);
        assert_eq!(named.cancelled_request_id().as_deref(), Some(asked_id(9, "3").as_str()));
        assert_eq!(named.params::<serde_json::Value>().unwrap()["reason"], "r");
    }

    #[test]
    fn only_calls_that_change_nothing_are_repeated() {
        assert!(safe_to_repeat("tools/list"));
        assert!(safe_to_repeat("resources/read"));
        assert!(!safe_to_repeat("tools/call"));
        assert!(!safe_to_repeat("sampling/createMessage"));
        assert!(!safe_to_repeat("anything/new"));
        assert!(sticky("resources/list") && sticky("resources/subscribe") && !sticky("resources/read"));
    }

    #[test]
    fn refusals_before_delivery_fail_over_and_request_errors_do_not() {
        let failed = |cause| RelayError::UpstreamFailed { cause, detail: "x".into() };
        assert!(undelivered(&failed(Cause::Refused)) && sick(&failed(Cause::Refused)));
        assert!(!undelivered(&failed(Cause::Other)) && sick(&failed(Cause::Other)));
        assert!(undelivered(&failed(Cause::Timeout)), "a connect timeout");
        assert!(undelivered(&failed(Cause::Tls)), "a failed TLS handshake");
        assert!(!undelivered(&failed(Cause::Status(400))) && !sick(&failed(Cause::Status(400))));
        assert!(sick(&failed(Cause::Status(503))));
        // A provider that refuses the mesh is its fault, not the session's.
        assert!(undelivered(&failed(Cause::Status(401))) && sick(&failed(Cause::Status(401))));
        let told = for_session(failed(Cause::Status(401)), "dates");
        assert!(matches!(told, RelayError::UpstreamUnavailable(_)), "{told:?}");
        assert!(matches!(for_session(failed(Cause::Status(400)), "d"), RelayError::UpstreamFailed { .. }));
    }

    #[test]
    fn a_tool_list_keeps_only_the_capabilitys_tools_and_the_rest_of_the_result() {
        let raw = r#"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"get_date","inputSchema":{}},{"name":"other"}],"nextCursor":"x"}}"#;
        let msg = Message::parse(Bytes::from(raw)).unwrap();
        let cut = only_tools(&msg, &["get_date".to_string()]);
        assert_eq!(cut.id(), Some("4"));
        let result: serde_json::Value = cut.result().unwrap();
        assert_eq!(result, serde_json::json!({"tools": [{"name": "get_date", "inputSchema": {}}], "nextCursor": "x"}));
        let call = Message::parse(Bytes::from(
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get\u005fdate"}}"#,
        ))
        .unwrap();
        assert_eq!(tool_name(&call).as_deref(), Some("get_date"));
    }
}
