//! What operators see of a running mesh: Prometheus metrics (`metrics`) counted from the call
//! records the relay already reports. Traces follow in `trace`.
#![forbid(unsafe_code)]

pub mod metrics;

pub use metrics::{MeteredSink, Metrics, Totals};
