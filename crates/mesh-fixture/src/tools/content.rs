//! Tools that return fixed content: one per content block type, a mix, and a tool error.

use super::{error_result, text_result};
use crate::media::{silent_wav_base64, RED_PIXEL_PNG};
use rmcp::model::JsonObject;
use serde_json::{json, Value};

pub(super) fn simple_text() -> Value {
    text_result("This is a simple text response for testing.")
}

pub(super) fn image() -> Value {
    json!({"content": [{"type": "image", "data": RED_PIXEL_PNG, "mimeType": "image/png"}]})
}

/// The audio scenario insists on exactly `audio/wav`.
pub(super) fn audio() -> Value {
    json!({"content": [{"type": "audio", "data": silent_wav_base64(), "mimeType": "audio/wav"}]})
}

pub(super) fn embedded_resource() -> Value {
    json!({"content": [{
        "type": "resource",
        "resource": {
            "uri": "test://embedded-resource",
            "mimeType": "text/plain",
            "text": "This is an embedded resource content."
        }
    }]})
}

pub(super) fn multiple_types() -> Value {
    json!({"content": [
        {"type": "text", "text": "Multiple content types test:"},
        {"type": "image", "data": RED_PIXEL_PNG, "mimeType": "image/png"},
        {"type": "resource", "resource": {
            "uri": "test://mixed-content-resource",
            "mimeType": "application/json",
            "text": json!({"test": "data", "value": 123}).to_string()
        }}
    ]})
}

pub(super) fn error() -> Value {
    error_result("This tool intentionally returns an error for testing")
}

/// The 2020-12 tool exists for its schema; calling it echoes the arguments so a relay test can
/// see they arrived intact.
pub(super) fn json_schema_2020_12(args: &JsonObject) -> Value {
    text_result(format!("Received arguments: {}", Value::Object(args.clone())))
}

/// The `x-mcp-header` tool: echoes its arguments. rmcp has already checked, before the call, that
/// the `Mcp-Param-Region` header matches `region` (SEP-2243); the tool itself has nothing to check.
pub(super) fn custom_header(args: &JsonObject) -> Value {
    text_result(format!("Received arguments: {}", Value::Object(args.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode;
    use rmcp::model::CallToolResult;

    #[test]
    fn every_fixed_result_decodes_and_keeps_its_shape() {
        for value in [simple_text(), image(), audio(), embedded_resource(), multiple_types(), error()] {
            let result: CallToolResult = decode(value.clone()).unwrap();
            assert_eq!(serde_json::to_value(&result).unwrap(), value);
        }
    }
}
