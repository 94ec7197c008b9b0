//! The MCP Inspector CLI (npm `@modelcontextprotocol/inspector`, run on the machine's Node 20) as a
//! real client through the mesh, against server-everything over Streamable HTTP and over stdio.
//! The Inspector CLI is one-shot: it covers the request methods; the server→client round trips
//! are covered by the rmcp and Python clients.

use mesh_testkit::{deps, upstreams, TestMesh};
use serde_json::{json, Value};
use std::time::Duration;

async fn inspector(url: &str, key: &str, args: &[&str]) -> Value {
    let cli = deps::path("npm/node_modules/@modelcontextprotocol/inspector/cli/build/index.js");
    let auth = format!("Authorization: Bearer {key}");
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(cli)
            .args([url, "--transport", "http", "--header", &auth])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("inspector finished in time")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "inspector {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("inspector printed no JSON ({e}): {stdout}"))
}

async fn matrix(url: &str, key: &str) {
    let tools = inspector(url, key, &["--method", "tools/list"]).await;
    let names: Vec<&str> =
        tools["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"echo") && names.contains(&"get-sum"), "{names:?}");

    let sum =
        inspector(url, key, &["--method", "tools/call", "--tool-name", "get-sum", "--tool-arg", "a=2", "b=40"]).await;
    assert!(sum["content"][0]["text"].as_str().unwrap_or("").contains("42"), "{sum}");

    let long = inspector(
        url,
        key,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "trigger-long-running-operation",
            "--tool-arg",
            "duration=0.2",
            "steps=2",
        ],
    )
    .await;
    assert!(long["content"][0]["text"].as_str().unwrap_or("").contains("Steps: 2"), "{long}");

    let res = inspector(url, key, &["--method", "resources/read", "--uri", "demo://resource/dynamic/text/3"]).await;
    assert_eq!(res["contents"][0]["uri"], "demo://resource/dynamic/text/3", "{res}");

    let prompt = inspector(
        url,
        key,
        &["--method", "prompts/get", "--prompt-name", "args-prompt", "--prompt-args", "city=Lisbon"],
    )
    .await;
    assert!(prompt.to_string().contains("Lisbon"), "{prompt}");

    let level = inspector(url, key, &["--method", "logging/setLevel", "--log-level", "debug"]).await;
    assert_eq!(level, json!({}), "{level}");
}

#[tokio::test]
async fn inspector_cli_through_the_mesh() {
    let http = upstreams::everything_http().await;
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything-http", "url": http.url})).await;
    mesh.add_connection(json!({"slug": "everything-stdio", "command": upstreams::everything_bin(), "args": ["stdio"]}))
        .await;
    matrix(&mesh.endpoint("everything-http"), &mesh.key).await;
    matrix(&mesh.endpoint("everything-stdio"), &mesh.key).await;
    mesh.stop().await;
    http.stop().await;
}
