//! The `mcp-mesh` binary as a user runs it, against a real mesh: kubectl-style connection
//! commands, `import` of a client config, `call`, `vault rotate`, and the `stdio` front.

mod common;
use common::*;

use mesh_testkit::{upstreams, TestMesh};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test]
async fn connection_commands_call_and_vault_rotate() {
    let mesh = TestMesh::start().await;
    let (python, _) = upstreams::time_command();
    let add = cli(
        &mesh,
        &[
            "connection",
            "add",
            "time",
            "--command",
            &python,
            "--arg",
            "-m",
            "--arg",
            "mcp_server_time",
            "--arg",
            "--local-timezone=UTC",
            "--env",
            "API_TOKEN=top-secret",
        ],
    )
    .await;
    assert!(add.ok, "{}", add.stderr);
    assert!(add.stdout.contains("/mcp/time"), "{}", add.stdout);

    let list = cli(&mesh, &["connection", "list"]).await;
    assert!(
        list.ok && list.stdout.starts_with("NAME") && list.stdout.contains("time") && list.stdout.contains("stdio"),
        "{}",
        list.stdout
    );
    let json_list = cli(&mesh, &["connection", "list", "--json"]).await;
    let items: Value = serde_json::from_str(&json_list.stdout).expect("--json is JSON");
    assert_eq!(items[0]["slug"], "time");
    assert!(!json_list.stdout.contains("top-secret"), "secret leaked");

    let show = cli(&mesh, &["connection", "show", "time"]).await;
    assert!(show.ok && show.stdout.contains("API_TOKEN") && show.stdout.contains("***"), "{}", show.stdout);
    assert!(!show.stdout.contains("top-secret"));

    let test = cli(&mesh, &["connection", "test", "time"]).await;
    assert!(
        test.ok && test.stdout.contains("mcp-time") && test.stdout.contains("2 tools"),
        "{} {}",
        test.stdout,
        test.stderr
    );

    let call = cli(&mesh, &["call", "time", "get_current_time", "-a", "timezone=UTC"]).await;
    assert!(call.ok && call.stdout.contains("\"timezone\": \"UTC\""), "{} {}", call.stdout, call.stderr);
    let bad_call = cli(&mesh, &["call", "time", "get_current_time", "-a", "timezone=Nowhere/Land"]).await;
    assert!(!bad_call.ok, "a tool error exits non-zero");

    let rotate = cli(&mesh, &["vault", "rotate"]).await;
    assert!(rotate.ok && rotate.stdout.contains("1 secret(s) re-encrypted"), "{} {}", rotate.stdout, rotate.stderr);
    let call2 = cli(&mesh, &["call", "time", "get_current_time", "-a", "timezone=UTC"]).await;
    assert!(call2.ok, "the connection works after rotation: {}", call2.stderr);

    let rm = cli(&mesh, &["connection", "rm", "time"]).await;
    assert!(rm.ok, "{}", rm.stderr);
    let missing = cli(&mesh, &["connection", "show", "time"]).await;
    assert!(!missing.ok && missing.stderr.contains("not found"), "{}", missing.stderr);
    mesh.stop().await;
}

#[tokio::test]
async fn bad_key_and_unreachable_mesh_are_clear_errors() {
    let mesh = TestMesh::start().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-mesh"))
        .args(["connection", "list"])
        .env("MESH_URL", &mesh.url)
        .env("MESH_API_KEY", "mesh_wrong")
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
    let port = upstreams::free_port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-mesh"))
        .args(["connection", "list"])
        .env("MESH_URL", format!("http://127.0.0.1:{port}"))
        .env("MESH_API_KEY", "x")
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot"), "{}", String::from_utf8_lossy(&out.stderr));
    mesh.stop().await;
}

#[tokio::test]
async fn import_a_cursor_config() {
    let mesh = TestMesh::start().await;
    let upstream = upstreams::everything_http().await;
    let dir = tempfile::tempdir().expect("tmp");
    let (python, _) = upstreams::time_command();
    let file = dir.path().join("mcp.json");
    let config = json!({"mcpServers": {
        "Time Server": {"command": python, "args": ["-m", "mcp_server_time", "--local-timezone=UTC"]},
        "everything": {"url": upstream.url, "headers": {"Authorization": "Bearer upstream-token"}},
        "broken": {"nothing": true}
    }});
    std::fs::write(&file, config.to_string()).expect("write");
    let file = file.display().to_string();
    let dry = cli(&mesh, &["import", &file, "--dry-run"]).await;
    assert!(dry.ok && dry.stdout.contains("would create \"time-server\""), "{}", dry.stdout);
    assert!(mesh.admin.list_connections(&mesh.owner()).await.expect("list").is_empty(), "dry run creates nothing");
    let out = cli(&mesh, &["import", &file]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("skipped broken"), "{}", out.stderr);
    let slugs: Vec<String> =
        mesh.admin.list_connections(&mesh.owner()).await.expect("list").into_iter().map(|c| c.slug).collect();
    assert_eq!(slugs.len(), 2, "{slugs:?}");
    let call = cli(&mesh, &["call", "everything", "echo", "-a", "message=imported"]).await;
    assert!(call.ok && call.stdout.contains("Echo: imported"), "{} {}", call.stdout, call.stderr);
    let call = cli(&mesh, &["call", "time-server", "get_current_time", "-a", "timezone=UTC"]).await;
    assert!(call.ok, "{}", call.stderr);
    mesh.stop().await;
    upstream.stop().await;
}

#[tokio::test]
async fn stdio_front_relays_a_desktop_client_session() {
    let mesh = TestMesh::start().await;
    let bin = upstreams::everything_bin().display().to_string();
    mesh.add_connection(json!({"slug": "everything", "command": bin, "args": ["stdio"]})).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-mesh"))
        .args(["stdio", "--url", &mesh.endpoint("everything")])
        .env("MESH_API_KEY", &mesh.key)
        .env("MESH_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn stdio front");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut read_reply = async |id: i64| -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("reply in time")
                .expect("read")
                .expect("line");
            let v: Value = serde_json::from_str(&line).expect("stdout carries only JSON-RPC");
            if v["id"] == id && (v.get("result").is_some() || v.get("error").is_some()) {
                return v;
            }
        }
    };
    let send = |v: Value| format!("{v}\n");
    stdin.write_all(send(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"desktop","version":"1"}}})).as_bytes()).await.expect("write");
    let init = read_reply(1).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-servers/everything", "{init}");
    stdin
        .write_all(send(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).as_bytes())
        .await
        .expect("write");
    stdin.write_all(send(json!({"jsonrpc":"2.0","id":"two","method":"tools/call","params":{"name":"echo","arguments":{"message":"via stdio"}}})).as_bytes()).await.expect("write");
    let echo = {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("in time")
                .expect("read")
                .expect("line");
            let v: Value = serde_json::from_str(&line).expect("json");
            if v["id"] == "two" {
                break v;
            }
        }
    };
    assert_eq!(echo["result"]["content"][0]["text"], "Echo: via stdio", "{echo}");
    stdin.write_all(b"this is not json\n").await.expect("write");
    let err = {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("in time")
            .expect("read")
            .expect("line");
        serde_json::from_str::<Value>(&line).expect("json")
    };
    assert_eq!(err["error"]["code"], -32700, "{err}");
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits when stdin closes")
        .expect("wait");
    assert!(status.success());
    mesh.stop().await;
}

#[tokio::test]
async fn key_create_list_revoke() {
    let mesh = TestMesh::start().await;
    let created = cli(&mesh, &["key", "create", "ci", "--expires-in-days", "7", "--json"]).await;
    assert!(created.ok, "{}", created.stderr);
    let out: Value = serde_json::from_str(&created.stdout).expect("json");
    let (id, key) =
        (out["item"]["id"].as_str().expect("id").to_string(), out["key"].as_str().expect("key").to_string());
    let as_new = cli_as(&mesh, &key, &["connection", "list"]).await;
    assert!(as_new.ok, "the new key works: {}", as_new.stderr);
    let list = cli(&mesh, &["key", "list"]).await;
    assert!(
        list.ok && list.stdout.starts_with("ID") && list.stdout.contains(&id) && !list.stdout.contains(&key),
        "{}",
        list.stdout
    );
    assert!(cli(&mesh, &["key", "revoke", &id]).await.ok);
    let after = cli_as(&mesh, &key, &["connection", "list"]).await;
    assert!(!after.ok && after.stderr.contains("401"), "{}", after.stderr);
    mesh.stop().await;
}

/// `serve` on a fresh data dir, its stdout piped. Nothing from the environment (a DATABASE_URL, a
/// listen address) reaches this server.
fn first_start(data: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-mesh"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_clear()
        .env("MESH_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn first_start_prints_the_owner_key_and_how_to_set_a_password() {
    let data = tempfile::tempdir().expect("a data dir");
    let mut child = first_start(data.path()).spawn().expect("serve runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            printed.push(line);
            if printed.last().is_some_and(|l| l.contains("user passwd")) {
                return;
            }
        }
        panic!("serve stopped printing: {printed:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no first-start lines: {printed:?}"));
    child.kill().await.expect("stopped");
    let key = std::fs::read_to_string(data.path().join("owner.key")).expect("owner.key");
    assert!(printed.iter().any(|l| l.trim() == key.trim()), "the owner key is printed: {printed:?}");
    let how = printed.last().unwrap();
    assert!(how.contains("owner@localhost") && how.contains("mcp-mesh user passwd"), "{how}");
}

/// The `THP_enabled` line of `/proc/<pid>/status` (`None` on kernels that do not say).
#[cfg(target_os = "linux")]
fn thp_enabled(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(|v| v.trim().to_string())
}

/// The mesh turns transparent huge pages off for its process (its idle RSS, docs/config.md),
/// unless the operator keeps the host's setting with MIMALLOC_ALLOW_THP.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn transparent_huge_pages_are_off_unless_the_operator_keeps_them() {
    // What this test process has: the host's setting, which a kept one must equal.
    let Some(host) = thp_enabled("self") else { return };
    for keep in [false, true] {
        let data = tempfile::tempdir().expect("a data dir");
        let mut cmd = first_start(data.path());
        if keep {
            cmd.env("MIMALLOC_ALLOW_THP", "1");
        }
        let mut child = cmd.spawn().expect("serve runs");
        let pid = child.id().expect("pid").to_string();
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // The first-start lines come well after `main` set the flag.
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("stdout") {
                if line.contains("user passwd") {
                    return;
                }
            }
            panic!("serve stopped printing");
        })
        .await
        .expect("first-start lines in time");
        let thp = thp_enabled(&pid).expect("the mesh's status");
        child.kill().await.expect("stopped");
        assert_eq!(thp, if keep { host.as_str() } else { "0" }, "kept: {keep}");
    }
}
