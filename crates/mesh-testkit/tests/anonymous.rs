//! Anonymous access: off by default; when an admin opens one connection to callers without
//! credentials, exactly that connection is reachable — never another, never management — and a
//! caller with bad credentials is refused rather than treated as anonymous.

use mesh_testkit::{raw, upstreams, TestMesh};
use reqwest::header::HeaderMap;
use serde_json::json;

fn no_auth() -> HeaderMap {
    let mut h = raw::post_headers("unused", None);
    h.remove("authorization");
    h
}

#[tokio::test]
async fn anonymous_callers_reach_only_what_an_admin_opened() {
    let mesh = TestMesh::start().await;
    let bin = upstreams::everything_bin();
    mesh.add_connection(json!({"slug": "open", "command": bin, "args": ["stdio"]})).await;
    mesh.add_connection(json!({"slug": "closed", "command": bin, "args": ["stdio"]})).await;
    let init = raw::initialize_body(1, "2025-11-25");

    let (status, _, _) = raw::post(&mesh.endpoint("open"), no_auth(), init.clone()).await;
    assert_eq!(status, 401, "off by default");

    let owner = mesh.owner();
    let input = serde_json::from_value(json!({"anonymous": true})).expect("input");
    let view = mesh.admin.update_connection(&owner, "open", input).await.expect("update");
    assert!(view.anonymous);

    let (status, h, body) = raw::post(&mesh.endpoint("open"), no_auth(), init.clone()).await;
    assert_eq!(status, 200, "{body}");
    let sid = h["mcp-session-id"].to_str().expect("sid").to_string();
    let mut session = raw::post_headers("unused", Some(&sid));
    session.remove("authorization");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let (status, _, body) = raw::post(&mesh.endpoint("open"), session, list).await;
    assert_eq!(status, 200);
    assert!(raw::messages(&body)[0]["result"]["tools"].is_array(), "{body}");

    // By id too; but never another connection, never management, never with bad credentials.
    let id = mesh.admin.get_connection(&owner, "open").await.expect("get").id;
    assert_eq!(raw::post(&mesh.endpoint(&id), no_auth(), init.clone()).await.0, 200);
    assert_eq!(raw::post(&mesh.endpoint("closed"), no_auth(), init.clone()).await.0, 401);
    assert_eq!(raw::post(&format!("{}/mcp", mesh.url), no_auth(), init.clone()).await.0, 401);
    assert_eq!(raw::post(&mesh.endpoint("open"), raw::post_headers("mesh_wrong", None), init.clone()).await.0, 401);

    // An anonymous session is not usable with a key, and a keyed session not without one.
    let keyed = raw::open_session(&mesh.endpoint("open"), &mesh.key, "2025-11-25").await;
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}).to_string();
    assert_eq!(raw::post(&mesh.endpoint("open"), raw::post_headers(&mesh.key, Some(&sid)), ping.clone()).await.0, 404);
    let mut anon_on_keyed = raw::post_headers("unused", Some(&keyed));
    anon_on_keyed.remove("authorization");
    assert_eq!(raw::post(&mesh.endpoint("open"), anon_on_keyed, ping).await.0, 404);

    // Turning it off takes effect on the next request.
    let input = serde_json::from_value(json!({"anonymous": false})).expect("input");
    mesh.admin.update_connection(&owner, "open", input).await.expect("update");
    assert_eq!(raw::post(&mesh.endpoint("open"), no_auth(), init).await.0, 401);
    mesh.stop().await;
}
