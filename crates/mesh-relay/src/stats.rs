//! Process-wide counters of upstream events, for the metrics (read at scrape time).
//!
//! Process-wide rather than per `Relay` because the links that count them are built deep below
//! any handle on the relay, and a process runs one mesh (tests that run several read deltas).

use std::sync::atomic::{AtomicU64, Ordering};

static STDIO_RESTARTS: AtomicU64 = AtomicU64::new(0);
static UPSTREAM_FAILURES: AtomicU64 = AtomicU64::new(0);
static UPSTREAM_RECONNECTS: AtomicU64 = AtomicU64::new(0);

/// Upstream sessions opened again after the upstream lost them (an HTTP upstream answering 404
/// to its session, re-initialised with the client's handshake).
pub fn upstream_reconnects() -> u64 {
    UPSTREAM_RECONNECTS.load(Ordering::Relaxed)
}

pub(crate) fn upstream_reconnected() {
    UPSTREAM_RECONNECTS.fetch_add(1, Ordering::Relaxed);
}

/// stdio children restarted (and re-initialised) after they exited.
pub fn stdio_restarts() -> u64 {
    STDIO_RESTARTS.load(Ordering::Relaxed)
}

/// Upstream links that went down: a stdio child exited, an SSE stream broke.
pub fn upstream_failures() -> u64 {
    UPSTREAM_FAILURES.load(Ordering::Relaxed)
}

pub(crate) fn stdio_restarted() {
    STDIO_RESTARTS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn upstream_failed() {
    UPSTREAM_FAILURES.fetch_add(1, Ordering::Relaxed);
}
