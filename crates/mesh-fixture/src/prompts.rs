//! Prompts (`prompts/list`, `prompts/get`) and argument completion (`completion/complete`).

use crate::media::RED_PIXEL_PNG;
use crate::resources;
use crate::wire::decode;
use rmcp::model::{CompleteRequestParams, CompleteResult, GetPromptResult, JsonObject, Prompt, Reference};
use rmcp::ErrorData as McpError;
use serde_json::{json, Value};

const SIMPLE: &str = "test_simple_prompt";
const WITH_ARGUMENTS: &str = "test_prompt_with_arguments";
const WITH_EMBEDDED_RESOURCE: &str = "test_prompt_with_embedded_resource";
const WITH_IMAGE: &str = "test_prompt_with_image";
/// Asks for the user's name before it answers (2026-07-28: an input-required result on
/// `prompts/get`; 2025-11-25: an elicitation mid-request). Run by [`crate::server`].
pub(crate) const INPUT_REQUIRED: &str = "test_input_required_result_prompt";

/// What `completion/complete` offers for `test_prompt_with_arguments`' `arg1` and `arg2`, filtered
/// by the typed prefix. The completion scenario types "test", so it gets a non-empty answer.
const ARGUMENT_VALUES: &[&str] = &["test", "testValue1", "testValue2", "hello", "world"];

pub(crate) fn list() -> Result<Vec<Prompt>, McpError> {
    decode(json!([
        {"name": SIMPLE, "title": "Simple prompt", "description": "A prompt without arguments"},
        {
            "name": WITH_ARGUMENTS, "title": "Prompt with arguments",
            "description": "A prompt that substitutes two required arguments",
            "arguments": [
                {"name": "arg1", "description": "First test argument", "required": true},
                {"name": "arg2", "description": "Second test argument", "required": true}
            ]
        },
        {
            "name": WITH_EMBEDDED_RESOURCE, "title": "Prompt with embedded resource",
            "description": "A prompt that embeds a resource at the given URI",
            "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": true}]
        },
        {"name": WITH_IMAGE, "title": "Prompt with image", "description": "A prompt that carries an image"},
        {
            "name": INPUT_REQUIRED, "title": "Prompt that needs input",
            "description": "Asks the user's name (key user_name) before returning its message"
        }
    ]))
}

/// The message of [`INPUT_REQUIRED`] once the name is known.
pub(crate) fn input_required(answers: &str) -> Result<GetPromptResult, McpError> {
    decode(json!({"messages": [user(text(&format!("Prompt after input: {answers}")))]}))
}

pub(crate) fn get(name: &str, args: Option<&JsonObject>) -> Result<GetPromptResult, McpError> {
    let messages = match name {
        SIMPLE => json!([user(text("This is a simple prompt for testing."))]),
        WITH_ARGUMENTS => {
            let (arg1, arg2) = (required(args, "arg1")?, required(args, "arg2")?);
            json!([user(text(&format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")))])
        }
        WITH_EMBEDDED_RESOURCE => {
            let uri = required(args, "resourceUri")?;
            json!([
                user(json!({"type": "resource", "resource": {
                    "uri": uri, "mimeType": "text/plain", "text": "Embedded resource content for testing."
                }})),
                user(text("Please process the embedded resource above."))
            ])
        }
        WITH_IMAGE => json!([
            user(json!({"type": "image", "data": RED_PIXEL_PNG, "mimeType": "image/png"})),
            user(text("Please analyze the image above."))
        ]),
        other => return Err(McpError::invalid_params(format!("Unknown prompt: {other}"), None)),
    };
    decode(json!({"messages": messages}))
}

fn user(content: Value) -> Value {
    json!({"role": "user", "content": content})
}

fn text(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// A missing required prompt argument is the caller's fault: -32602, as the prompts spec says.
fn required<'a>(args: Option<&'a JsonObject>, name: &str) -> Result<&'a str, McpError> {
    args.and_then(|a| a.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| McpError::invalid_params(format!("Missing required argument: {name}"), None))
}

/// Completes prompt and template arguments. An unknown prompt or template is -32602; an argument
/// with nothing to offer gets an empty list.
pub(crate) fn complete(params: &CompleteRequestParams) -> Result<CompleteResult, McpError> {
    let prefix = params.argument.value.as_str();
    let argument = params.argument.name.as_str();
    let values: Vec<String> = match &params.r#ref {
        Reference::Prompt(p) if p.name == WITH_ARGUMENTS && matches!(argument, "arg1" | "arg2") => {
            ARGUMENT_VALUES.iter().filter(|v| v.starts_with(prefix)).map(|v| (*v).to_owned()).collect()
        }
        Reference::Prompt(p) if list()?.iter().any(|known| known.name == p.name) => Vec::new(),
        Reference::Prompt(p) => return Err(McpError::invalid_params(format!("Unknown prompt: {}", p.name), None)),
        Reference::Resource(r) if r.uri == resources::TEMPLATE && argument == "id" => {
            resources::complete_template_id(prefix)
        }
        Reference::Resource(r) if r.uri == resources::TEMPLATE => Vec::new(),
        Reference::Resource(r) => {
            return Err(McpError::invalid_params(format!("Unknown resource template: {}", r.uri), None))
        }
        _ => return Err(McpError::invalid_params("Unsupported completion reference", None)),
    };
    let total = values.len();
    decode(json!({"completion": {"values": values, "total": total, "hasMore": false}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete_json(request: Value) -> Result<Value, McpError> {
        let params: CompleteRequestParams = decode(request).unwrap();
        complete(&params).map(|r| serde_json::to_value(r).unwrap())
    }

    #[test]
    fn every_prompt_decodes() {
        let args: JsonObject = decode(json!({"arg1": "a", "arg2": "b", "resourceUri": "test://x"})).unwrap();
        for prompt in list().unwrap().into_iter().filter(|p| p.name != INPUT_REQUIRED) {
            let result = get(&prompt.name, Some(&args)).unwrap();
            assert!(!result.messages.is_empty(), "{}", prompt.name);
        }
    }

    #[test]
    fn arguments_are_substituted_and_required() {
        let args: JsonObject = decode(json!({"arg1": "testValue1", "arg2": "testValue2"})).unwrap();
        let on_wire = serde_json::to_value(get(WITH_ARGUMENTS, Some(&args)).unwrap()).unwrap();
        assert_eq!(
            on_wire["messages"][0]["content"]["text"],
            "Prompt with arguments: arg1='testValue1', arg2='testValue2'"
        );
        assert_eq!(get(WITH_ARGUMENTS, None).unwrap_err().code.0, -32602);
    }

    #[test]
    fn completion_filters_by_prefix() {
        let r = complete_json(json!({
            "ref": {"type": "ref/prompt", "name": WITH_ARGUMENTS},
            "argument": {"name": "arg1", "value": "test"}
        }))
        .unwrap();
        assert_eq!(r["completion"]["values"], json!(["test", "testValue1", "testValue2"]));
        let r = complete_json(json!({
            "ref": {"type": "ref/resource", "uri": resources::TEMPLATE},
            "argument": {"name": "id", "value": "1"}
        }))
        .unwrap();
        assert_eq!(r["completion"]["values"], json!(["1", "123"]));
    }

    #[test]
    fn completion_of_an_unknown_prompt_is_invalid_params() {
        let e = complete_json(json!({
            "ref": {"type": "ref/prompt", "name": "nope"},
            "argument": {"name": "a", "value": ""}
        }))
        .unwrap_err();
        assert_eq!(e.code.0, -32602);
    }
}
