//! What operators see of a running mesh: Prometheus metrics (`metrics`), counted from the call
//! records the relay already reports (also pushed over OTLP: `otlp_metrics`), and OpenTelemetry
//! traces (`trace`) of every request and its upstream leg.
#![forbid(unsafe_code)]

pub mod metrics;
pub mod otlp_metrics;
pub mod trace;

pub use metrics::{MeteredSink, Metrics, Totals};
pub use otlp_metrics::MetricsExport;
pub use trace::{TraceSettings, Traced, Tracing};
