//! Access control from the shell, against a real mesh: `org`, `member`, `role` (with allow/deny
//! rule SPECs), `limit`, and `key create` narrowed to some connections and tools.

mod common;
use common::*;

use mesh_testkit::TestMesh;
use serde_json::Value;

fn json_of(out: &Out) -> Value {
    assert!(out.ok, "exit {:?}: {}", out.code, out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("--json prints JSON ({e}): {}", out.stdout))
}

/// The item of a `--json` list whose `key` is `value`.
fn find<'a>(items: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    items.as_array().expect("a JSON list").iter().find(|i| i[key] == value)
}

/// The cells of the table row starting with `first`.
fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cells| cells.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row '{first}' in:\n{table}"))
}

#[tokio::test]
async fn org_create_list_show_update_rm() {
    let mesh = TestMesh::start().await;
    let first_org = mesh.owner().org_id;
    let out = json_of(&cli(&mesh, &["org", "create", "acme", "--name", "Acme Inc", "--json"]).await);
    assert_eq!(out["item"]["slug"], "acme", "{out}");
    let acme_id = out["item"]["id"].as_str().expect("id").to_string();
    let acme_key = out["key"].as_str().expect("the owner key of the new org").to_string();

    // For people: the key is printed once, with how to use it.
    let beta = cli(&mesh, &["org", "create", "beta"]).await;
    assert!(beta.ok, "{}", beta.stderr);
    assert!(beta.stdout.contains("MESH_API_KEY=") && beta.stdout.contains("mcp-mesh org show"), "{}", beta.stdout);

    // The printed key acts inside the new organisation.
    let show = cli_as(&mesh, &acme_key, &["org", "show"]).await;
    assert!(show.ok, "{}", show.stderr);
    assert!(show.stdout.contains(&acme_id) && show.stdout.contains("Acme Inc"), "{}", show.stdout);
    let list = cli_as(&mesh, &acme_key, &["org", "list"]).await;
    assert!(list.ok && list.stdout.starts_with("SLUG"), "{}{}", list.stdout, list.stderr);
    let acme_row = row(&list.stdout, "acme");
    assert!(acme_row.contains(&"owner".to_string()) && acme_row.contains(&acme_id), "{acme_row:?}");

    // Another organisation is not found, in both directions.
    let other = cli(&mesh, &["org", "show", &acme_id]).await;
    assert!(!other.ok && other.stderr.to_lowercase().contains("not found"), "{}{}", other.stdout, other.stderr);
    let other = cli_as(&mesh, &acme_key, &["org", "show", &first_org]).await;
    assert!(!other.ok, "{}", other.stdout);

    let updated = cli_as(&mesh, &acme_key, &["org", "update", "--name", "Acme Corp", "--slug", "acme-corp"]).await;
    assert!(updated.ok, "{}", updated.stderr);
    let shown = json_of(&cli_as(&mesh, &acme_key, &["org", "show", &acme_id, "--json"]).await);
    assert_eq!((&shown["name"], &shown["slug"]), (&Value::from("Acme Corp"), &Value::from("acme-corp")), "{shown}");
    let nothing = cli_as(&mesh, &acme_key, &["org", "update"]).await;
    assert!(!nothing.ok && nothing.stderr.contains("nothing to change"), "{}", nothing.stderr);

    // Deletion wants the current slug, typed again.
    let unconfirmed = cli_as(&mesh, &acme_key, &["org", "rm", &acme_id]).await;
    assert_eq!(unconfirmed.code, Some(2), "--confirm is required: {}", unconfirmed.stderr);
    let wrong = cli_as(&mesh, &acme_key, &["org", "rm", &acme_id, "--confirm", "acme"]).await;
    assert!(!wrong.ok, "the old slug does not confirm: {}", wrong.stdout);
    let rm = cli_as(&mesh, &acme_key, &["org", "delete", &acme_id, "--confirm", "acme-corp"]).await;
    assert!(rm.ok, "{}", rm.stderr);
    let orgs = json_of(&cli(&mesh, &["org", "list", "--json"]).await);
    assert!(find(&orgs, "id", &acme_id).is_none() && find(&orgs, "id", &first_org).is_some(), "{orgs}");
    mesh.stop().await;
}

#[tokio::test]
async fn member_add_list_set_role_rm() {
    let mesh = TestMesh::start().await;
    let args = ["member", "add", "alice@example.test", "--role", "member", "--name", "Alice", "--password-stdin"];
    let add = cli_stdin(&mesh, &args, "correct horse battery staple\n").await;
    assert!(add.ok, "{}", add.stderr);
    assert!(add.stdout.contains("alice@example.test") && !add.stdout.contains("correct horse"), "{}", add.stdout);

    let list = cli(&mesh, &["member", "list"]).await;
    assert!(list.ok && list.stdout.starts_with("EMAIL"), "{}{}", list.stdout, list.stderr);
    let alice = row(&list.stdout, "alice@example.test");
    assert_eq!(alice[1..3], ["Alice", "member"], "{alice:?}");
    let members = json_of(&cli(&mesh, &["member", "ls", "--json"]).await);
    let user_id = find(&members, "email", "alice@example.test").expect("alice")["userId"].as_str().expect("userId");
    assert_eq!(alice[3], user_id);

    // By email, then by user id.
    assert!(cli(&mesh, &["member", "set-role", "alice@example.test", "viewer"]).await.ok);
    let members = json_of(&cli(&mesh, &["member", "list", "--json"]).await);
    assert_eq!(find(&members, "email", "alice@example.test").expect("alice")["role"], "viewer");
    let promoted = cli(&mesh, &["member", "set-role", user_id, "admin"]).await;
    assert!(promoted.ok && promoted.stdout.contains("admin"), "{}{}", promoted.stdout, promoted.stderr);

    let rm = cli(&mesh, &["member", "rm", "alice@example.test"]).await;
    assert!(rm.ok, "{}", rm.stderr);
    let members = json_of(&cli(&mesh, &["member", "list", "--json"]).await);
    assert!(find(&members, "email", "alice@example.test").is_none(), "{members}");

    // --password-stdin with nothing on stdin is refused before anything is sent.
    let args = ["member", "add", "bob@example.test", "--role", "member", "--password-stdin"];
    let empty = cli_stdin(&mesh, &args, "").await;
    assert!(!empty.ok && empty.stderr.contains("no password on stdin"), "{}", empty.stderr);
    let members = json_of(&cli(&mesh, &["member", "list", "--json"]).await);
    assert!(find(&members, "email", "bob@example.test").is_none(), "{members}");
    mesh.stop().await;
}

#[tokio::test]
async fn role_create_show_list_update_rm() {
    let mesh = TestMesh::start().await;
    let create = cli(
        &mesh,
        &[
            "role",
            "create",
            "support",
            "--base",
            "viewer",
            "--description",
            "Support desk",
            "--deny",
            "connection=crm,name=delete_*",
            "--allow",
            "connection=crm,name=get_*",
        ],
    )
    .await;
    assert!(create.ok, "{}", create.stderr);

    let show = cli(&mesh, &["role", "show", "support"]).await;
    assert!(show.ok, "{}", show.stderr);
    for want in ["Support desk", "viewer", "allow connection=crm name=get_*", "deny  connection=crm name=delete_*"] {
        assert!(show.stdout.contains(want), "'{want}' in:\n{}", show.stdout);
    }
    let role = json_of(&cli(&mesh, &["role", "get", "support", "--json"]).await);
    let rules = role["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2, "{role}");
    // Allows are sent first, then denies, whatever the order of the flags.
    assert_eq!((&rules[0]["effect"], &rules[0]["name"]), (&Value::from("allow"), &Value::from("get_*")));
    assert_eq!((&rules[1]["effect"], &rules[1]["connection"]), (&Value::from("deny"), &Value::from("crm")));

    let list = cli(&mesh, &["role", "list"]).await;
    assert!(list.ok && list.stdout.starts_with("NAME"), "{}{}", list.stdout, list.stderr);
    assert_eq!(row(&list.stdout, "support"), ["support", "viewer", "no", "0", "2"]);
    assert_eq!(row(&list.stdout, "owner")[2], "yes");

    // Rules replace the list; other changes leave it alone; --clear-rules empties it.
    let rules_of = |out: Out| json_of(&out)["rules"].as_array().cloned().unwrap_or_default();
    let one = rules_of(cli(&mesh, &["role", "update", "support", "--deny", "kind=prompt", "--json"]).await);
    assert_eq!((one.len(), &one[0]["kind"]), (1, &Value::from("prompt")), "{one:?}");
    let kept = cli(&mesh, &["role", "update", "support", "--description", "Front line", "--json"]).await;
    let kept = json_of(&kept);
    assert_eq!((kept["description"].as_str(), kept["rules"].as_array().map(Vec::len)), (Some("Front line"), Some(1)));
    assert!(rules_of(cli(&mesh, &["role", "update", "support", "--clear-rules", "--json"]).await).is_empty());
    let nothing = cli(&mesh, &["role", "update", "support"]).await;
    assert!(!nothing.ok && nothing.stderr.contains("nothing to change"), "{}", nothing.stderr);

    // A role held by a member cannot go.
    assert!(cli(&mesh, &["member", "add", "carol@example.test", "--role", "support"]).await.ok);
    let held = cli(&mesh, &["role", "rm", "support"]).await;
    assert!(!held.ok, "{}", held.stdout);
    assert!(cli(&mesh, &["member", "rm", "carol@example.test"]).await.ok);
    let rm = cli(&mesh, &["role", "rm", "support"]).await;
    assert!(rm.ok, "{}", rm.stderr);
    let roles = json_of(&cli(&mesh, &["role", "list", "--json"]).await);
    assert!(find(&roles, "name", "support").is_none() && find(&roles, "name", "viewer").is_some(), "{roles}");
    mesh.stop().await;
}

#[tokio::test]
async fn limit_set_list_rm() {
    let mesh = TestMesh::start().await;
    let item = json_of(&cli(&mesh, &["limit", "set", "tool", "crm/get_*", "60", "--burst", "10", "--json"]).await);
    assert_eq!(
        (&item["scope"], &item["target"], &item["perMinute"], &item["burst"]),
        (&Value::from("tool"), &Value::from("crm/get_*"), &Value::from(60), &Value::from(10)),
        "{item}"
    );
    let id = item["id"].as_str().expect("id").to_string();
    let list = cli(&mesh, &["limit", "list"]).await;
    assert!(list.ok && list.stdout.starts_with("ID"), "{}{}", list.stdout, list.stderr);
    assert_eq!(row(&list.stdout, &id), [id.as_str(), "tool", "crm/get_*", "60", "10"]);

    // The same scope and target again replaces the limit.
    assert!(cli(&mesh, &["limit", "set", "tool", "crm/get_*", "30"]).await.ok);
    assert!(cli(&mesh, &["limit", "set", "key", "*", "100"]).await.ok);
    let limits = json_of(&cli(&mesh, &["limit", "ls", "--json"]).await);
    assert_eq!(limits.as_array().map(Vec::len), Some(2), "{limits}");
    let tool = find(&limits, "target", "crm/get_*").expect("the tool limit");
    assert_eq!(tool["perMinute"], 30);
    let tool_id = tool["id"].as_str().expect("id").to_string();

    let rm = cli(&mesh, &["limit", "rm", &tool_id]).await;
    assert!(rm.ok, "{}", rm.stderr);
    let limits = json_of(&cli(&mesh, &["limit", "list", "--json"]).await);
    assert!(find(&limits, "id", &tool_id).is_none() && find(&limits, "target", "*").is_some(), "{limits}");

    // The scope is checked by the CLI itself: a usage error (exit 2) naming the choices.
    let bad = cli(&mesh, &["limit", "set", "team", "x", "5"]).await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("invalid value 'team'") && bad.stderr.contains("connection"), "{}", bad.stderr);
    mesh.stop().await;
}

#[tokio::test]
async fn key_create_with_connection_and_tool_scope() {
    let mesh = TestMesh::start().await;
    let args = ["key", "create", "crm-reader", "--connection", "crm", "--tool", "get_*", "--tool", "list_*", "--json"];
    let created = json_of(&cli(&mesh, &args).await);
    let id = created["item"]["id"].as_str().expect("id").to_string();
    let plain = json_of(&cli(&mesh, &["key", "create", "plain", "--json"]).await);
    let plain_id = plain["item"]["id"].as_str().expect("id").to_string();

    let keys = json_of(&cli(&mesh, &["key", "list", "--json"]).await);
    let scope = &find(&keys, "id", &id).expect("the scoped key")["scope"];
    assert_eq!(scope["connections"], serde_json::json!(["crm"]), "{scope}");
    assert_eq!(scope["tools"], serde_json::json!(["get_*", "list_*"]), "{scope}");
    assert!(scope["gateways"].as_array().is_none_or(Vec::is_empty), "no --gateway, no gateway list: {scope}");
    let unscoped = &find(&keys, "id", &plain_id).expect("the plain key")["scope"];
    assert!(unscoped.is_null() || unscoped.as_object().is_some_and(|s| s.values().all(Value::is_null)), "{unscoped}");

    let table = cli(&mesh, &["key", "list"]).await;
    assert!(table.ok && table.stdout.lines().next().is_some_and(|h| h.contains("SCOPE")), "{}", table.stdout);
    let line = table.stdout.lines().find(|l| l.starts_with(&id)).expect("the scoped key's row");
    assert!(line.contains("conn:crm tool:get_* tool:list_*"), "{line}");
    mesh.stop().await;
}

#[tokio::test]
async fn bad_rule_spec_is_a_clear_error_before_anything_is_sent() {
    let mesh = TestMesh::start().await;
    // A mesh URL where nothing listens: had the CLI sent anything, the error would say so instead.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://127.0.0.1:{}", l.local_addr().expect("addr").port())
    };
    let cases: [(&[&str], &str); 5] = [
        (&["role", "create", "x", "--allow", "connection=crm,colour=red"], "unknown key 'colour'"),
        (&["role", "create", "x", "--deny", "kind=tools"], "kind 'tools' is not one of tool, prompt, resource"),
        (&["role", "create", "x", "--allow", "name="], "'name' has an empty value"),
        (&["role", "update", "x", "--deny", "connection"], "'connection' is not key=value"),
        (&["role", "update", "x", "--allow", "name=a,"], "stray comma"),
    ];
    for (args, want) in cases {
        let mut args = args.to_vec();
        args.extend(["--mesh-url", &dead]);
        let out = cli(&mesh, &args).await;
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(want) && out.stdout.is_empty(), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("cannot talk to the mesh"), "{args:?}: {}", out.stderr);
    }
    mesh.stop().await;
}
