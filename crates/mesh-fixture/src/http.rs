//! Streamable HTTP front: rmcp's service at `/mcp`, behind three small layers.
//!
//! Request path, outer to inner:
//! 1. `guard::loopback_only` — DNS-rebinding protection (403 for a non-loopback Host/Origin);
//! 2. [`era_gate`] — answers what the served era does not cover ([`crate::era`]);
//! 3. `polling::layer` — closes the `test_reconnection` POST stream early and serves its resumption
//!    (legacy sessions only: the modern wire has no resumption);
//! 4. rmcp's `StreamableHttpService` — per request, legacy or modern: legacy sessions
//!    (`MCP-Session-Id`; DELETE, then 404), POST answered as SSE with a priming event, the GET
//!    stream, `Last-Event-ID` resumption; modern requests served statelessly (SSE without
//!    priming), their `_meta` envelope and `MCP-Protocol-Version`/`Mcp-Method`/`Mcp-Name`/
//!    `Mcp-Param-*` headers validated (400 + -32602/-32020/-32022/-32021, 404 + -32601); and its
//!    own Host/Origin check with the same loopback list.

use crate::era::{self, Era, Refusal, Wire};
use crate::{guard, polling, Fixture, Shared};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{header, Method, StatusCode};
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

/// Largest POST body the era gate reads to classify it (rmcp's own limit is the same).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The router for the handlers sharing `shared`, with every session closed when `shutdown` is
/// cancelled.
pub fn router(shared: Arc<Shared>, shutdown: CancellationToken) -> Router {
    let era = shared.era;
    let origins = guard::LOOPBACK_HOSTS.iter().flat_map(|h| {
        let h = if h.contains(':') { format!("[{h}]") } else { (*h).to_owned() };
        [format!("http://{h}:*"), format!("https://{h}:*")]
    });
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(guard::LOOPBACK_HOSTS)
        .with_allowed_origins(origins)
        .with_cancellation_token(shutdown);
    // A modern-only server keeps no sessions, and requires the `MCP-Protocol-Version` header and
    // the `_meta` envelope on every request (400 + -32020 / -32602 otherwise) rather than reading
    // their absence as 2025-03-26.
    let config = match era {
        Era::Modern => config.with_legacy_session_mode(false).with_stateless_protocol_metadata_required(true),
        Era::Dual | Era::Legacy => config,
    };
    let factory = move || Ok(Fixture::with(shared.clone()));
    let mcp = StreamableHttpService::new(factory, Arc::new(LocalSessionManager::default()), config);
    Router::new()
        .route_service(PATH, mcp)
        .layer(axum::middleware::from_fn_with_state(polling::HeldStreams::default(), polling::layer))
        .layer(axum::middleware::from_fn_with_state(era, era_gate))
        .layer(axum::middleware::from_fn(guard::loopback_only))
}

/// Classifies the request ([`era::classify`]) and answers it here if the served era does not
/// cover it ([`era::refuse_http`]); everything else goes on to rmcp with its body intact.
async fn era_gate(State(era): State<Era>, request: Request, next: Next) -> Response {
    let header_version =
        request.headers().get("mcp-protocol-version").and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned());
    let (parts, body, message) = match *request.method() {
        Method::POST => {
            let (parts, body) = request.into_parts();
            let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
            };
            // Not JSON: rmcp's parse error is the answer, whatever the era.
            let message = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            (parts, Body::from(body), message)
        }
        _ => {
            let (parts, body) = request.into_parts();
            (parts, body, serde_json::Value::Null)
        }
    };
    let wire = match parts.method {
        Method::POST => era::classify(&message, header_version.as_deref()),
        _ if header_version.is_some_and(|v| era::classify(&serde_json::Value::Null, Some(&v)) == Wire::Modern) => {
            Wire::Modern
        }
        _ => Wire::Legacy,
    };
    let method = match parts.method {
        Method::POST => Some(message["method"].as_str().unwrap_or("")),
        Method::GET | Method::DELETE => None,
        // Anything else is rmcp's 405, whatever the era.
        _ => return next.run(Request::from_parts(parts, body)).await,
    };
    match era::refuse_http(era, wire, method, &message) {
        None => next.run(Request::from_parts(parts, body)).await,
        Some(Refusal::Plain { status, text }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = (status, text).into_response();
            if status == StatusCode::METHOD_NOT_ALLOWED {
                response.headers_mut().insert(header::ALLOW, http::HeaderValue::from_static("POST"));
            }
            response
        }
        Some(Refusal::Error { status, error }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            (status, axum::Json(era::error_response(&message, error))).into_response()
        }
    }
}

/// The URL clients use for a listener's address.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}{PATH}")
}

/// Serves `era` until `shutdown` is cancelled, then gives open streams [`DRAIN`] to finish (listen
/// streams are ended with their final result).
pub async fn serve(listener: TcpListener, era: Era, shutdown: CancellationToken) -> std::io::Result<()> {
    let shared = Shared::new(era);
    tokio::spawn({
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            shared.shut_down();
        }
    });
    let app = router(shared, shutdown.child_token());
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
