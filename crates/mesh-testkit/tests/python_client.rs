//! The PyPI `mcp` SDK as a real downstream client (with sampling, elicitation and roots
//! callbacks) through the mesh: server-everything over stdio and Streamable HTTP, server-time,
//! and server-filesystem taking its roots from the Python client.

use mesh_testkit::{deps, upstreams, TestMesh};
use serde_json::json;
use std::time::Duration;

/// Runs `py/mcp_client_check.py` against `url`; panics with its report unless every check passed.
async fn check(url: &str, key: &str, suite: &str, extra: &[&str]) {
    let mut all = vec!["--url", url, "--key", key, "--suite", suite];
    all.extend_from_slice(extra);
    deps::assert_checks_passed(
        &format!("python client, suite {suite}"),
        &deps::run_python("mcp_client_check.py", &all, Duration::from_secs(180)).await,
    );
}

#[tokio::test]
async fn python_sdk_client_through_the_mesh() {
    let http = upstreams::everything_http().await;
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything-stdio", "command": upstreams::everything_bin(), "args": ["stdio"]}))
        .await;
    mesh.add_connection(json!({"slug": "everything-http", "url": http.url})).await;
    let (command, args) = upstreams::time_command();
    mesh.add_connection(json!({"slug": "time", "command": command, "args": args})).await;
    mesh.add_connection(json!({"slug": "fs", "command": upstreams::filesystem_bin()})).await;
    let root = tempfile::tempdir().expect("tmp");
    let root = root.path().canonicalize().expect("canonical").display().to_string();

    check(&mesh.endpoint("everything-stdio"), &mesh.key, "everything", &[]).await;
    check(&mesh.endpoint("everything-http"), &mesh.key, "everything", &[]).await;
    check(&mesh.endpoint("time"), &mesh.key, "time", &[]).await;
    check(&mesh.endpoint("fs"), &mesh.key, "filesystem", &["--root", &root]).await;
    mesh.stop().await;
    http.stop().await;
}
