//! The `smart` strategy's three meta-tools, as a virtual MCP lists them instead of its catalogue
//! (the relay answers them; `mesh-relay/src/session/smart.rs`). Here so that what a client
//! receives can be measured without a running mesh (`tests/search_recall.rs`).

use serde_json::{json, Value};

/// Searches the catalogue.
pub const SEARCH: &str = "search_tools";
/// Describes chosen tools with their input schemas.
pub const DESCRIBE: &str = "describe_tools";
/// Calls a tool by name.
pub const CALL: &str = "call_tool";
/// Results a search returns unless it asks for another number.
pub const DEFAULT_K: u64 = 10;
/// The most results a search may ask for.
pub const MAX_K: u64 = 50;
/// Tools one `describe_tools` may name.
pub const MAX_DESCRIBE: usize = 50;

/// What a smart virtual MCP lists: its three meta-tools, the search's description saying how
/// many tools stand behind it.
pub fn meta_tools(count: usize) -> Vec<Value> {
    vec![
        json!({
            "name": SEARCH,
            "title": "Search tools",
            "description": format!(
                "Find tools by what you want to do. This server has {count} tools behind this search; \
                 it returns the best matches with their names and short descriptions. Then call \
                 {DESCRIBE} for their input schemas and {CALL} to run one."
            ),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What the tool should do, in a few words."},
                    "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "description": format!("How many tools to return (default {DEFAULT_K}).")}
                },
                "required": ["query"]
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        }),
        json!({
            "name": DESCRIBE,
            "title": "Describe tools",
            "description": format!("The full definitions of tools found with {SEARCH}: description and input schema."),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "names": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_DESCRIBE, "description": "Tool names, as search returned them."}
                },
                "required": ["names"]
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        }),
        json!({
            "name": CALL,
            "title": "Call a tool",
            "description": format!("Calls a tool found with {SEARCH}, with arguments that match its input schema ({DESCRIBE})."),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The tool's name, as search returned it."},
                    "arguments": {"type": "object", "description": "The tool's arguments."}
                },
                "required": ["name"]
            }
        }),
    ]
}
