//! The core promise: everything `server-everything` can do works through `/mcp/{connection}`
//! exactly as it does directly — tools, progress, sampling, elicitation, roots, logging,
//! resources, prompts — with the upstream over stdio, legacy SSE and Streamable HTTP, and a real
//! client (rmcp) downstream.

use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{text_of, upstreams, TestMesh};
use serde_json::{json, Value};

const ROOT: &str = "file:///tmp/mesh-relay-root";

/// The full round trip, against a mesh endpoint.
async fn round_trip(url: &str, key: &str) -> anyhow::Result<()> {
    let behaviour = ClientBehaviour {
        sampling_reply: Some("pong through the mesh".into()),
        elicitation_accept: Some(json!({"name": "Grace Hopper", "check": true})),
        roots: vec![ROOT.into()],
        url_elicitations: None,
    };
    let client = TestClient::connect_http(url, key, behaviour).await?;
    let info = client.server_info();
    assert_eq!(info["serverInfo"]["name"], "mcp-servers/everything", "{info}");

    // Capability-gated tools appear only if the client's capabilities reached the upstream.
    let names = client.list_tool_names().await?;
    for expected in ["echo", "trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }

    let echo = client.call_tool("echo", json!({"message": "hello mesh"})).await?;
    assert_eq!(text_of(&echo), "Echo: hello mesh");

    let sampled = client.call_tool("trigger-sampling-request", json!({"prompt": "ping", "maxTokens": 16})).await?;
    assert!(text_of(&sampled).contains("pong through the mesh"), "{sampled}");
    assert_eq!(client.sampling_requests_seen(), 1);

    let elicited = client.call_tool("trigger-elicitation-request", json!({})).await?;
    assert!(text_of(&elicited).contains("Grace Hopper"), "{elicited}");
    assert_eq!(client.elicitations_seen(), 1);

    let (done, progress) =
        client.call_tool_with_progress("trigger-long-running-operation", json!({"duration": 0.3, "steps": 3})).await?;
    assert!(text_of(&done).contains("Steps: 3"), "{done}");
    assert_eq!(progress, 3, "every progress notification reaches the caller");

    client.wait_until("roots/list from the upstream", |c| c.roots_requests_seen() >= 1).await?;
    let roots = client.call_tool("get-roots-list", json!({})).await?;
    assert!(text_of(&roots).contains(ROOT), "{roots}");
    client.wait_until("a log message", |c| c.log_messages_seen() >= 1).await?;

    let resource = client.read_resource("demo://resource/dynamic/text/1").await?;
    assert_eq!(resource["contents"][0]["uri"], "demo://resource/dynamic/text/1", "{resource}");
    let prompt = client.get_prompt("simple-prompt", Value::Null).await?;
    assert!(prompt["messages"].as_array().is_some_and(|m| !m.is_empty()), "{prompt}");

    // A tool the upstream rejects stays a tool-level answer, unchanged by the relay.
    let unknown = client.call_tool("no-such-tool", json!({})).await;
    assert!(unknown.is_err() || unknown.as_ref().is_ok_and(|r| r["isError"] == true), "{unknown:?}");

    client.close().await?;
    Ok(())
}

#[tokio::test]
async fn everything_over_stdio_through_the_mesh() -> anyhow::Result<()> {
    let mesh = TestMesh::start().await;
    let bin = upstreams::everything_bin();
    mesh.add_connection(json!({"slug": "everything", "command": bin, "args": ["stdio"]})).await;
    round_trip(&mesh.endpoint("everything"), &mesh.key).await?;
    mesh.stop().await;
    Ok(())
}

#[tokio::test]
async fn everything_over_streamable_http_through_the_mesh() -> anyhow::Result<()> {
    let upstream = upstreams::everything_http().await;
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "url": upstream.url})).await;
    round_trip(&mesh.endpoint("everything"), &mesh.key).await?;
    mesh.stop().await;
    upstream.stop().await;
    Ok(())
}

#[tokio::test]
async fn everything_over_legacy_sse_through_the_mesh() -> anyhow::Result<()> {
    let upstream = upstreams::everything_sse().await;
    let mesh = TestMesh::start().await;
    mesh.add_connection(json!({"slug": "everything", "transport": "sse", "url": upstream.url})).await;
    round_trip(&mesh.endpoint("everything"), &mesh.key).await?;
    mesh.stop().await;
    upstream.stop().await;
    Ok(())
}
