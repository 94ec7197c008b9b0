//! A gateway's status shows its members' live health from the data plane: with a session open in
//! degrade mode, a member that could not start is reported unhealthy, the others healthy.

use mesh_testkit::{raw, upstreams, TestMesh};
use serde_json::{json, Value};

#[tokio::test]
async fn an_unhealthy_member_shows_in_the_gateway_status() {
    let mesh = TestMesh::start().await;
    let script = upstreams::fixture("misbehaving_server.py").display().to_string();
    mesh.add_connection(json!({"slug": "good", "command": mesh_testkit::deps::python(), "args": [script, "normal"]}))
        .await;
    mesh.add_connection(json!({"slug": "bad", "command": "/nonexistent/mcp-server"})).await;
    let input =
        serde_json::from_value(json!({"slug": "g", "members": [{"connection": "good"}, {"connection": "bad"}]}))
            .expect("input");
    mesh.admin.create_gateway(&mesh.owner(), input).await.expect("gateway");

    let status = |mesh: &TestMesh| {
        let url = format!("{}/api/v1/gateways/g", mesh.url);
        let key = mesh.key.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("GET")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let idle = status(&mesh).await;
    assert_eq!(idle["item"]["live"]["openSessions"], 0, "{idle}");

    let _sid = raw::open_session(&format!("{}/mcp/gateway/g", mesh.url), &mesh.key, "2025-11-25").await;
    let live = status(&mesh).await;
    let members = live["item"]["live"]["members"].as_array().cloned().unwrap_or_default();
    let health = |slug: &str| members.iter().find(|m| m["connection"] == slug).map(|m| m["healthy"].clone());
    assert_eq!(live["item"]["live"]["openSessions"], 1, "{live}");
    assert_eq!(health("good"), Some(json!(true)), "{live}");
    assert_eq!(health("bad"), Some(json!(false)), "{live}");
    mesh.stop().await;
}
