//! The web dashboard in a real browser: `js/dashboard.mjs` drives Debian's Chromium through
//! every admin task the issue names (see its header), against a real mesh with server-everything
//! over stdio and the official Python SDK as the client of what the dashboard built.

use mesh_testkit::{deps, upstreams, TestMesh};
use serde_json::json;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn every_admin_task_in_a_real_browser() {
    let mesh = TestMesh::start().await;
    let owner = mesh.owner();
    mesh.admin.set_password(&owner, None, PASSWORD).await.expect("owner password");
    let (ok, added) = mesh
        .manage(
            &mesh.key,
            "ORGANIZATION_MEMBER_ADD",
            json!({"email": "viewer@example.com", "role": "viewer", "password": PASSWORD}),
        )
        .await;
    assert!(ok, "viewer added: {added}");
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
    std::env::set_var("MESH_SCREENSHOT_DIR", &shots);
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/list_and_call.py");
    let (everything, python) = (upstreams::everything_bin(), deps::python());
    let report = deps::run_node(
        "dashboard.mjs",
        &[
            "--base",
            &mesh.url,
            "--email",
            mesh_admin::bootstrap::OWNER_EMAIL,
            "--password",
            PASSWORD,
            "--viewer-email",
            "viewer@example.com",
            "--viewer-password",
            PASSWORD,
            "--everything",
            &everything.display().to_string(),
            "--python",
            &python.display().to_string(),
            "--sdk-script",
            &sdk.display().to_string(),
        ],
        Duration::from_secs(300),
    )
    .await;
    deps::assert_checks_passed("dashboard in Chromium", &report);
    mesh.stop().await;
}

/// The harness itself: a page that breaks its CSP or has an unlabelled control is caught, so the
/// "no violations" checks above can fail.
#[tokio::test]
async fn the_browser_harness_catches_csp_and_accessibility_violations() {
    let report = deps::run_node("browser_selftest.mjs", &[], Duration::from_secs(120)).await;
    deps::assert_checks_passed("browser harness self-test", &report);
}
