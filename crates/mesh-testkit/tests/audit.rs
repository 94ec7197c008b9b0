//! The audit trail end to end: a real mesh, a real upstream (server-everything over stdio), three
//! principals calling concurrently, then the rows read back — exactly as many as requests, with the
//! right fields, secrets redacted — a graceful stop that loses nothing, and a hash chain that
//! verifies until a row is edited or deleted behind the mesh's back. Then the same trail through
//! the `AUDIT_*` management tools (who sees what) and `GET /api/v1/audit`.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use mesh_core::Principal;
use mesh_relay::ports::Authenticator;
use mesh_store::{AuditFilter, AuditRow, Store};
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{text_of, upstreams, TestMesh};
use serde_json::{json, Value};

const SECRET: &str = "hunter2";

async fn everything(mesh: &TestMesh) -> String {
    let bin = upstreams::everything_bin().display().to_string();
    mesh.add_connection(json!({"slug": "everything", "command": bin, "args": ["stdio"]})).await
}

async fn rows(store: &Store, org: &str) -> Vec<AuditRow> {
    store.audit_chain_rows(org, 0, 100_000).await.unwrap()
}

fn count_by<'a>(
    rows: impl Iterator<Item = &'a AuditRow>,
    key: impl Fn(&AuditRow) -> String,
) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(key(r)).or_default() += 1;
    }
    m
}

/// What kind of call number `i` of a client is, and what its audit row must say.
fn call_kind(i: usize) -> (&'static str, Value, &'static str) {
    match i % 3 {
        0 => ("echo", json!({"message": format!("hello {i}"), "password": SECRET, "auth": {"token": SECRET}}), "ok"),
        1 => ("get-sum", json!({"a": "not a number", "b": 2}), "tool_error"),
        _ => ("no-such-tool", json!({"x": i}), "tool_error"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_from_three_keys_become_exactly_as_many_rows_and_verify() -> anyhow::Result<()> {
    const PER_KEY: usize = 20;
    const PROMPTS_PER_KEY: usize = 2;
    let db_dir = tempfile::tempdir()?;
    let db_url = format!("sqlite://{}", db_dir.path().join("audit.db").display());
    let url_for_mesh = db_url.clone();
    let mesh = TestMesh::start_with(move |cfg| cfg.database_url = Some(mesh_core::Secret::new(url_for_mesh))).await;
    everything(&mesh).await;
    let keys = vec![mesh.key.clone(), mesh.extra_key("member").await, mesh.extra_key("member").await];
    let principals: Vec<Principal> = keys.iter().map(|k| mesh.admin.keys.authenticate(k).unwrap()).collect();
    let org = principals[0].org_id.clone();

    let mut clients = Vec::new();
    for k in &keys {
        clients.push(TestClient::connect_http(&mesh.endpoint("everything"), k, ClientBehaviour::default()).await?);
    }
    // Every call of every client at once: 3 × (20 tool calls + 2 failing prompt gets).
    let mut calls = Vec::new();
    for c in &clients {
        for i in 0..PER_KEY {
            let (tool, args, _) = call_kind(i);
            calls.push(Box::pin(async move {
                let r = c.call_tool(tool, args).await.expect("tools/call answered");
                assert_eq!(r["isError"] == true, i % 3 != 0, "{tool}: {r}");
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);
        }
        for _ in 0..PROMPTS_PER_KEY {
            calls.push(Box::pin(async move {
                assert!(
                    c.get_prompt("no-such-prompt", Value::Null).await.is_err(),
                    "an unknown prompt is a protocol error"
                );
            }));
        }
    }
    join_all(calls).await;
    for c in clients {
        c.close().await?;
    }
    // No flush: the graceful stop alone must write every queued record.
    mesh.stop().await;

    let store = Store::connect(&db_url).await?;
    let all = rows(&store, &org).await;
    let by_method = count_by(all.iter(), |r| r.method.clone());
    let want: BTreeMap<String, usize> =
        [("initialize", 3), ("tools/call", 3 * PER_KEY), ("prompts/get", 3 * PROMPTS_PER_KEY)]
            .into_iter()
            .map(|(m, n)| (m.to_string(), n))
            .collect();
    assert_eq!(by_method, want, "exactly one row per request");

    for p in &principals {
        let mine: Vec<&AuditRow> = all.iter().filter(|r| r.key_id == p.key_id).collect();
        assert_eq!(mine.len(), 1 + PER_KEY + PROMPTS_PER_KEY, "rows of {}", p.key_id);
        assert!(mine.iter().all(|r| r.user_id == p.user_id && r.role == p.role_name()));
        let sessions = count_by(mine.iter().copied(), |r| r.session_id.clone());
        assert_eq!(sessions.len(), 1, "one session per client");
        let outcomes = count_by(mine.iter().filter(|r| r.method == "tools/call").copied(), |r| {
            format!("{} {}", r.name.clone().unwrap_or_default(), r.outcome)
        });
        let expected = count_by_kinds(PER_KEY);
        assert_eq!(outcomes, expected, "tool, outcome of {}", p.key_id);
    }
    for r in &all {
        assert_eq!((r.route_kind.as_str(), r.route.as_str()), ("connection", "everything"));
        assert!(r.client_name.as_deref().is_some_and(|n| !n.is_empty()), "client name recorded: {r:?}");
        assert!(r.latency_us > 0 && r.bytes_in > 0 && r.bytes_out > 0, "latency and sizes: {r:?}");
        assert_ne!(r.request_id, "null");
    }
    let prompt = all.iter().find(|r| r.method == "prompts/get").unwrap();
    assert_eq!((prompt.outcome.as_str(), prompt.name.as_deref()), ("protocol_error", Some("no-such-prompt")));
    assert!(prompt.error.as_deref().is_some_and(|e| e.contains("no-such-prompt")), "{prompt:?}");
    let unknown = all.iter().find(|r| r.name.as_deref() == Some("no-such-tool")).unwrap();
    assert!(
        unknown.error.as_deref().is_some_and(|e| e.contains("no-such-tool")),
        "tool errors keep their text: {unknown:?}"
    );
    let echo = all.iter().find(|r| r.name.as_deref() == Some("echo")).unwrap();
    let args: Value = serde_json::from_str(echo.arguments.as_deref().unwrap())?;
    assert_eq!((&args["password"], &args["auth"]), (&json!("[REDACTED]"), &json!("[REDACTED]")), "{args}");
    assert!(args["message"].as_str().is_some_and(|m| m.starts_with("hello ")), "other arguments are kept");

    // The secret is nowhere: not in any column, not in the database files' bytes.
    assert!(!serde_json::to_string(&all)?.contains(SECRET));
    for entry in std::fs::read_dir(db_dir.path())? {
        let bytes = std::fs::read(entry?.path())?;
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "{SECRET} found in the database files");
    }

    // The chain verifies; an edit of one row's arguments, then a deleted middle row, do not.
    let report = mesh_audit::verify(&store, &org).await?;
    assert!(report.ok && report.rows_checked == all.len() as u64, "{report:?}");
    let victim = all[all.len() / 2].seq;
    let sql = format!(
        "UPDATE audit_log SET arguments = '{{\"message\":\"forged\"}}' WHERE org_id = '{org}' AND seq = {victim}"
    );
    assert_eq!(store.execute_raw_for_tests(&sql).await?, 1);
    let report = mesh_audit::verify(&store, &org).await?;
    let problem = report.problem.clone().expect("an edited row is detected");
    assert_eq!((problem.seq, problem.kind), (victim, mesh_audit::ProblemKind::Altered), "{report:?}");

    let original = all.iter().find(|r| r.seq == victim).unwrap();
    let restore = match &original.arguments {
        Some(a) => format!("'{}'", a.replace('\'', "''")),
        None => "NULL".into(),
    };
    store
        .execute_raw_for_tests(&format!(
            "UPDATE audit_log SET arguments = {restore} WHERE org_id = '{org}' AND seq = {victim}"
        ))
        .await?;
    assert!(mesh_audit::verify(&store, &org).await?.ok, "restored exactly, it verifies again");
    let middle = all[10].seq;
    store.execute_raw_for_tests(&format!("DELETE FROM audit_log WHERE org_id = '{org}' AND seq = {middle}")).await?;
    let report = mesh_audit::verify(&store, &org).await?;
    let problem = report.problem.expect("a deleted row is detected");
    assert_eq!((problem.seq, problem.kind), (middle, mesh_audit::ProblemKind::Missing));
    store.close().await;
    Ok(())
}

fn count_by_kinds(n: usize) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        let (tool, _, outcome) = call_kind(i);
        *m.entry(format!("{tool} {outcome}")).or_default() += 1;
    }
    m
}

async fn manage(client: &TestClient, tool: &str, args: Value) -> Value {
    let r = client.call_tool(tool, args).await.unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_ne!(r["isError"], true, "{tool} failed: {}", text_of(&r));
    r["structuredContent"].clone()
}

#[tokio::test]
async fn management_tools_and_rest_show_each_caller_what_they_may_see() -> anyhow::Result<()> {
    let mesh = TestMesh::start().await;
    everything(&mesh).await;
    let member_key = mesh.extra_key("member").await;
    let member = mesh.admin.keys.authenticate(&member_key).unwrap();
    let owner = mesh.owner();

    // Traffic from both, on the connection and on management.
    for key in [&mesh.key, &member_key] {
        let c = TestClient::connect_http(&mesh.endpoint("everything"), key, ClientBehaviour::default()).await?;
        c.call_tool("echo", json!({"message": "hi", "api_key": SECRET})).await?;
        c.close().await?;
    }
    let admin = TestClient::connect_http(&format!("{}/mcp", mesh.url), &mesh.key, ClientBehaviour::default()).await?;
    let names = admin.list_tool_names().await?;
    assert!(names.iter().any(|n| n == "AUDIT_QUERY") && names.iter().any(|n| n == "AUDIT_VERIFY"), "{names:?}");
    manage(&admin, "COLLECTION_CONNECTIONS_LIST", json!({})).await;
    // A connection's env values are vault secrets whatever their names: never in the trail.
    let bin = upstreams::everything_bin().display().to_string();
    let create = json!({"slug": "second", "command": bin, "args": ["stdio"], "env": {"PLAIN_NAME": "s3cr3t-env"}});
    manage(&admin, "COLLECTION_CONNECTIONS_CREATE", create).await;

    // The owner sees the organisation, filtered; management operations are in the trail too.
    let all = manage(&admin, "AUDIT_QUERY", json!({})).await;
    let items = all["items"].as_array().unwrap();
    assert!(items.iter().any(|r| r["userId"] == member.user_id), "owner sees the member's calls");
    let mgmt =
        manage(&admin, "AUDIT_QUERY", json!({"route": "management", "tool": "COLLECTION_CONNECTIONS_LIST"})).await;
    let mgmt = mgmt["items"].as_array().unwrap();
    assert_eq!(mgmt.len(), 1, "{mgmt:?}");
    assert_eq!((mgmt[0]["routeKind"].as_str(), mgmt[0]["outcome"].as_str()), (Some("management"), Some("ok")));
    assert_eq!(mgmt[0]["userId"], owner.user_id);
    let echoes =
        manage(&admin, "AUDIT_QUERY", json!({"tool": "echo", "route": "everything", "outcome": "ok", "from": "1h"}))
            .await;
    let echoes = echoes["items"].as_array().unwrap().clone();
    assert_eq!(echoes.len(), 2);
    assert_eq!(echoes[0]["arguments"]["api_key"], "[REDACTED]");
    assert!(echoes[0]["seq"].as_i64() > echoes[1]["seq"].as_i64(), "newest first");
    let page = manage(&admin, "AUDIT_QUERY", json!({"limit": 1, "tool": "echo"})).await;
    let cursor = page["nextCursor"].as_str().expect("a full page has a cursor").to_string();
    let next = manage(&admin, "AUDIT_QUERY", json!({"limit": 1, "tool": "echo", "cursor": cursor})).await;
    assert_eq!(next["items"][0]["seq"], echoes[1]["seq"]);
    let created = manage(&admin, "AUDIT_QUERY", json!({"tool": "COLLECTION_CONNECTIONS_CREATE"})).await;
    assert_eq!(created["items"][0]["arguments"]["env"]["PLAIN_NAME"], "[REDACTED]", "{created}");
    assert!(!created.to_string().contains("s3cr3t-env"));
    let bad = admin.call_tool("AUDIT_QUERY", json!({"outcome": "weird"})).await?;
    assert!(bad["isError"] == true && text_of(&bad).contains("outcome"), "{bad}");

    let report = manage(&admin, "AUDIT_VERIFY", json!({})).await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["rowsChecked"].as_u64() >= Some(6), "{report}");

    // A member sees only their own calls, may not ask for others', and may not verify.
    let m = TestClient::connect_http(&format!("{}/mcp", mesh.url), &member_key, ClientBehaviour::default()).await?;
    let own = manage(&m, "AUDIT_QUERY", json!({})).await;
    let own = own["items"].as_array().unwrap();
    assert!(!own.is_empty() && own.iter().all(|r| r["userId"] == member.user_id), "{own:?}");
    let other = m.call_tool("AUDIT_QUERY", json!({"user": owner.user_id})).await?;
    assert_eq!(other["isError"], true, "{other}");
    let verify = m.call_tool("AUDIT_VERIFY", json!({})).await?;
    assert_eq!(verify["isError"], true, "{verify}");
    m.close().await?;

    // REST: the same service behind a bearer key.
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1/audit", mesh.url);
    let resp = http.get(&api).send().await?;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let resp = http.get(format!("{api}?tool=echo&limit=5")).bearer_auth(&mesh.key).send().await?;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await?;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(2), "{body}");
    let resp = http.get(format!("{api}?user={}", owner.user_id)).bearer_auth(&member_key).send().await?;
    assert_eq!(resp.status(), 403);
    let resp = http.get(format!("{api}?bogus=1")).bearer_auth(&mesh.key).send().await?;
    assert_eq!(resp.status(), 400);
    let export = http.get(format!("{api}/export?route=everything")).bearer_auth(&mesh.key).send().await?;
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = export.text().await?.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 4, "initialize and echo of two sessions: {lines:?}");
    assert!(lines.windows(2).all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()), "export is oldest first");
    let verified: Value = http.get(format!("{api}/verify")).bearer_auth(&mesh.key).send().await?.json().await?;
    assert_eq!(verified["ok"], true);

    // REST requests are audited as well.
    mesh.admin.audit.flush().await;
    let rest = mesh
        .admin
        .store
        .query_audit(&AuditFilter {
            org_id: owner.org_id.clone(),
            route_kind: Some("rest".into()),
            limit: 100,
            ..Default::default()
        })
        .await?;
    assert_eq!(rest.len(), 5, "the 401 is not (no principal); the other five are: {rest:?}");
    assert!(rest.iter().any(|r| r.outcome == "denied"), "the member's 403 is recorded as denied");
    admin.close().await?;
    mesh.stop().await;
    Ok(())
}
