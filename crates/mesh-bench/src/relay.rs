//! A bare HTTP relay (`mesh-bench relay`), measured beside the mesh as a floor.
//!
//! axum in, hyper-util's pooled client out, bodies read whole on both legs (as the mesh reads
//! them), headers passed through, and nothing else: no MCP parsing, no sessions, no
//! authentication, policy or audit. What it costs is what two HTTP hops cost on this stack and
//! these cores; what the mesh costs above it is the mesh's own work.

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::header::{CONNECTION, HOST, TRANSFER_ENCODING};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;

struct Relay {
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: http::Uri,
}

/// The first line `mesh-bench relay` prints on stdout, followed by `host:port`.
pub const BANNER: &str = "mesh-bench bare relay listening on ";

/// Relays every request on `listener` to `upstream` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, upstream: &url::Url) -> anyhow::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build(connector);
    let upstream: http::Uri = upstream.as_str().parse().context("upstream URL")?;
    let app = axum::Router::new().fallback(relay).with_state(Arc::new(Relay { client, upstream }));
    axum::serve(listener, app).await?;
    Ok(())
}

async fn relay(State(relay): State<Arc<Relay>>, req: Request) -> Response {
    forward(&relay, req).await.unwrap_or_else(|e| {
        let mut resp = Response::new(Body::from(format!("bare relay: {e:#}")));
        *resp.status_mut() = StatusCode::BAD_GATEWAY;
        resp
    })
}

async fn forward(relay: &Relay, req: Request) -> anyhow::Result<Response> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut out = http::Request::builder().method(parts.method).uri(relay.upstream.clone());
    for (name, value) in parts.headers.iter().filter(|(n, _)| *n != HOST) {
        out = out.header(name, value);
    }
    let resp = relay.client.request(out.body(Full::new(body))?).await?;
    let (mut parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    // The body is re-framed here: the upstream's framing headers do not apply to it.
    parts.headers.remove(TRANSFER_ENCODING);
    parts.headers.remove(CONNECTION);
    Ok(Response::from_parts(parts, Body::from(body)))
}
