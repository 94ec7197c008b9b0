//! The mesh's Prometheus metrics: counted from the call records the relay reports anyway
//! ([`MeteredSink`] sits in front of the audit sink), plus gauges read at scrape time.
//!
//! Why the `prometheus` crate and not `prometheus-client`: the latter writes OpenMetrics only,
//! whose counter families Prometheus's own checker (`promtool check metrics`) and text parser
//! (format 0.0.4) read as unnamed, unhelped metrics; `prometheus` writes the classic text format
//! every scraper reads. Its vectors look a series up by hashing the borrowed label values, so
//! counting a call allocates nothing once the series exists.
//!
//! Cardinality is bounded by construction: organisations and routes exist only once an admin
//! created them (a session opens only on a real route), methods outside the spec count as
//! `_OTHER`, only names a server answered (and at most 128 bytes long) are kept
//! ([`mesh_core::audit::CallRecord::counted_name`]), and past [`Metrics::MAX_NAMES`] distinct
//! tool names in an organisation its new ones count as `(other)` — per organisation, so that one
//! tenant cannot use up another's.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use mesh_core::audit::{CallRecord, Outcome, OTHER_NAME};
use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The MCP semantic conventions' bucket boundaries for operation and session durations, seconds.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Every metric the mesh exports. Cheap to share (`Arc`); counting never blocks on I/O.
pub struct Metrics {
    registry: Registry,
    calls: IntCounterVec,
    tool_calls: IntCounterVec,
    bytes: IntCounterVec,
    operation: HistogramVec,
    session: HistogramVec,
    rate_limited: IntCounterVec,
    sessions_open: IntGaugeVec,
    streams_open: IntGauge,
    upstreams: IntGaugeVec,
    stdio_restarts: IntCounter,
    upstream_failures: IntCounter,
    upstream_reconnects: IntCounter,
    audit_queue: IntGauge,
    audit_dropped: IntCounter,
    audit_written: IntCounter,
    spans_exported: IntCounter,
    spans_dropped: IntCounter,
    /// Tool names admitted as label values, per organisation.
    tool_names: RwLock<HashMap<Box<str>, HashSet<Box<str>>>>,
    /// Serialises [`Metrics::set_totals`]: two scrapes at once must not both add one difference.
    totals: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Totals the mesh keeps elsewhere, copied into counters at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// stdio children restarted after they exited.
    pub stdio_restarts: u64,
    /// Upstream links that went down (a dead child, a broken stream, a refused connection).
    pub upstream_failures: u64,
    /// Upstream sessions re-opened after the upstream lost them.
    pub upstream_reconnects: u64,
    /// Audit rows written.
    pub audit_written: u64,
    /// Audit records dropped (queue full).
    pub audit_dropped: u64,
    /// Spans handed to the exporter.
    pub spans_exported: u64,
    /// Spans dropped (the exporter's queue was full).
    pub spans_dropped: u64,
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric definition")
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("a valid metric definition")
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec()), labels)
        .expect("a valid metric definition")
}

impl Metrics {
    /// Distinct tool names counted by name per organisation; later ones count as `(other)`.
    pub const MAX_NAMES: usize = 2_000;

    /// Creates and registers every metric (and the process collector on Linux).
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::new(),
            calls: counter_vec(
                "mcp_mesh_calls_total",
                "MCP requests handled, by organisation, route, method and outcome.",
                &["org_id", "route_kind", "route", "method", "outcome"],
            ),
            tool_calls: counter_vec(
                "mcp_mesh_tool_calls_total",
                "tools/call requests by tool (refused names as (refused), past the cap as (other)).",
                &["org_id", "route", "tool", "outcome"],
            ),
            bytes: counter_vec(
                "mcp_mesh_bytes_total",
                "Request (in) and reply (out) bytes, by organisation and route.",
                &["org_id", "route", "direction"],
            ),
            operation: histogram(
                "mcp_server_operation_duration_seconds",
                "MCP request duration as the client sees it (semantic convention mcp.server.operation.duration).",
                &["mcp_method_name", "error_type"],
            ),
            session: histogram(
                "mcp_server_session_duration_seconds",
                "MCP session lifetime (semantic convention mcp.server.session.duration).",
                &["route_kind"],
            ),
            rate_limited: counter_vec(
                "mcp_mesh_rate_limited_total",
                "Requests refused by a rate limit, by organisation.",
                &["org_id"],
            ),
            sessions_open: IntGaugeVec::new(
                Opts::new("mcp_mesh_sessions_open", "Open downstream MCP sessions, by route kind."),
                &["route_kind"],
            )
            .expect("a valid metric definition"),
            streams_open: IntGauge::new(
                "mcp_mesh_streams_open",
                "Streams clients are attached to: SSE replies in flight and GET streams.",
            )
            .expect("a valid metric definition"),
            upstreams: IntGaugeVec::new(
                Opts::new("mcp_mesh_upstream_links", "Upstream links of open sessions, by state (up or down)."),
                &["state"],
            )
            .expect("a valid metric definition"),
            stdio_restarts: counter(
                "mcp_mesh_stdio_restarts_total",
                "stdio upstream processes restarted after exiting.",
            ),
            upstream_failures: counter(
                "mcp_mesh_upstream_failures_total",
                "Upstream links that went down (process exited, stream broke, connection refused).",
            ),
            upstream_reconnects: counter(
                "mcp_mesh_upstream_reconnects_total",
                "Upstream sessions opened again after the upstream lost them (HTTP 404 to its session).",
            ),
            audit_queue: IntGauge::new("mcp_mesh_audit_queue_depth", "Audit records waiting to be written.")
                .expect("a valid metric definition"),
            audit_dropped: counter("mcp_mesh_audit_dropped_total", "Audit records dropped because the queue was full."),
            audit_written: counter("mcp_mesh_audit_written_total", "Audit rows written."),
            spans_exported: counter("mcp_mesh_trace_spans_exported_total", "Spans handed to the OTLP exporter."),
            spans_dropped: counter(
                "mcp_mesh_trace_spans_dropped_total",
                "Spans dropped: the export queue was full, or the export failed (collector down or slow).",
            ),
            tool_names: RwLock::new(HashMap::new()),
            totals: Mutex::new(()),
        };
        let all: [Box<dyn Collector>; 17] = [
            Box::new(m.calls.clone()),
            Box::new(m.tool_calls.clone()),
            Box::new(m.bytes.clone()),
            Box::new(m.operation.clone()),
            Box::new(m.session.clone()),
            Box::new(m.rate_limited.clone()),
            Box::new(m.sessions_open.clone()),
            Box::new(m.streams_open.clone()),
            Box::new(m.upstreams.clone()),
            Box::new(m.stdio_restarts.clone()),
            Box::new(m.upstream_failures.clone()),
            Box::new(m.upstream_reconnects.clone()),
            Box::new(m.audit_queue.clone()),
            Box::new(m.audit_dropped.clone()),
            Box::new(m.audit_written.clone()),
            Box::new(m.spans_exported.clone()),
            Box::new(m.spans_dropped.clone()),
        ];
        for c in all {
            m.registry.register(c).expect("metric names are unique");
        }
        #[cfg(target_os = "linux")]
        m.registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process metric names are unique");
        m
    }

    /// Counts one finished request. Allocates only for a series seen for the first time.
    pub fn observe(&self, rec: &CallRecord) {
        let o = &rec.origin;
        let org = o.principal.org_id.as_str();
        // Only the spec's methods: anything else is a name a client made up.
        let method = rec.counted_method();
        let outcome = rec.outcome.as_str();
        self.calls.with_label_values(&[org, o.route_kind, &o.route, method, outcome]).inc();
        let error_type = if rec.outcome == Outcome::Ok { "" } else { outcome };
        self.operation.with_label_values(&[method, error_type]).observe(rec.latency_us as f64 / 1e6);
        self.bytes.with_label_values(&[org, &o.route, "in"]).inc_by(rec.bytes_in);
        self.bytes.with_label_values(&[org, &o.route, "out"]).inc_by(rec.bytes_out);
        if rec.outcome == Outcome::RateLimited {
            self.rate_limited.with_label_values(&[org]).inc();
        }
        if method == "tools/call" {
            let name = rec.counted_name().unwrap_or("");
            let name = if self.admit_name(org, name) { name } else { OTHER_NAME };
            self.tool_calls.with_label_values(&[org, &o.route, name, outcome]).inc();
        }
    }

    /// Whether `name` may be a label value in `org`: already one, or room for one more. Once
    /// the organisation is full, the answer comes from the read lock alone.
    fn admit_name(&self, org: &str, name: &str) -> bool {
        {
            let all = self.tool_names.read().unwrap_or_else(|p| p.into_inner());
            match all.get(org) {
                Some(names) if names.contains(name) => return true,
                Some(names) if names.len() >= Self::MAX_NAMES => return false,
                _ => {}
            }
        }
        let mut all = self.tool_names.write().unwrap_or_else(|p| p.into_inner());
        let names = all.entry(org.into()).or_default();
        if names.len() >= Self::MAX_NAMES {
            return names.contains(name);
        }
        names.insert(name.into());
        true
    }

    /// Counts a session that ended after `lived`.
    pub fn session_ended(&self, route_kind: &str, lived: Duration) {
        self.session.with_label_values(&[route_kind]).observe(lived.as_secs_f64());
    }

    /// Sets the open sessions of one route kind (read at scrape time).
    pub fn set_sessions_open(&self, route_kind: &str, n: usize) {
        self.sessions_open.with_label_values(&[route_kind]).set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the streams clients are attached to (read at scrape time).
    pub fn set_streams_open(&self, n: usize) {
        self.streams_open.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the upstream links of open sessions that are up and down (read at scrape time).
    pub fn set_upstreams(&self, up: usize, down: usize) {
        self.upstreams.with_label_values(&["up"]).set(i64::try_from(up).unwrap_or(i64::MAX));
        self.upstreams.with_label_values(&["down"]).set(i64::try_from(down).unwrap_or(i64::MAX));
    }

    /// Sets the audit queue's depth (read at scrape time).
    pub fn set_audit_queue(&self, n: usize) {
        self.audit_queue.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Brings the counters kept elsewhere up to `t`.
    pub fn set_totals(&self, t: Totals) {
        let _one_at_a_time = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        for (c, v) in [
            (&self.stdio_restarts, t.stdio_restarts),
            (&self.upstream_failures, t.upstream_failures),
            (&self.upstream_reconnects, t.upstream_reconnects),
            (&self.audit_written, t.audit_written),
            (&self.audit_dropped, t.audit_dropped),
            (&self.spans_exported, t.spans_exported),
            (&self.spans_dropped, t.spans_dropped),
        ] {
            // Counters only rise; the sources only rise too, so the difference is never negative.
            c.inc_by(v.saturating_sub(c.get()));
        }
    }

    /// Every family as it stands (for the OTLP push).
    pub(crate) fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// Everything, in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics could not be encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The content type of [`Metrics::render`].
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// An audit sink that counts every record into [`Metrics`] before passing it on.
pub struct MeteredSink {
    /// Where the counts go.
    pub metrics: std::sync::Arc<Metrics>,
    /// The sink the record goes on to (the audit log).
    pub inner: std::sync::Arc<dyn mesh_core::audit::AuditSink>,
}

impl mesh_core::audit::AuditSink for MeteredSink {
    fn record(&self, rec: CallRecord) {
        self.metrics.observe(&rec);
        self.inner.record(rec);
    }

    fn session_ended(&self, route_kind: &'static str, lived: Duration) {
        self.metrics.session_ended(route_kind, lived);
        self.inner.session_ended(route_kind, lived);
    }
}
