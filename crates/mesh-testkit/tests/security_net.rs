//! Issue #16, the trust boundary on the upstream network side: item 2 (a `Reach::Public`
//! connection never reaches internal addresses, and `CONNECTION_TEST` reports classified errors,
//! never the other side's bytes) and item 12 (HTTPS upstreams, trusted through
//! `MESH_UPSTREAM_CA_FILE`, end to end).
//!
//! The HTTPS upstream is a real `server-everything` behind a TLS-terminating proxy on loopback,
//! with a CA and certificates made by the test.

use mesh_relay::client::McpClient;
use mesh_relay::failure::Failure;
use mesh_relay::{Reach, TransportSpec, UpstreamClients, UpstreamSpec};
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{text_of, upstreams, TestMesh};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

fn spec(url: &str, sse: bool, reach: Reach) -> UpstreamSpec {
    let url = url::Url::parse(url).unwrap();
    let transport =
        if sse { TransportSpec::Sse { url, headers: vec![] } } else { TransportSpec::Http { url, headers: vec![] } };
    UpstreamSpec { name: "probe".into(), transport, timeout: Duration::from_secs(10), reach, credential: None }
}

/// A loopback listener that counts the connections it accepts and answers `answer` on each.
async fn listener_answering(answer: &'static [u8]) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut scratch = [0u8; 4096];
                let _ = sock.read(&mut scratch).await;
                let _ = sock.write_all(answer).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn issue16_item2_public_reach_refuses_loopback_and_private_addresses() {
    // The control: an operator's link (Any) to a real server on loopback works, and so would a
    // public one if the mesh did not check the address.
    let everything = upstreams::everything_http().await;
    let clients = UpstreamClients::default();
    let by_name = everything.url.replace("127.0.0.1", "localhost");
    let ok = McpClient::connect(&spec(&by_name, false, Reach::Any), &clients, "t").await.expect("Any reaches loopback");
    ok.close().await;

    let (port, accepted) = listener_answering(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
    let refused = [
        (everything.url.clone(), false), // an IP literal: checked before any socket
        (by_name.clone(), false),        // a name resolving to loopback: the fast path's resolver
        (format!("http://localhost:{port}/mcp"), false),
        (format!("https://localhost:{port}/mcp"), false), // reqwest's resolver (TLS upstreams)
        (format!("http://localhost:{port}/sse"), true),   // reqwest's resolver (legacy SSE)
        (format!("http://[::ffff:127.0.0.1]:{port}/mcp"), false),
        ("http://169.254.169.254/latest/meta-data".into(), false),
        ("http://10.0.0.5:8080/mcp".into(), false),
        ("https://192.168.1.1/mcp".into(), false),
    ];
    for (url, sse) in refused {
        let Err(e) = McpClient::connect(&spec(&url, sse, Reach::Public), &clients, "t").await else {
            panic!("{url}: a Public link connected to an internal address");
        };
        assert_eq!(Failure::of(&e), Failure::Blocked, "{url}: {e}");
        assert!(e.to_string().contains("is not public; only installation operators"), "{url}: {e}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "no connection reached the internal listener");
}

#[tokio::test]
async fn issue16_item2_connection_test_reports_classified_errors_not_upstream_bytes() {
    let mesh = TestMesh::start().await;
    let closed = upstreams::free_port();
    let cases: [(&str, &'static [u8], &str); 4] = [
        (
            "html",
            b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nconnection: close\r\n\r\n<html>SECRET-BANNER</html>",
            "not_mcp",
        ),
        (
            "json",
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 27\r\nconnection: close\r\n\r\n{\"SECRET-BANNER\": \"intern\"}",
            "not_mcp",
        ),
        (
            "status",
            b"HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: 26\r\n\r\n<h1>SECRET-BANNER</h1>....",
            "http_status",
        ),
        ("banner", b"SSH-2.0-OpenSSH_9.6 SECRET-BANNER\r\n", "unavailable"),
    ];
    let mut expected = vec![("closed".to_string(), "refused")];
    mesh.add_connection(json!({"slug": "closed", "url": format!("http://127.0.0.1:{closed}/mcp")})).await;
    for (slug, answer, kind) in cases {
        let (port, _) = listener_answering(answer).await;
        mesh.add_connection(json!({"slug": slug, "url": format!("http://127.0.0.1:{port}/mcp")})).await;
        expected.push((slug.to_string(), kind));
    }
    for (slug, kind) in expected {
        let out = mesh.admin.test_connection(&mesh.owner(), &slug).await.expect("the test runs");
        assert_eq!(out["ok"], false, "{out}");
        assert_eq!(out["connection"], slug.as_str(), "{out}");
        assert_eq!(out["error"]["kind"], kind, "{slug}: {out}");
        assert!(out["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{out}");
        assert!(!out.to_string().contains("SECRET") && !out.to_string().contains("SSH"), "{slug}: {out}");
        if kind == "http_status" {
            assert_eq!(out["error"]["status"], 404, "{out}");
        }
    }
    mesh.stop().await;
}

/// A test CA and the PEM file the mesh is told to trust.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    file: tempfile::NamedTempFile,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), issuer.pem()).unwrap();
        TestCa { issuer, file }
    }

    /// A server certificate for `names`, signed by this CA.
    fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key.into())
            .unwrap();
        Arc::new(config)
    }
}

/// A TLS-terminating proxy on loopback in front of `backend_port`; counts completed handshakes.
/// Stops accepting when dropped.
struct TlsFront {
    port: u16,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    async fn start(config: Arc<rustls::ServerConfig>, backend_port: u16) -> TlsFront {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let count = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (acceptor, count) = (acceptor.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(sock).await else { return };
                    count.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut backend) = TcpStream::connect(("127.0.0.1", backend_port)).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
                });
            }
        });
        TlsFront { port, handshakes, task }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/mcp", self.port)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn issue16_item12_https_upstream_relays_through_mesh() {
    let ca = TestCa::new("mesh test CA");
    let everything = upstreams::everything_http().await;
    let front = TlsFront::start(ca.server_config(&["localhost"]), everything.port).await;
    let path = ca.file.path().to_path_buf();
    let mesh = TestMesh::start_with(|c| c.upstream_ca_file = Some(path)).await;
    mesh.add_connection(json!({"slug": "secure", "url": front.url()})).await;

    let tested = mesh.admin.test_connection(&mesh.owner(), "secure").await.unwrap();
    assert_eq!(tested["ok"], true, "{tested}");

    let client = TestClient::connect_http(&mesh.endpoint("secure"), &mesh.key, ClientBehaviour::default())
        .await
        .expect("initialize over HTTPS through the mesh");
    assert_eq!(client.server_info()["serverInfo"]["name"], "mcp-servers/everything");
    let names = client.list_tool_names().await.unwrap();
    assert!(names.iter().any(|n| n == "echo"), "{names:?}");
    let echo = client.call_tool("echo", json!({"message": "over TLS"})).await.unwrap();
    assert_eq!(text_of(&echo), "Echo: over TLS");
    client.close().await.unwrap();
    assert!(front.handshakes.load(Ordering::SeqCst) >= 1, "the traffic went through TLS");
    mesh.stop().await;
}

#[tokio::test]
async fn issue16_item12_untrusted_certificate_is_a_clear_error() {
    let trusted = TestCa::new("mesh test CA");
    let stranger = TestCa::new("someone else's CA");
    let everything = upstreams::everything_http().await;
    let good = TlsFront::start(trusted.server_config(&["localhost"]), everything.port).await;
    let unknown_issuer = TlsFront::start(stranger.server_config(&["localhost"]), everything.port).await;
    let wrong_name = TlsFront::start(trusted.server_config(&["tools.example.com"]), everything.port).await;
    let path = trusted.file.path().to_path_buf();
    let mesh = TestMesh::start_with(|c| c.upstream_ca_file = Some(path)).await;
    mesh.add_connection(json!({"slug": "good", "url": good.url()})).await;
    mesh.add_connection(json!({"slug": "stranger", "url": unknown_issuer.url()})).await;
    mesh.add_connection(json!({"slug": "misnamed", "url": wrong_name.url()})).await;

    for (slug, front, why) in
        [("stranger", &unknown_issuer, "UnknownIssuer"), ("misnamed", &wrong_name, "not valid for name")]
    {
        let out = mesh.admin.test_connection(&mesh.owner(), slug).await.unwrap();
        assert_eq!(out["ok"], false, "{out}");
        assert_eq!(out["error"]["kind"], "tls", "{slug}: {out}");
        // The mesh's own error (what a session's client and the log see) names the reason.
        let Err(e) = McpClient::connect(&spec(&front.url(), false, Reach::Any), &mesh.admin.http, "t").await else {
            panic!("{slug}: connected over an untrusted certificate");
        };
        assert!(e.to_string().contains("certificate") && e.to_string().contains(why), "{slug}: {e}");
        // Through the mesh: the session does not open, and nothing reached the upstream.
        let opened = TestClient::connect_http(&mesh.endpoint(slug), &mesh.key, ClientBehaviour::default()).await;
        assert!(opened.is_err(), "{slug}: a session opened over an untrusted certificate");
        assert_eq!(front.handshakes.load(Ordering::SeqCst), 0, "{slug}: no handshake completed");
    }

    // The mesh keeps serving: the trusted upstream still relays.
    let client = TestClient::connect_http(&mesh.endpoint("good"), &mesh.key, ClientBehaviour::default()).await.unwrap();
    let echo = client.call_tool("echo", json!({"message": "still here"})).await.unwrap();
    assert_eq!(text_of(&echo), "Echo: still here");
    client.close().await.unwrap();

    // Without the setting, the test CA is not trusted.
    let plain = UpstreamClients::default();
    let Err(e) = McpClient::connect(&spec(&good.url(), false, Reach::Any), &plain, "t").await else {
        panic!("the test CA was trusted without MESH_UPSTREAM_CA_FILE");
    };
    assert_eq!(Failure::of(&e), Failure::Tls, "{e}");
    mesh.stop().await;
}

#[tokio::test]
async fn issue16_item12_a_ca_file_without_certificates_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("roots.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    for path in [empty, dir.path().join("missing.pem")] {
        let mut cfg = mesh_server::Config::with_data_dir(dir.path().join("data"));
        cfg.upstream_ca_file = Some(path.clone());
        let err = cfg.validate().expect_err("an unusable CA file is refused at start");
        assert!(err.to_string().starts_with("MESH_UPSTREAM_CA_FILE: "), "{err}");
        let Err(err) = mesh_server::Mesh::build(&cfg).await else { panic!("built with {}", path.display()) };
        assert!(err.to_string().contains("MESH_UPSTREAM_CA_FILE"), "{err}");
    }
}
