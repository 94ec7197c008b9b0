//! What operators see of a running mesh: Prometheus metrics (`metrics`), counted from the call
//! records the relay already reports, and OpenTelemetry traces (`trace`) of every request and its
//! upstream leg.
#![forbid(unsafe_code)]

pub mod metrics;
pub mod trace;

pub use metrics::{MeteredSink, Metrics, Totals};
pub use trace::{TraceSettings, Traced, Tracing};
