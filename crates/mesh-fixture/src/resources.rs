//! Resources: two static ones, one template, and one that can be watched (subscribe/unsubscribe).

use crate::media::RED_PIXEL_PNG;
use crate::session::Session;
use crate::wire::decode;
use rmcp::model::{ReadResourceResult, Resource, ResourceTemplate, ResourceUpdatedNotificationParam};
use rmcp::{ErrorData as McpError, Peer, RoleServer};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const STATIC_TEXT: &str = "test://static-text";
const STATIC_BINARY: &str = "test://static-binary";
pub(crate) const WATCHED: &str = "test://watched-resource";
pub(crate) const TEMPLATE: &str = "test://template/{id}/data";
/// The instance of [`TEMPLATE`] that asks the user's name before it is read (run by
/// [`crate::server`]): the input-required resource read a relay re-checks on the retry.
pub(crate) const ASKS: &str = "test://template/asks/data";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

/// Delay before the one `notifications/resources/updated` that follows a subscription to the
/// watched resource, so the subscribe response is on the wire first (over stdio the order is
/// observable).
pub(crate) const UPDATE_AFTER: Duration = Duration::from_millis(50);

pub(crate) fn list() -> Result<Vec<Resource>, McpError> {
    decode(json!([
        {
            "uri": STATIC_TEXT, "name": "static-text", "title": "Static text resource",
            "description": "A fixed plain-text resource", "mimeType": "text/plain"
        },
        {
            "uri": STATIC_BINARY, "name": "static-binary", "title": "Static binary resource",
            "description": "A fixed PNG image (1x1 red pixel), read as a base64 blob", "mimeType": "image/png"
        },
        {
            "uri": WATCHED, "name": "watched-resource", "title": "Watched resource",
            "description": "Subscribable: one notifications/resources/updated follows each subscription",
            "mimeType": "text/plain"
        }
    ]))
}

pub(crate) fn templates() -> Result<Vec<ResourceTemplate>, McpError> {
    decode(json!([{
        "uriTemplate": TEMPLATE, "name": "template-data", "title": "Template resource",
        "description": "JSON data for any id, substituted from the URI", "mimeType": "application/json"
    }]))
}

pub(crate) fn read(uri: &str) -> Result<ReadResourceResult, McpError> {
    let contents = match uri {
        STATIC_TEXT => json!({
            "uri": uri, "mimeType": "text/plain",
            "text": "This is the content of the static text resource."
        }),
        STATIC_BINARY => json!({"uri": uri, "mimeType": "image/png", "blob": RED_PIXEL_PNG}),
        WATCHED => json!({"uri": uri, "mimeType": "text/plain", "text": "Watched resource content."}),
        _ => match template_id(uri) {
            Some(id) => json!({
                "uri": uri, "mimeType": "application/json",
                "text": json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string()
            }),
            None => return Err(not_found(uri)),
        },
    };
    decode(json!({"contents": [contents]}))
}

/// [`ASKS`] once the name is known.
pub(crate) fn read_after_input(answers: &str) -> Result<ReadResourceResult, McpError> {
    decode(
        json!({"contents": [{"uri": ASKS, "mimeType": "text/plain", "text": format!("Data after input: {answers}")}]}),
    )
}

/// The `{id}` of `test://template/{id}/data`: one non-empty path segment.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri.strip_prefix(TEMPLATE_PREFIX)?.strip_suffix(TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// -32002 with the URI in `data` for 2025-x peers; rmcp rewrites the code to -32602 for
/// 2026-07-28 peers (SEP-2164), which also asks for `data.uri`.
fn not_found(uri: &str) -> McpError {
    McpError::resource_not_found(format!("Resource not found: {uri}"), Some(json!({"uri": uri})))
}

/// Records the subscription. Subscribing to the watched resource also "changes" it once, so a
/// test (or a relay under test) sees a `notifications/resources/updated` without a second actor.
pub(crate) fn subscribe(session: &Arc<Session>, peer: &Peer<RoleServer>, uri: &str) -> Result<(), McpError> {
    read(uri)?; // only existing resources can be watched
    session.subscribe(uri);
    if uri == WATCHED {
        let (session, peer, uri) = (session.clone(), peer.clone(), uri.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(UPDATE_AFTER).await;
            // Unsubscribed in the meantime (the unsubscribe scenario does exactly that): stay quiet.
            if !session.is_subscribed(&uri) {
                return;
            }
            let param: Result<ResourceUpdatedNotificationParam, _> = decode(json!({"uri": uri}));
            if let Ok(param) = param {
                if let Err(e) = peer.notify_resource_updated(param).await {
                    tracing::debug!(error = %e, "could not send notifications/resources/updated");
                }
            }
        });
    }
    Ok(())
}

/// Sends `notifications/resources/updated` for each resource `session` is subscribed to, in URI
/// order (`test_trigger_resource_update`); how many were sent.
pub(crate) async fn touch(session: &Session, peer: &Peer<RoleServer>) -> usize {
    let mut sent = 0;
    for uri in session.subscribed() {
        let param: Result<ResourceUpdatedNotificationParam, _> = decode(json!({"uri": uri}));
        let Ok(param) = param else { continue };
        match peer.notify_resource_updated(param).await {
            Ok(()) => sent += 1,
            Err(e) => tracing::debug!(error = %e, "could not send notifications/resources/updated"),
        }
    }
    sent
}

pub(crate) fn unsubscribe(session: &Session, uri: &str) {
    session.unsubscribe(uri);
}

/// Completion values for the template's `id` argument.
pub(crate) fn complete_template_id(prefix: &str) -> Vec<String> {
    ["1", "2", "3", "123"].iter().filter(|v| v.starts_with(prefix)).map(|v| (*v).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn lists_decode() {
        assert_eq!(list().unwrap().len(), 3);
        assert_eq!(templates().unwrap()[0].uri_template, TEMPLATE);
    }

    #[test]
    fn template_substitutes_the_id() {
        let result = serde_json::to_value(read("test://template/123/data").unwrap()).unwrap();
        let text = result["contents"][0]["text"].as_str().unwrap();
        let data: Value = serde_json::from_str(text).unwrap();
        assert_eq!(data, json!({"id": "123", "templateTest": true, "data": "Data for ID: 123"}));
    }

    #[test]
    fn unknown_and_malformed_uris_are_not_found_with_the_uri_in_data() {
        for uri in ["test://nope", "test://template//data", "test://template/a/b/data"] {
            let e = read(uri).unwrap_err();
            assert_eq!(e.code.0, -32002);
            assert_eq!(e.data, Some(json!({"uri": uri})));
        }
    }

    #[test]
    fn binary_resource_is_a_blob() {
        let result = serde_json::to_value(read(STATIC_BINARY).unwrap()).unwrap();
        assert_eq!(result["contents"][0]["blob"], RED_PIXEL_PNG);
        assert_eq!(result["contents"][0]["mimeType"], "image/png");
    }
}
