//! The tool catalogue (`tools/list`) and `tools/call` dispatch.
//!
//! Names are exactly what the conformance scenarios call; a relay that renames tools (prefixing)
//! makes the name-bound scenarios fail, which is expected and should be baselined, not fixed here.
//! Every tool is listed and works in both eras; the order of `tools/list` is fixed (2026-07-28
//! asks for a deterministic one), the 2025-11-25 tools first, in the order they always had.

mod client_requests;
mod content;
pub(crate) mod input_required;
mod tasked;
mod timed;

use crate::input::Exchange;
use crate::listen::Change;
use crate::server::Shared;
use crate::session::Session;
use crate::wire::decode;
use rmcp::model::{CallToolRequestParams, CallToolResponse, JsonObject, Tool};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{json, Value};

pub(crate) const SIMPLE_TEXT: &str = "test_simple_text";
pub(crate) const IMAGE_CONTENT: &str = "test_image_content";
pub(crate) const AUDIO_CONTENT: &str = "test_audio_content";
pub(crate) const EMBEDDED_RESOURCE: &str = "test_embedded_resource";
pub(crate) const MULTIPLE_CONTENT_TYPES: &str = "test_multiple_content_types";
pub(crate) const WITH_LOGGING: &str = "test_tool_with_logging";
pub(crate) const WITH_PROGRESS: &str = "test_tool_with_progress";
pub(crate) const ERROR_HANDLING: &str = "test_error_handling";
pub(crate) const SAMPLING: &str = "test_sampling";
pub(crate) const ELICITATION: &str = "test_elicitation";
pub(crate) const ELICITATION_DEFAULTS: &str = "test_elicitation_sep1034_defaults";
pub(crate) const ELICITATION_ENUMS: &str = "test_elicitation_sep1330_enums";
pub(crate) const JSON_SCHEMA_2020_12: &str = "json_schema_2020_12_tool";
/// The tool whose POST stream the HTTP front ends early (SEP-1699 polling); see `crate::polling`.
pub(crate) const RECONNECTION: &str = "test_reconnection";
/// `test_tool_with_logging` under the name `server-stateless` calls (no log without `logLevel`).
pub(crate) const LOGGING_TOOL: &str = "test_logging_tool";
pub(crate) const TRIGGER_TOOL_CHANGE: &str = "test_trigger_tool_change";
pub(crate) const TRIGGER_PROMPT_CHANGE: &str = "test_trigger_prompt_change";
/// "Changes" every resource the session subscribed to: what a relay must pass on, or hold back.
pub(crate) const TRIGGER_RESOURCE_UPDATE: &str = "test_trigger_resource_update";
/// A tool with an `x-mcp-header` argument (SEP-2243), for `http-custom-header-server-validation`.
pub(crate) const CUSTOM_HEADER: &str = "test_custom_header";
/// Answers the W3C trace context it received: `params._meta.traceparent` and, over HTTP, the
/// `traceparent` header (for the mesh's tracing tests).
pub(crate) const TRACE_CONTEXT: &str = "trace_context";

/// Every tool, as `tools/list` puts it on the wire.
fn catalogue() -> Value {
    let mut tools = legacy_catalogue();
    if let Value::Array(list) = &mut tools {
        list.extend(modern_catalogue());
    }
    tools
}

/// The tools added for the 2026-07-28 scenarios (they work at 2025-11-25 too).
fn modern_catalogue() -> Vec<Value> {
    let mut tools = vec![
        tool(
            LOGGING_TOOL,
            "Sends three info-level notifications/message while it runs (2026: only with a logLevel).",
            no_arguments(),
        ),
        tool(
            TRIGGER_TOOL_CHANGE,
            "Announces notifications/tools/list_changed on every subscriptions/listen stream.",
            no_arguments(),
        ),
        tool(
            TRIGGER_PROMPT_CHANGE,
            "Announces notifications/prompts/list_changed on every subscriptions/listen stream.",
            no_arguments(),
        ),
        tool(
            TRIGGER_RESOURCE_UPDATE,
            "Sends notifications/resources/updated for each resource this session subscribed to with resources/subscribe, in URI order, while the call runs.",
            no_arguments(),
        ),
        tool(
            TRACE_CONTEXT,
            "Answers the trace context it received: params._meta.traceparent and the traceparent HTTP header.",
            no_arguments(),
        ),
        tool(
            CUSTOM_HEADER,
            "Echoes its arguments; 'region' is mirrored into the Mcp-Param-Region header (SEP-2243).",
            json!({
                "type": "object",
                "properties": {
                    "region": {"type": "string", "description": "Mirrored into Mcp-Param-Region", "x-mcp-header": "Region"},
                    "query": {"type": "string", "description": "Not mirrored"}
                },
                "required": ["region"]
            }),
        ),
    ];
    tools.extend(input_required::catalogue());
    tools.extend(tasked::catalogue());
    tools
}

/// The tools of the 2025-11-25 scenarios, unchanged.
fn legacy_catalogue() -> Value {
    json!([
        tool(SIMPLE_TEXT, "Returns one text block.", no_arguments()),
        tool(IMAGE_CONTENT, "Returns one image block (a 1x1 red PNG).", no_arguments()),
        tool(AUDIO_CONTENT, "Returns one audio block (a short silent WAV).", no_arguments()),
        tool(EMBEDDED_RESOURCE, "Returns one embedded text resource.", no_arguments()),
        tool(MULTIPLE_CONTENT_TYPES, "Returns text, image and embedded resource blocks together.", no_arguments()),
        tool(WITH_LOGGING, "Sends three info-level notifications/message while it runs.", no_arguments()),
        tool(
            WITH_PROGRESS,
            "Sends notifications/progress 0, 50 and 100 of 100 when given a progress token.",
            no_arguments()
        ),
        tool(ERROR_HANDLING, "Always fails, as a tool result with isError: true.", no_arguments()),
        tool(
            SAMPLING,
            "Asks the client for an LLM completion (sampling/createMessage) of the prompt.",
            json!({
                "type": "object",
                "properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}},
                "required": ["prompt"]
            })
        ),
        tool(
            ELICITATION,
            "Asks the user for a username and email (elicitation/create).",
            json!({
                "type": "object",
                "properties": {"message": {"type": "string", "description": "The message to show the user"}},
                "required": ["message"]
            })
        ),
        tool(ELICITATION_DEFAULTS, "Elicits a form whose fields all carry defaults (SEP-1034).", no_arguments()),
        tool(ELICITATION_ENUMS, "Elicits a form with every enum variant (SEP-1330).", no_arguments()),
        tool(JSON_SCHEMA_2020_12, "Tool with JSON Schema 2020-12 features", json_schema_2020_12()),
        tool(
            RECONNECTION,
            "Over HTTP its response stream is closed after the priming event; resume with GET + Last-Event-ID.",
            no_arguments()
        ),
    ])
}

fn tool(name: &str, description: &str, input_schema: Value) -> Value {
    json!({"name": name, "description": description, "inputSchema": input_schema})
}

fn no_arguments() -> Value {
    json!({"type": "object", "properties": {}})
}

/// The schema the `json-schema-2020-12` scenario looks for, keyword for keyword: it checks that
/// `$schema`, `$defs` (with `$anchor`), `additionalProperties`, `allOf`/`anyOf` and
/// `if`/`then`/`else` survive `tools/list` — through this server and through any relay.
fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"}
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": false
    })
}

pub(crate) fn list() -> Result<Vec<Tool>, McpError> {
    decode(catalogue())
}

/// Runs one tool. An unknown name is a protocol error (-32602, as the tools spec says); anything
/// that goes wrong *inside* a tool is a result with `isError: true`, which is what callers see.
pub(crate) async fn call(
    shared: &Shared,
    session: &Session,
    params: CallToolRequestParams,
    cx: RequestContext<RoleServer>,
) -> Result<CallToolResponse, McpError> {
    let args = params.arguments.clone().unwrap_or_default();
    let x = Exchange {
        cx: &cx,
        sealer: &shared.sealer,
        method: "tools/call",
        name: params.name.as_ref(),
        arguments: &args,
        responses: params.input_responses.as_ref(),
        state: params.request_state.as_deref(),
    };
    if let Some(response) = input_required::call(&x).await {
        return response;
    }
    if let Some(response) = tasked::call(&shared.tasks, &x).await {
        return response;
    }
    let result = match params.name.as_ref() {
        SIMPLE_TEXT => content::simple_text(),
        IMAGE_CONTENT => content::image(),
        AUDIO_CONTENT => content::audio(),
        EMBEDDED_RESOURCE => content::embedded_resource(),
        MULTIPLE_CONTENT_TYPES => content::multiple_types(),
        ERROR_HANDLING => content::error(),
        JSON_SCHEMA_2020_12 => content::json_schema_2020_12(&args),
        CUSTOM_HEADER => content::custom_header(&args),
        TRACE_CONTEXT => trace_context(&cx),
        WITH_LOGGING | LOGGING_TOOL => timed::with_logging(session, &cx).await,
        WITH_PROGRESS => timed::with_progress(&cx).await,
        RECONNECTION => timed::reconnection().await,
        TRIGGER_TOOL_CHANGE => announce(shared, Change::Tools, "notifications/tools/list_changed"),
        TRIGGER_PROMPT_CHANGE => announce(shared, Change::Prompts, "notifications/prompts/list_changed"),
        TRIGGER_RESOURCE_UPDATE => {
            let updated = crate::resources::touch(session, &cx.peer).await;
            text_result(format!("Sent notifications/resources/updated for {updated} resource(s)"))
        }
        // These four ask the client mid-call, so at 2026-07-28 they may answer input_required.
        SAMPLING => return client_requests::sampling(&x).await,
        ELICITATION => return client_requests::elicitation(&x).await,
        ELICITATION_DEFAULTS => return client_requests::elicitation_defaults(&x).await,
        ELICITATION_ENUMS => return client_requests::elicitation_enums(&x).await,
        other => return Err(McpError::invalid_params(format!("Unknown tool: {other}"), None)),
    };
    decode(result).map(CallToolResponse::Complete)
}

/// The trigger tools: the lists do not really change (they are fixed), the announcement is the
/// point — it is what a listen stream, or a relay feeding one, must deliver.
fn announce(shared: &Shared, change: Change, what: &str) -> Value {
    let streams = shared.hub.announce(change);
    text_result(format!("Announced {what} to {streams} listen stream(s)"))
}

/// What `trace_context` answers: `{"meta": …, "header": …}` as text and structured content.
fn trace_context(cx: &RequestContext<RoleServer>) -> Value {
    let meta = cx.meta.0.get("traceparent").and_then(Value::as_str);
    let header = cx
        .extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.headers.get("traceparent"))
        .and_then(|v| v.to_str().ok());
    let seen = json!({"meta": meta, "header": header});
    json!({"content": [{"type": "text", "text": seen.to_string()}], "structuredContent": seen})
}

/// A successful result with one text block.
pub(crate) fn text_result(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}]})
}

/// A failed tool run: the caller sees the message (spec: tool errors are results, not JSON-RPC errors).
fn error_result(text: impl Into<String>) -> Value {
    json!({"isError": true, "content": [{"type": "text", "text": text.into()}]})
}

/// A required string argument, or the tool-error result to return without it.
fn required_str<'a>(args: &'a JsonObject, name: &str) -> Result<&'a str, Value> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| error_result(format!("Missing required string argument '{name}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_decodes_and_names_are_unique_and_valid() {
        let tools = list().unwrap();
        let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate tool names");
        for t in &tools {
            // SEP-986 tool names, and the fields the tools-list scenario requires.
            assert!((1..=64).contains(&t.name.len()));
            assert!(t.name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
            assert!(t.description.is_some());
            assert_eq!(t.input_schema.get("type"), Some(&json!("object")));
        }
    }

    #[test]
    fn json_schema_2020_12_keywords_survive_decoding() {
        let tools = list().unwrap();
        let tool = tools.iter().find(|t| t.name == JSON_SCHEMA_2020_12).unwrap();
        let on_wire = serde_json::to_value(tool).unwrap();
        assert_eq!(on_wire["inputSchema"], json_schema_2020_12());
    }
}
