//! `mcp-mesh audit` as a user runs it: the table, `--json`, `export` as JSON Lines, and
//! `audit verify` with its exit codes — 0 intact, 2 tampered, 1 could not check.

mod common;
use common::*;

use mesh_testkit::{upstreams, TestMesh};
use serde_json::{json, Value};

#[tokio::test]
async fn audit_list_export_and_verify_exit_codes() {
    let mesh = TestMesh::start().await;
    let bin = upstreams::everything_bin().display().to_string();
    mesh.add_connection(json!({"slug": "everything", "command": bin, "args": ["stdio"]})).await;
    let key = mesh.key.clone();
    let call = cli_as(&mesh, &key, &["call", "everything", "echo", "-a", "message=hi", "-a", "password=hunter2"]).await;
    assert_eq!(call.code, Some(0), "{}", call.stderr);

    let table = cli_as(&mesh, &key, &["audit", "--tool", "echo"]).await;
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    assert!(table.stdout.starts_with("TIME") && table.stdout.contains("connection:everything"), "{}", table.stdout);
    assert!(table.stdout.contains("tools/call") && table.stdout.contains(" ok "), "{}", table.stdout);

    let json_out = cli_as(&mesh, &key, &["audit", "--route", "everything", "--json", "--limit", "1"]).await;
    let page: Value = serde_json::from_str(&json_out.stdout).expect("--json is JSON");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert!(page["nextCursor"].is_string(), "{page}");
    assert!(json_out.stderr.is_empty() || !json_out.stderr.contains("error"), "{}", json_out.stderr);

    let export = cli_as(&mesh, &key, &["audit", "export", "--since", "1h"]).await;
    assert_eq!(export.code, Some(0), "{}", export.stderr);
    let lines: Vec<Value> = export.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert!(lines.iter().any(|r| r["name"] == "echo" && r["arguments"]["password"] == "[REDACTED]"), "{lines:?}");
    assert!(!export.stdout.contains("hunter2"));
    assert!(lines.windows(2).all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()), "oldest first");

    let ok = cli_as(&mesh, &key, &["audit", "verify"]).await;
    assert_eq!(ok.code, Some(0), "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("audit chain intact"), "{}", ok.stdout);

    // A member may not verify: that is "could not check" (1), not "tampered" (2).
    let member = mesh.extra_key("member").await;
    let denied = cli_as(&mesh, &member, &["audit", "verify"]).await;
    assert_eq!(denied.code, Some(1), "{}", denied.stderr);
    assert!(denied.stderr.contains("permission denied"), "{}", denied.stderr);

    let org = mesh.owner().org_id;
    let edited = mesh
        .admin
        .store
        .execute_raw_for_tests(&format!("UPDATE audit_log SET method = 'forged' WHERE org_id = '{org}' AND seq = 2"))
        .await
        .unwrap();
    assert_eq!(edited, 1);
    let broken = cli_as(&mesh, &key, &["audit", "verify"]).await;
    assert_eq!(broken.code, Some(2), "{}{}", broken.stdout, broken.stderr);
    assert!(broken.stderr.contains("audit chain broken at seq 2"), "{}", broken.stderr);
    mesh.stop().await;
}
