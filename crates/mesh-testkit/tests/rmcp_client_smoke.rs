//! Proves `mesh_testkit::rmcp_client` is a working MCP client before any mesh test relies on it:
//! the real `@modelcontextprotocol/server-everything` over Streamable HTTP, no mesh in between.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient, CALL_TIMEOUT};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    process::{Child, Command},
};

/// A running `mcp-server-everything streamableHttp`, killed when dropped.
struct Everything {
    child: Child,
    url: String,
    /// The server's stderr, shown when it fails to start.
    _stderr: tempfile::NamedTempFile,
}

impl Everything {
    /// Starts the server on a free port and waits until it accepts connections.
    /// The port is picked by binding port 0 and releasing it, so another process may take it
    /// before the server binds; the server then exits and we retry on a new port.
    async fn spawn() -> Everything {
        let bin = everything_bin();
        let mut last_failure = String::new();
        for _attempt in 0..3 {
            match Self::try_spawn(&bin).await {
                Ok(server) => return server,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("mcp-server-everything did not start: {last_failure}");
    }

    async fn try_spawn(bin: &Path) -> Result<Everything, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let stderr = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null()) // it logs every request there
            .stderr(stderr.reopen().map_err(|e| e.to_string())?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
        let mut server = Everything {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
            _stderr: stderr,
        };
        server.wait_ready(port).await?;
        Ok(server)
    }

    /// Polls the port until it accepts a connection, the child exits, or `CALL_TIMEOUT` passes.
    async fn wait_ready(&mut self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}: {}", self.stderr()));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "port {port} not open after {CALL_TIMEOUT:?}: {}",
                    self.stderr()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self._stderr.path()).unwrap_or_default()
    }

    async fn stop(mut self) {
        // Ignore the error: it only says the process already exited.
        let _ = self.child.kill().await;
    }
}

/// `$MESH_TEST_DEPS/npm/node_modules/.bin/mcp-server-everything`, installed by scripts/test-deps.
fn everything_bin() -> PathBuf {
    let deps = std::env::var_os("MESH_TEST_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-deps"));
    let bin = deps.join("npm/node_modules/.bin/mcp-server-everything");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test-deps (or point MESH_TEST_DEPS at its output)",
        bin.display()
    );
    bin
}

/// The text of every `text` content block of a `CallToolResult`, joined by newlines.
fn text_of(result: &Value) -> String {
    let blocks = result["content"].as_array().cloned().unwrap_or_default();
    let texts: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
    texts.join("\n")
}

#[tokio::test]
async fn rmcp_client_round_trips_every_feature_against_server_everything() -> anyhow::Result<()> {
    let server = Everything::spawn().await;
    let behaviour = ClientBehaviour {
        sampling_reply: Some("pong from the test client".into()),
        elicitation_accept: Some(json!({ "name": "Ada Lovelace", "check": true })),
        roots: vec!["file:///tmp/mesh-testkit-root".into()],
    };
    // server-everything ignores the key; here it only proves the header does not break anything.
    let client = TestClient::connect_http(&server.url, "test-key", behaviour).await?;

    let info = client.server_info();
    assert_eq!(
        info["serverInfo"]["name"], "mcp-servers/everything",
        "{info}"
    );
    assert!(info["protocolVersion"].is_string(), "{info}");

    // The capability-gated tools appear only because the handshake declared the capabilities.
    let names = client.list_tool_names().await?;
    for expected in [
        "echo",
        "trigger-sampling-request",
        "trigger-elicitation-request",
        "get-roots-list",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    let echo = client
        .call_tool("echo", json!({ "message": "hello mesh" }))
        .await?;
    assert_eq!(text_of(&echo), "Echo: hello mesh");

    let sampled = client
        .call_tool(
            "trigger-sampling-request",
            json!({ "prompt": "ping", "maxTokens": 16 }),
        )
        .await?;
    assert!(
        text_of(&sampled).contains("pong from the test client"),
        "{sampled}"
    );
    assert_eq!(client.sampling_requests_seen(), 1);

    let elicited = client
        .call_tool("trigger-elicitation-request", json!({}))
        .await?;
    assert!(
        text_of(&elicited).contains("- Name: Ada Lovelace"),
        "{elicited}"
    );
    assert_eq!(client.elicitations_seen(), 1);

    let (done, progress) = client
        .call_tool_with_progress(
            "trigger-long-running-operation",
            json!({ "duration": 0.3, "steps": 3 }),
        )
        .await?;
    assert!(text_of(&done).contains("Steps: 3"), "{done}");
    assert_eq!(progress, 3);

    // The server asks for roots on its own shortly after `initialize`, then logs that it did.
    client
        .wait_until("roots/list from the server", |c| {
            c.roots_requests_seen() >= 1
        })
        .await?;
    let roots = client.call_tool("get-roots-list", json!({})).await?;
    assert!(
        text_of(&roots).contains("file:///tmp/mesh-testkit-root"),
        "{roots}"
    );
    client
        .wait_until("a log message", |c| c.log_messages_seen() >= 1)
        .await?;

    let resource = client
        .read_resource("demo://resource/dynamic/text/1")
        .await?;
    assert_eq!(
        resource["contents"][0]["uri"], "demo://resource/dynamic/text/1",
        "{resource}"
    );

    let prompt = client.get_prompt("simple-prompt", Value::Null).await?;
    assert!(
        prompt["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "{prompt}"
    );

    println!(
        "rmcp_client smoke: protocol {}, {} tools, sampling {}, elicitation {}, roots {}, progress {}, logs {}",
        info["protocolVersion"],
        names.len(),
        client.sampling_requests_seen(),
        client.elicitations_seen(),
        client.roots_requests_seen(),
        progress,
        client.log_messages_seen(),
    );
    client.close().await?;
    server.stop().await;
    Ok(())
}

/// Accepts one HTTP request on `listener`, answers 401, and returns the request head lowercased.
async fn capture_one_request(listener: &TcpListener) -> String {
    let (mut stream, _) = listener.accept().await.expect("accept");
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.expect("read request");
        assert!(n > 0, "connection closed before the request head ended");
        head.extend_from_slice(&buf[..n]);
    }
    let reply = "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    stream
        .write_all(reply.as_bytes())
        .await
        .expect("write reply");
    String::from_utf8_lossy(&head).to_lowercase()
}

#[tokio::test]
async fn key_is_sent_as_bearer_and_an_empty_key_sends_no_authorization() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);

    for (key, expected) in [
        ("k-123", Some("authorization: bearer k-123\r\n")),
        ("", None),
    ] {
        let connect = TestClient::connect_http(&url, key, ClientBehaviour::default());
        let (head, outcome) = tokio::join!(
            tokio::time::timeout(CALL_TIMEOUT, capture_one_request(&listener)),
            connect
        );
        let head = head?;
        let Err(error) = outcome else {
            panic!("a 401 must fail initialize")
        };
        // Without `WWW-Authenticate`, rmcp reports a 401 as an unexpected server response.
        assert!(format!("{error:#}").contains("401"), "{error:#}");
        assert!(head.starts_with("post /mcp "), "{head}");
        match expected {
            Some(line) => assert!(head.contains(line), "{head}"),
            None => assert!(!head.contains("authorization:"), "{head}"),
        }
    }
    Ok(())
}
