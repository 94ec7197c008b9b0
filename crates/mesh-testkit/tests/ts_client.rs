//! The official TypeScript SDK v2's stateless (2026-07-28) client through the mesh to a server of
//! the session-based revision (npm `server-everything` over stdio): the script
//! `js/stateless_client.mjs` negotiates the revision with `server/discover` and answers sampling,
//! elicitation and roots, which the mesh turns into input-required results, through its handlers.

use mesh_testkit::{deps, upstreams, TestMesh};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn issue18_typescript_sdk_stateless_client_through_the_mesh_to_a_session_based_server() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let url = mesh.endpoint("everything");
    let args = ["--url", url.as_str(), "--key", mesh.key.as_str()];
    deps::assert_checks_passed(
        "stateless TypeScript client",
        &deps::run_node("stateless_client.mjs", &args, Duration::from_secs(240)).await,
    );
    mesh.stop().await;
}
