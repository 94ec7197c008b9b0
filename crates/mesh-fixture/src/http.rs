//! Streamable HTTP front: rmcp's session-aware service at `/mcp`, behind two small layers.
//!
//! Request path, outer to inner:
//! 1. `guard::loopback_only` — DNS-rebinding protection (403 for a non-loopback Host/Origin);
//! 2. `polling::layer` — closes the `test_reconnection` POST stream early and serves its resumption;
//! 3. rmcp's `StreamableHttpService` — sessions (`MCP-Session-Id`; DELETE, then 404), POST answered
//!    as SSE with a priming event, the GET stream, `Last-Event-ID` resumption, protocol-version
//!    header checks, and its own Host/Origin check with the same loopback list.

use crate::{guard, polling, Fixture};
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The endpoint path; the conformance suite and the mesh are given `http://127.0.0.1:PORT/mcp`.
pub const PATH: &str = "/mcp";

/// How long open SSE streams may take to close after shutdown is requested before we stop waiting.
const DRAIN: Duration = Duration::from_secs(2);

/// The router, with every session closed when `shutdown` is cancelled.
pub fn router(shutdown: CancellationToken) -> Router {
    let origins = guard::LOOPBACK_HOSTS.iter().flat_map(|h| {
        let h = if h.contains(':') { format!("[{h}]") } else { (*h).to_owned() };
        [format!("http://{h}:*"), format!("https://{h}:*")]
    });
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(guard::LOOPBACK_HOSTS)
        .with_allowed_origins(origins)
        .with_cancellation_token(shutdown);
    let mcp = StreamableHttpService::new(|| Ok(Fixture::new()), Arc::new(LocalSessionManager::default()), config);
    Router::new()
        .route_service(PATH, mcp)
        .layer(axum::middleware::from_fn_with_state(polling::HeldStreams::default(), polling::layer))
        .layer(axum::middleware::from_fn(guard::loopback_only))
}

/// The URL clients use for a listener's address.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}{PATH}")
}

/// Serves until `shutdown` is cancelled, then gives open streams [`DRAIN`] to finish.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let app = router(shutdown.child_token());
    let graceful = {
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful);
    tokio::select! {
        result = server => result,
        () = async { shutdown.cancelled().await; tokio::time::sleep(DRAIN).await } => {
            tracing::debug!("streams still open after the drain period; exiting anyway");
            Ok(())
        }
    }
}
