//! The mesh as an OAuth 2.1 authorization server (#17), end to end over HTTP against the real
//! server: discovery, the code flow through the real login and consent pages, tokens bound to
//! one resource, refresh rotation and reuse detection, revocation, and the refusals.

use mesh_admin::oauth::manage::ClientInput;
use mesh_testkit::oauth::{authorize_url, exchange, get_json, param, pkce, token, Browser};
use mesh_testkit::raw::{initialize_body, post, post_headers};
use mesh_testkit::{upstreams, TestMesh};
use serde_json::{json, Value};

const OWNER: &str = "owner@localhost";
const PASSWORD: &str = "correct horse battery staple";
const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// A mesh with two connections (`a`, `b`), a gateway `dev` over `a`, an owner password and a
/// pre-registered public client `test-client` redirecting to loopback.
async fn mesh() -> TestMesh {
    setup(TestMesh::start().await).await
}

async fn setup(mesh: TestMesh) -> TestMesh {
    for slug in ["a", "b"] {
        mesh.add_connection(json!({"slug": slug, "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    }
    let owner = mesh.owner();
    let (ok, out) = mesh
        .manage(&mesh.key, "COLLECTION_GATEWAYS_CREATE", json!({"slug": "dev", "members": [{"connection": "a"}]}))
        .await;
    assert!(ok, "gateway created: {out}");
    mesh.admin.set_password(&owner, None, PASSWORD).await.expect("owner password");
    let input = ClientInput {
        name: "Test Client".into(),
        redirect_uris: vec!["http://127.0.0.1/callback".into()],
        client_id: Some("test-client".into()),
        ..Default::default()
    };
    mesh.admin.create_oauth_client(&owner, input).await.expect("client");
    mesh
}

/// Runs the code flow for `resource` and exchanges the code: the token response.
async fn tokens_for(mesh: &TestMesh, resource: &str) -> Value {
    let p = pkce();
    let url = authorize_url(&mesh.url, "test-client", CALLBACK, resource, &p, "st4te");
    let back = Browser::new()
        .authorize(&url, OWNER, PASSWORD, CALLBACK)
        .await
        .unwrap_or_else(|p| panic!("flow stopped at {}: {}", p.status, p.body));
    assert_eq!(param(&back, "state").as_deref(), Some("st4te"));
    assert_eq!(param(&back, "iss").as_deref(), Some(mesh.url.as_str()), "RFC 9207 iss is the issuer");
    let code = param(&back, "code").expect("code");
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", p.verifier.as_str()),
        ("client_id", "test-client"),
        ("resource", resource),
    ];
    let (status, body, headers) = token(&mesh.url, &fields).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["cache-control"].to_str().unwrap().contains("no-store"));
    body
}

/// An `initialize` at `url` with `token`: the status and the WWW-Authenticate header.
async fn init(url: &str, token: &str) -> (u16, String) {
    let (status, h, _) = post(url, post_headers(token, None), initialize_body(1, "2025-11-25")).await;
    let www = h.get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, www)
}

#[tokio::test]
async fn issue17_discovery_401_challenges_and_metadata() {
    let mesh = mesh().await;
    let http = reqwest::Client::new();
    for (path, route) in
        [("/mcp/a", "/mcp/a"), ("/mcp/gateway/dev", "/mcp/gateway/dev"), ("/mcp", "/mcp"), ("/mcp/a/", "/mcp/a")]
    {
        let resp = http
            .post(format!("{}{path}", mesh.url))
            .header("content-type", "application/json")
            .body(initialize_body(1, "2025-11-25"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        let www = resp.headers()["www-authenticate"].to_str().unwrap().to_string();
        let want = format!("resource_metadata=\"{}/.well-known/oauth-protected-resource{route}\"", mesh.url);
        assert!(www.starts_with("Bearer ") && www.contains(&want) && www.contains("scope=\"mcp\""), "{path}: {www}");
        assert!(!www.contains("invalid_token"), "no credentials sent, so no error: {www}");
        // The document it names describes exactly that endpoint.
        let prm: Value = get_json(&format!("{}/.well-known/oauth-protected-resource{route}", mesh.url)).await;
        assert_eq!(prm["resource"], format!("{}{route}", mesh.url));
        assert_eq!(prm["authorization_servers"], json!([mesh.url]));
    }
    // A trailing slash in the well-known path names the same resource.
    let prm: Value = get_json(&format!("{}/.well-known/oauth-protected-resource/mcp/gateway/dev/", mesh.url)).await;
    assert_eq!(prm["resource"], format!("{}/mcp/gateway/dev", mesh.url));
    assert_eq!(
        http.get(format!("{}/.well-known/oauth-protected-resource/api/v1", mesh.url)).send().await.unwrap().status(),
        404
    );
    // A bad key is told it is invalid, and still pointed at discovery.
    let (status, www) = init(&format!("{}/mcp/a", mesh.url), "mesh_nope").await;
    assert_eq!(status, 401);
    assert!(www.contains("error=\"invalid_token\"") && www.contains("resource_metadata="), "{www}");

    for path in ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
        let resp = http.get(format!("{}{path}", mesh.url)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let m: Value = resp.json().await.unwrap();
        assert_eq!(m["issuer"], mesh.url, "issuer is exactly the base URL");
        assert_eq!(m["authorization_endpoint"], format!("{}/oauth/authorize", mesh.url));
        assert_eq!(m["token_endpoint"], format!("{}/oauth/token", mesh.url));
        assert_eq!(m["registration_endpoint"], format!("{}/oauth/register", mesh.url));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(m["client_id_metadata_document_supported"], true);
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    }
}

#[tokio::test]
async fn issue17_code_flow_token_is_bound_to_its_resource() {
    let mesh = mesh().await;
    let a = format!("{}/mcp/a", mesh.url);
    // The client sends the resource with a trailing slash: the same resource.
    let t = tokens_for(&mesh, &format!("{a}/")).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "mcp");
    assert!(t["refresh_token"].is_string(), "pre-registered clients refresh");
    assert_eq!(init(&a, access).await.0, 200, "the token works where it was issued for");
    assert_eq!(init(&format!("{a}/"), access).await.0, 200, "and at its trailing-slash spelling");
    for other in [format!("{}/mcp/b", mesh.url), format!("{}/mcp/gateway/dev", mesh.url), format!("{}/mcp", mesh.url)] {
        let (status, www) = init(&other, access).await;
        assert_eq!(status, 401, "a token for /mcp/a is refused at {other}");
        assert!(www.contains("invalid_token"), "{www}");
    }
    // A gateway's own token works there, and not on its member connection.
    let g = tokens_for(&mesh, &format!("{}/mcp/gateway/dev", mesh.url)).await;
    let ga = g["access_token"].as_str().unwrap();
    assert_eq!(init(&format!("{}/mcp/gateway/dev", mesh.url), ga).await.0, 200);
    assert_eq!(init(&a, ga).await.0, 401);
    // A tool call with the token: the audit row names the user, not a key of theirs.
    let session = {
        let (status, h, _) = post(&a, post_headers(access, None), initialize_body(1, "2025-11-25")).await;
        assert_eq!(status, 200);
        h["mcp-session-id"].to_str().unwrap().to_string()
    };
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "via oauth"}}});
    let (status, _, body) = post(&a, post_headers(access, Some(&session)), call.to_string()).await;
    assert_eq!(status, 200);
    assert!(body.contains("via oauth"), "{body}");
}

#[tokio::test]
async fn issue17_refresh_rotates_and_reuse_revokes_the_family() {
    let mesh = mesh().await;
    let a = format!("{}/mcp/a", mesh.url);
    let t = tokens_for(&mesh, &a).await;
    let (access1, refresh1) = (t["access_token"].as_str().unwrap(), t["refresh_token"].as_str().unwrap());
    let (status, t2, _) = token(
        &mesh.url,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh1), ("client_id", "test-client"), ("resource", &a)],
    )
    .await;
    assert_eq!(status, 200, "{t2}");
    let (access2, refresh2) = (t2["access_token"].as_str().unwrap(), t2["refresh_token"].as_str().unwrap());
    assert_ne!(refresh1, refresh2, "refresh tokens rotate");
    assert_eq!(init(&a, access2).await.0, 200);
    // The old refresh token again: the whole family ends, the newest tokens included.
    let (status, err, _) =
        token(&mesh.url, &[("grant_type", "refresh_token"), ("refresh_token", refresh1), ("client_id", "test-client")])
            .await;
    assert_eq!((status, err["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(init(&a, access1).await.0, 401);
    assert_eq!(init(&a, access2).await.0, 401, "reuse revoked the tokens issued after it");
    let (status, _, _) =
        token(&mesh.url, &[("grant_type", "refresh_token"), ("refresh_token", refresh2), ("client_id", "test-client")])
            .await;
    assert_eq!(status, 400, "and the newest refresh token");
}

#[tokio::test]
async fn issue17_code_reuse_wrong_verifier_and_wrong_redirect_are_refused() {
    let mesh = mesh().await;
    let a = format!("{}/mcp/a", mesh.url);
    let code_for = |p: &mesh_testkit::oauth::Pkce| authorize_url(&mesh.url, "test-client", CALLBACK, &a, p, "s");
    // Wrong verifier.
    let p = pkce();
    let back = Browser::new().authorize(&code_for(&p), OWNER, PASSWORD, CALLBACK).await.unwrap();
    let code = param(&back, "code").unwrap();
    let (status, err, _) = exchange(&mesh.url, "test-client", &code, CALLBACK, &pkce().verifier).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("invalid_grant")), "{err}");
    // Code reuse: the second exchange fails and the first one's tokens are revoked.
    let p = pkce();
    let back = Browser::new().authorize(&code_for(&p), OWNER, PASSWORD, CALLBACK).await.unwrap();
    let code = param(&back, "code").unwrap();
    let (status, first, _) = exchange(&mesh.url, "test-client", &code, CALLBACK, &p.verifier).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(init(&a, access).await.0, 200);
    let (status, err, _) = exchange(&mesh.url, "test-client", &code, CALLBACK, &p.verifier).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(init(&a, access).await.0, 401, "a replayed code revokes what its first use issued");
    // A redirect URI that is not registered is never redirected to: an error page.
    let p = pkce();
    let url = authorize_url(&mesh.url, "test-client", "https://evil.example/cb", &a, &p, "s");
    let page = Browser::new().get(&url).await;
    assert_eq!(page.status, 400);
    assert!(page.headers.get("location").is_none());
    assert!(page.body.contains("is not registered"), "{}", page.body);
    // The token request's redirect_uri must be the authorization request's.
    let back = Browser::new().authorize(&code_for(&p), OWNER, PASSWORD, CALLBACK).await.unwrap();
    let code = param(&back, "code").unwrap();
    let (status, err, _) = exchange(&mesh.url, "test-client", &code, "http://127.0.0.1:9/other", &p.verifier).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("invalid_grant")));
    // Unknown resource, missing PKCE: back to the client with an error, state and iss.
    for (resource, challenge, want) in [
        ("https://elsewhere.example/mcp/a", Some(p.challenge.as_str()), "invalid_target"),
        (a.as_str(), None, "invalid_request"),
    ] {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", "test-client")
            .append_pair("redirect_uri", CALLBACK)
            .append_pair("resource", resource)
            .append_pair("state", "zz");
        if let Some(c) = challenge {
            q.append_pair("code_challenge", c).append_pair("code_challenge_method", "S256");
        }
        let page = Browser::new().get(&format!("{}/oauth/authorize?{}", mesh.url, q.finish())).await;
        let loc = page.location().expect("redirect back");
        assert!(loc.starts_with(CALLBACK), "{loc}");
        assert_eq!(param(&loc, "error").as_deref(), Some(want));
        assert_eq!(param(&loc, "state").as_deref(), Some("zz"));
        assert_eq!(param(&loc, "iss").as_deref(), Some(mesh.url.as_str()));
    }
}

#[tokio::test]
async fn issue17_consent_is_remembered_denied_and_revocable() {
    let mesh = mesh().await;
    let a = format!("{}/mcp/a", mesh.url);
    let mut browser = Browser::new();
    let p = pkce();
    // Deny: the client hears access_denied.
    let first = browser.get(&authorize_url(&mesh.url, "test-client", CALLBACK, &a, &p, "s1")).await;
    let after_login = browser.submit(&first, "login", &[("email", OWNER), ("password", PASSWORD)]).await;
    let consent = browser.get(&after_login.location().unwrap()).await;
    assert!(consent.has_form("consent"), "{}", consent.body);
    assert!(
        consent.body.contains("Test Client") && consent.body.contains("127.0.0.1") && consent.body.contains(&a),
        "the page names the client, where it redirects and the resource"
    );
    let denied = browser.submit(&consent, "consent", &[("decision", "deny")]).await;
    let loc = denied.location().unwrap();
    assert_eq!(param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&loc, "iss").as_deref(), Some(mesh.url.as_str()));
    // A forged consent form (another session's csrf) is refused.
    let mut fields = consent.hidden("consent");
    fields.iter_mut().filter(|(k, _)| k == "csrf").for_each(|(_, v)| *v = "forged".into());
    fields.push(("decision".into(), "allow".into()));
    assert_eq!(browser.post_form(&format!("{}/oauth/consent", mesh.url), &fields).await.status, 403);
    // Allow once. A public client redirecting to loopback could be any program on the device,
    // so it is asked again next time (RFC 8252 §8.6)…
    let allowed = browser.submit(&consent, "consent", &[("decision", "allow")]).await;
    assert!(param(&allowed.location().unwrap(), "code").is_some());
    let again = browser.get(&authorize_url(&mesh.url, "test-client", CALLBACK, &a, &p, "s2")).await;
    assert!(again.has_form("consent"), "a loopback public client is asked every time");
    // …while a confidential client with an https redirect is remembered: the next authorization
    // in the same browser skips the consent page.
    let owner = mesh.owner();
    let web = ClientInput {
        name: "Web App".into(),
        redirect_uris: vec!["https://app.example/cb".into()],
        confidential: true,
        client_id: Some("web-app".into()),
        ..Default::default()
    };
    mesh.admin.create_oauth_client(&owner, web).await.unwrap();
    let web_url = |state: &str| authorize_url(&mesh.url, "web-app", "https://app.example/cb", &a, &p, state);
    let first = browser.authorize(&web_url("w1"), OWNER, PASSWORD, "https://app.example/cb").await.unwrap();
    assert!(param(&first, "code").is_some());
    let again = browser.get(&web_url("w2")).await;
    let loc = again.location().expect("remembered consent redirects at once");
    assert!(loc.starts_with("https://app.example/cb?") && param(&loc, "code").is_some(), "{loc}");
    // The grant is listed, and revoking it ends its tokens on the next request.
    let t = tokens_for(&mesh, &a).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(init(&a, access).await.0, 200);
    let grants = mesh.admin.list_oauth_grants(&owner, None).await.unwrap();
    let g = grants.iter().find(|g| g.resource == a && g.client_id == "test-client").expect("grant listed");
    assert_eq!(g.client_id, "test-client");
    mesh.admin.revoke_oauth_grant(&owner, &g.id).await.unwrap();
    assert_eq!(init(&a, access).await.0, 401, "a revoked grant's token fails on the next request");
    let (status, _, _) = token(
        &mesh.url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
            ("client_id", "test-client"),
        ],
    )
    .await;
    assert_eq!(status, 400, "and its refresh token");
}

#[tokio::test]
async fn issue17_removed_member_and_revocation_end_tokens() {
    let mesh = mesh().await;
    let a = format!("{}/mcp/a", mesh.url);
    let owner = mesh.owner();
    // A member with a password.
    let (ok, out) = mesh
        .manage(
            &mesh.key,
            "ORGANIZATION_MEMBER_ADD",
            json!({"email": "mia@example.test", "role": "member", "password": "mia's long password"}),
        )
        .await;
    assert!(ok, "{out}");
    let p = pkce();
    let back = Browser::new()
        .authorize(
            &authorize_url(&mesh.url, "test-client", CALLBACK, &a, &p, "s"),
            "mia@example.test",
            "mia's long password",
            CALLBACK,
        )
        .await
        .unwrap();
    let (status, t, _) =
        exchange(&mesh.url, "test-client", &param(&back, "code").unwrap(), CALLBACK, &p.verifier).await;
    assert_eq!(status, 200, "{t}");
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(init(&a, access).await.0, 200);
    let mia = mesh.admin.store.get_user_by_email("mia@example.test").await.unwrap().unwrap();
    mesh.admin.remove_member(&owner, &mia.id).await.expect("member removed");
    assert_eq!(init(&a, access).await.0, 401, "a removed member's token fails");

    // RFC 7009: revoking an access token ends it; unknown tokens are answered 200 too.
    let t = tokens_for(&mesh, &a).await;
    let access = t["access_token"].as_str().unwrap();
    let revoke = |tok: String| {
        let url = format!("{}/oauth/revoke", mesh.url);
        async move {
            reqwest::Client::new()
                .post(url)
                .form(&[("token", tok.as_str()), ("client_id", "test-client")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(revoke(access.to_string()).await, 200);
    assert_eq!(init(&a, access).await.0, 401);
    assert_eq!(revoke("mat_unknown".into()).await, 200);
}

#[tokio::test]
async fn issue17_login_brute_force_backs_off() {
    let mesh = mesh().await;
    let a = format!("{}/mcp/a", mesh.url);
    let mut browser = Browser::new();
    let url = authorize_url(&mesh.url, "test-client", CALLBACK, &a, &pkce(), "s");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let page = browser.get(&url).await;
        let after = browser.submit(&page, "login", &[("email", OWNER), ("password", "wrong password!!")]).await;
        statuses.push(after.status);
    }
    assert_eq!(statuses[..5], [401; 5], "five wrong passwords are just wrong");
    assert_eq!(statuses[5], 429, "then the account backs off: {statuses:?}");
    // Even the right password waits now.
    let page = browser.get(&url).await;
    let after = browser.submit(&page, "login", &[("email", OWNER), ("password", PASSWORD)]).await;
    assert_eq!(after.status, 429);
    assert!(after.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn issue17_dynamic_registration_then_flow() {
    let mesh = mesh().await;
    let http = reqwest::Client::new();
    let reg = http
        .post(format!("{}/oauth/register", mesh.url))
        .json(&json!({"client_name": "DCR app", "redirect_uris": ["http://localhost/cb"], "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 201);
    let client: Value = reg.json().await.unwrap();
    let id = client["client_id"].as_str().unwrap().to_string();
    assert!(client.get("client_secret").is_none(), "a public client has no secret");
    // Loopback redirect URIs match on any port (RFC 8252).
    let a = format!("{}/mcp/a", mesh.url);
    let p = pkce();
    let cb = "http://localhost:45678/cb";
    let back =
        Browser::new().authorize(&authorize_url(&mesh.url, &id, cb, &a, &p, "s"), OWNER, PASSWORD, cb).await.unwrap();
    let (status, t, _) = exchange(&mesh.url, &id, &param(&back, "code").unwrap(), cb, &p.verifier).await;
    assert_eq!(status, 200, "{t}");
    // Bad metadata is refused with the RFC 7591 error.
    let bad = http
        .post(format!("{}/oauth/register", mesh.url))
        .json(&json!({"redirect_uris": ["http://evil.example/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"], "invalid_redirect_uri");
    // A confidential client must authenticate at the token endpoint.
    let conf: Value = http
        .post(format!("{}/oauth/register", mesh.url))
        .json(&json!({"redirect_uris": ["https://app.example/cb"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(conf["client_secret"].is_string(), "RFC 7591's default method is client_secret_basic");
    let (status, err, h) = token(
        &mesh.url,
        &[("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_id", conf["client_id"].as_str().unwrap())],
    )
    .await;
    assert_eq!((status, err["error"].as_str()), (401, Some("invalid_client")));
    assert!(h["cache-control"].to_str().unwrap().contains("no-store"));
}

#[tokio::test]
async fn issue17_dynamic_registration_is_limited_and_switchable() {
    let mesh = TestMesh::start_with(|c| c.oauth.registrations_per_hour = 2).await;
    let http = reqwest::Client::new();
    let register = || {
        http.post(format!("{}/oauth/register", mesh.url))
            .json(&json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}))
            .send()
    };
    assert_eq!(register().await.unwrap().status(), 201);
    assert_eq!(register().await.unwrap().status(), 201);
    assert_eq!(register().await.unwrap().status(), 429, "the third from one address in an hour");
    let off = TestMesh::start_with(|c| c.oauth.dynamic_registration = false).await;
    let m: Value = get_json(&format!("{}/.well-known/oauth-authorization-server", off.url)).await;
    assert!(m.get("registration_endpoint").is_none(), "not advertised when off");
    let resp = http
        .post(format!("{}/oauth/register", off.url))
        .json(&json!({"redirect_uris": ["http://127.0.0.1/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// The store's side of the flow on PostgreSQL: grants upserted, codes used once, tokens
/// rotated and revoked by family, grants deleted with their tokens, members removed with theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue17_flows_on_postgres() {
    let Some(db) = mesh_testkit::pg::fresh("mesh_oauth").await else { return };
    let url = db.url.clone();
    let mesh = setup(TestMesh::start_with(|c| c.database_url = Some(mesh_core::Secret::new(url))).await).await;
    let a = format!("{}/mcp/a", mesh.url);
    let t = tokens_for(&mesh, &a).await;
    let (access, refresh) = (t["access_token"].as_str().unwrap(), t["refresh_token"].as_str().unwrap());
    assert_eq!(init(&a, access).await.0, 200);
    assert_eq!(init(&format!("{}/mcp/b", mesh.url), access).await.0, 401);
    let (status, t2, _) =
        token(&mesh.url, &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", "test-client")])
            .await;
    assert_eq!(status, 200, "{t2}");
    let (status, _, _) =
        token(&mesh.url, &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", "test-client")])
            .await;
    assert_eq!(status, 400, "reuse");
    assert_eq!(init(&a, t2["access_token"].as_str().unwrap()).await.0, 401, "family revoked");
    // Consent remembered, then revoked with its tokens.
    let t3 = tokens_for(&mesh, &a).await;
    let owner = mesh.owner();
    let grants = mesh.admin.list_oauth_grants(&owner, None).await.unwrap();
    assert_eq!(grants.len(), 1, "one grant per user, client and resource: {grants:?}");
    mesh.admin.revoke_oauth_grant(&owner, &grants[0].id).await.unwrap();
    assert_eq!(init(&a, t3["access_token"].as_str().unwrap()).await.0, 401);
    mesh.stop().await;
    db.drop_now().await;
}

/// A token is a delegation to a third-party client: it never reaches the REST API, and even a
/// token for the management server mints no credential (an API key, an organisation's owner
/// key, a password) that would outlive the grant or carry the owner's operator rights.
#[tokio::test]
async fn issue17_tokens_mint_no_credentials_and_stay_off_rest() {
    let mesh = mesh().await;
    let t = tokens_for(&mesh, &format!("{}/mcp", mesh.url)).await;
    let access = t["access_token"].as_str().unwrap();
    let (ok, out) = mesh.manage(access, "COLLECTION_CONNECTIONS_LIST", json!({})).await;
    assert!(ok, "a management token manages within the user's role: {out}");
    for (tool, args) in [
        ("API_KEY_CREATE", json!({"name": "escape"})),
        (
            "ORGANIZATION_MEMBER_ADD",
            json!({"email": "backdoor@example.test", "role": "member", "password": "a long backdoor password"}),
        ),
        ("ORGANIZATION_CREATE", json!({"slug": "elsewhere"})),
    ] {
        let (ok, out) = mesh.manage(access, tool, args).await;
        assert!(!ok && out.as_str().unwrap_or_default().contains("OAuth client cannot"), "{tool}: {out}");
    }
    let status = reqwest::Client::new()
        .get(format!("{}/api/v1/audit", mesh.url))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401, "REST is not a resource tokens are issued for");
    let status = reqwest::Client::new()
        .get(format!("{}/api/v1/audit", mesh.url))
        .bearer_auth(&mesh.key)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

/// A password an organisation's admin chose for a new person is theirs no more once that
/// person joins another organisation: that admin cannot log in as them there.
#[tokio::test]
async fn issue17_an_admin_chosen_password_is_cleared_when_the_person_joins_elsewhere() {
    let mesh = mesh().await;
    let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let (ok, out) = mesh
        .manage(
            &mesh.key,
            "ORGANIZATION_MEMBER_ADD",
            json!({"email": "ceo@corp.test", "role": "member", "password": "chosen by the admin"}),
        )
        .await;
    assert!(ok, "{out}");
    assert!(mesh.admin.password_login("ceo@corp.test", "chosen by the admin", ip).await.is_ok());
    let (ok, out) = mesh.manage(&mesh.key, "ORGANIZATION_CREATE", json!({"slug": "corp"})).await;
    assert!(ok, "{out}");
    let corp_key = out["ownerKey"]
        .as_str()
        .or_else(|| out["key"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("owner key in {out}"));
    let (ok, out) =
        mesh.manage(&corp_key, "ORGANIZATION_MEMBER_ADD", json!({"email": "ceo@corp.test", "role": "admin"})).await;
    assert!(ok, "{out}");
    assert!(mesh.admin.password_login("ceo@corp.test", "chosen by the admin", ip).await.is_err(), "cleared");
    // The person's own password is theirs to keep.
    let ceo = mesh.admin.store.get_user_by_email("ceo@corp.test").await.unwrap().unwrap();
    let me = mesh_core::Principal { user_id: ceo.id.clone(), ..mesh.owner() };
    mesh.admin.set_password(&me, None, "my very own password").await.unwrap();
    let (ok, _) = mesh.manage(&corp_key, "ORGANIZATION_MEMBER_REMOVE", json!({"user": ceo.id})).await;
    assert!(ok);
    let (ok, _) =
        mesh.manage(&corp_key, "ORGANIZATION_MEMBER_ADD", json!({"email": "ceo@corp.test", "role": "member"})).await;
    assert!(ok);
    assert!(mesh.admin.password_login("ceo@corp.test", "my very own password", ip).await.is_ok());
}

/// Behind TLS (an https public URL) the login cookies are `__Host-` cookies, `Secure`: a
/// sibling subdomain cannot plant one. The issuer and resources follow the public URL.
#[tokio::test]
async fn issue17_behind_tls_cookies_are_host_only_and_secure() {
    let mesh =
        setup(TestMesh::start_with(|c| c.public_url = Some("https://mesh.example.test/".parse().unwrap())).await).await;
    let m = get_json(&format!("{}/.well-known/oauth-authorization-server", mesh.url)).await;
    assert_eq!(m["issuer"], "https://mesh.example.test");
    let resource = "https://mesh.example.test/mcp/a";
    let mut browser = Browser::new();
    let page = browser.get(&authorize_url(&mesh.url, "test-client", CALLBACK, resource, &pkce(), "s")).await;
    let set: Vec<&str> = page.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(
        set.iter().any(|c| c.starts_with("__Host-mesh_login_csrf=") && c.contains("; Secure") && c.contains("Path=/")),
        "{set:?}"
    );
    let after = browser.submit(&page, "login", &[("email", OWNER), ("password", PASSWORD)]).await;
    let set: Vec<&str> = after.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(set.iter().any(|c| c.starts_with("__Host-mesh_session=") && c.contains("; Secure")), "{set:?}");
    let consent = browser.get(&after.location().unwrap()).await;
    assert!(consent.has_form("consent"), "logged in through the __Host- cookie: {}", consent.body);
}

/// Deleting a connection ends the grants given for it: a connection made later under the same
/// name (perhaps pointing elsewhere) inherits no token and no remembered consent.
#[tokio::test]
async fn issue17_a_deleted_route_takes_its_grants_and_tokens() {
    let mesh = mesh().await;
    let a = format!("{}/mcp/a", mesh.url);
    let access = tokens_for(&mesh, &a).await["access_token"].as_str().unwrap().to_string();
    assert_eq!(init(&a, &access).await.0, 200);
    let owner = mesh.owner();
    mesh.admin.delete_connection(&owner, "a").await.unwrap();
    mesh.add_connection(json!({"slug": "a", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    assert_eq!(init(&a, &access).await.0, 401, "the new 'a' does not accept the old grant's token");
    assert!(mesh.admin.list_oauth_grants(&owner, None).await.unwrap().iter().all(|g| g.resource != a));
    // Renaming frees the old name the same way.
    let b = format!("{}/mcp/b", mesh.url);
    let access = tokens_for(&mesh, &b).await["access_token"].as_str().unwrap().to_string();
    assert_eq!(init(&b, &access).await.0, 200);
    let (ok, out) = mesh.manage(&mesh.key, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "b", "slug": "b2"})).await;
    assert!(ok, "{out}");
    mesh.add_connection(json!({"slug": "b", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    assert_eq!(init(&b, &access).await.0, 401, "the new 'b' does not accept the renamed one's token");
}

/// Bad input at the OAuth endpoints gets the protocol's errors, never a 500, and the mesh keeps
/// serving: repeated parameters, bodies that are not forms or JSON, oversized bodies, unknown
/// grant types, and an authorization request without a client.
#[tokio::test]
async fn issue17_bad_input_at_the_oauth_endpoints() {
    let mesh = mesh().await;
    let http = reqwest::Client::new();
    let post = |path: &str, ctype: &str, body: Vec<u8>| {
        http.post(format!("{}{path}", mesh.url)).header("content-type", ctype).body(body).send()
    };
    let form = "application/x-www-form-urlencoded";
    for (body, want) in [
        (b"grant_type=authorization_code&grant_type=refresh_token".to_vec(), "invalid_request"),
        (b"grant_type=password&client_id=test-client".to_vec(), "unsupported_grant_type"),
        (b"client_id=test-client".to_vec(), "invalid_request"),
        (vec![0xff, 0xfe, 0x00], "invalid_request"),
        (vec![b'a'; 100 * 1024], "invalid_request"),
    ] {
        let resp = post("/oauth/token", form, body).await.unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], want);
    }
    for body in [b"not json".to_vec(), b"{\"redirect_uris\": 5}".to_vec(), vec![b' '; 100 * 1024]] {
        let resp = post("/oauth/register", "application/json", body).await.unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_client_metadata");
    }
    let resp = post("/oauth/revoke", form, b"client_id=test-client".to_vec()).await.unwrap();
    assert_eq!(resp.status(), 400, "no token to revoke");
    for query in [
        "",
        "client_id=test-client&client_id=x",
        "response_type=code",
        "client_id=nobody&redirect_uri=http://127.0.0.1/cb",
    ] {
        let page = Browser::new().get(&format!("{}/oauth/authorize?{query}", mesh.url)).await;
        assert_eq!(page.status, 400, "{query}: {}", page.body);
        assert!(page.headers.get("location").is_none());
    }
    let resp = post("/oauth/login", form, b"request=&csrf=x".to_vec()).await.unwrap();
    assert_eq!(resp.status(), 400, "a login form without its authorization request");
    // Still serving.
    assert_eq!(tokens_for(&mesh, &format!("{}/mcp/a", mesh.url)).await["token_type"], "Bearer");
}
