//! Tools that send a request back to the client mid-call: sampling and the three elicitations.
//!
//! Each checks the capability the client declared at `initialize` first: a server must not send
//! `sampling/createMessage` or `elicitation/create` to a client that did not declare it, and a
//! relay that forgets to forward the downstream client's capabilities upstream shows up here as a
//! tool error naming the missing capability.
//!
//! At 2026-07-28 there are no server→client requests: the same question goes out as an
//! input-required result ([`crate::input`], key `sampling` or `elicitation`), the capability is
//! read from the request's own `_meta`, and the retry gets the text the 2025-11-25 call would have
//! produced — so a relay bridging either way can be compared with the direct call.

// Sampling is deprecated by rmcp for 2026-07-28 (SEP-2577); the 2025-11-25 wire still has it.
#![allow(deprecated)]

use super::{error_result, required_str, text_result};
use crate::era::Wire;
use crate::input::{self, sampled, Ask, Dialogue, Exchange, Reply};
use crate::wire::decode;
use rmcp::model::{CallToolResponse, CreateMessageRequestParams, ElicitRequestParams};
use rmcp::service::{ElicitationMode, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{json, Value};

/// The key of the one question these tools ask at 2026-07-28.
const SAMPLING_KEY: &str = "sampling";
const ELICITATION_KEY: &str = "elicitation";

pub(super) async fn sampling(x: &Exchange<'_>) -> Result<CallToolResponse, McpError> {
    let prompt = match required_str(x.arguments, "prompt") {
        Ok(p) => p,
        Err(e) => return complete(e),
    };
    if input::wire_of(x.cx) == Wire::Legacy {
        return complete(legacy_sampling(prompt, x.cx).await);
    }
    let ask = Ask::Sample { prompt: prompt.to_owned() };
    if !declared(x, &ask) {
        return complete(error_result("The client did not declare the sampling capability"));
    }
    modern(x, SAMPLING_KEY, ask, |answer| text_result(format!("LLM response: {}", sampled(answer)))).await
}

async fn legacy_sampling(prompt: &str, cx: &RequestContext<RoleServer>) -> Value {
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
            text_result(format!("LLM response: {}", sampled(&on_wire)))
        }
        Err(e) => error_result(format!("Sampling failed: {e}")),
    }
}

pub(super) async fn elicitation(x: &Exchange<'_>) -> Result<CallToolResponse, McpError> {
    let message = match required_str(x.arguments, "message") {
        Ok(m) => m,
        Err(e) => return complete(e),
    };
    let schema = json!({
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"}
        },
        "required": ["username", "email"]
    });
    elicit(x, message, schema, "User response").await
}

/// SEP-1034: a default on every primitive type (string, integer, number, enum, boolean).
pub(super) async fn elicitation_defaults(x: &Exchange<'_>) -> Result<CallToolResponse, McpError> {
    elicit(x, "Please review and update the form fields with defaults", defaults_schema(), "Elicitation completed")
        .await
}

/// SEP-1330: all five enum shapes — untitled and titled single-select, the legacy `enumNames`
/// form, and untitled and titled multi-select.
pub(super) async fn elicitation_enums(x: &Exchange<'_>) -> Result<CallToolResponse, McpError> {
    elicit(x, "Please select options from the enum fields", enums_schema(), "Elicitation completed").await
}

/// One form-mode elicitation in the request's era, reported as text.
async fn elicit(x: &Exchange<'_>, message: &str, schema: Value, label: &str) -> Result<CallToolResponse, McpError> {
    if input::wire_of(x.cx) == Wire::Legacy {
        return complete(legacy_elicit(x.cx, message, schema, label).await);
    }
    let ask = Ask::Elicit { message: message.to_owned(), schema };
    if !declared(x, &ask) {
        return complete(error_result("The client did not declare the elicitation capability (form mode)"));
    }
    let label = label.to_owned();
    modern(x, ELICITATION_KEY, ask, move |answer| elicit_text(&label, answer)).await
}

fn elicit_text(label: &str, on_wire: &Value) -> Value {
    let action = on_wire["action"].as_str().unwrap_or("?");
    let content = on_wire.get("content").cloned().unwrap_or(Value::Null);
    text_result(format!("{label}: action={action}, content={content}"))
}

fn declared(x: &Exchange<'_>, ask: &Ask) -> bool {
    x.cx.client_capabilities().is_some_and(|caps| ask.declared_by(&caps))
}

/// 2026-07-28: one question, no state; the retry's answer is rendered as the legacy call would.
async fn modern(
    x: &Exchange<'_>,
    key: &'static str,
    ask: Ask,
    render: impl Fn(&Value) -> Value,
) -> Result<CallToolResponse, McpError> {
    match input::run(&Dialogue::ephemeral(vec![(key, ask)]), x).await? {
        Reply::InputRequired(irr) => Ok(CallToolResponse::InputRequired(irr)),
        Reply::Done(answers) => complete(render(&answers[key])),
    }
}

fn complete(result: Value) -> Result<CallToolResponse, McpError> {
    decode(result).map(CallToolResponse::Complete)
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
async fn legacy_elicit(cx: &RequestContext<RoleServer>, message: &str, schema: Value, label: &str) -> Value {
    if !cx.peer.supported_elicitation_modes().contains(&ElicitationMode::Form) {
        return error_result("The client did not declare the elicitation capability (form mode)");
    }
    let params: ElicitRequestParams = match decode(form_request(message, schema)) {
        Ok(p) => p,
        Err(e) => return error_result(e.message),
    };
    match cx.peer.create_elicitation(params).await {
        Ok(result) => elicit_text(label, &serde_json::to_value(&result).unwrap_or_default()),
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
}
