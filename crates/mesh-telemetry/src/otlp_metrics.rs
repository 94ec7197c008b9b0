//! OTLP metrics export: the metrics `/metrics` serves, pushed to a collector over OTLP/HTTP
//! (protobuf) every `OTEL_METRIC_EXPORT_INTERVAL`, when configured ([`MetricsExport::from_env`]).
//!
//! Why a translation of the Prometheus registry rather than the OpenTelemetry metrics SDK: one
//! set of instruments, counted once on the request path, feeds both outputs, so a scrape and a
//! push can never disagree; the translation runs on a background task once per interval. Sums and
//! histograms are cumulative since the process started. The two semantic-convention histograms
//! get their OpenTelemetry names (`mcp.server.operation.duration`, `mcp.server.session.duration`,
//! unit `s`, attributes `mcp.method.name`, `error.type`); counters lose the `_total` suffix.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{MetricFamily, MetricType};
use prost::Message as _;

use crate::Metrics;

/// Where and how often metrics are pushed.
#[derive(Debug, Clone)]
pub struct MetricsExport {
    /// The OTLP/HTTP metrics URL (`…/v1/metrics`).
    pub endpoint: String,
    /// Between pushes (`OTEL_METRIC_EXPORT_INTERVAL`, 60000 ms).
    pub interval: Duration,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_(METRICS_)HEADERS`).
    pub headers: Vec<(String, String)>,
    /// Longest a push may take (`OTEL_EXPORTER_OTLP_(METRICS_)TIMEOUT`, 10000 ms).
    pub timeout: Duration,
}

impl MetricsExport {
    /// The standard variables: on when `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (used as is) or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/metrics` appended) is set, unless
    /// `OTEL_SDK_DISABLED=true` or `OTEL_METRICS_EXPORTER=none`.
    pub fn from_env() -> Result<Option<MetricsExport>, String> {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match var("OTEL_METRICS_EXPORTER").as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => return Err(format!("OTEL_METRICS_EXPORTER={other} is not supported: use otlp or none")),
        }
        let endpoint = match (var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"), var("OTEL_EXPORTER_OTLP_ENDPOINT")) {
            (Some(e), _) => e,
            (None, Some(base)) => format!("{}/v1/metrics", base.trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        let protocol = var("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(p) = protocol.filter(|p| p != "http/protobuf") {
            return Err(format!("OTLP protocol {p} is not supported: the mesh exports http/protobuf"));
        }
        let ms = |k: &str, default: u64| -> Result<Duration, String> {
            match var(k) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => {
                    v.parse().map(Duration::from_millis).map_err(|_| format!("{k} must be milliseconds, not '{v}'"))
                }
            }
        };
        let timeout = match var("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT") {
            Some(_) => ms("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", 10_000)?,
            None => ms("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
        };
        let headers =
            var("OTEL_EXPORTER_OTLP_METRICS_HEADERS").or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS")).unwrap_or_default();
        Ok(Some(MetricsExport {
            endpoint,
            interval: ms("OTEL_METRIC_EXPORT_INTERVAL", 60_000)?.max(Duration::from_millis(100)),
            headers: pairs(&headers),
            timeout,
        }))
    }

    /// Pushes to `endpoint` (a full metrics URL) every `interval`, for tests and embedding.
    pub fn to(endpoint: &str, interval: Duration) -> MetricsExport {
        MetricsExport {
            endpoint: endpoint.to_string(),
            interval,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// `k=v,k2=v2` with percent-encoded values, as the OpenTelemetry variables spell them.
fn pairs(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), url_decode(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1..i + 3)) {
            (b'%', Some(h)) if std::str::from_utf8(h).ok().and_then(|h| u8::from_str_radix(h, 16).ok()).is_some() => {
                out.push(u8::from_str_radix(std::str::from_utf8(h).unwrap_or("0"), 16).unwrap_or(b'?'));
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The resource: `OTEL_RESOURCE_ATTRIBUTES`, then `service.name` (`OTEL_SERVICE_NAME`, default
/// `mcp-mesh`) and `service.version`.
fn resource() -> Resource {
    let mut attrs = pairs(&std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default());
    let named = std::env::var("OTEL_SERVICE_NAME").ok().filter(|v| !v.trim().is_empty());
    attrs.retain(|(k, _)| k != "service.name" || named.is_none());
    if let Some(n) = named {
        attrs.push(("service.name".into(), n));
    } else if !attrs.iter().any(|(k, _)| k == "service.name") {
        attrs.push(("service.name".into(), "mcp-mesh".into()));
    }
    attrs.push(("service.version".into(), env!("CARGO_PKG_VERSION").into()));
    Resource { attributes: attrs.into_iter().map(|(k, v)| kv(k, v)).collect(), ..Default::default() }
}

fn kv(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

/// The OpenTelemetry name, unit and attribute names of a Prometheus family.
fn naming(family: &str, kind: MetricType) -> (String, &'static str, fn(&str) -> &str) {
    fn semconv(label: &str) -> &str {
        match label {
            "mcp_method_name" => "mcp.method.name",
            "error_type" => "error.type",
            "route_kind" => "mesh.route.kind",
            other => other,
        }
    }
    fn same(label: &str) -> &str {
        label
    }
    match family {
        "mcp_server_operation_duration_seconds" => ("mcp.server.operation.duration".into(), "s", semconv),
        "mcp_server_session_duration_seconds" => ("mcp.server.session.duration".into(), "s", semconv),
        f if kind == MetricType::COUNTER => (f.strip_suffix("_total").unwrap_or(f).to_string(), "", same),
        f => (f.to_string(), if f.ends_with("_bytes") { "By" } else { "" }, same),
    }
}

fn attributes(m: &prometheus::proto::Metric, rename: fn(&str) -> &str) -> Vec<KeyValue> {
    m.get_label().iter().filter(|l| !l.value().is_empty()).map(|l| kv(rename(l.name()), l.value())).collect()
}

fn translate(f: &MetricFamily, start_ns: u64, now_ns: u64) -> Option<Metric> {
    let (name, unit, rename) = naming(f.name(), f.get_field_type());
    let number = |m: &prometheus::proto::Metric, v: f64| NumberDataPoint {
        attributes: attributes(m, rename),
        start_time_unix_nano: start_ns,
        time_unix_nano: now_ns,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let data = match f.get_field_type() {
        MetricType::COUNTER => metric::Data::Sum(Sum {
            data_points: f.get_metric().iter().map(|m| number(m, m.get_counter().get_value())).collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        MetricType::GAUGE => metric::Data::Gauge(Gauge {
            data_points: f.get_metric().iter().map(|m| number(m, m.get_gauge().get_value())).collect(),
        }),
        MetricType::HISTOGRAM => metric::Data::Histogram(Histogram {
            data_points: f
                .get_metric()
                .iter()
                .map(|m| {
                    let h = m.get_histogram();
                    // Prometheus buckets count everything at or below their bound; OTLP buckets
                    // count what falls between two bounds, with the last one open above.
                    let mut counts = Vec::with_capacity(h.get_bucket().len() + 1);
                    let mut bounds = Vec::with_capacity(h.get_bucket().len());
                    let mut below = 0u64;
                    for b in h.get_bucket().iter().filter(|b| b.upper_bound().is_finite()) {
                        counts.push(b.cumulative_count().saturating_sub(below));
                        bounds.push(b.upper_bound());
                        below = b.cumulative_count();
                    }
                    counts.push(h.get_sample_count().saturating_sub(below));
                    HistogramDataPoint {
                        attributes: attributes(m, rename),
                        start_time_unix_nano: start_ns,
                        time_unix_nano: now_ns,
                        count: h.get_sample_count(),
                        sum: Some(h.get_sample_sum()),
                        bucket_counts: counts,
                        explicit_bounds: bounds,
                        ..Default::default()
                    }
                })
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
        MetricType::SUMMARY | MetricType::UNTYPED => return None,
    };
    Some(Metric { name, description: f.help().to_string(), unit: unit.into(), data: Some(data), ..Default::default() })
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

impl Metrics {
    /// Every metric as one OTLP export request, cumulative since `started`.
    pub fn to_otlp(&self, started: SystemTime) -> Vec<u8> {
        let (start_ns, now_ns) = (unix_ns(started), unix_ns(SystemTime::now()));
        let metrics = self.gather().iter().filter_map(|f| translate(f, start_ns, now_ns)).collect();
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "mcp-mesh".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
        .encode_to_vec()
    }
}

/// Pushes `metrics` every interval until the task is aborted; `refresh` brings the scrape-time
/// gauges up to date first. A collector that is down is logged (first failure, then every tenth)
/// and retried at the next interval; nothing waits on it.
pub fn spawn(
    cfg: MetricsExport,
    metrics: Arc<Metrics>,
    refresh: impl Fn() + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let started = SystemTime::now();
    tokio::spawn(async move {
        let http = match reqwest::Client::builder().timeout(cfg.timeout).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "metrics export disabled: no HTTP client");
                return;
            }
        };
        let mut tick = tokio::time::interval(cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut failures = 0u64;
        loop {
            tick.tick().await;
            refresh();
            let mut req = http
                .post(&cfg.endpoint)
                .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                .body(metrics.to_otlp(started));
            for (k, v) in &cfg.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let failed = match req.send().await {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!("the collector answered HTTP {}", r.status())),
                Err(e) => Some(e.without_url().to_string()),
            };
            match failed {
                None if failures > 0 => {
                    tracing::info!(after = failures, "metrics export works again");
                    failures = 0;
                }
                None => {}
                Some(why) => {
                    failures += 1;
                    if failures == 1 || failures % 10 == 0 {
                        tracing::warn!(error = %why, failures, "metrics export failed; retrying at the next interval");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_resource_attributes_are_read_as_the_spec_spells_them() {
        assert_eq!(
            pairs("api-key=a%20b, x=1,bad,=y"),
            vec![("api-key".to_string(), "a b".to_string()), ("x".to_string(), "1".to_string())]
        );
    }

    #[test]
    fn prometheus_buckets_become_otlp_buckets() {
        let m = Metrics::new();
        let rec = |latency_us| mesh_core::audit::CallRecord {
            time_ms: 0,
            origin: Arc::new(mesh_core::audit::Origin {
                principal: mesh_core::Principal {
                    user_id: "u".into(),
                    key_id: "k".into(),
                    role: mesh_core::Role::Owner,
                    manage: true,
                    ..mesh_core::Principal::anonymous("o")
                },
                session_id: String::new(),
                client: None,
                route_kind: "connection",
                route: "r".into(),
            }),
            method: "tools/call".into(),
            name: Some("t".into()),
            arguments: None,
            outcome: mesh_core::audit::Outcome::Ok,
            error: None,
            latency_us,
            bytes_in: 1,
            bytes_out: 2,
            request_id: "1".into(),
        };
        for us in [5_000, 15_000, 15_000, 400_000_000] {
            m.observe(&rec(us));
        }
        let req = ExportMetricsServiceRequest::decode(m.to_otlp(SystemTime::now()).as_slice()).unwrap();
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let op = metrics.iter().find(|x| x.name == "mcp.server.operation.duration").expect("the histogram");
        let Some(metric::Data::Histogram(h)) = &op.data else { panic!("a histogram") };
        let p = &h.data_points[0];
        assert_eq!(p.count, 4);
        assert_eq!(p.explicit_bounds.len() + 1, p.bucket_counts.len());
        assert_eq!(&p.bucket_counts[..2], &[1, 2], "≤ 10 ms, then 10–20 ms");
        assert_eq!(*p.bucket_counts.last().unwrap(), 1, "above the last bound");
        assert!(p.attributes.iter().any(|a| a.key == "mcp.method.name"));
        assert!(!p.attributes.iter().any(|a| a.key == "error.type"), "empty labels are left out");
        let calls = metrics.iter().find(|x| x.name == "mcp_mesh_calls").expect("the counter, without _total");
        let Some(metric::Data::Sum(s)) = &calls.data else { panic!("a sum") };
        assert!(s.is_monotonic);
        assert_eq!(s.data_points[0].value, Some(number_data_point::Value::AsDouble(4.0)));
    }
}
