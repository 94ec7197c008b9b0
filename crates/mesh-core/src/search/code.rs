//! The `code` strategy's one tool (#23): `run_code`, whose description presents a virtual MCP's
//! catalogue as a compact typed API the model writes JavaScript against.
//!
//! Each tool becomes one line, `tools.name({a: string, b?: number}) // what it does`, its
//! parameter types read from the input schema (depth-limited, enums as unions) and its description
//! cut to its first sentence: the model sees every tool and its arguments at a fraction of the
//! size of the full definitions, and writes one script instead of one call per turn.

use serde_json::{json, Value};

/// The tool's name.
pub const RUN_CODE: &str = "run_code";
/// Characters of a tool's description kept in its line.
const DESCRIPTION_CHARS: usize = 120;
/// How deep nested object types are written out before `object`.
const DEPTH: usize = 2;

/// The `run_code` tool for a catalogue of `tools` (full MCP tool definitions).
pub fn run_code_tool(tools: &[Value]) -> Value {
    let api: Vec<String> = tools.iter().filter_map(declaration).collect();
    let description = format!(
        "Runs JavaScript that calls this server's tools, and returns what the script returns (as \
         JSON) with what it logged. Use it to call several tools in one go and combine, filter or \
         summarise their results before they reach you.\n\n\
         The script is the body of an async function: `return` its result. Each tool is a \
         function taking one object of arguments and returning the tool's result: its structured \
         content if it has one, else its text. A tool's error is thrown as an Error (catch it to \
         go on). `console.log` is kept. There is no network, file system, clock or timer; the \
         script has a time, memory and tool-call limit.\n\n\
         Example: `const a = tools.some_tool({{q: 'x'}}); return a.length;`\n\n\
         The {} tools (`callTool(name, args)` calls one by name too):\n{}",
        api.len(),
        api.join("\n")
    );
    json!({
        "name": RUN_CODE,
        "title": "Run code",
        "description": description,
        "inputSchema": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "JavaScript: the body of an async function that calls `tools.<name>({...})` and returns the result."}
            },
            "required": ["code"]
        },
        "annotations": {"openWorldHint": true}
    })
}

/// One tool's line: `tools.name({...}) // description`, or `callTool("name", {...})` for a name
/// that is not a JavaScript identifier.
fn declaration(tool: &Value) -> Option<String> {
    let name = tool.get("name")?.as_str()?;
    let args = tool.get("inputSchema").map_or_else(|| "{}".to_string(), |s| type_of(s, 0));
    let call =
        if is_identifier(name) { format!("tools.{name}({args})") } else { format!("callTool({name:?}, {args})") };
    let about = tool.get("description").and_then(Value::as_str).map(first_sentence).unwrap_or_default();
    Some(if about.is_empty() { call } else { format!("{call} // {about}") })
}

/// A JSON Schema as a TypeScript-like type.
fn type_of(schema: &Value, depth: usize) -> String {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let mut shown: Vec<String> = values.iter().take(8).map(Value::to_string).collect();
        if values.len() > 8 {
            shown.push("…".into());
        }
        return shown.join("|");
    }
    if let Some(v) = schema.get("const") {
        return v.to_string();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let parts: Vec<String> = options.iter().take(4).map(|o| type_of(o, depth)).collect();
            return parts.join("|");
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("any"),
        _ if schema.get("properties").is_some() => "object",
        _ => "any",
    };
    match kind {
        "string" => "string".into(),
        "integer" | "number" => "number".into(),
        "boolean" => "boolean".into(),
        "null" => "null".into(),
        "array" => match schema.get("items") {
            Some(items) => {
                let inner = type_of(items, depth + 1);
                if inner.contains('|') {
                    format!("({inner})[]")
                } else {
                    format!("{inner}[]")
                }
            }
            None => "any[]".into(),
        },
        "object" => object(schema, depth),
        _ => "any".into(),
    }
}

fn object(schema: &Value, depth: usize) -> String {
    let Some(props) = schema.get("properties").and_then(Value::as_object).filter(|p| !p.is_empty()) else {
        return if depth == 0 { "{}".into() } else { "object".into() };
    };
    if depth > DEPTH {
        return "object".into();
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fields: Vec<String> = props
        .iter()
        .map(|(k, v)| {
            let key = if is_identifier(k) { k.clone() } else { format!("{k:?}") };
            let optional = if required.contains(&k.as_str()) { "" } else { "?" };
            format!("{key}{optional}: {}", type_of(v, depth + 1))
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// The description's first sentence (or line), at most [`DESCRIPTION_CHARS`] characters.
fn first_sentence(text: &str) -> String {
    let text = text.trim();
    let line = text.lines().next().unwrap_or("");
    let end = line.find(". ").map_or(line.len(), |i| i + 1);
    let sentence = &line[..end];
    if sentence.chars().count() <= DESCRIPTION_CHARS {
        return sentence.to_string();
    }
    let cut: String = sentence.chars().take(DESCRIPTION_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tool_is_one_typed_line() {
        let tools = [
            json!({"name": "github_create_issue", "description": "Create an issue. It needs a repo.\nMore text.",
                   "inputSchema": {"type": "object", "required": ["repo", "title"], "properties": {
                       "repo": {"type": "string"}, "title": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}},
                       "state": {"enum": ["open", "closed"]}, "meta": {"type": "object", "properties": {"n": {"type": ["integer", "null"]}}}}}}),
            json!({"name": "time-now", "inputSchema": {"type": "object"}}),
        ];
        let lines: Vec<String> = tools.iter().filter_map(declaration).collect();
        assert_eq!(
            lines[0],
            r#"tools.github_create_issue({repo: string, title: string, labels?: string[], state?: "open"|"closed", meta?: {n?: number}}) // Create an issue."#
        );
        assert_eq!(lines[1], r#"callTool("time-now", {})"#);
        let tool = run_code_tool(&tools);
        assert_eq!(tool["name"], RUN_CODE);
        let description = tool["description"].as_str().unwrap();
        assert!(
            description.contains("The 2 tools") && description.ends_with(r#"callTool("time-now", {})"#),
            "{description}"
        );
    }

    #[test]
    fn long_descriptions_and_deep_schemas_stay_short() {
        let long = "word ".repeat(100);
        assert!(first_sentence(&long).chars().count() <= DESCRIPTION_CHARS);
        let deep = json!({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "object",
            "properties": {"c": {"type": "object", "properties": {"d": {"type": "string"}}}}}}}}});
        assert_eq!(type_of(&deep, 0), "{a?: {b?: {c?: object}}}");
    }
}
