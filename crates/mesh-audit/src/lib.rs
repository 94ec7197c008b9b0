//! The audit trail of MCP Mesh: every request through the mesh — proxied calls and management
//! operations alike — becomes one row, written off the request path, hash-chained per
//! organisation so that an edited or deleted row is detected, and pruned after a retention period.
//!
//! # The write path, and what can be lost
//!
//! The relay calls [`AuditLog::record`] when a request ends. That call only does a `try_send` on
//! a bounded queue ([`AuditConfig::queue_capacity`] records); one writer task takes records off
//! it, redacts and caps them ([`redact`]), and appends them in batches of at most
//! [`AuditConfig::batch_rows`] rows, or whatever arrived within [`AuditConfig::batch_delay`] of
//! the batch's first record, in one transaction ([`mesh_store::Store::append_audit`]).
//!
//! - **Graceful shutdown loses nothing.** [`AuditLog::shutdown`] (called by `Mesh::serve` after
//!   the relay has closed every session, whose in-flight requests are recorded as they end)
//!   writes everything queued before returning. Only if the database stays unreachable for
//!   [`AuditConfig::shutdown_timeout`] are the remaining records given up — counted in
//!   [`AuditStats::lost_at_shutdown`] and logged at error level with the number.
//! - **Queue full: count, log, and write a note — never block.** Blocking the caller would turn a
//!   slow database into a stalled data plane, and an unbounded queue would turn it into an
//!   out-of-memory crash that loses *everything* queued. So a record that finds the queue full is
//!   dropped, counted per organisation, logged at error level (first of a burst, then every
//!   1000th), and the writer appends one `audit/dropped` row (outcome `dropped`, with the count and
//!   time span) to that organisation's chain as soon as it can write again: the loss is visible
//!   in the tamper-evident trail itself. The queue only fills when the database is slower than the
//!   traffic for `queue_capacity` records in a row (16,384 by default: seconds of heavy traffic).
//!   Raw arguments waiting in the queue are also bounded ([`AuditConfig::queue_bytes`]); past it a
//!   record is kept but its arguments are left out (`argumentsTruncated: true`).
//! - **A failed write is retried, not dropped**: the batch is kept and retried with backoff
//!   (100 ms doubling to 5 s) while the queue absorbs new records.
//! - **The crash-loss window** (SIGKILL, OOM, power loss) is what was queued or being written:
//!   in normal operation the records of the last `batch_delay` (100 ms) plus one transaction;
//!   while the database is slow or down, up to `queue_capacity` records. Records of requests
//!   still in flight at the crash were never produced. Rows are durable once their transaction
//!   commits (SQLite in WAL mode; PostgreSQL's own durability settings).
//!
//! # The chain
//!
//! Each organisation's rows carry `seq` (1, 2, 3, … without gaps), `prev_hash` and
//! `hash = SHA-256(prev_hash ‖ every other column)`, with the encoding defined in [`chain`].
//! The store assigns `seq` and the link inside the append transaction, holding the chain's head
//! row locked, so several replicas can write one chain. [`verify()`] walks it and names the first
//! bad row. Retention deletes only a prefix of a chain and records the last deleted row's seq and
//! hash as a checkpoint, from which verification starts.
#![forbid(unsafe_code)]

pub mod chain;
mod log;
pub mod redact;
pub mod retention;
mod row;
pub mod usage;
pub mod verify;
pub mod view;

use std::time::Duration;

pub use log::{AuditLog, AuditStats};
pub use verify::{verify, Problem, ProblemKind, VerifyReport};

/// Settings of the audit trail. `Default` is what `mcp-mesh serve` uses, with retention from
/// `MESH_AUDIT_RETENTION_DAYS`.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Records the queue holds before new ones are dropped (and counted).
    pub queue_capacity: usize,
    /// Raw argument bytes the queue may hold; beyond it a record's arguments are left out.
    pub queue_bytes: usize,
    /// Most rows per write transaction.
    pub batch_rows: usize,
    /// Longest a record waits for its batch to fill.
    pub batch_delay: Duration,
    /// Stored arguments (redacted JSON) are cut to this many bytes and marked truncated.
    pub max_arguments_bytes: usize,
    /// Stored error text is cut to this many bytes (and ends with `…`).
    pub max_error_bytes: usize,
    /// Rows older than this are pruned; `None` keeps them forever.
    pub retention: Option<Duration>,
    /// How often the pruner runs.
    pub prune_every: Duration,
    /// How long shutdown keeps retrying an unreachable database.
    pub shutdown_timeout: Duration,
    /// Usage accounting, summed from the same records (`usage`).
    pub usage: usage::UsageConfig,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            queue_capacity: 16_384,
            queue_bytes: 64 * 1024 * 1024,
            batch_rows: 256,
            batch_delay: Duration::from_millis(100),
            max_arguments_bytes: 4 * 1024,
            max_error_bytes: 1024,
            retention: retention_days(90),
            prune_every: Duration::from_secs(3600),
            shutdown_timeout: Duration::from_secs(10),
            usage: usage::UsageConfig::default(),
        }
    }
}

/// The retention for `MESH_AUDIT_RETENTION_DAYS`: 0 means keep forever.
pub fn retention_days(days: u32) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(u64::from(days) * 86_400))
}
