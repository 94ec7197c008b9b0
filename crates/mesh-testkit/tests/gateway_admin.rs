//! Gateways (virtual MCPs), the control-plane half, through the management MCP server with a
//! real MCP client and real upstreams: collisions refused at save time naming both tools, CRUD,
//! the default gateway, who may change gateways, and what the relay is handed to serve one.

use mesh_admin::connections::Routes;
use mesh_relay::ports::RouteResolver;
use mesh_relay::RelayError;
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{raw, text_of, upstreams, TestMesh};
use serde_json::{json, Value};

async fn manage(client: &TestClient, tool: &str, args: Value) -> Value {
    let r = client.call_tool(tool, args).await.unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_ne!(r["isError"], true, "{tool} failed: {}", text_of(&r));
    r["structuredContent"].clone()
}

/// The tool's error text; fails the test if the call succeeded.
async fn refused(client: &TestClient, tool: &str, args: Value) -> String {
    let r = client.call_tool(tool, args.clone()).await.unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_eq!(r["isError"], true, "{tool} {args} should have failed: {r}");
    text_of(&r)
}

async fn management(mesh: &TestMesh, key: &str) -> TestClient {
    TestClient::connect_http(&format!("{}/mcp", mesh.url), key, ClientBehaviour::default()).await.expect("connect /mcp")
}

/// Two copies of server-everything over stdio: both have a tool `echo` and the same prompts.
async fn two_everythings(mesh: &TestMesh) {
    let bin = upstreams::everything_bin().display().to_string();
    for slug in ["everything-a", "everything-b"] {
        mesh.add_connection(json!({"slug": slug, "command": bin, "args": ["stdio"]})).await;
    }
}

fn slugs(items: &Value) -> Vec<String> {
    items.as_array().into_iter().flatten().filter_map(|i| i["slug"].as_str().map(str::to_string)).collect()
}

#[tokio::test]
async fn collisions_are_refused_when_saving_naming_both_tools() -> anyhow::Result<()> {
    let mesh = TestMesh::start().await;
    two_everythings(&mesh).await;
    let admin = management(&mesh, &mesh.key).await;
    let names = admin.list_tool_names().await?;
    for t in ["CREATE", "LIST", "GET", "UPDATE", "DELETE"] {
        assert!(names.contains(&format!("COLLECTION_GATEWAYS_{t}")), "COLLECTION_GATEWAYS_{t} missing");
    }

    // Both members unprefixed: both expose `echo`. Refused, naming both, never "first wins".
    let unprefixed = json!({"slug": "both", "members": [
        {"connection": "everything-a", "prefix": ""}, {"connection": "everything-b", "prefix": ""}]});
    let e = refused(&admin, "COLLECTION_GATEWAYS_CREATE", unprefixed).await;
    assert!(e.contains("'echo'") && e.contains("everything-a's 'echo'") && e.contains("everything-b's 'echo'"), "{e}");
    let listed = manage(&admin, "COLLECTION_GATEWAYS_LIST", json!({})).await;
    assert_eq!(slugs(&listed["items"]), ["default"], "nothing was saved");

    // Default prefixes (the slugs): no collision.
    let created = manage(
        &admin,
        "COLLECTION_GATEWAYS_CREATE",
        json!({"slug": "both", "members": [{"connection": "everything-a"}, {"connection": "everything-b"}]}),
    )
    .await;
    let item = &created["item"];
    assert_eq!(created["warnings"], json!([]), "{created}");
    assert_eq!(
        (item["endpoint"].as_str(), item["mode"].as_str(), item["pageSize"].as_i64()),
        (Some("/mcp/gateway/both"), Some("degrade"), Some(100))
    );
    assert_eq!(item["members"][0]["connection"], "everything-a", "members are shown by slug");
    assert_eq!(item["members"][1]["prefix"], "everything-b", "with the prefix in force");

    // One member allow-lists `echo` unprefixed; the other exposes no tools and — since both
    // servers have the same prompts — no prompts either.
    let curated = |b_prompts: Value| {
        json!({"slug": "curated", "members": [
            {"connection": "everything-a", "prefix": "", "tools": ["echo"]},
            {"connection": "everything-b", "prefix": "", "tools": [], "prompts": b_prompts}]})
    };
    let e = refused(&admin, "COLLECTION_GATEWAYS_CREATE", curated(json!("all"))).await;
    assert!(e.starts_with("prompts: ") && e.contains("everything-a's 'simple-prompt'"), "{e}");
    let ok = manage(&admin, "COLLECTION_GATEWAYS_CREATE", curated(json!([]))).await;
    assert_eq!(ok["item"]["members"][0]["tools"], json!(["echo"]));
    assert_eq!(ok["item"]["members"][1]["prefix"], "");

    // A rename resolves a collision as well as a prefix does; an update is checked like a create.
    let e = refused(
        &admin,
        "COLLECTION_GATEWAYS_UPDATE",
        json!({"id": "curated", "members": [{"connection": "everything-a", "prefix": "", "tools": ["echo"]},
                                           {"connection": "everything-b", "prefix": "", "tools": ["echo"], "prompts": []}]}),
    )
    .await;
    assert!(e.contains("everything-b's 'echo'"), "{e}");
    let renamed = manage(
        &admin,
        "COLLECTION_GATEWAYS_UPDATE",
        json!({"id": "curated", "mode": "strict", "members": [
            {"connection": "everything-a", "prefix": "", "tools": ["echo"]},
            {"connection": "everything-b", "prefix": "", "tools": ["echo"], "prompts": [], "renames": {"echo": "echo_b"},
             "descriptions": {"echo": "Echo, from B"}}]}),
    )
    .await;
    assert_eq!(renamed["item"]["mode"], "strict");
    assert_eq!(renamed["item"]["members"][1]["renames"]["echo"], "echo_b");
    admin.close().await?;
    mesh.stop().await;
    Ok(())
}

#[tokio::test]
async fn gateway_crud_validation_and_warnings() -> anyhow::Result<()> {
    let mesh = TestMesh::start().await;
    two_everythings(&mesh).await;
    let down = format!("http://127.0.0.1:{}/mcp", upstreams::free_port());
    mesh.add_connection(json!({"slug": "down", "url": down})).await;
    let admin = management(&mesh, &mesh.key).await;

    // Refused input, each with a message that says what to fix.
    let bad: &[(Value, &str)] = &[
        (json!({"members": []}), "slug is required"),
        (json!({"slug": "Dev"}), "slug"),
        (json!({"slug": "dev", "members": [{"connection": "nope"}]}), "member 'nope': no such connection"),
        (
            json!({"slug": "dev", "members": [{"connection": "everything-a"}, {"connection": "everything-a", "prefix": "x"}]}),
            "member twice",
        ),
        (json!({"slug": "dev", "members": [{"connection": "everything-a", "prefix": "9lives"}]}), "invalid prefix"),
        (
            json!({"slug": "dev", "members": [{"connection": "everything-a", "prefix": "my_fs"}, {"connection": "everything-b", "prefix": "my-fs"}]}),
            "share the prefix",
        ),
        (json!({"slug": "dev", "pageSize": 0}), "pageSize"),
        (json!({"slug": "dev", "mode": "lenient"}), "invalid arguments"),
        (json!({"slug": "dev", "members": [{"connection": "everything-a", "tool": ["echo"]}]}), "unknown field"),
        (json!({"slug": "dev", "allConnections": true, "members": []}), "either allConnections or members"),
    ];
    for (args, want) in bad {
        let e = refused(&admin, "COLLECTION_GATEWAYS_CREATE", args.clone()).await;
        assert!(e.contains(want), "{args}: '{e}' should contain '{want}'");
    }

    // A member that is down is saved with a warning: it is checked again when used.
    let created = manage(
        &admin,
        "COLLECTION_GATEWAYS_CREATE",
        json!({"slug": "dev", "title": "Dev tools", "pageSize": 25,
               "members": [{"connection": "everything-a", "tools": ["echo", "no-such-tool"]}, {"connection": "down"}]}),
    )
    .await;
    let warnings = created["warnings"].to_string();
    assert!(warnings.contains("member 'down' could not be reached"), "{warnings}");
    assert!(warnings.contains("member 'everything-a' offers no tool 'no-such-tool'"), "{warnings}");
    let id = created["item"]["id"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("gw_"), "{created}");
    let dup = refused(&admin, "COLLECTION_GATEWAYS_CREATE", json!({"slug": "dev"})).await;
    assert!(dup.contains("gateway slug 'dev' already exists"), "{dup}");

    // GET by slug and id; LIST in slug order.
    let by_slug = manage(&admin, "COLLECTION_GATEWAYS_GET", json!({"id": "dev"})).await;
    let by_id = manage(&admin, "COLLECTION_GATEWAYS_GET", json!({"id": id})).await;
    assert_eq!(by_slug, by_id);
    assert_eq!(
        (by_slug["item"]["title"].as_str(), by_slug["item"]["pageSize"].as_i64()),
        (Some("Dev tools"), Some(25))
    );
    let listed = manage(&admin, "COLLECTION_GATEWAYS_LIST", json!({})).await;
    assert_eq!(slugs(&listed["items"]), ["default", "dev"]);

    // A member shown by GET is valid input as it stands.
    let members = by_slug["item"]["members"].clone();
    let again = manage(&admin, "COLLECTION_GATEWAYS_UPDATE", json!({"id": "dev", "members": members.clone()})).await;
    assert_eq!(again["item"]["members"], members);

    // Fields change one at a time; a rename of the slug moves the endpoint.
    let updated =
        manage(&admin, "COLLECTION_GATEWAYS_UPDATE", json!({"id": id, "slug": "tools", "description": "for agents"}))
            .await;
    assert_eq!(updated["item"]["endpoint"], "/mcp/gateway/tools");
    assert_eq!(updated["item"]["title"], "Dev tools", "absent fields are kept");
    assert_eq!(updated["warnings"], json!([]), "members not given: not probed again");

    // Members whose connection is disabled or deleted are shown as skipped, and not served.
    mesh.admin.update_connection(&mesh.owner(), "down", serde_json::from_value(json!({"status": "disabled"}))?).await?;
    let shown = manage(&admin, "COLLECTION_GATEWAYS_GET", json!({"id": "tools"})).await;
    assert_eq!(shown["item"]["skipped"], json!(["down: connection disabled"]));
    let resolved = mesh.admin.resolve_gateway(&mesh.owner(), "tools").await?;
    assert_eq!(resolved.members.iter().map(|m| m.slug.as_str()).collect::<Vec<_>>(), ["everything-a"]);
    mesh.admin.delete_connection(&mesh.owner(), "down").await?;
    let shown = manage(&admin, "COLLECTION_GATEWAYS_GET", json!({"id": "tools"})).await;
    let skipped = shown["item"]["skipped"].to_string();
    assert!(skipped.contains("conn_") && skipped.contains("connection deleted"), "{skipped}");

    // DELETE, then it is gone.
    let deleted = manage(&admin, "COLLECTION_GATEWAYS_DELETE", json!({"id": "tools"})).await;
    assert_eq!((deleted["deleted"].as_bool(), deleted["id"].as_str()), (Some(true), Some(id.as_str())));
    let gone = refused(&admin, "COLLECTION_GATEWAYS_GET", json!({"id": "tools"})).await;
    assert!(gone.contains("gateway 'tools' not found"), "{gone}");
    let missing_id = refused(&admin, "COLLECTION_GATEWAYS_DELETE", json!({})).await;
    assert!(missing_id.contains("argument 'id'"), "{missing_id}");
    admin.close().await?;
    mesh.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_default_gateway_serves_every_connection_and_can_be_turned_off() -> anyhow::Result<()> {
    let mesh = TestMesh::start().await;
    let admin = management(&mesh, &mesh.key).await;
    let first = manage(&admin, "COLLECTION_GATEWAYS_GET", json!({"id": "default"})).await;
    let item = &first["item"];
    assert_eq!((item["allConnections"].as_bool(), item["status"].as_str()), (Some(true), Some("active")), "{first}");
    assert_eq!((item["endpoint"].as_str(), item["members"].clone()), (Some("/mcp/gateway/default"), json!([])));

    two_everythings(&mesh).await;
    mesh.add_connection(json!({"slug": "off", "url": "http://127.0.0.1:9/mcp", "status": "disabled"})).await;
    let now = manage(&admin, "COLLECTION_GATEWAYS_GET", json!({"id": "default"})).await;
    let members: Vec<&str> =
        now["item"]["members"].as_array().into_iter().flatten().filter_map(|m| m["connection"].as_str()).collect();
    assert_eq!(members, ["everything-a", "everything-b"], "the active connections, as they come and go");

    // What the relay gets: every active connection, each under its slug, credentials opened.
    let routes = Routes(mesh.admin.clone());
    let resolved = routes.resolve_gateway(&mesh.owner(), "default").await?;
    assert_eq!(resolved.slug, "default");
    assert_eq!(resolved.page_size, 100);
    let members: Vec<(&str, &str)> =
        resolved.members.iter().map(|m| (m.slug.as_str(), m.config.effective_prefix(&m.slug))).collect();
    assert_eq!(members, [("everything-a", "everything-a"), ("everything-b", "everything-b")]);
    assert!(resolved.members.iter().all(|m| m.spec.name == m.slug && m.connection_id.starts_with("conn_")));

    // Members may not change gateways, but may read them.
    let key = mesh.extra_key("member").await;
    let member = management(&mesh, &key).await;
    for (tool, args) in [
        ("COLLECTION_GATEWAYS_CREATE", json!({"slug": "mine", "members": []})),
        ("COLLECTION_GATEWAYS_UPDATE", json!({"id": "default", "status": "disabled"})),
        ("COLLECTION_GATEWAYS_DELETE", json!({"id": "default"})),
    ] {
        let e = refused(&member, tool, args).await;
        assert!(e.contains("permission denied"), "{tool}: {e}");
    }
    let seen = manage(&member, "COLLECTION_GATEWAYS_LIST", json!({})).await;
    assert_eq!(slugs(&seen["items"]), ["default"]);
    member.close().await?;

    // Served (by the data plane) while on…
    let client =
        TestClient::connect_http(&format!("{}/mcp/gateway/default", mesh.url), &mesh.key, ClientBehaviour::default())
            .await?;
    let tools = client.list_tool_names().await?;
    assert!(
        tools.contains(&"everything-a_echo".to_string()) && tools.contains(&"everything-b_echo".to_string()),
        "{tools:?}"
    );
    client.close().await?;
    // …turned off: the relay is told the route does not exist, and the endpoint answers 404.
    manage(&admin, "COLLECTION_GATEWAYS_UPDATE", json!({"id": "default", "status": "disabled"})).await;
    let err = routes.resolve_gateway(&mesh.owner(), "default").await.unwrap_err();
    assert!(matches!(err, RelayError::RouteNotFound(_)), "{err:?}");
    let (status, _, _) = raw::post(
        &format!("{}/mcp/gateway/default", mesh.url),
        raw::post_headers(&mesh.key, None),
        raw::initialize_body(1, "2025-11-25"),
    )
    .await;
    assert_eq!(status, 404);
    // Unknown gateways and other organisations' look the same; anonymous callers never reach one.
    let err = routes.resolve_gateway(&mesh.owner(), "nope").await.unwrap_err();
    assert!(matches!(err, RelayError::RouteNotFound(_)), "{err:?}");
    manage(&admin, "COLLECTION_GATEWAYS_UPDATE", json!({"id": "default", "status": "active"})).await;
    let anonymous = mesh_core::Principal::anonymous(&mesh.owner().org_id);
    let err = routes.resolve_gateway(&anonymous, "default").await.unwrap_err();
    assert!(matches!(err, RelayError::RouteNotFound(_)), "{err:?}");

    // Back to a curated list and to every connection again.
    let curated = manage(
        &admin,
        "COLLECTION_GATEWAYS_UPDATE",
        json!({"id": "default", "allConnections": false, "members": [{"connection": "everything-a"}]}),
    )
    .await;
    assert_eq!(curated["item"]["allConnections"], false);
    let e =
        refused(&admin, "COLLECTION_GATEWAYS_CREATE", json!({"slug": "all", "allConnections": true, "members": []}))
            .await;
    assert!(e.contains("either"), "{e}");
    let all = manage(&admin, "COLLECTION_GATEWAYS_CREATE", json!({"slug": "all", "allConnections": true})).await;
    assert_eq!(all["item"]["members"].as_array().map(Vec::len), Some(2));
    let e = refused(
        &admin,
        "COLLECTION_GATEWAYS_UPDATE",
        json!({"id": "all", "members": [{"connection": "everything-a"}]}),
    )
    .await;
    assert!(e.contains("allConnections: false"), "{e}");
    admin.close().await?;
    mesh.stop().await;
    Ok(())
}
