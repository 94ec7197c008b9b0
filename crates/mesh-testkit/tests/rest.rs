//! REST under `/api/v1` for connections and gateways (same services and rules as the management
//! tools), and a gateway edited through it reaching an open client session as `list_changed`;
//! the authorization server's clients, grants and the caller's password.

use mesh_relay::ports::Authenticator;
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{upstreams, TestMesh};
use serde_json::{json, Value};

async fn call(mesh: &TestMesh, key: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", mesh.url)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("REST reaches the mesh");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn connections_and_gateways_over_rest_and_live_gateway_edits() -> anyhow::Result<()> {
    use reqwest::Method;
    let mesh = TestMesh::start().await;
    let k = mesh.key.clone();
    let script = upstreams::fixture("misbehaving_server.py").display().to_string();
    let python = mesh_testkit::deps::python().display().to_string();

    let (s, created) = call(
        &mesh,
        &k,
        Method::POST,
        "/api/v1/connections",
        Some(json!({"slug": "fx", "command": python, "args": [script, "normal"], "env": {"TOKEN": "s3cret"}})),
    )
    .await;
    assert_eq!(s, 200, "{created}");
    assert_eq!(created["item"]["env"]["TOKEN"], "***");
    let (s, dup) =
        call(&mesh, &k, Method::POST, "/api/v1/connections", Some(json!({"slug": "fx", "command": "x"}))).await;
    assert_eq!(s, 409, "{dup}");
    let (s, bad) = call(&mesh, &k, Method::POST, "/api/v1/connections", Some(json!({"slug": "y", "bogus": 1}))).await;
    assert_eq!(s, 400, "{bad}");
    let (s, listed) = call(&mesh, &k, Method::GET, "/api/v1/connections", None).await;
    assert_eq!((s, listed["items"].as_array().map(Vec::len)), (200, Some(1)));
    assert!(!listed.to_string().contains("s3cret"));
    let (s, patched) =
        call(&mesh, &k, Method::PATCH, "/api/v1/connections/fx", Some(json!({"title": "Fixture"}))).await;
    assert_eq!((s, patched["item"]["title"].as_str()), (200, Some("Fixture")));
    let (s, tested) = call(&mesh, &k, Method::POST, "/api/v1/connections/fx/test", None).await;
    assert_eq!((s, tested["ok"].as_bool()), (200, Some(true)), "{tested}");

    let (s, gw) = call(
        &mesh,
        &k,
        Method::POST,
        "/api/v1/gateways",
        Some(json!({"slug": "g", "members": [{"connection": "fx"}]})),
    )
    .await;
    assert_eq!(s, 200, "{gw}");
    let (s, _) = call(&mesh, "mesh_nope", Method::GET, "/api/v1/gateways", None).await;
    assert_eq!(s, 401);
    let member = mesh.extra_key("member").await;
    let (s, _) =
        call(&mesh, &member, Method::POST, "/api/v1/gateways", Some(json!({"slug": "h", "members": []}))).await;
    assert_eq!(s, 403);

    // An open session follows an edit made through REST.
    let client =
        TestClient::connect_http(&format!("{}/mcp/gateway/g", mesh.url), &k, ClientBehaviour::default()).await?;
    assert_eq!(client.list_tool_names().await?.len(), 6);
    let (s, _) = call(
        &mesh,
        &k,
        Method::PATCH,
        "/api/v1/gateways/g",
        Some(json!({"members": [{"connection": "fx", "tools": ["ok"]}]})),
    )
    .await;
    assert_eq!(s, 200);
    client
        .wait_until("list_changed after the REST edit", |c| {
            c.notifications_seen("notifications/tools/list_changed") >= 1
        })
        .await?;
    assert_eq!(client.list_tool_names().await?, ["fx_ok"]);
    let (s, _) = call(&mesh, &k, Method::DELETE, "/api/v1/gateways/g", None).await;
    assert_eq!(s, 200);
    let (s, _) = call(&mesh, &k, Method::GET, "/api/v1/gateways/g", None).await;
    assert_eq!(s, 404);
    client.close().await.ok();
    mesh.stop().await;
    Ok(())
}

#[tokio::test]
async fn oauth_clients_grants_and_password_over_rest() {
    use reqwest::Method;
    let mesh = TestMesh::start().await;
    let (k, owner) = (mesh.key.clone(), mesh.owner());
    let member = mesh.extra_key("member").await;
    let member_p = mesh.admin.keys.authenticate(&member).expect("member key");
    let member_email = mesh.admin.store.get_user(&member_p.user_id).await.unwrap().expect("user").email;

    // Clients: operators make and remove them; the secret comes once.
    let client =
        json!({"name": "Desk", "clientId": "desk", "redirectUris": ["http://127.0.0.1/cb"], "confidential": true});
    let (s, made) = call(&mesh, &k, Method::POST, "/api/v1/oauth/clients", Some(client.clone())).await;
    assert_eq!(s, 200, "{made}");
    let secret = made["clientSecret"].as_str().expect("clientSecret").to_string();
    assert!(secret.starts_with("mcs_") && made["item"]["confidential"] == true, "{made}");
    let (s, dup) = call(&mesh, &k, Method::POST, "/api/v1/oauth/clients", Some(client)).await;
    assert_eq!(s, 409, "{dup}");
    let (s, bad) = call(
        &mesh,
        &k,
        Method::POST,
        "/api/v1/oauth/clients",
        Some(json!({"name": "x", "redirectUris": [], "bogus": 1})),
    )
    .await;
    assert_eq!(s, 400, "{bad}");
    let (s, listed) = call(&mesh, &k, Method::GET, "/api/v1/oauth/clients", None).await;
    assert_eq!((s, listed["items"].as_array().map(Vec::len)), (200, Some(1)), "{listed}");
    assert!(!listed.to_string().contains(&secret) && !listed.to_string().contains("mcs_"), "{listed}");
    let public = json!({"name": "Mine", "redirectUris": ["http://127.0.0.1/cb"]});
    assert_eq!(call(&mesh, &member, Method::POST, "/api/v1/oauth/clients", Some(public)).await.0, 403);
    assert_eq!(call(&mesh, &member, Method::GET, "/api/v1/oauth/clients", None).await.0, 403);
    assert_eq!(call(&mesh, &member, Method::DELETE, "/api/v1/oauth/clients/desk", None).await.0, 403);
    assert_eq!(call(&mesh, "mesh_nope", Method::GET, "/api/v1/oauth/clients", None).await.0, 401);

    // Grants (made in the store: only a browser's consent makes one over HTTP).
    for (id, user) in [("grant_o", &owner.user_id), ("grant_m", &member_p.user_id)] {
        let g = mesh_store::OAuthGrant {
            id: id.into(),
            org_id: owner.org_id.clone(),
            user_id: user.clone(),
            client_id: "desk".into(),
            client_name: "Desk".into(),
            resource: format!("{}/mcp", mesh.url),
            route: String::new(),
            scope: "mcp".into(),
            created_at: mesh_core::id::now_ms(),
        };
        mesh.admin.store.upsert_oauth_grant(&g).await.expect("grant");
    }
    let ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> =
            v["items"].as_array().expect("items").iter().map(|g| g["id"].as_str().unwrap().into()).collect();
        ids.sort();
        ids
    };
    let (s, mine) = call(&mesh, &member, Method::GET, "/api/v1/oauth/grants", None).await;
    assert_eq!((s, ids(&mine)), (200, vec!["grant_m".to_string()]), "{mine}");
    let (s, all) = call(&mesh, &k, Method::GET, "/api/v1/oauth/grants", None).await;
    assert_eq!((s, ids(&all)), (200, vec!["grant_m".to_string(), "grant_o".to_string()]), "{all}");
    let (s, theirs) = call(&mesh, &k, Method::GET, &format!("/api/v1/oauth/grants?user={member_email}"), None).await;
    assert_eq!((s, ids(&theirs)), (200, vec!["grant_m".to_string()]), "{theirs}");
    let (s, _) = call(&mesh, &member, Method::GET, &format!("/api/v1/oauth/grants?user={}", owner.user_id), None).await;
    assert_eq!(s, 403);
    let (s, bad) = call(&mesh, &k, Method::GET, "/api/v1/oauth/grants?bogus=1", None).await;
    assert_eq!(s, 400, "{bad}");
    assert_eq!(call(&mesh, &member, Method::DELETE, "/api/v1/oauth/grants/grant_o", None).await.0, 404);
    let (s, revoked) = call(&mesh, &member, Method::DELETE, "/api/v1/oauth/grants/grant_m", None).await;
    assert_eq!((s, revoked["item"]["id"].as_str()), (200, Some("grant_m")), "{revoked}");
    assert_eq!(call(&mesh, &member, Method::DELETE, "/api/v1/oauth/grants/grant_m", None).await.0, 404);

    // Removing the client ends the grants given to it.
    let (s, gone) = call(&mesh, &k, Method::DELETE, "/api/v1/oauth/clients/desk", None).await;
    assert_eq!((s, &gone["clientId"]), (200, &json!("desk")), "{gone}");
    assert_eq!(call(&mesh, &k, Method::DELETE, "/api/v1/oauth/clients/desk", None).await.0, 404);
    assert!(mesh.admin.store.list_oauth_grants(&owner.org_id, None).await.unwrap().is_empty());

    // The caller's own password.
    let pw = "a password typed into a script";
    let (s, set) = call(&mesh, &member, Method::PUT, "/api/v1/users/me/password", Some(json!({"password": pw}))).await;
    assert_eq!((s, &set["passwordSet"]), (200, &json!(true)), "{set}");
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    assert!(mesh.admin.password_login(&member_email, pw, ip).await.is_ok(), "the password works");
    let (s, short) =
        call(&mesh, &member, Method::PUT, "/api/v1/users/me/password", Some(json!({"password": "short"}))).await;
    assert_eq!(s, 400);
    assert!(short["error"].as_str().unwrap_or("").contains("at least 12 characters"), "{short}");
    let other = json!({"password": "someone else's password", "user": owner.user_id});
    assert_eq!(call(&mesh, &member, Method::PUT, "/api/v1/users/me/password", Some(other)).await.0, 400, "me only");

    // Audited with the body, the password redacted.
    let rows = mesh
        .admin
        .query_audit(&owner, mesh_admin::audit::AuditQuery { route_kind: Some("rest".into()), ..Default::default() })
        .await
        .expect("audit");
    let puts: Vec<&Value> =
        rows["items"].as_array().unwrap().iter().filter(|r| r["method"] == "PUT /api/v1/users/me/password").collect();
    assert_eq!(puts.len(), 3, "{rows}");
    assert!(puts.iter().all(|r| r["arguments"]["password"] == "[REDACTED]"), "{puts:?}");
    assert!(!rows.to_string().contains(pw) && !rows.to_string().contains("someone else's"), "{rows}");
    mesh.stop().await;
}
