//! Upstream OAuth (#19) end to end: a mesh ("front") whose connection is an OAuth-protected MCP
//! server — another mesh ("back"), a real OAuth 2.1 authorization server with dynamic
//! registration, login and consent pages, rotating refresh tokens and reuse detection — used by
//! the front's user with their own token.
//!
//! The user meets the protocol's own signal (`-32042`, a URL elicitation with the front's link),
//! opens it in a browser logged in to the front as themselves, authorizes at the back's pages,
//! and comes back through the front's callback; then calls pass, refreshes happen once per
//! expiry however many sessions open at once, and no token is written in clear.

use mesh_relay::ports::Authenticator;
use mesh_testkit::oauth::Browser;
use mesh_testkit::raw::{initialize_body, post, post_headers};
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{upstreams, TestMesh};
use serde_json::{json, Value};
use std::time::Duration;

const OWNER: &str = "owner@localhost";
const FRONT_PASSWORD: &str = "front door password";
const BACK_PASSWORD: &str = "back door password!";

/// The back mesh: `everything` behind its own OAuth, tokens that live `ttl_secs`.
async fn back(ttl_secs: u64) -> TestMesh {
    let back = TestMesh::start_with(|c| c.oauth.access_ttl_secs = ttl_secs).await;
    back.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    back.admin.set_password(&back.owner(), None, BACK_PASSWORD).await.expect("back password");
    back
}

/// The front mesh with `remote`, an OAuth connection to the back's `everything`.
async fn front(back: &TestMesh) -> TestMesh {
    let front = TestMesh::start().await;
    front.add_connection(json!({"slug": "remote", "url": back.endpoint("everything"), "auth": "oauth"})).await;
    front.admin.set_password(&front.owner(), None, FRONT_PASSWORD).await.expect("front password");
    front
}

/// An `initialize` at the front's `remote`: the JSON-RPC reply.
async fn initialize(front: &TestMesh) -> Value {
    initialize_as(front, &front.key).await
}

/// An `initialize` at the front's `remote` with `key`.
async fn initialize_as(front: &TestMesh, key: &str) -> Value {
    initialize_at(&front.endpoint("remote"), key).await
}

/// An `initialize` at `endpoint` with `key`: the JSON-RPC reply.
async fn initialize_at(endpoint: &str, key: &str) -> Value {
    let (status, _, body) = post(endpoint, post_headers(key, None), initialize_body(1, "2025-11-25")).await;
    assert_eq!(status, 200, "{body}");
    let json = body.lines().find_map(|l| l.strip_prefix("data:")).unwrap_or(&body).trim().to_string();
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The link of a `-32042` reply.
fn link_of(reply: &Value) -> String {
    assert_eq!(reply["error"]["code"], -32042, "{reply}");
    let e = &reply["error"]["data"]["elicitations"][0];
    assert_eq!(e["mode"], "url", "{reply}");
    assert!(e["elicitationId"].as_str().is_some_and(|i| !i.is_empty()), "{reply}");
    e["url"].as_str().expect("url").to_string()
}

/// The whole authorization in a browser: the front's login, the back's login and consent, the
/// front's callback page.
async fn authorize(front: &TestMesh, link: &str) -> String {
    authorize_as(front, link, OWNER, FRONT_PASSWORD).await
}

/// [`authorize`] by the front's user `email`.
async fn authorize_as(front: &TestMesh, link: &str, email: &str, password: &str) -> String {
    let mut browser = Browser::new();
    let page = browser.get(link).await;
    assert!(page.has_form("login"), "the front asks who is there first: {}", page.body);
    let after = browser.submit(&page, "login", &[("email", email), ("password", password)]).await;
    let callback = format!("{}/oauth/upstream/callback", front.url);
    let to_back = browser.follow(after, "http://127.0.0.1").await.expect("a redirect");
    let back_url = if to_back.starts_with(&format!("{}/", front.url)) {
        // The front's own start page, then the back's authorization endpoint.
        let start = browser.get(&to_back).await;
        start.location().unwrap_or_else(|| panic!("the start page redirects: {}", start.body))
    } else {
        to_back
    };
    let back = browser
        .authorize(&back_url, OWNER, BACK_PASSWORD, &callback)
        .await
        .unwrap_or_else(|p| panic!("{}: {}", p.status, p.body));
    let done = browser.get(&back).await;
    assert_eq!(done.status, 200, "{}", done.body);
    done.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue19_a_user_authorizes_once_then_calls_pass_with_their_own_token() {
    let back = back(3600).await;
    let front = front(&back).await;

    // No grant yet: the protocol's own request for the user, with the front's link — asked
    // again, the same link while it works (a link the user may be following is not superseded),
    // and the mesh registers at the back only once.
    let first = link_of(&initialize(&front).await);
    let link = first.clone();
    assert!(link.starts_with(&format!("{}/oauth/upstream/start?login=", front.url)), "{link}");
    let clients = |a: &TestMesh| {
        let a = a.admin.clone();
        async move { a.store.list_oauth_clients().await.map(|c| c.len()).unwrap_or(0) }
    };
    let registered = clients(&back).await;
    let link = link_of(&initialize(&front).await);
    assert_eq!(link, first, "the link under way, again");
    assert_eq!(clients(&back).await, registered, "one registration at the back");

    // Another member of the front cannot follow it (a forwarded link must not put their
    // upstream account behind the owner's grant), and a wrong password gets nowhere.
    let (ok, out) = front
        .manage(
            &front.key,
            "ORGANIZATION_MEMBER_ADD",
            json!({"email": "mia@example.test", "role": "member", "password": "mia's long password"}),
        )
        .await;
    assert!(ok, "{out}");
    let mut stranger = Browser::new();
    let page = stranger.get(&link).await;
    let wrong = stranger.submit(&page, "login", &[("email", OWNER), ("password", "not the password")]).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let page = stranger.get(&link).await;
    let mia =
        stranger.submit(&page, "login", &[("email", "mia@example.test"), ("password", "mia's long password")]).await;
    let start = stranger.get(&mia.location().expect("back to the start")).await;
    assert_eq!(start.status, 403, "{}", start.body);
    assert!(start.body.contains("another user"), "{}", start.body);

    let done = authorize(&front, &link).await;
    assert!(done.contains("Authorized"), "{done}");

    // Now the session opens and calls reach the back with the user's token.
    let client = TestClient::connect_http(&front.endpoint("remote"), &front.key, ClientBehaviour::default())
        .await
        .expect("session");
    let echoed = client.call_tool("echo", json!({"message": "through two meshes"})).await.expect("call");
    assert!(echoed.to_string().contains("through two meshes"), "{echoed}");
    client.close().await.ok();

    // A vault key rotation re-seals the grant: sessions opened after it still carry the token.
    let before = owner_grant(&front).await;
    let (ok, out) = front.manage(&front.key, "VAULT_ROTATE", json!({})).await;
    assert!(ok, "{out}");
    let after = owner_grant(&front).await;
    assert_ne!(before.key_id, after.key_id, "sealed under the new key");
    let client = TestClient::connect_http(&front.endpoint("remote"), &front.key, ClientBehaviour::default())
        .await
        .expect("session after rotation");
    assert_ne!(client.call_tool("echo", json!({"message": "m"})).await.expect("call")["isError"], true);
    client.close().await.ok();

    // The grant is listed (never a token) and its link is single use.
    let (ok, grants) = front.manage(&front.key, "CONNECTION_GRANT_LIST", json!({})).await;
    assert!(ok, "{grants}");
    let g = &grants["items"][0];
    assert_eq!(g["connection"], "remote", "{grants}");
    assert_eq!(g["issuer"], back.url.as_str(), "{grants}");
    assert_eq!(g["refreshable"], true, "{grants}");
    assert!(!grants.to_string().contains("access_token"), "{grants}");
    let reused = Browser::new().get(&link).await;
    assert_ne!(reused.status, 303, "a used link goes nowhere: {}", reused.body);

    // No token in clear in the front's database.
    let token = owner_grant(&front).await.ciphertext;
    assert!(!token.contains("mesh_"), "sealed");
    let db = std::fs::read(front.data_dir().join("mesh.db")).unwrap_or_default();
    for prefix in [b"mat_".as_slice(), b"mrt_".as_slice()] {
        assert!(!db.windows(prefix.len()).any(|w| w == prefix), "a token prefix in clear in the database");
    }

    // Revoked by the user: the next session asks again, cleanly.
    let (ok, out) = front.manage(&front.key, "CONNECTION_GRANT_REVOKE", json!({"id": "remote"})).await;
    assert!(ok && out["revoked"] == true, "{out}");
    let link = link_of(&initialize(&front).await);

    // Revoked at the authorization server (the back's consent withdrawn, its tokens with it):
    // the open session's next call fails and ends the session; the next session tries a
    // refresh, is refused, and asks the user — once, not a loop of the refused token.
    authorize(&front, &link).await;
    let client = TestClient::connect_http(&front.endpoint("remote"), &front.key, ClientBehaviour::default())
        .await
        .expect("session");
    assert!(client.call_tool("echo", json!({"message": "before"})).await.is_ok());
    let (ok, grants) = back.manage(&back.key, "OAUTH_GRANT_LIST", json!({})).await;
    assert!(ok, "{grants}");
    for g in grants["items"].as_array().expect("items") {
        let (ok, out) = back.manage(&back.key, "OAUTH_GRANT_REVOKE", json!({"id": g["id"]})).await;
        assert!(ok, "{out}");
    }
    let failed = client.call_tool("echo", json!({"message": "after"})).await;
    assert!(failed.is_err() || failed.as_ref().is_ok_and(|r| r["isError"] == true), "{failed:?}");
    client.close().await.ok();
    let again = initialize(&front).await;
    assert_eq!(again["error"]["code"], -32042, "a clean authorization request: {again}");
    let (ok, grants) = front.manage(&front.key, "CONNECTION_GRANT_LIST", json!({})).await;
    assert!(ok, "{grants}");
    assert_eq!(grants["items"][0]["refreshable"], false, "nothing usable kept: {grants}");

    front.stop().await;
    back.stop().await;
}

/// The mesh registers once per authorization server, for every user of the connection; a
/// client registered by hand (id and sealed secret) takes precedence, and changing it ends the
/// grants made with the other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue19_one_client_per_authorization_server_or_one_given_by_hand() {
    let back = back(3600).await;
    let front = front(&back).await;
    let dynamic_clients = || async {
        let (ok, out) = back.manage(&back.key, "OAUTH_CLIENT_LIST", json!({})).await;
        assert!(ok, "{out}");
        out["items"].as_array().unwrap().iter().filter(|c| c["kind"] == "dynamic").count()
    };
    let call_passes = |key: String| {
        let endpoint = front.endpoint("remote");
        async move {
            let c = TestClient::connect_http(&endpoint, &key, ClientBehaviour::default()).await.expect("session");
            let r = c.call_tool("echo", json!({"message": "m"})).await.expect("call");
            assert_ne!(r["isError"], true, "{r}");
            c.close().await.ok();
        }
    };

    // The owner, then a member: two grants, one registration.
    authorize(&front, &link_of(&initialize(&front).await)).await;
    let member_key = front.extra_key("member").await;
    let member = front.admin.keys.authenticate(&member_key).expect("member");
    front.admin.set_password(&member, None, "the member's password").await.expect("password");
    let email = front.admin.store.get_user(&member.user_id).await.unwrap().expect("user").email;
    let link = link_of(&initialize_as(&front, &member_key).await);
    authorize_as(&front, &link, &email, "the member's password").await;
    call_passes(member_key.clone()).await;
    call_passes(front.key.clone()).await;
    assert_eq!(dynamic_clients().await, 1, "one registration for both users");
    let conn = conn_id(&front).await;
    for user in [&front.owner().user_id, &member.user_id] {
        let held = front.admin.store.upstream_grant(&member.org_id, &conn, &format!("user:{user}")).await.unwrap();
        assert!(held.is_some(), "a grant per user at the front");
    }

    // A client registered by hand at the back (confidential): set on the connection, it
    // replaces the registered one, and the grants made with that one end.
    let callback = format!("{}/oauth/upstream/callback", front.url);
    let (ok, made) = back
        .manage(
            &back.key,
            "OAUTH_CLIENT_CREATE",
            json!({"name": "Front mesh", "redirectUris": [callback], "confidential": true}),
        )
        .await;
    assert!(ok, "{made}");
    let (client_id, secret) = (made["item"]["clientId"].as_str().unwrap(), made["clientSecret"].as_str().unwrap());
    // An authorization under way with the registered client ends with the change.
    let under_way =
        front.admin.upstream_login(&front.owner(), "remote").await.expect("a login (mcp-mesh connection login)");
    let login_id = under_way.login_id;
    assert!(front.admin.store.upstream_login(&login_id).await.unwrap().is_some());
    let (ok, view) = front
        .manage(
            &front.key,
            "COLLECTION_CONNECTIONS_UPDATE",
            json!({"id": "remote", "oauthClientId": client_id, "oauthClientSecret": secret}),
        )
        .await;
    assert!(ok, "{view}");
    assert_eq!(view["item"]["oauthClientId"], client_id, "{view}");
    assert!(!view.to_string().contains(secret), "the secret is write-only: {view}");
    let (ok, grants) = front.manage(&front.key, "CONNECTION_GRANT_LIST", json!({})).await;
    assert!(ok && grants["items"].as_array().unwrap().is_empty(), "grants of the old client ended: {grants}");
    assert!(front.admin.store.upstream_login(&login_id).await.unwrap().is_none(), "and its authorization under way");
    authorize(&front, &link_of(&initialize(&front).await)).await;
    call_passes(front.key.clone()).await;
    let (ok, grants) = front.manage(&front.key, "CONNECTION_GRANT_LIST", json!({})).await;
    assert!(ok, "{grants}");
    assert_eq!(grants["items"][0]["clientId"], client_id, "{grants}");
    assert_eq!(dynamic_clients().await, 1, "no new registration");
    let db = std::fs::read(front.data_dir().join("mesh.db")).unwrap_or_default();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()), "the client secret is sealed");

    // Bad input: a secret without its id, an id on a connection without OAuth.
    let (ok, out) = front
        .manage(&front.key, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "remote", "oauthClientSecret": "s"}))
        .await;
    assert!(!ok && out.to_string().contains("oauthClientId"), "{out}");
    front.add_connection(json!({"slug": "plain", "url": back.endpoint("everything")})).await;
    let (ok, out) =
        front.manage(&front.key, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "plain", "oauthClientId": "x"})).await;
    assert!(!ok && out.to_string().contains("auth oauth"), "{out}");

    // Removed: back to the client the mesh registered before — still no second registration.
    let (ok, view) =
        front.manage(&front.key, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "remote", "oauthClientId": ""})).await;
    assert!(ok && view["item"]["oauthClientId"].is_null(), "{view}");
    authorize(&front, &link_of(&initialize(&front).await)).await;
    call_passes(front.key.clone()).await;
    assert_eq!(dynamic_clients().await, 1, "the registration was kept");
    front.stop().await;
    back.stop().await;
}

/// A virtual MCP over two OAuth servers: a user who has authorized neither is asked for both at
/// once (one -32042, a link each); then the merged catalogue carries each member's tools, called
/// with the user's own token at each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue19_a_virtual_mcp_over_oauth_servers() {
    let back = back(3600).await;
    back.add_connection(json!({"slug": "more", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let front = front(&back).await;
    front.add_connection(json!({"slug": "other", "url": back.endpoint("more"), "auth": "oauth"})).await;
    let (ok, made) = front
        .manage(
            &front.key,
            "COLLECTION_GATEWAYS_CREATE",
            json!({"slug": "both", "members": [{"connection": "remote"}, {"connection": "other"}]}),
        )
        .await;
    assert!(ok, "{made}");
    let warnings = made["warnings"].to_string();
    assert!(warnings.contains("'remote' needs your authorization") && warnings.contains("'other'"), "{made}");

    let endpoint = format!("{}/mcp/gateway/both", front.url);
    let reply = initialize_at(&endpoint, &front.key).await;
    assert_eq!(reply["error"]["code"], -32042, "{reply}");
    let asked = reply["error"]["data"]["elicitations"].as_array().expect("elicitations").clone();
    assert_eq!(asked.len(), 2, "both members at once: {reply}");
    for e in &asked {
        authorize(&front, e["url"].as_str().expect("url")).await;
    }

    let client = TestClient::connect_http(&endpoint, &front.key, ClientBehaviour::default()).await.expect("session");
    let names = client.list_tool_names().await.expect("tools");
    for member in ["remote", "other"] {
        let echo = names
            .iter()
            .find(|n| n.starts_with(member) && n.ends_with("echo"))
            .unwrap_or_else(|| panic!("{member}'s echo in {names:?}"));
        let r = client.call_tool(echo, json!({"message": format!("via {member}")})).await.expect("call");
        assert!(r.to_string().contains(&format!("via {member}")), "{r}");
    }

    // Consent withdrawn at the back: a member's refused token fails its call, the session goes
    // on, and the next session asks the user again — never the refused token once more.
    let (ok, grants) = back.manage(&back.key, "OAUTH_GRANT_LIST", json!({})).await;
    assert!(ok, "{grants}");
    for g in grants["items"].as_array().expect("items") {
        let (ok, out) = back.manage(&back.key, "OAUTH_GRANT_REVOKE", json!({"id": g["id"]})).await;
        assert!(ok, "{out}");
    }
    let echo = names.iter().find(|n| n.starts_with("remote") && n.ends_with("echo")).expect("remote's echo");
    let failed = client.call_tool(echo, json!({"message": "after"})).await;
    assert!(failed.is_err() || failed.as_ref().is_ok_and(|r| r["isError"] == true), "{failed:?}");
    client.close().await.ok();
    let reply = initialize_at(&endpoint, &front.key).await;
    assert_eq!(reply["error"]["code"], -32042, "asked again, not the refused token: {reply}");
    let asked = reply["error"]["data"]["elicitations"].to_string();
    assert!(asked.contains("'remote'"), "{reply}");
    front.stop().await;
    back.stop().await;
}

/// The mesh's client ID metadata document: published only under an https public URL, naming
/// its own URL as the client id and the mesh's callback as the only redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue19_the_client_metadata_document() {
    let public = "https://mesh.example.test";
    let mesh = TestMesh::start_with(|c| c.public_url = Some(url::Url::parse(public).unwrap())).await;
    let r = reqwest::get(format!("{}/oauth/upstream/client.json", mesh.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["client_id"], format!("{public}/oauth/upstream/client.json"), "{doc}");
    assert_eq!(doc["redirect_uris"], json!([format!("{public}/oauth/upstream/callback")]), "{doc}");
    assert_eq!(doc["token_endpoint_auth_method"], "none", "{doc}");
    assert_eq!(doc["grant_types"], json!(["authorization_code", "refresh_token"]), "{doc}");

    // At an authorization server that accepts documents (the back mesh says so), it is who the
    // mesh is: the authorization request names the document, and nothing is registered there.
    let back = back(3600).await;
    mesh.add_connection(json!({"slug": "remote", "url": back.endpoint("everything"), "auth": "oauth"})).await;
    let owner = mesh.owner();
    let link = mesh.admin.upstream_login(&owner, "remote").await.expect("a login");
    let to = mesh.admin.upstream_login_redirect(&link.login_id, &owner.user_id).await.expect("the authorization URL");
    let to = url::Url::parse(&to).unwrap();
    let client_id = to.query_pairs().find(|(k, _)| k == "client_id").map(|(_, v)| v.to_string());
    assert_eq!(client_id.as_deref(), Some(format!("{public}/oauth/upstream/client.json").as_str()), "{to}");
    assert!(back.admin.store.list_oauth_clients().await.unwrap().is_empty(), "no registration");
    back.stop().await;
    mesh.stop().await;

    // Over plain http there is none: its URL could not be a client id.
    let plain = TestMesh::start().await;
    let r = reqwest::get(format!("{}/oauth/upstream/client.json", plain.url)).await.unwrap();
    assert_eq!(r.status(), 404);
    plain.stop().await;
}

/// The owner's grant row at `remote`.
async fn owner_grant(front: &TestMesh) -> mesh_store::SecretRow {
    let subject = format!("user:{}", front.owner().user_id);
    front
        .admin
        .store
        .upstream_grant(&front.owner().org_id, &conn_id(front).await, &subject)
        .await
        .unwrap()
        .expect("grant")
}

async fn conn_id(front: &TestMesh) -> String {
    front.admin.store.get_connection(&front.owner().org_id, "remote").await.unwrap().expect("remote").id
}

/// Tokens of 8 s are renewed when 2 s are left (a quarter of their life): eight sessions
/// opening together then refresh once — the back revokes the whole family if a rotated refresh
/// token is used twice, so a second refresh would end every later call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue19_concurrent_sessions_at_expiry_refresh_once() {
    let back = back(8).await;
    let front = front(&back).await;
    let link = link_of(&initialize(&front).await);
    authorize(&front, &link).await;
    let first = grant_expiry(&front).await;
    tokio::time::sleep(Duration::from_millis(6_500)).await;

    let endpoint = front.endpoint("remote");
    let opens = (0..8).map(|_| TestClient::connect_http(&endpoint, &front.key, ClientBehaviour::default()));
    let clients: Vec<TestClient> =
        futures_util::future::join_all(opens).await.into_iter().map(|c| c.expect("session at expiry")).collect();
    for c in &clients {
        let r = c.call_tool("echo", json!({"message": "m"})).await.expect("call");
        assert_ne!(r["isError"], true, "{r}");
    }
    for c in clients {
        c.close().await.ok();
    }
    let second = grant_expiry(&front).await;
    assert!(second > first, "refreshed: {first} → {second}");

    // And again: the rotated refresh token still works (nothing was used twice).
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    let c = TestClient::connect_http(&endpoint, &front.key, ClientBehaviour::default()).await.expect("later session");
    assert_ne!(c.call_tool("echo", json!({"message": "m"})).await.expect("call")["isError"], true);
    c.close().await.ok();
    assert!(grant_expiry(&front).await > second, "refreshed again");
    front.stop().await;
    back.stop().await;
}

/// Two replicas of the front on one PostgreSQL database: sessions opening on both at an expiry
/// still refresh once — the back revokes the whole family when a rotated refresh token is used
/// twice, so a refresh by each replica would fail the calls, or the refresh after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue19_replicas_refresh_once_between_them() {
    let Some(db) = mesh_testkit::pg::fresh("mesh_upstream_oauth").await else { return };
    let back = back(8).await;
    let key = "a".repeat(64);
    let shared = |c: &mut mesh_server::Config| {
        c.database_url = Some(mesh_core::Secret::new(db.url.clone()));
        c.encryption_key = Some(mesh_core::Secret::new(key.clone()));
    };
    let one = TestMesh::start_with(shared).await;
    one.add_connection(json!({"slug": "remote", "url": back.endpoint("everything"), "auth": "oauth"})).await;
    one.admin.set_password(&one.owner(), None, FRONT_PASSWORD).await.expect("password");
    let two = TestMesh::start_replica(&one, shared).await;
    authorize(&one, &link_of(&initialize(&one).await)).await;
    let first = grant_expiry(&one).await;

    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(6_500)).await;
        let opens = [&one, &two, &one, &two, &one, &two].map(|m| {
            let (endpoint, key) = (m.endpoint("remote"), m.key.clone());
            async move { TestClient::connect_http(&endpoint, &key, ClientBehaviour::default()).await }
        });
        let clients: Vec<TestClient> = futures_util::future::join_all(opens)
            .await
            .into_iter()
            .map(|c| c.unwrap_or_else(|e| panic!("session at expiry, round {round}: {e}")))
            .collect();
        for c in &clients {
            let r = c.call_tool("echo", json!({"message": "m"})).await.expect("call");
            assert_ne!(r["isError"], true, "round {round}: {r}");
        }
        for c in clients {
            c.close().await.ok();
        }
    }
    assert!(grant_expiry(&two).await >= first + 8, "refreshed, and refreshed again");
    two.stop().await;
    one.stop().await;
    back.stop().await;
    db.drop_now().await;
}

/// One session open for three token lifetimes: the token it sends is renewed while it lives
/// (in the background, before expiry), and no call fails — the back refuses an expired token,
/// so a session still sending its first one would fail after 8 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue19_a_long_session_never_sends_an_expired_token() {
    let back = back(8).await;
    let front = front(&back).await;
    let link = link_of(&initialize(&front).await);
    authorize(&front, &link).await;
    let first = grant_expiry(&front).await;
    let client = TestClient::connect_http(&front.endpoint("remote"), &front.key, ClientBehaviour::default())
        .await
        .expect("session");
    let started = std::time::Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_secs(24) {
        let r = client.call_tool("echo", json!({"message": format!("call {calls}")})).await;
        assert!(r.as_ref().is_ok_and(|r| r["isError"] != true), "call {calls} at {:?}: {r:?}", started.elapsed());
        calls += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    client.close().await.ok();
    let last = grant_expiry(&front).await;
    assert!(last >= first + 16, "renewed at least twice while the session lived: {first} → {last}");
    assert!(calls > 50, "{calls} calls");
    front.stop().await;
    back.stop().await;
}

async fn grant_expiry(front: &TestMesh) -> u64 {
    let (ok, grants) = front.manage(&front.key, "CONNECTION_GRANT_LIST", json!({})).await;
    assert!(ok, "{grants}");
    grants["items"][0]["expiresAt"].as_u64().expect("expiry")
}

/// The new routes refuse what they cannot use, with the right status and a page or message that
/// says why — and leave nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue19_bad_input_at_the_upstream_authorization_routes() {
    let back = back(3600).await;
    let front = front(&back).await;
    front.add_connection(json!({"slug": "plain", "url": back.endpoint("everything")})).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.expect("reaches the mesh");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };

    // Not logged in: the start page asks who is there; the callback refuses.
    let (status, body) = get(format!("{}/oauth/upstream/start?login=nope", front.url)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<form id=\"login\""), "{body}");
    let (status, _) = get(format!("{}/oauth/upstream/callback?code=c&state=s", front.url)).await;
    assert_eq!(status, 401);

    // Logged in: an unknown link, an unknown or missing state, are "not found" pages.
    let mut browser = Browser::new();
    let page = browser.get(&format!("{}/oauth/upstream/start?login=nope", front.url)).await;
    let after = browser.submit(&page, "login", &[("email", OWNER), ("password", FRONT_PASSWORD)]).await;
    let again = browser.get(&after.location().expect("back to the start")).await;
    assert_eq!(again.status, 404, "{}", again.body);
    for q in ["code=c&state=unknown", "code=c", "", "state=%ff%fe"] {
        let p = browser.get(&format!("{}/oauth/upstream/callback?{q}", front.url)).await;
        assert_eq!(p.status, 404, "{q}: {}", p.body);
    }

    // The login form: malformed, without its anti-CSRF value, oversized.
    let post = |body: Vec<u8>| {
        let http = http.clone();
        let url = format!("{}/oauth/upstream/login", front.url);
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(post(b"%%%=&&".to_vec()).await, 403);
    assert_eq!(post(b"request=x&email=a&password=b&csrf=forged".to_vec()).await, 403);
    assert_eq!(post(vec![b'a'; 200_000]).await, 400);

    // REST and the tools: a connection without OAuth, one that does not exist.
    let rest = |path: &str| {
        let http = http.clone();
        let url = format!("{}{path}", front.url);
        let key = front.key.clone();
        async move {
            let r = http.post(url).bearer_auth(key).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let (status, body) = rest("/api/v1/connections/plain/login").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("does not use OAuth"), "{body}");
    let (status, _) = rest("/api/v1/connections/nothing/login").await;
    assert_eq!(status, 404);
    let (status, _) = rest("/api/v1/connections/remote/login/not-a-login").await;
    assert_eq!(status, 405, "status is a GET");
    let r = http
        .get(format!("{}/api/v1/connections/remote/login/not-a-login", front.url))
        .bearer_auth(&front.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http.post(format!("{}/api/v1/connections/remote/login", front.url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "REST needs a key");
    let (ok, out) = front.manage(&front.key, "CONNECTION_GRANT_REVOKE", json!({"id": "nothing"})).await;
    assert!(!ok && out.to_string().contains("not found"), "{out}");
    let (ok, out) = front
        .manage(&front.key, "COLLECTION_CONNECTIONS_CREATE", json!({"slug": "s", "command": "true", "auth": "oauth"}))
        .await;
    assert!(!ok && out.to_string().contains("auth: oauth is for http and sse"), "{out}");
    let (ok, out) =
        front.manage(&front.key, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": "plain", "auth": "kerberos"})).await;
    assert!(!ok && out.to_string().contains("unknown mode"), "{out}");
    front.stop().await;
    back.stop().await;
}
