//! Proves `mesh_testkit::rmcp_client` is a working MCP client before any mesh test relies on it:
//! the real `@modelcontextprotocol/server-everything` over Streamable HTTP, no mesh in between.

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient, CALL_TIMEOUT};
use mesh_testkit::text_of;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

#[tokio::test]
async fn rmcp_client_round_trips_every_feature_against_server_everything() -> anyhow::Result<()> {
    let server = mesh_testkit::upstreams::everything_http().await;
    let behaviour = ClientBehaviour {
        sampling_reply: Some("pong from the test client".into()),
        elicitation_accept: Some(json!({ "name": "Ada Lovelace", "check": true })),
        roots: vec!["file:///tmp/mesh-testkit-root".into()],
        url_elicitations: None,
    };
    // server-everything ignores the key; here it only proves the header does not break anything.
    let client = TestClient::connect_http(&server.url, "test-key", behaviour).await?;

    let info = client.server_info();
    assert_eq!(info["serverInfo"]["name"], "mcp-servers/everything", "{info}");
    assert!(info["protocolVersion"].is_string(), "{info}");

    // The capability-gated tools appear only because the handshake declared the capabilities.
    let names = client.list_tool_names().await?;
    for expected in ["echo", "trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }

    let echo = client.call_tool("echo", json!({ "message": "hello mesh" })).await?;
    assert_eq!(text_of(&echo), "Echo: hello mesh");

    let sampled = client.call_tool("trigger-sampling-request", json!({ "prompt": "ping", "maxTokens": 16 })).await?;
    assert!(text_of(&sampled).contains("pong from the test client"), "{sampled}");
    assert_eq!(client.sampling_requests_seen(), 1);

    let elicited = client.call_tool("trigger-elicitation-request", json!({})).await?;
    assert!(text_of(&elicited).contains("- Name: Ada Lovelace"), "{elicited}");
    assert_eq!(client.elicitations_seen(), 1);

    let (done, progress) = client
        .call_tool_with_progress("trigger-long-running-operation", json!({ "duration": 0.3, "steps": 3 }))
        .await?;
    assert!(text_of(&done).contains("Steps: 3"), "{done}");
    assert_eq!(progress, 3);

    // The server asks for roots on its own shortly after `initialize`, then logs that it did.
    client.wait_until("roots/list from the server", |c| c.roots_requests_seen() >= 1).await?;
    let roots = client.call_tool("get-roots-list", json!({})).await?;
    assert!(text_of(&roots).contains("file:///tmp/mesh-testkit-root"), "{roots}");
    client.wait_until("a log message", |c| c.log_messages_seen() >= 1).await?;

    let resource = client.read_resource("demo://resource/dynamic/text/1").await?;
    assert_eq!(resource["contents"][0]["uri"], "demo://resource/dynamic/text/1", "{resource}");

    let prompt = client.get_prompt("simple-prompt", Value::Null).await?;
    assert!(prompt["messages"].as_array().is_some_and(|m| !m.is_empty()), "{prompt}");

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
    stream.write_all(reply.as_bytes()).await.expect("write reply");
    String::from_utf8_lossy(&head).to_lowercase()
}

#[tokio::test]
async fn key_is_sent_as_bearer_and_an_empty_key_sends_no_authorization() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);

    for (key, expected) in [("k-123", Some("authorization: bearer k-123\r\n")), ("", None)] {
        let connect = TestClient::connect_http(&url, key, ClientBehaviour::default());
        let (head, outcome) = tokio::join!(tokio::time::timeout(CALL_TIMEOUT, capture_one_request(&listener)), connect);
        let head = head?;
        let Err(error) = outcome else { panic!("a 401 must fail initialize") };
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
