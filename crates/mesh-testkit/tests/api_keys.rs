//! API keys as a management surface: created keys work at once; a revoked or expired key fails
//! on the very next request (also inside an MCP session it opened); members see and revoke only
//! their own keys; the secret is shown once and never listed.

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{raw, text_of, upstreams, TestMesh};
use serde_json::{json, Value};

async fn manage(mesh: &TestMesh, key: &str, tool: &str, args: Value) -> Value {
    let c = TestClient::connect_http(&format!("{}/mcp", mesh.url), key, ClientBehaviour::default())
        .await
        .expect("management session");
    let r = c.call_tool(tool, args).await.expect("tool call");
    c.close().await.ok();
    r
}

#[tokio::test]
async fn create_use_list_revoke_and_expire() {
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let created = manage(&mesh, &mesh.key, "API_KEY_CREATE", json!({"name": "ci", "expiresInDays": 30})).await;
    let key = created["structuredContent"]["key"].as_str().expect("the key, once").to_string();
    let key_id = created["structuredContent"]["item"]["id"].as_str().expect("id").to_string();
    assert!(key.starts_with("mesh_"));

    // Works at once, and a session opened with it works until the key is revoked.
    let url = mesh.endpoint("everything");
    let sid = raw::open_session(&url, &key, "2025-11-25").await;
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}).to_string();
    assert_eq!(raw::post(&url, raw::post_headers(&key, Some(&sid)), ping.clone()).await.0, 200);

    let listed = manage(&mesh, &mesh.key, "API_KEY_LIST", json!({})).await;
    let text = listed.to_string();
    assert!(text.contains(&key_id) && !text.contains(&key), "listed by id and prefix, never the secret");

    let revoked = manage(&mesh, &mesh.key, "API_KEY_REVOKE", json!({"id": key_id})).await;
    assert!(revoked["structuredContent"]["item"]["revokedAt"].is_i64(), "{revoked}");
    assert_eq!(
        raw::post(&url, raw::post_headers(&key, Some(&sid)), ping.clone()).await.0,
        401,
        "the very next request"
    );
    assert_eq!(raw::post(&url, raw::post_headers(&key, None), raw::initialize_body(1, "2025-11-25")).await.0, 401);

    // An expired key fails the same way (expiry is checked on every request, from memory).
    let owner = mesh.owner();
    let now = mesh_core::id::now_ms();
    let k = mesh_admin::keys::generate();
    let row = mesh_store::ApiKey {
        id: mesh_core::id::new_id("key"),
        org_id: owner.org_id.clone(),
        user_id: owner.user_id.clone(),
        name: "old".into(),
        prefix: k.prefix.clone(),
        hash: k.hash.clone(),
        created_at: now - 10_000,
        expires_at: Some(now - 1),
        revoked_at: None,
        last_used_at: None,
        policy: None,
    };
    mesh.admin.store.create_api_key(&row).await.expect("insert");
    mesh.admin.keys.reload(&mesh.admin.store).await.expect("reload");
    assert_eq!(
        raw::post(&url, raw::post_headers(k.full.expose(), None), raw::initialize_body(1, "2025-11-25")).await.0,
        401
    );
    mesh.stop().await;
}

#[tokio::test]
async fn members_manage_only_their_own_keys() {
    let mesh = TestMesh::start().await;
    let member = mesh.extra_key("member").await;
    let mine = manage(&mesh, &member, "API_KEY_CREATE", json!({"name": "laptop"})).await;
    assert_ne!(mine["isError"], true, "{mine}");
    let owner_user = mesh.owner().user_id;
    let theirs = manage(&mesh, &member, "API_KEY_CREATE", json!({"name": "x", "userId": owner_user})).await;
    assert!(theirs["isError"] == true && text_of(&theirs).contains("permission denied"), "{theirs}");
    let listed = manage(&mesh, &member, "API_KEY_LIST", json!({})).await;
    let items = listed["structuredContent"]["items"].as_array().cloned().unwrap_or_default();
    assert!(items.iter().all(|k| k["userId"] != owner_user), "a member does not see the owner's keys: {listed}");
    let owner_keys = manage(&mesh, &mesh.key, "API_KEY_LIST", json!({})).await;
    let owner_key_id = owner_keys["structuredContent"]["items"]
        .as_array()
        .and_then(|a| a.iter().find(|k| k["userId"] == owner_user))
        .and_then(|k| k["id"].as_str())
        .expect("the owner's key")
        .to_string();
    let attempt = manage(&mesh, &member, "API_KEY_REVOKE", json!({"id": owner_key_id})).await;
    assert!(attempt["isError"] == true && text_of(&attempt).contains("not found"), "{attempt}");
    let bad = manage(&mesh, &member, "API_KEY_CREATE", json!({"name": "x", "expiresInDays": 0})).await;
    assert_eq!(bad["isError"], true);
    mesh.stop().await;
}
