//! Tools that send a request back to the client mid-call: sampling and the three elicitations.
//!
//! Each checks the capability the client declared at `initialize` first: a server must not send
//! `sampling/createMessage` or `elicitation/create` to a client that did not declare it, and a
//! relay that forgets to forward the downstream client's capabilities upstream shows up here as a
//! tool error naming the missing capability.

// Sampling is deprecated by rmcp for 2026-07-28 (SEP-2577); the 2025-11-25 wire still has it.
#![allow(deprecated)]

use super::{error_result, required_str, text_result};
use crate::wire::decode;
use rmcp::model::{CreateMessageRequestParams, ElicitRequestParams, JsonObject};
use rmcp::service::{ElicitationMode, RequestContext};
use rmcp::RoleServer;
use serde_json::{json, Value};

pub(super) async fn sampling(args: &JsonObject, cx: &RequestContext<RoleServer>) -> Value {
    let prompt = match required_str(args, "prompt") {
        Ok(p) => p,
        Err(e) => return e,
    };
    let declared = cx.peer.peer_info().is_some_and(|i| i.capabilities.sampling.is_some());
    if !declared {
        return error_result("The client did not declare the sampling capability");
    }
    let params: CreateMessageRequestParams = match decode(json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
        "maxTokens": 100
    })) {
        Ok(p) => p,
        Err(e) => return error_result(e.message),
    };
    match cx.peer.create_message(params).await {
        Ok(result) => {
            let on_wire = serde_json::to_value(&result).unwrap_or_default();
            text_result(format!("LLM response: {}", sampled_text(&on_wire)))
        }
        Err(e) => error_result(format!("Sampling failed: {e}")),
    }
}

/// The text of a `CreateMessageResult`, whose `content` is one block or (2025-11-25) an array.
fn sampled_text(result: &Value) -> String {
    let content = &result["content"];
    let block = if content.is_array() { &content[0] } else { content };
    block["text"].as_str().map_or_else(|| content.to_string(), str::to_owned)
}

pub(super) async fn elicitation(args: &JsonObject, cx: &RequestContext<RoleServer>) -> Value {
    let message = match required_str(args, "message") {
        Ok(m) => m,
        Err(e) => return e,
    };
    let schema = json!({
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"}
        },
        "required": ["username", "email"]
    });
    elicit(cx, message, schema, "User response").await
}

/// SEP-1034: a default on every primitive type (string, integer, number, enum, boolean).
pub(super) async fn elicitation_defaults(cx: &RequestContext<RoleServer>) -> Value {
    elicit(cx, "Please review and update the form fields with defaults", defaults_schema(), "Elicitation completed")
        .await
}

/// SEP-1330: all five enum shapes — untitled and titled single-select, the legacy `enumNames`
/// form, and untitled and titled multi-select.
pub(super) async fn elicitation_enums(cx: &RequestContext<RoleServer>) -> Value {
    elicit(cx, "Please select options from the enum fields", enums_schema(), "Elicitation completed").await
}

fn defaults_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active"
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": true}
        }
    })
}

fn enums_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Untitled single-select",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string",
                "description": "Titled single-select",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"}
                ]
            },
            "legacyEnum": {
                "type": "string",
                "description": "Legacy titled enum (enumNames, deprecated)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array",
                "description": "Untitled multi-select",
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]}
            },
            "titledMulti": {
                "type": "array",
                "description": "Titled multi-select",
                "items": {"anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"}
                ]}
            }
        }
    })
}

/// Sends one form-mode `elicitation/create` and reports the user's answer as text.
async fn elicit(cx: &RequestContext<RoleServer>, message: &str, schema: Value, label: &str) -> Value {
    if !cx.peer.supported_elicitation_modes().contains(&ElicitationMode::Form) {
        return error_result("The client did not declare the elicitation capability (form mode)");
    }
    let params: ElicitRequestParams = match decode(form_request(message, schema)) {
        Ok(p) => p,
        Err(e) => return error_result(e.message),
    };
    match cx.peer.create_elicitation(params).await {
        Ok(result) => {
            let on_wire = serde_json::to_value(&result).unwrap_or_default();
            let action = on_wire["action"].as_str().unwrap_or("?");
            let content = on_wire.get("content").cloned().unwrap_or(Value::Null);
            text_result(format!("{label}: action={action}, content={content}"))
        }
        Err(e) => error_result(format!("Elicitation failed: {e}")),
    }
}

fn form_request(message: &str, schema: Value) -> Value {
    json!({"mode": "form", "message": message, "requestedSchema": schema})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rmcp models elicitation schemas with typed enums; make sure none of our keywords (defaults,
    /// `oneOf`, `enumNames`, `anyOf` items) is dropped or reshaped on the way to the wire.
    #[test]
    fn elicitation_schemas_reach_the_wire_unchanged() {
        for schema in [defaults_schema(), enums_schema()] {
            let request = form_request("m", schema.clone());
            let params: ElicitRequestParams = decode(request).unwrap();
            let on_wire = serde_json::to_value(&params).unwrap();
            assert_eq!(on_wire["requestedSchema"], schema);
        }
    }

    #[test]
    fn sampled_text_reads_single_and_array_content() {
        assert_eq!(sampled_text(&json!({"content": {"type": "text", "text": "a"}})), "a");
        assert_eq!(sampled_text(&json!({"content": [{"type": "text", "text": "b"}]})), "b");
    }
}
