//! LiveMCPBench's catalogue (70 servers, 526 tools) and its 95 tasks with annotated tools, as
//! `scripts/test-deps` unpacks them from the PyPI wheel into `$MESH_TEST_LIVEMCPBENCH`. Shared by
//! the recall test of the search library (mesh-core) and the one through a running gateway
//! (mesh-testkit), so that both read the benchmark the same way.

#![allow(dead_code)] // each test uses the part it needs

use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::path::PathBuf;

/// One published server: its slug (the member name a virtual MCP would give it), what it says
/// of itself, and its tools as it would list them.
pub struct Server {
    pub slug: String,
    pub description: String,
    pub tools: Vec<Value>,
}

/// One task: its question, its annotated steps, and the names of its annotated tools.
pub struct Task {
    pub question: String,
    pub steps: Vec<String>,
    pub tools: HashSet<String>,
}

/// Where the data is; the test deps always provide it (a missing file fails, never skips).
fn data(file: &str) -> Value {
    let dir = std::env::var_os("MESH_TEST_LIVEMCPBENCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.test-deps/livemcpbench"));
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/test-deps, or set MESH_TEST_LIVEMCPBENCH)", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

/// A catalogue entry's `parameter` map (`{"symbol": "(string) Stock symbol…"}`) as the input
/// schema a server would list.
fn schema(parameter: Option<&Value>) -> Value {
    let mut properties = Map::new();
    for (name, text) in parameter.and_then(Value::as_object).into_iter().flatten() {
        let text = text.as_str().unwrap_or("");
        let (kind, description) = match text.strip_prefix('(').and_then(|t| t.split_once(')')) {
            Some((kind, rest)) => (kind.rsplit(',').next().unwrap_or("string").trim().to_string(), rest.trim()),
            None => ("string".to_string(), text),
        };
        properties.insert(name.clone(), json!({"type": kind, "description": description}));
    }
    json!({"type": "object", "properties": properties})
}

/// The numbered lines of an annotation ("1. geocode_address\n2. …"), numbers dropped.
fn numbered(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim().trim_start_matches(|c: char| c.is_ascii_digit()).trim_start_matches(['.', ')']).trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The 70 servers, in published order, each tool under its own (unprefixed) name.
pub fn servers() -> Vec<Server> {
    let catalogue = data("catalogue.json");
    let servers: Vec<Server> = catalogue
        .as_array()
        .expect("servers")
        .iter()
        .map(|server| Server {
            slug: server["server_name"].as_str().unwrap_or("").to_lowercase().replace(' ', "-"),
            description: server["server_description"].as_str().unwrap_or("").to_string(),
            tools: server["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|tool| {
                    json!({
                        "name": tool["name"],
                        "description": tool["description"],
                        "inputSchema": schema(tool.get("parameter")),
                    })
                })
                .collect(),
        })
        .collect();
    let tools: usize = servers.iter().map(|s| s.tools.len()).sum();
    assert_eq!((servers.len(), tools), (70, 526), "the catalogue as published");
    servers
}

/// The 95 tasks.
pub fn tasks() -> Vec<Task> {
    let tasks: Vec<Task> = data("tasks.json")
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| Task {
            question: t["Question"].as_str().unwrap_or("").to_string(),
            steps: numbered(t["Annotator Metadata"]["Steps"].as_str().unwrap_or("")),
            tools: numbered(t["Annotator Metadata"]["Tools"].as_str().unwrap_or("")).into_iter().collect(),
        })
        .filter(|t| !t.tools.is_empty())
        .collect();
    assert_eq!(tasks.len(), 95, "every task has annotated tools");
    tasks
}

/// The share of `wanted` among `hits` (the annotated names absent from the catalogue count as
/// misses).
pub fn recall(hits: &HashSet<&str>, wanted: &HashSet<String>) -> f64 {
    wanted.iter().filter(|t| hits.contains(t.as_str())).count() as f64 / wanted.len() as f64
}
