//! The catalogue in the official MCP Registry format (#22): `GET /v0.1/servers` lists an
//! organisation's active connections and virtual MCPs, paginated, filtered, every entry valid
//! against the registry's published server.json schema (checked with Python's `jsonschema`);
//! a second mesh imports that catalogue with `mcp-mesh import --registry` and calls a tool of
//! the first mesh through what it imported.

mod common;
use common::*;

use mesh_testkit::{deps, upstreams, TestMesh};
use serde_json::{json, Value};

async fn get(mesh: &TestMesh, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new().get(format!("{}{path}", mesh.url)).bearer_auth(&mesh.key).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn names(page: &Value) -> Vec<String> {
    page["servers"].as_array().unwrap().iter().map(|e| e["server"]["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_in_registry_format_validates_paginates_and_imports() {
    let source = TestMesh::start().await;
    let bin = upstreams::everything_bin().display().to_string();
    source
        .add_connection(
            json!({"slug": "everything", "command": bin, "args": ["stdio"], "description": "Everything, for tests"}),
        )
        .await;
    for slug in ["alpha", "beta"] {
        source.add_connection(json!({"slug": slug, "url": format!("https://{slug}.example.com/mcp")})).await;
    }
    source.add_connection(json!({"slug": "off", "url": "https://off.example.com/mcp", "status": "disabled"})).await;
    let (ok, out) = source
        .manage(
            &source.key,
            "COLLECTION_GATEWAYS_CREATE",
            json!({"slug": "team", "members": [{"connection": "alpha"}]}),
        )
        .await;
    assert!(ok, "{out}");

    // A key is needed, as for every route of the mesh.
    let anonymous = reqwest::get(format!("{}/v0.1/servers", source.url)).await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // A key narrowed to one virtual MCP (what a hub holds of a peer) reads no catalogue.
    let (ok, narrowed) =
        source.manage(&source.key, "API_KEY_CREATE", json!({"name": "narrow", "scope": {"gateways": ["team"]}})).await;
    assert!(ok, "{narrowed}");
    let narrowed = narrowed["key"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/v0.1/servers", source.url)).bearer_auth(&narrowed).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http.get(format!("{}/registry/{narrowed}/agents", source.url)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http.get(format!("{}/api/v1/agents", source.url)).bearer_auth(&narrowed).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // Pages of two, followed by their cursors; every page kept for the schema check.
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    let mut files = Vec::new();
    let mut path = "/v0.1/servers?limit=2".to_string();
    for page_no in 0.. {
        let (status, page) = get(&source, &path).await;
        assert_eq!(status, 200, "{page}");
        assert!(page["metadata"]["count"].as_u64().unwrap() <= 2, "{page}");
        all.extend(names(&page));
        let file = dir.path().join(format!("page{page_no}.json"));
        std::fs::write(&file, page.to_string()).unwrap();
        files.push(file.display().to_string());
        match page["metadata"]["nextCursor"].as_str() {
            Some(c) => path = format!("/v0.1/servers?limit=2&cursor={}", urlencode(c)),
            None => break,
        }
        assert!(page_no < 10, "pagination ends");
    }
    let short: Vec<&str> = all.iter().map(|n| n.rsplit('/').next().unwrap()).collect();
    for want in ["alpha", "beta", "everything", "gateway.team"] {
        assert!(short.contains(&want), "{want} listed: {all:?}");
    }
    assert!(!short.contains(&"off"), "a disabled connection is not listed: {all:?}");
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, all, "names are unique and in order across pages");
    // One namespace: the mesh's host (an address here, kept as it is) and the organisation.
    let namespace = all[0].split('/').next().unwrap().to_string();
    assert!(
        namespace.starts_with("127.0.0.1.") && all.iter().all(|n| n.starts_with(&format!("{namespace}/"))),
        "{all:?}"
    );

    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    deps::assert_checks_passed(
        "the listing against the official server.json schema",
        &deps::run_python("registry_schema_check.py", &refs, std::time::Duration::from_secs(60)).await,
    );

    // Filters and one entry.
    let (_, found) = get(&source, "/v0.1/servers?search=VERYTH").await;
    assert_eq!(names(&found).len(), 1, "{found}");
    let everything = &found["servers"][0]["server"];
    assert_eq!(everything["description"], "Everything, for tests");
    assert_eq!(everything["remotes"][0]["url"], format!("{}/mcp/everything", source.url));
    let name = everything["name"].as_str().unwrap();
    let (status, one) = get(&source, &format!("/v0.1/servers/{}/versions/latest", urlencode(name))).await;
    assert_eq!((status, one["server"]["name"].as_str()), (200, Some(name)), "{one}");
    let (status, _) = get(&source, &format!("/v0.1/servers/{}/versions/9.9.9", urlencode(name))).await;
    assert_eq!(status, 404);
    let (_, versions) = get(&source, &format!("/v0.1/servers/{}/versions", urlencode(name))).await;
    assert_eq!(versions["metadata"]["count"], 1);
    for bad in ["limit=0", "limit=101", "updated_since=yesterday", "limit=many"] {
        let (status, body) = get(&source, &format!("/v0.1/servers?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, none) = get(&source, "/v0.1/servers?updated_since=2999-01-01T00:00:00Z").await;
    assert!(names(&none).is_empty());

    // Another mesh imports the catalogue and, once given the header the entries ask for, calls
    // a tool of the first mesh through its own connection.
    let target = TestMesh::start().await;
    // A registry is someone else's list: its plain-http loopback remotes are not taken unasked.
    let cautious = cli(&target, &["import", "--registry", &source.url, "--registry-key", &source.key]).await;
    assert!(cautious.stderr.contains("not a public https remote"), "{}", cautious.stderr);
    assert!(!cautious.stdout.contains("created"), "{}", cautious.stdout);
    let imported =
        cli(&target, &["import", "--registry", &source.url, "--registry-key", &source.key, "--allow-private"]).await;
    assert!(imported.ok, "{}\n{}", imported.stdout, imported.stderr);
    assert!(imported.stdout.contains("created \"everything\""), "{}", imported.stdout);
    assert!(imported.stderr.contains("everything needs the header Authorization"), "{}", imported.stderr);
    let patched = reqwest::Client::new()
        .patch(format!("{}/api/v1/connections/everything", target.url))
        .bearer_auth(&target.key)
        .json(&json!({"headers": {"Authorization": format!("Bearer {}", source.key)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200, "{}", patched.text().await.unwrap());
    let called = cli(&target, &["call", "everything", "echo", "--arg", "message=through two meshes"]).await;
    assert!(called.ok && called.stdout.contains("Echo: through two meshes"), "{}\n{}", called.stdout, called.stderr);
    let wrong_key = cli(&target, &["import", "--registry", &source.url, "--registry-key", "mesh_wrong"]).await;
    assert!(!wrong_key.ok && wrong_key.stderr.contains("401"), "{}", wrong_key.stderr);
    target.stop().await;
    source.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
