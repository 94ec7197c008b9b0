//! `mcp-mesh usage` as a user runs it, on SQLite and on PostgreSQL: after tool calls by two users
//! on two tools, `--by user` and `--by tool` give the exact counts, a member sees only their own
//! use, and the totals agree with the audit trail they are summed from.

mod common;
use common::*;

use mesh_relay::ports::Authenticator;
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{upstreams, TestMesh};
use serde_json::{json, Value};

/// `(user id, tool) → calls` of the answer to `args`.
async fn usage_json(mesh: &TestMesh, key: &str, args: &[&str]) -> Value {
    let mut all = vec!["usage", "--json"];
    all.extend_from_slice(args);
    let out = cli_as(mesh, key, &all).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("--json is JSON")
}

fn calls_of(answer: &Value, field: &str, value: &str) -> i64 {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i[field] == value)
        .map(|i| i["calls"].as_i64().unwrap())
        .unwrap_or(0)
}

async fn two_users_two_tools(mesh: TestMesh) {
    let bin = upstreams::everything_bin().display().to_string();
    mesh.add_connection(json!({"slug": "everything", "command": bin, "args": ["stdio"]})).await;
    let member = mesh.extra_key("member").await;
    let owner_id = mesh.owner().user_id;
    let member_id = mesh.admin.keys.authenticate(&member).expect("member key").user_id;

    // Owner: 3 echo + 2 get-sum; member: 4 echo + 1 get-sum, one of them a tool error.
    for (key, echoes, sums) in [(&mesh.key, 3, 2), (&member, 4, 1)] {
        let c = TestClient::connect_http(&mesh.endpoint("everything"), key, ClientBehaviour::default()).await.unwrap();
        for i in 0..echoes {
            c.call_tool("echo", json!({"message": format!("hi {i}")})).await.unwrap();
        }
        for _ in 0..sums {
            c.call_tool("get-sum", json!({"a": 1, "b": 2})).await.unwrap();
        }
        c.close().await.ok();
    }

    let by_user = usage_json(&mesh, &mesh.key, &["--by", "user", "--method", "tools/call", "--from", "7d"]).await;
    assert_eq!(calls_of(&by_user, "user", &owner_id), 5, "{by_user}");
    assert_eq!(calls_of(&by_user, "user", &member_id), 5, "{by_user}");
    assert_eq!(by_user["items"].as_array().unwrap().len(), 2, "{by_user}");
    assert!(by_user["items"][0]["email"].as_str().is_some_and(|e| e.contains('@')), "{by_user}");

    let by_tool =
        usage_json(&mesh, &mesh.key, &["--by", "tool", "--connection", "everything", "--method", "tools/call"]).await;
    assert_eq!(calls_of(&by_tool, "tool", "echo"), 7, "{by_tool}");
    assert_eq!(calls_of(&by_tool, "tool", "get-sum"), 3, "{by_tool}");
    assert_eq!(by_tool["items"].as_array().unwrap().len(), 2, "{by_tool}");
    let echo = by_tool["items"].as_array().unwrap().iter().find(|i| i["tool"] == "echo").unwrap().clone();
    assert_eq!(echo["errors"], 0, "{echo}");
    assert!(echo["bytesIn"].as_i64().unwrap() > 0 && echo["bytesOut"].as_i64().unwrap() > 0, "{echo}");
    assert!(echo["latencyMsMax"].as_f64().unwrap() >= echo["latencyMsAvg"].as_f64().unwrap(), "{echo}");

    // Everything on the route, every method: as many as the audit trail holds for it.
    let total = usage_json(&mesh, &mesh.key, &["--connection", "everything"]).await;
    let audit = mesh.manage(&mesh.key, "AUDIT_QUERY", json!({"route": "everything", "limit": 1000})).await;
    assert!(audit.0, "{}", audit.1);
    assert_eq!(total["items"][0]["calls"].as_u64(), Some(audit.1["items"].as_array().unwrap().len() as u64));

    // A member sees their own use only, and is refused someone else's.
    let mine = usage_json(&mesh, &member, &["--by", "user", "--method", "tools/call"]).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(calls_of(&mine, "user", &member_id), 5);
    let theirs = cli_as(&mesh, &member, &["usage", "--user", &owner_id]).await;
    assert_eq!(theirs.code, Some(1), "{}", theirs.stdout);
    assert!(theirs.stderr.contains("only read their own"), "{}", theirs.stderr);

    // The table a person reads, and a bad grouping's error.
    let table = cli_as(&mesh, &mesh.key, &["usage", "--by", "tool", "--method", "tools/call"]).await;
    assert!(table.stdout.starts_with("TOOL") && table.stdout.contains("echo"), "{}", table.stdout);
    let bad = cli_as(&mesh, &mesh.key, &["usage", "--by", "colour"]).await;
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("'colour' is not one of"), "{}", bad.stderr);
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_by_user_and_by_tool_is_exact_on_sqlite() {
    two_users_two_tools(TestMesh::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_by_user_and_by_tool_is_exact_on_postgres() {
    let Some(db) = mesh_testkit::pg::fresh("mesh_usage").await else { return };
    let url = db.url.clone();
    two_users_two_tools(TestMesh::start_with(move |c| c.database_url = Some(mesh_core::Secret::new(url))).await).await;
    db.drop_now().await;
}
