use mesh_testkit::raw::{self, post_headers};
use mesh_testkit::{deps, upstreams, TestMesh};
use serde_json::json;

#[tokio::test]
async fn probe_exit_on_init() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug":"x","command":deps::python(),"args":[upstreams::fixture("misbehaving_server.py"),"hang-on-init"],"timeoutMs":1000})).await;
    let (status, _h, body) = raw::post(
        &mesh.endpoint("x"),
        post_headers(&mesh.key, None),
        raw::initialize_body(1, "2025-11-25"),
    )
    .await;
    println!("PROBE hang-on-init: {status} {body}");
    mesh.stop().await;
}
