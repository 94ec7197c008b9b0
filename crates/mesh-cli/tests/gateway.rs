//! `mcp-mesh gateway …` as a user runs it, against a real mesh with real stdio upstreams: the
//! README's `gateway create dev --connection … --connection fs:read_text_file,list_directory …`,
//! a collision refused by name, list/show (tables and `--json`), set, rm.

mod common;
use common::*;

use mesh_testkit::{upstreams, TestMesh};
use serde_json::{json, Value};

#[tokio::test]
async fn gateway_create_list_show_set_rm() {
    let mesh = TestMesh::start().await;
    let files = tempfile::tempdir().expect("tmp");
    let everything = upstreams::everything_bin().display().to_string();
    let fs = upstreams::filesystem_bin().display().to_string();
    let (python, time_args) = upstreams::time_command();
    let dir = files.path().display().to_string();
    mesh.add_connection(json!({"slug": "everything", "command": everything, "args": ["stdio"]})).await;
    mesh.add_connection(json!({"slug": "everything2", "command": everything, "args": ["stdio"]})).await;
    mesh.add_connection(json!({"slug": "fs", "command": fs, "args": [dir]})).await;
    mesh.add_connection(json!({"slug": "time", "command": python, "args": time_args})).await;

    let create = cli(
        &mesh,
        &[
            "gateway",
            "create",
            "dev",
            "--connection",
            "everything",
            "--connection",
            "fs:read_text_file,list_directory",
            "--connection",
            "time",
            "--prefix",
            "time=clock",
            "--mode",
            "strict",
        ],
    )
    .await;
    assert!(create.ok, "{}", create.stderr);
    assert_eq!(create.stdout.trim(), format!("gateway \"dev\" created: {}/mcp/gateway/dev", mesh.url));
    assert!(!create.stderr.contains("warning"), "every member was reachable: {}", create.stderr);

    // Unprefixed copies of one server collide; the CLI exits non-zero with both names.
    let clash = cli(
        &mesh,
        &["gateway", "create", "clash", "--connection", "everything", "--connection", "everything2", "--no-prefix"],
    )
    .await;
    assert!(!clash.ok, "{}", clash.stdout);
    assert!(
        clash.stderr.contains("everything's 'echo'") && clash.stderr.contains("everything2's 'echo'"),
        "{}",
        clash.stderr
    );
    let typo = cli(&mesh, &["gateway", "create", "typo", "--connection", "fs", "--prefix", "f=x"]).await;
    assert!(!typo.ok && typo.stderr.contains("not one of the --connection members"), "{}", typo.stderr);

    let list = cli(&mesh, &["gateway", "list"]).await;
    assert!(list.ok && list.stdout.starts_with("NAME"), "{}", list.stdout);
    assert!(list.stdout.contains("everything, fs[2 tools], time"), "{}", list.stdout);
    assert!(list.stdout.contains("(all connections)"), "the default gateway: {}", list.stdout);
    let items: Value = serde_json::from_str(&cli(&mesh, &["gateway", "ls", "--json"]).await.stdout).expect("--json");
    let dev = items.as_array().and_then(|a| a.iter().find(|g| g["slug"] == "dev")).expect("dev listed").clone();
    assert_eq!(
        dev["members"][1],
        json!({"connection": "fs", "prefix": "fs", "tools": ["read_text_file", "list_directory"],
                                          "resources": "all", "prompts": "all"})
    );
    assert_eq!(dev["members"][2]["prefix"], "clock");

    let show = cli(&mesh, &["gateway", "show", "dev"]).await;
    assert!(show.ok && show.stdout.contains("mode:        strict"), "{}", show.stdout);
    assert!(show.stdout.contains("read_text_file,list_directory"), "{}", show.stdout);
    let clock = show.stdout.lines().find(|l| l.starts_with("time")).unwrap_or_default();
    assert!(clock.contains("clock"), "{}", show.stdout);

    assert!(show.stdout.contains("strategy:    passthrough"), "{}", show.stdout);

    let set =
        cli(&mesh, &["gateway", "set", "dev", "--mode", "degrade", "--status", "disabled", "--strategy", "smart"])
            .await;
    assert!(set.ok && set.stdout.contains("gateway \"dev\" updated"), "{} {}", set.stdout, set.stderr);
    let json: Value =
        serde_json::from_str(&cli(&mesh, &["gateway", "show", "dev", "--json"]).await.stdout).expect("json");
    assert_eq!(
        (json["mode"].as_str(), json["status"].as_str(), json["strategy"].as_str()),
        (Some("degrade"), Some("disabled"), Some("smart"))
    );
    let code = cli(&mesh, &["gateway", "set", "dev", "--strategy", "code"]).await;
    assert!(code.ok, "{} {}", code.stdout, code.stderr);
    let json: Value =
        serde_json::from_str(&cli(&mesh, &["gateway", "show", "dev", "--json"]).await.stdout).expect("json");
    assert_eq!(json["strategy"], "code");
    let bogus = cli(&mesh, &["gateway", "set", "dev", "--strategy", "clever"]).await;
    assert!(!bogus.ok && bogus.stderr.contains("unknown variant `clever`"), "{}", bogus.stderr);
    let nothing = cli(&mesh, &["gateway", "set", "dev"]).await;
    assert!(!nothing.ok && nothing.stderr.contains("nothing to change"), "{}", nothing.stderr);

    let rm = cli(&mesh, &["gateway", "rm", "dev"]).await;
    assert!(rm.ok, "{}", rm.stderr);
    let gone = cli(&mesh, &["gateway", "show", "dev"]).await;
    assert!(!gone.ok && gone.stderr.contains("not found"), "{}", gone.stderr);
    mesh.stop().await;
}
