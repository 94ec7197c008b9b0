//! The trust boundary (issue #16): regression tests named after the issue's items, each against
//! the real mesh on port 0 with two organisations and members of every role.
//!
//! The installation's operator is the owner of the first organisation (`mesh.key`); `acme` is a
//! second organisation whose owner is *not* an operator, so what it may not do is what any
//! organisation's owner or admin may not do. Relay-side items (sessions, buffers, audit of
//! calls whose client left) are in `security_relay.rs`; upstream networks and TLS in
//! `security_net.rs`.

use mesh_core::Principal;
use mesh_relay::ports::Governor;
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{raw, text_of, upstreams, TestMesh};
use serde_json::{json, Value};

/// The second organisation: its owner's key, and an admin's key in it.
struct Acme {
    owner: String,
    admin: String,
}

async fn acme(mesh: &TestMesh) -> Acme {
    let (done, made) = mesh.manage(&mesh.key, "ORGANIZATION_CREATE", json!({"slug": "acme"})).await;
    assert!(done, "{made}");
    let owner = made["key"].as_str().unwrap().to_string();
    let admin = key_for(mesh, &owner, "admin@acme.test", "admin").await;
    Acme { owner, admin }
}

/// A new member of the key's organisation with `role`, and a key for them made by `by`.
async fn key_for(mesh: &TestMesh, by: &str, email: &str, role: &str) -> String {
    let added = ok(mesh, by, "ORGANIZATION_MEMBER_ADD", json!({"email": email, "role": role})).await;
    let made = ok(mesh, by, "API_KEY_CREATE", json!({"name": role, "userId": added["item"]["userId"]})).await;
    made["key"].as_str().unwrap().to_string()
}

async fn ok(mesh: &TestMesh, key: &str, tool: &str, args: Value) -> Value {
    let (done, v) = mesh.manage(key, tool, args.clone()).await;
    assert!(done, "{tool} {args}: {v}");
    v
}

/// The error text of a call that must fail.
async fn refused(mesh: &TestMesh, key: &str, tool: &str, args: Value) -> String {
    let (done, v) = mesh.manage(key, tool, args.clone()).await;
    assert!(!done, "{tool} {args} should have been refused, got {v}");
    v.as_str().unwrap_or_default().to_string()
}

fn everything_stdio() -> Value {
    json!({"command": upstreams::everything_bin(), "args": ["stdio"]})
}

/// Runs `story` on a mesh over SQLite, then over PostgreSQL (when the test server is configured):
/// the stories that store something new (templates, connection columns, audit rows) hold on both.
macro_rules! on_both_databases {
    ($sqlite:ident, $postgres:ident, $story:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $story(TestMesh::start().await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(db) = mesh_testkit::pg::fresh("mesh_security").await else { return };
            let url = db.url.clone();
            $story(TestMesh::start_with(|c| c.database_url = Some(mesh_core::Secret::new(url))).await).await;
            db.drop_now().await;
        }
    };
}

on_both_databases!(
    issue16_item1_org_admins_cannot_run_host_commands_but_use_the_catalogue,
    issue16_item1_org_admins_cannot_run_host_commands_but_use_the_catalogue_on_postgres,
    catalogue_story
);

async fn catalogue_story(mesh: TestMesh) {
    let acme = acme(&mesh).await;
    let first_admin = mesh.extra_key("admin").await;

    // A command of one's own: operators only, whichever organisation or role asks.
    let mut raw_cmd = everything_stdio();
    for (who, key) in [("acme owner", &acme.owner), ("acme admin", &acme.admin), ("first-org admin", &first_admin)] {
        raw_cmd["slug"] = json!("mine");
        let text = refused(&mesh, key, "COLLECTION_CONNECTIONS_CREATE", raw_cmd.clone()).await;
        assert!(text.contains("permission denied") && text.contains("operators"), "{who}: {text}");
    }
    raw_cmd["slug"] = json!("ops-everything");
    ok(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_CREATE", raw_cmd).await;

    // The catalogue: only operators publish; organisations use it, supplying only named env.
    let template = json!({"name": "everything", "command": upstreams::everything_bin(), "args": ["stdio"], "env": ["EVERYTHING_MODE"]});
    let text = refused(&mesh, &acme.owner, "COLLECTION_TEMPLATES_CREATE", template.clone()).await;
    assert!(text.contains("permission denied"), "{text}");
    ok(&mesh, &mesh.key, "COLLECTION_TEMPLATES_CREATE", template).await;
    let listed = ok(&mesh, &acme.admin, "COLLECTION_TEMPLATES_LIST", json!({})).await;
    assert_eq!(listed["items"][0]["name"], "everything");

    let text = refused(
        &mesh,
        &acme.admin,
        "COLLECTION_CONNECTIONS_CREATE",
        json!({"slug": "ev", "template": "everything", "env": {"LD_PRELOAD": "/tmp/evil.so"}}),
    )
    .await;
    assert!(text.contains("env") && text.contains("LD_PRELOAD"), "{text}");
    let text = refused(
        &mesh,
        &acme.admin,
        "COLLECTION_CONNECTIONS_CREATE",
        json!({"slug": "ev", "template": "everything", "args": ["stdio", "--evil"]}),
    )
    .await;
    assert!(text.contains("template"), "{text}");
    let made = ok(
        &mesh,
        &acme.admin,
        "COLLECTION_CONNECTIONS_CREATE",
        json!({"slug": "ev", "template": "everything", "env": {"EVERYTHING_MODE": "quiet"}}),
    )
    .await;
    assert_eq!(
        (made["item"]["template"].as_str(), made["item"]["outsideCatalogue"].as_bool()),
        (Some("everything"), Some(false))
    );

    // It serves: a real call through the template's server, with the organisation's key.
    let client = TestClient::connect_http(&mesh.endpoint("ev"), &acme.admin, ClientBehaviour::default()).await.unwrap();
    let echoed = client.call_tool("echo", json!({"message": "from the catalogue"})).await.unwrap();
    assert!(text_of(&echoed).contains("from the catalogue"), "{echoed}");
    client.close().await.ok();

    // Changing its command line is a command of one's own again; its title is not.
    for change in [
        json!({"id": "ev", "args": ["sse"]}),
        json!({"id": "ev", "command": "/bin/sh"}),
        json!({"id": "ev", "cwd": "/"}),
    ] {
        let text = refused(&mesh, &acme.admin, "COLLECTION_CONNECTIONS_UPDATE", change.clone()).await;
        assert!(text.contains("permission denied"), "{change}: {text}");
    }
    ok(&mesh, &acme.admin, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "ev", "title": "Everything"})).await;

    // Environment never rides along (review of #16): an operator's command with its own
    // environment, turned into a template connection by an admin, must not keep variables the
    // template does not take; giving env again with only those is fine.
    let mut ops_env = everything_stdio();
    ops_env["slug"] = json!("ops-env");
    ops_env["env"] = json!({"PATH": "/tmp/evil:/usr/bin"});
    ok(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_CREATE", ops_env).await;
    let text =
        refused(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "ops-env", "template": "everything"}))
            .await;
    assert!(text.contains("PATH"), "{text}");
    ok(
        &mesh,
        &mesh.key,
        "COLLECTION_CONNECTIONS_UPDATE",
        json!({"id": "ops-env", "template": "everything", "env": {"EVERYTHING_MODE": "x"}}),
    )
    .await;
    // A connection that stops running a program drops its environment.
    ok(
        &mesh,
        &mesh.key,
        "COLLECTION_CONNECTIONS_UPDATE",
        json!({"id": "ops-env", "url": "https://a.example/mcp", "transport": "http"}),
    )
    .await;
    let conn = mesh.admin.store.get_connection(&mesh.owner().org_id, "ops-env").await.unwrap().unwrap();
    let secrets = mesh.admin.store.connection_secrets(&conn.org_id, &conn.id).await.unwrap();
    assert!(secrets.iter().all(|r| r.kind != "env"), "{secrets:?}");

    // `connection list` tells what was made outside the catalogue.
    let ops = ok(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_LIST", json!({})).await;
    let mine = ops["items"].as_array().unwrap().iter().find(|c| c["slug"] == "ops-everything").unwrap().clone();
    assert_eq!((mine["outsideCatalogue"].as_bool(), mine["template"].as_str()), (Some(true), None));
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item1_stdio_off_refuses_every_stdio_change() {
    // MESH_STDIO=off: nobody adds or changes stdio connections, not even operators.
    let mesh = TestMesh::start_with(|c| c.trust.stdio = mesh_admin::trust::Who::Off).await;
    let mut cmd = everything_stdio();
    cmd["slug"] = json!("nope");
    let text = refused(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_CREATE", cmd).await;
    assert!(text.contains("MESH_STDIO=off"), "{text}");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item1_only_operators_create_organisations_and_rotate_the_vault() {
    let mesh = TestMesh::start().await;
    let acme = acme(&mesh).await;
    let first_admin = mesh.extra_key("admin").await;
    for key in [&acme.owner, &acme.admin, &first_admin] {
        let text = refused(&mesh, key, "ORGANIZATION_CREATE", json!({"slug": "mine"})).await;
        assert!(text.contains("permission denied") && text.contains("operators"), "{text}");
        let text = refused(&mesh, key, "VAULT_ROTATE", json!({})).await;
        assert!(text.contains("permission denied"), "{text}");
    }
    ok(&mesh, &mesh.key, "VAULT_ROTATE", json!({})).await;
    let p: Principal = mesh.owner();
    assert!(p.is_operator());
    // A key handed out to do less is never the installation's: one with rules of its own.
    let ci =
        ok(&mesh, &mesh.key, "API_KEY_CREATE", json!({"name": "ci", "rules": [{"effect": "deny", "name": "x"}]})).await;
    let text = refused(&mesh, ci["key"].as_str().unwrap(), "VAULT_ROTATE", json!({})).await;
    assert!(text.contains("permission denied"), "{text}");
    // Deleting the operator organisation would hand the installation to the next one's owners.
    let text = refused(&mesh, &mesh.key, "ORGANIZATION_DELETE", json!({"id": "default", "confirm": "default"})).await;
    assert!(text.contains("operator organisation"), "{text}");
    ok(&mesh, &acme.owner, "ORGANIZATION_DELETE", json!({"id": "acme", "confirm": "acme"})).await;
    mesh.stop().await;

    // MESH_ORG_CREATE=admins widens founding organisations, and only that.
    let mesh = TestMesh::start_with(|c| c.trust.org_create = mesh_admin::trust::Who::Admins).await;
    let admin = mesh.extra_key("admin").await;
    ok(&mesh, &admin, "ORGANIZATION_CREATE", json!({"slug": "teamb"})).await;
    assert!(refused(&mesh, &admin, "VAULT_ROTATE", json!({})).await.contains("permission denied"));
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item1_children_start_in_a_directory_of_their_own() {
    let mesh = TestMesh::start().await;
    // server-filesystem resolves "." against its working directory and lists it as allowed.
    ok(
        &mesh,
        &mesh.key,
        "COLLECTION_CONNECTIONS_CREATE",
        json!({"slug": "fs", "command": upstreams::filesystem_bin(), "args": ["."]}),
    )
    .await;
    let client = TestClient::connect_http(&mesh.endpoint("fs"), &mesh.key, ClientBehaviour::default()).await.unwrap();
    let listed = text_of(&client.call_tool("list_allowed_directories", json!({})).await.unwrap());
    client.close().await.ok();
    let children = mesh.admin.children_dir.path().canonicalize().unwrap();
    let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
    let data = mesh.admin.data_dir.canonicalize().unwrap();
    let dir = listed.lines().map(str::trim).find(|l| l.starts_with('/')).unwrap_or_else(|| panic!("{listed}"));
    let dir = std::path::Path::new(dir).canonicalize().unwrap();
    assert!(dir.starts_with(&children), "{} is not under {}", dir.display(), children.display());
    assert!(dir != cwd && !dir.starts_with(&data), "{}", dir.display());
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item1_connections_made_before_the_tiers_keep_working() {
    let mesh = TestMesh::start().await;
    let admin = mesh.extra_key("admin").await;
    // As an upgrade finds it: a stdio connection an admin created before commands were gated.
    let org = mesh.owner().org_id;
    let now = mesh_core::id::now_ms();
    let legacy = mesh_store::Connection {
        id: mesh_core::id::new_id("conn"),
        org_id: org,
        slug: "legacy".into(),
        title: "legacy".into(),
        description: None,
        transport: "stdio".into(),
        url: None,
        command: Some(upstreams::everything_bin().display().to_string()),
        args: vec!["stdio".into()],
        cwd: None,
        timeout_ms: 30_000,
        status: "active".into(),
        anonymous: false,
        created_at: now,
        updated_at: now,
        trusted: true,
        template: None,
        auth: "headers".into(),
        oauth_shared: false,
        selector: None,
    };
    mesh.admin.store.create_connection(&legacy, &[]).await.unwrap();
    let client = TestClient::connect_http(&mesh.endpoint("legacy"), &admin, ClientBehaviour::default()).await.unwrap();
    assert!(client.list_tool_names().await.unwrap().contains(&"echo".to_string()));
    client.close().await.ok();
    ok(&mesh, &admin, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "legacy", "timeoutMs": 20000})).await;
    let text =
        refused(&mesh, &admin, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "legacy", "env": {"A": "b"}})).await;
    assert!(text.contains("permission denied"), "{text}");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item3_narrowed_keys_manage_nothing_and_mint_nothing_wider() {
    let mesh = TestMesh::start().await;
    let narrowed =
        ok(&mesh, &mesh.key, "API_KEY_CREATE", json!({"name": "ci", "scope": {"connections": ["crm-*"]}})).await;
    let narrowed = narrowed["key"].as_str().unwrap();
    for (tool, args) in [
        ("API_KEY_CREATE", json!({"name": "escape"})),
        ("COLLECTION_CONNECTIONS_LIST", json!({})),
        ("ORGANIZATION_MEMBER_LIST", json!({})),
    ] {
        let text = refused(&mesh, narrowed, tool, args).await;
        assert!(text.contains("no management rights"), "{tool}: {text}");
    }
    // REST is management too.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/connections", mesh.url))
        .bearer_auth(narrowed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // With management granted, a narrowed key still mints only narrower keys, never longer-lived.
    let made = ok(
        &mesh,
        &mesh.key,
        "API_KEY_CREATE",
        json!({"name": "ops", "expiresInDays": 2, "scope": {"connections": ["crm-*"], "management": true},
               "rules": [{"effect": "deny", "name": "delete_*"}]}),
    )
    .await;
    let managing = made["key"].as_str().unwrap();
    let child = ok(&mesh, managing, "API_KEY_CREATE", json!({"name": "child"})).await;
    assert_eq!(child["item"]["scope"]["connections"], json!(["crm-*"]), "{child}");
    assert_eq!(child["item"]["rules"], json!([{"effect": "deny", "name": "delete_*"}]), "{child}");
    assert!(child["item"]["expiresAt"].as_i64().unwrap() <= made["item"]["expiresAt"].as_i64().unwrap());
    let eu = ok(&mesh, managing, "API_KEY_CREATE", json!({"name": "eu", "scope": {"connections": ["crm-eu"]}})).await;
    assert_eq!(eu["item"]["scope"]["connections"], json!(["crm-eu"]));
    for (what, args) in [
        ("wider scope", json!({"name": "w", "scope": {"connections": ["*"]}})),
        ("another kind of route", json!({"name": "g", "scope": {"gateways": ["*"]}})),
        ("longer life", json!({"name": "l", "expiresInDays": 30})),
    ] {
        let (done, v) = mesh.manage(managing, "API_KEY_CREATE", args).await;
        assert!(!done, "{what}: {v}");
    }
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item7_admins_cannot_revoke_owners_keys() {
    let mesh = TestMesh::start().await;
    let acme = acme(&mesh).await;
    let keys = ok(&mesh, &acme.admin, "API_KEY_LIST", json!({})).await;
    let owners_key = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"].as_str().unwrap_or("").starts_with("owner of"))
        .unwrap()["id"]
        .clone();
    let text = refused(&mesh, &acme.admin, "API_KEY_REVOKE", json!({"id": owners_key})).await;
    assert!(text.contains("only owners"), "{text}");
    // The owner still acts, and may revoke the admin's key.
    let admin_keys = ok(&mesh, &acme.owner, "API_KEY_LIST", json!({})).await;
    let admins = admin_keys["items"].as_array().unwrap().iter().find(|k| k["name"] == "admin").unwrap()["id"].clone();
    ok(&mesh, &acme.owner, "API_KEY_REVOKE", json!({"id": admins})).await;
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item8_rate_limit_buckets_are_bounded_and_names_capped() {
    let mesh = TestMesh::start().await;
    ok(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_CREATE", {
        let mut c = everything_stdio();
        c["slug"] = json!("everything");
        c
    })
    .await;
    ok(&mesh, &mesh.key, "RATE_LIMIT_SET", json!({"scope": "tool", "target": "*", "perMinute": 1000})).await;
    // A 3 MB name is refused before any bucket or audit row holds it.
    let sid = raw::open_session(&mesh.endpoint("everything"), &mesh.key, "2025-11-25").await;
    let huge = "x".repeat(3 * 1024 * 1024);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": huge, "arguments": {}}});
    let (status, _, body) =
        raw::post(&mesh.endpoint("everything"), raw::post_headers(&mesh.key, Some(&sid)), call.to_string()).await;
    assert_eq!(status, 200);
    let reply = &raw::messages(&body)[0];
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("longer than"), "{reply}");
    assert_eq!(mesh.admin.policies.bucket_count(), 0);

    // Unique names, each a bucket of its own: the map stops growing at its bound.
    let owner = mesh.owner();
    for i in 0..100_500 {
        let _ = mesh.admin.policies.admit(&owner, "everything", Some(&format!("tool-{i}")));
    }
    assert!(mesh.admin.policies.bucket_count() <= 100_000, "{}", mesh.admin.policies.bucket_count());
    mesh.stop().await;
}

on_both_databases!(
    issue16_item9_rest_writes_are_audited_with_their_method_and_redacted_body,
    issue16_item9_rest_writes_are_audited_with_their_method_and_redacted_body_on_postgres,
    rest_audit_story
);

async fn rest_audit_story(mesh: TestMesh) {
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v1/connections", mesh.url))
        .bearer_auth(&mesh.key)
        .json(&json!({"slug": "ops", "command": "/usr/bin/env", "args": ["--token=hunter2", "true"], "env": {"API_KEY": "s3cret"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let (done, rows) = mesh.manage(&mesh.key, "AUDIT_QUERY", json!({"routeKind": "rest"})).await;
    assert!(done, "{rows}");
    let row = rows["items"].as_array().unwrap().iter().find(|r| r["method"] == "POST /api/v1/connections").cloned();
    let row = row.unwrap_or_else(|| panic!("no POST row in {rows}"));
    let args = row["arguments"].to_string();
    assert!(args.contains("/usr/bin/env"), "the new command is visible in the trail: {args}");
    assert!(!args.contains("hunter2") && !args.contains("s3cret"), "{args}");
    mesh.stop().await;
}

on_both_databases!(
    issue16_item10_bad_connection_input_is_refused_naming_the_field,
    issue16_item10_bad_connection_input_is_refused_naming_the_field_on_postgres,
    bad_input_story
);

async fn bad_input_story(mesh: TestMesh) {
    let cases = [
        (json!({"slug": "a", "url": "http://127.0.0.1:9/mcp", "headers": {"X-Token": "a\r\nInjected: 1"}}), "headers"),
        (json!({"slug": "a", "url": "http://127.0.0.1:9/mcp", "headers": {"Bad Name": "v"}}), "headers"),
        (json!({"slug": "a", "url": "http://127.0.0.1:9/mcp", "headers": {"Content-Length": "1"}}), "headers"),
        (json!({"slug": "a", "url": "ftp://example.com/mcp"}), "url"),
        (json!({"slug": "a", "url": "http://exa mple.com/mcp"}), "url"),
        (json!({"slug": "a", "command": "true", "env": {"A=B": "v"}}), "env"),
        (json!({"slug": "a", "command": "true", "env": {"A": "nul\u{0}"}}), "env"),
        (json!({"slug": "a", "command": "true", "args": ["ok", "nul\u{0}"]}), "args[1]"),
        (json!({"slug": "a", "command": "true", "cwd": "relative/dir"}), "cwd"),
        (json!({"slug": "a", "url": "https://a.example/mcp", "title": "nul\u{0}"}), "title"),
        (json!({"slug": "a", "url": "https://a.example/mcp", "env": {"A": "b"}}), "env"),
    ];
    for (input, field) in cases {
        let text = refused(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_CREATE", input.clone()).await;
        assert!(text.contains(field) && !text.contains("internal error"), "{input}: {text}");
        // REST answers a 4xx for the same input, never a 500.
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/connections", mesh.url))
            .bearer_auth(&mesh.key)
            .json(&input)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{input}");
    }
    // Names that reach the database as they are: a 4xx, never a 500 (PostgreSQL refuses NUL).
    for path in ["/api/v1/connections/%00", "/api/v1/gateways/a%00b"] {
        let resp =
            reqwest::Client::new().get(format!("{}{path}", mesh.url)).bearer_auth(&mesh.key).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
    }
    let (done, text) = mesh.manage(&mesh.key, "API_KEY_CREATE", json!({"name": "k\u{0}"})).await;
    assert!(done || !text.to_string().contains("internal error"), "{text}");
    mesh.stop().await;
}

on_both_databases!(
    issue16_item11_credentials_in_urls_and_arguments_are_masked,
    issue16_item11_credentials_in_urls_and_arguments_are_masked_on_postgres,
    masking_story
);

async fn masking_story(mesh: TestMesh) {
    let viewer = mesh.extra_key("viewer").await;
    ok(
        &mesh,
        &mesh.key,
        "COLLECTION_CONNECTIONS_CREATE",
        json!({"slug": "remote", "url": "https://bob:hunter2@api.example.com/mcp?token=abc123&region=eu"}),
    )
    .await;
    ok(
        &mesh,
        &mesh.key,
        "COLLECTION_CONNECTIONS_CREATE",
        json!({"slug": "local", "command": "server", "args": ["--api-key", "zyx987", "--port=1"]}),
    )
    .await;
    let listed = ok(&mesh, &viewer, "COLLECTION_CONNECTIONS_LIST", json!({})).await.to_string();
    for secret in ["hunter2", "abc123", "zyx987"] {
        assert!(!listed.contains(secret), "{secret} shown to a viewer: {listed}");
    }
    assert!(listed.contains("region=eu") && listed.contains("--port=1"), "{listed}");
    let trail = ok(&mesh, &mesh.key, "AUDIT_QUERY", json!({"name": "COLLECTION_CONNECTIONS_CREATE"})).await.to_string();
    for secret in ["hunter2", "abc123", "zyx987"] {
        assert!(!trail.contains(secret), "{secret} in the audit trail: {trail}");
    }
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item11_one_anonymous_slug_per_installation() {
    let mesh = TestMesh::start().await;
    let acme = acme(&mesh).await;
    ok(
        &mesh,
        &mesh.key,
        "COLLECTION_CONNECTIONS_CREATE",
        json!({"slug": "open", "url": "https://a.example/mcp", "anonymous": true}),
    )
    .await;
    ok(&mesh, &acme.owner, "COLLECTION_CONNECTIONS_CREATE", json!({"slug": "open", "url": "https://b.example/mcp"}))
        .await;
    let text =
        refused(&mesh, &acme.owner, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "open", "anonymous": true})).await;
    assert!(text.contains("another organisation"), "{text}");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item11_disabling_or_deleting_a_connection_ends_its_direct_sessions() {
    let mesh = TestMesh::start().await;
    for slug in ["a", "b"] {
        let mut c = everything_stdio();
        c["slug"] = json!(slug);
        ok(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_CREATE", c).await;
    }
    let sa = raw::open_session(&mesh.endpoint("a"), &mesh.key, "2025-11-25").await;
    let sb = raw::open_session(&mesh.endpoint("b"), &mesh.key, "2025-11-25").await;
    ok(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "a", "status": "disabled"})).await;
    ok(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_DELETE", json!({"id": "b"})).await;
    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}).to_string();
    for (slug, sid) in [("a", &sa), ("b", &sb)] {
        // The session ends on the relay's side right after the change; bounded wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (status, _, _) =
                raw::post(&mesh.endpoint(slug), raw::post_headers(&mesh.key, Some(sid)), ping.clone()).await;
            if status == 404 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "session on {slug} still answers {status}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item11_adding_a_known_email_reveals_nothing_of_another_organisation() {
    let mesh = TestMesh::start().await;
    let acme = acme(&mesh).await;
    ok(
        &mesh,
        &mesh.key,
        "ORGANIZATION_MEMBER_ADD",
        json!({"email": "ada@example.test", "name": "Ada Lovelace", "role": "member"}),
    )
    .await;
    let added =
        ok(&mesh, &acme.admin, "ORGANIZATION_MEMBER_ADD", json!({"email": "ada@example.test", "role": "viewer"})).await;
    let shown = added.to_string();
    assert!(!shown.contains("Lovelace") && added["item"].get("hasPassword").is_none(), "{shown}");
    assert_eq!(added["item"]["name"], "ada");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item11_rest_reads_bearer_case_insensitively_like_mcp() {
    let mesh = TestMesh::start().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v1/connections", mesh.url))
            .header("authorization", format!("{scheme} {}", mesh.key))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{scheme}");
    }
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_also_key_create_takes_an_email() {
    let mesh = TestMesh::start().await;
    ok(&mesh, &mesh.key, "ORGANIZATION_MEMBER_ADD", json!({"email": "bob@example.test", "role": "member"})).await;
    let made = ok(&mesh, &mesh.key, "API_KEY_CREATE", json!({"name": "bob", "userId": "Bob@Example.test"})).await;
    let members = ok(&mesh, &mesh.key, "ORGANIZATION_MEMBER_LIST", json!({})).await;
    let bob = members["items"].as_array().unwrap().iter().find(|m| m["email"] == "bob@example.test").unwrap().clone();
    assert_eq!(made["item"]["userId"], bob["userId"]);
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_item2_org_admins_connections_do_not_reach_internal_networks() {
    let upstream = upstreams::everything_http().await;
    let localhost = upstream.url.replace("127.0.0.1", "localhost");
    let mesh = TestMesh::start().await;
    let admin = mesh.extra_key("admin").await;
    let init = raw::initialize_body(1, "2025-11-25");
    for (slug, url) in [("lit", upstream.url.clone()), ("name", localhost.clone())] {
        let made = ok(&mesh, &admin, "COLLECTION_CONNECTIONS_CREATE", json!({"slug": slug, "url": url})).await;
        assert_eq!(made["item"]["trusted"], false, "{made}");
        // Opening it connects: refused on the (resolved) loopback address, with a clear reason.
        let (_, _, body) = raw::post(&mesh.endpoint(slug), raw::post_headers(&admin, None), init.clone()).await;
        assert!(body.contains("not public"), "{slug}: {body}");
        // CONNECTION_TEST says so too, classified.
        let tested = ok(&mesh, &admin, "CONNECTION_TEST", json!({"id": slug})).await;
        assert_eq!(
            (tested["ok"].as_bool(), tested["error"]["kind"].as_str()),
            (Some(false), Some("blocked")),
            "{tested}"
        );
    }
    // The same URL set by an operator reaches it: the operator owns the host's networks.
    ok(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "name", "url": localhost})).await;
    let client = TestClient::connect_http(&mesh.endpoint("name"), &admin, ClientBehaviour::default()).await.unwrap();
    assert!(client.list_tool_names().await.unwrap().contains(&"echo".to_string()));
    client.close().await.ok();
    mesh.stop().await;

    // MESH_UPSTREAM_PRIVATE=admins lets organisation admins reach them.
    let mesh = TestMesh::start_with(|c| c.trust.upstream_private = mesh_admin::trust::Who::Admins).await;
    let admin = mesh.extra_key("admin").await;
    ok(&mesh, &admin, "COLLECTION_CONNECTIONS_CREATE", json!({"slug": "lit", "url": upstream.url})).await;
    let client = TestClient::connect_http(&mesh.endpoint("lit"), &admin, ClientBehaviour::default()).await.unwrap();
    assert!(client.list_tool_names().await.unwrap().contains(&"echo".to_string()));
    client.close().await.ok();
    mesh.stop().await;
    upstream.stop().await;
}
