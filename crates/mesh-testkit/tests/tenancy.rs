//! Organisations and members end to end: an owner creates a second organisation (and gets a key
//! for it), adds members with built-in and custom roles, changes and removes them; and nothing
//! crosses organisations — ids, slugs, session ids and keys of another organisation all fail
//! as not found.

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{raw, upstreams, TestMesh};
use serde_json::{json, Value};

/// Calls a management tool; returns (ok, structured result or error text).
async fn call(mesh: &TestMesh, key: &str, tool: &str, args: Value) -> (bool, Value) {
    mesh.manage(key, tool, args).await
}

async fn ok(mesh: &TestMesh, key: &str, tool: &str, args: Value) -> Value {
    let (done, v) = call(mesh, key, tool, args).await;
    assert!(done, "{tool}: {v}");
    v
}

async fn not_found(mesh: &TestMesh, key: &str, tool: &str, args: Value) {
    let (done, v) = call(mesh, key, tool, args.clone()).await;
    assert!(!done && v.as_str().unwrap_or("").contains("not found"), "{tool} {args}: expected not found, got {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisations_and_members_lifecycle() {
    let mesh = TestMesh::start().await;
    let created = ok(&mesh, &mesh.key, "ORGANIZATION_CREATE", json!({"slug": "acme", "name": "Acme"})).await;
    let acme_key = created["key"].as_str().unwrap().to_string();
    assert_eq!(created["item"]["role"], "owner");
    let listed = ok(&mesh, &mesh.key, "ORGANIZATION_LIST", json!({})).await;
    let slugs: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|o| o["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, vec!["default", "acme"]);
    // The new key acts in the new organisation only.
    assert_eq!(ok(&mesh, &acme_key, "ORGANIZATION_GET", json!({})).await["item"]["slug"], "acme");

    // Members: a new local user with a password (hashed with argon2id, never shown).
    let added = ok(
        &mesh,
        &acme_key,
        "ORGANIZATION_MEMBER_ADD",
        json!({"email": "Ada@Example.test", "role": "admin", "password": "a long enough password"}),
    )
    .await;
    // Whether someone has a password is shown to them alone (issue #16 item 11).
    assert_eq!((added["item"]["email"].as_str(), added["item"].get("hasPassword")), (Some("ada@example.test"), None));
    assert!(!added.to_string().contains("a long enough password") && !added.to_string().contains("argon2"));
    let stored = mesh.admin.store.get_user_by_email("ada@example.test").await.unwrap().unwrap();
    let hash = stored.password_hash.unwrap();
    assert!(hash.starts_with("$argon2id$") && mesh_admin::orgs::verify_password("a long enough password", &hash));

    let (done, text) =
        call(&mesh, &acme_key, "ORGANIZATION_MEMBER_ADD", json!({"email": "x@y.test", "role": "nope"})).await;
    assert!(!done && text.as_str().unwrap().contains("no role named"), "{text}");
    ok(&mesh, &acme_key, "ROLE_CREATE", json!({"name": "support", "base": "member"})).await;
    ok(&mesh, &acme_key, "ORGANIZATION_MEMBER_ADD", json!({"email": "sam@example.test", "role": "support"})).await;
    let changed =
        ok(&mesh, &acme_key, "ORGANIZATION_MEMBER_UPDATE_ROLE", json!({"user": "sam@example.test", "role": "viewer"}))
            .await;
    assert_eq!(changed["item"]["role"], "viewer");
    let members = ok(&mesh, &acme_key, "ORGANIZATION_MEMBER_LIST", json!({})).await;
    assert_eq!(members["items"].as_array().unwrap().len(), 3);

    // The last owner stays an owner.
    let me = mesh.owner().user_id;
    let (done, text) =
        call(&mesh, &acme_key, "ORGANIZATION_MEMBER_UPDATE_ROLE", json!({"user": me, "role": "admin"})).await;
    assert!(!done && text.as_str().unwrap().contains("at least one owner"), "{text}");
    ok(&mesh, &acme_key, "ORGANIZATION_MEMBER_REMOVE", json!({"user": "sam@example.test"})).await;
    assert_eq!(ok(&mesh, &acme_key, "ORGANIZATION_MEMBER_LIST", json!({})).await["items"].as_array().unwrap().len(), 2);

    // Rename, then delete with confirmation; the key dies with its organisation.
    ok(&mesh, &acme_key, "ORGANIZATION_UPDATE", json!({"name": "Acme Inc"})).await;
    let (done, text) = call(&mesh, &acme_key, "ORGANIZATION_DELETE", json!({"id": "acme", "confirm": "nope"})).await;
    assert!(!done && text.as_str().unwrap().contains("confirm"), "{text}");
    ok(&mesh, &acme_key, "ORGANIZATION_DELETE", json!({"id": "acme", "confirm": "acme"})).await;
    let (status, _, _) = raw::post(
        &format!("{}/mcp", mesh.url),
        raw::post_headers(&acme_key, None),
        raw::initialize_body(1, "2025-11-25"),
    )
    .await;
    assert_eq!(status, 401);
    let listed = ok(&mesh, &mesh.key, "ORGANIZATION_LIST", json!({})).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_crosses_organisations() {
    let mesh = TestMesh::start().await;
    // Organisation A (default): a connection, a custom role, a limit, a member with a key.
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let conn = ok(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_GET", json!({"id": "everything"})).await["item"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&mesh, &mesh.key, "ROLE_CREATE", json!({"name": "support"})).await;
    let limit =
        ok(&mesh, &mesh.key, "RATE_LIMIT_SET", json!({"scope": "connection", "target": "*", "perMinute": 1000})).await;
    let limit_id = limit["item"]["id"].as_str().unwrap().to_string();
    let member = ok(&mesh, &mesh.key, "ORGANIZATION_MEMBER_ADD", json!({"email": "m@a.test", "role": "member"})).await;
    let member_id = member["item"]["userId"].as_str().unwrap().to_string();
    let a_key = ok(&mesh, &mesh.key, "API_KEY_CREATE", json!({"name": "a", "userId": member_id})).await;
    let a_key_id = a_key["item"]["id"].as_str().unwrap().to_string();
    let gateways = ok(&mesh, &mesh.key, "COLLECTION_GATEWAYS_LIST", json!({})).await;
    let a_gateway_id = gateways["items"][0]["id"].as_str().unwrap().to_string();
    let a_org = mesh.owner().org_id;

    // Organisation B, made by the same owner: its key must see none of A.
    let b = ok(&mesh, &mesh.key, "ORGANIZATION_CREATE", json!({"slug": "other"})).await;
    let b_key = b["key"].as_str().unwrap().to_string();

    not_found(&mesh, &b_key, "ORGANIZATION_GET", json!({"id": a_org})).await;
    not_found(&mesh, &b_key, "ORGANIZATION_GET", json!({"id": "default"})).await;
    not_found(&mesh, &b_key, "ORGANIZATION_UPDATE", json!({"id": a_org, "name": "x"})).await;
    not_found(&mesh, &b_key, "ORGANIZATION_DELETE", json!({"id": a_org, "confirm": "default"})).await;
    not_found(&mesh, &b_key, "COLLECTION_CONNECTIONS_GET", json!({"id": conn})).await;
    not_found(&mesh, &b_key, "COLLECTION_CONNECTIONS_GET", json!({"id": "everything"})).await;
    not_found(&mesh, &b_key, "COLLECTION_CONNECTIONS_DELETE", json!({"id": conn})).await;
    not_found(&mesh, &b_key, "CONNECTION_TEST", json!({"id": conn})).await;
    not_found(&mesh, &b_key, "COLLECTION_GATEWAYS_GET", json!({"id": a_gateway_id})).await;
    not_found(&mesh, &b_key, "ROLE_GET", json!({"name": "support"})).await;
    not_found(&mesh, &b_key, "ROLE_DELETE", json!({"name": "support"})).await;
    not_found(&mesh, &b_key, "RATE_LIMIT_DELETE", json!({"id": limit_id})).await;
    not_found(&mesh, &b_key, "API_KEY_REVOKE", json!({"id": a_key_id})).await;
    not_found(&mesh, &b_key, "ORGANIZATION_MEMBER_UPDATE_ROLE", json!({"user": member_id, "role": "admin"})).await;
    not_found(&mesh, &b_key, "ORGANIZATION_MEMBER_REMOVE", json!({"user": "m@a.test"})).await;
    // B's owner owns only B: the installation's vault is not theirs to rotate.
    let (done, text) = call(&mesh, &b_key, "VAULT_ROTATE", json!({})).await;
    assert!(!done && text.as_str().unwrap().contains("permission denied"), "{text}");
    let members = ok(&mesh, &b_key, "ORGANIZATION_MEMBER_LIST", json!({})).await;
    assert_eq!(members["items"].as_array().unwrap().len(), 1, "only B's owner: {members}");
    let keys = ok(&mesh, &b_key, "API_KEY_LIST", json!({})).await;
    assert!(!keys.to_string().contains(&a_key_id));
    let audit = ok(&mesh, &b_key, "AUDIT_QUERY", json!({"limit": 500})).await;
    assert!(audit["items"].as_array().unwrap().iter().all(|r| r["orgId"] != a_org.as_str()), "{audit}");

    // Data plane: A's connection by slug and by id is not found for B's key; A's session id
    // is not found with B's key.
    for route in ["everything", conn.as_str()] {
        let url = mesh.endpoint(route);
        let (status, _, body) =
            raw::post(&url, raw::post_headers(&b_key, None), raw::initialize_body(1, "2025-11-25")).await;
        assert_eq!(status, 404, "{route}: {body}");
    }
    let url = mesh.endpoint("everything");
    let sid = raw::open_session(&url, &mesh.key, "2025-11-25").await;
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}).to_string();
    assert_eq!(raw::post(&url, raw::post_headers(&b_key, Some(&sid)), ping.clone()).await.0, 404);
    assert_eq!(raw::post(&url, raw::post_headers(&mesh.key, Some(&sid)), ping).await.0, 200);
    // B's default gateway is B's own (empty), not A's.
    let gw = TestClient::connect_http(&format!("{}/mcp/gateway/default", mesh.url), &b_key, ClientBehaviour::default())
        .await
        .unwrap();
    assert!(gw.list_tool_names().await.unwrap().is_empty());

    // And A still has all of it.
    ok(&mesh, &mesh.key, "ROLE_GET", json!({"name": "support"})).await;
    ok(&mesh, &mesh.key, "COLLECTION_CONNECTIONS_GET", json!({"id": conn})).await;
    assert_eq!(ok(&mesh, &mesh.key, "RATE_LIMIT_LIST", json!({})).await["items"].as_array().unwrap().len(), 1);
    mesh.stop().await;
}
