//! REST under `/api/v1` for connections and gateways (same services and rules as the management
//! tools), and a gateway edited through it reaching an open client session as `list_changed`.

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
