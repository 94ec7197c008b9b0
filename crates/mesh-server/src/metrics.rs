//! `GET /metrics`: the Prometheus text format, on the main address behind a bearer token
//! (`MESH_METRICS_TOKEN`) and/or on an address of its own (`MESH_METRICS_LISTEN`).
//!
//! Off on the main address unless a token is set: the metrics name organisations, routes and
//! tools, which an anonymous caller must not learn. Gauges and the totals kept elsewhere (relay,
//! audit log, trace exporter) are read at scrape time, so nothing on the request path updates
//! them.

use std::sync::{Arc, Weak};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mesh_relay::ingress::Relay;
use mesh_telemetry::{Metrics, Totals};
use serde_json::json;
use sha2::{Digest, Sha256};

/// What a scrape reads.
#[derive(Clone)]
pub(crate) struct Scrape {
    pub metrics: Arc<Metrics>,
    pub relay: Weak<Relay>,
    pub audit: Arc<mesh_audit::AuditLog>,
    pub tracing: Option<Arc<mesh_telemetry::Tracing>>,
    /// SHA-256 of the bearer token a scrape must present (`None`: no token asked).
    pub token: Option<[u8; 32]>,
    /// Whether this address serves metrics at all (the main one only with a token).
    pub enabled: bool,
}

pub(crate) fn router(scrape: Scrape) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(scrape)
}

/// The digest a token is compared by: equal lengths, and no early exit on the secret's bytes.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

async fn metrics(State(s): State<Scrape>, headers: HeaderMap) -> Response {
    if !s.enabled {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "metrics are not served here: set MESH_METRICS_TOKEN (then scrape with it as a bearer token) or MESH_METRICS_LISTEN"})),
        )
            .into_response();
    }
    if let Some(want) = s.token {
        let given = mesh_relay::ingress::bearer(&headers).map(digest);
        if given != Some(want) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
                Json(json!({"error": "a scrape needs the metrics token (MESH_METRICS_TOKEN) as a bearer token"})),
            )
                .into_response();
        }
    }
    refresh(&s);
    ([(header::CONTENT_TYPE, Metrics::CONTENT_TYPE)], s.metrics.render()).into_response()
}

/// Brings the gauges and the totals kept elsewhere up to date (before a scrape or a push).
pub(crate) fn refresh(s: &Scrape) {
    let m = &s.metrics;
    if let Some(relay) = s.relay.upgrade() {
        let live = relay.live_counts();
        for (kind, n) in live.sessions {
            m.set_sessions_open(kind, n);
        }
        m.set_upstreams(live.up, live.down);
        m.set_streams_open(live.streams);
    }
    let audit = s.audit.stats();
    m.set_audit_queue(s.audit.queued());
    let (exported, dropped) = s.tracing.as_ref().map(|t| t.counts()).unwrap_or_default();
    m.set_totals(Totals {
        stdio_restarts: mesh_relay::stats::stdio_restarts(),
        upstream_failures: mesh_relay::stats::upstream_failures(),
        upstream_reconnects: mesh_relay::stats::upstream_reconnects(),
        audit_written: audit.written,
        audit_dropped: audit.dropped,
        spans_exported: exported,
        spans_dropped: dropped,
    });
}
