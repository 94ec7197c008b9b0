//! The dashboard's routes against bad input, without a browser: no session, a wrong or missing
//! anti-CSRF value, oversized and malformed bodies, a hostile `next`, navigations from other
//! sites, unknown pages. Each gets its clear answer and the mesh keeps serving.

use mesh_testkit::TestMesh;
use reqwest::redirect::Policy;

#[tokio::test]
async fn dashboard_routes_refuse_bad_input_clearly() {
    let mesh = TestMesh::start().await;
    let owner = mesh.owner();
    let (cookie, _) = mesh.browser_login().await;
    let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let url = |p: &str| format!("{}{p}", mesh.url);
    let location =
        |r: &reqwest::Response| r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);

    // No session, or a made-up one: to the login page, keeping where they were going.
    for c in [None, Some("mesh_session=mls_forged")] {
        let mut req = http.get(url("/connections?q=x"));
        if let Some(c) = c {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(location(&r).as_deref(), Some("/login?next=%2Fconnections%3Fq%3Dx"));
    }
    let r = http.post(url("/connections")).form(&[("kind", "http")]).send().await.unwrap();
    assert_eq!(r.status(), 303, "a POST without a session changes nothing and goes to login");

    // Logged in, but without the form's anti-CSRF value, with another one, or with a body that is
    // not a form at all: 403, nothing created.
    for body in ["kind=http&slug=a&url=http%3A%2F%2F127.0.0.1%3A9%2Fmcp", "csrf=wrong&kind=http&slug=b", "\u{0}%%%&&=="]
    {
        let r = http
            .post(url("/connections"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{body}");
        assert!(r.text().await.unwrap().contains("Nothing was changed"));
    }
    assert!(mesh.admin.store.list_connections(&owner.org_id).await.unwrap().is_empty());

    // Too large: 413 before anything is read into a form.
    let big = format!("csrf=x&headers={}", "a".repeat(300 * 1024));
    let r = http.post(url("/connections")).header("cookie", &cookie).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);

    // `next` leads only to a plain local path.
    for next in ["//evil.example", "/%09/evil.example", "https://evil.example/", "/\\evil.example"] {
        let r = http.get(url(&format!("/login?next={next}"))).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 303, "{next}");
        assert_eq!(location(&r).as_deref(), Some("/"), "{next}");
    }
    let r = http.get(url("/login?next=/audit%3Fname%3Dx")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(location(&r).as_deref(), Some("/audit?name=x"));

    // A link from another site to a page that reaches upstreams lands on the overview.
    let r = http
        .get(url("/playground?route=gateway/default"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r).as_deref(), Some("/"));

    // Unknown things: a clear 404 or an error on the page, never a 500.
    let r = http.get(url("/connections/no-such")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("flash err") && body.contains("no-such") && body.contains("not found"), "{body}");
    let r = http.get(url("/no-such-page")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(url("/connections?offset=18446744073709551615")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200, "a huge offset is an empty page, not an overflow");

    // And the mesh still serves.
    let r = http.get(url("/")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    mesh.stop().await;
}

/// The playground keeps its MCP session between clicks, and logging out ends it (and its stdio
/// child) rather than leaving it to the idle reaper.
#[tokio::test]
async fn the_playground_keeps_its_session_and_logout_ends_it() {
    let mesh = TestMesh::start().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/many_tools_server.py");
    let python = mesh_testkit::deps::python().display().to_string();
    mesh.add_connection(
        serde_json::json!({"slug": "few", "command": python, "args": [script.display().to_string(), "--tools", "3"]}),
    )
    .await;
    let (cookie, session) = mesh.browser_login().await;
    let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    for _ in 0..3 {
        let r = http.get(format!("{}/playground?route=few", mesh.url)).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("search_issue_0000"), "the tools are listed");
    }
    assert_eq!(mesh.session_count(), 1, "three visits, one kept session");
    let r = http
        .post(format!("{}/logout", mesh.url))
        .header("cookie", &cookie)
        .form(&[("csrf", session.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(mesh.session_count(), 0, "logout ends the playground's session");
    mesh.stop().await;
}
