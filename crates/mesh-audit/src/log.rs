//! `AuditLog`: the mesh's audit sink (`mesh_core::audit::AuditSink`). A bounded queue in front
//! of one writer task that turns call records into rows and appends them to the chain in batches.
//!
//! ```text
//! Session::audit_end ──record()──▶ [bounded queue] ──▶ writer: redact, cap ──▶ Store::append_audit
//!    (never waits)       full? count the drop            batch ≤ batch_rows or batch_delay
//!                                                         failed? keep the batch, retry with backoff
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_core::audit::{AuditSink, CallRecord};
use mesh_store::{AuditRow, Store, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::usage::Tally;
use crate::{chain, retention, AuditConfig};

enum Msg {
    Record { rec: Box<CallRecord>, omitted: bool },
    Flush(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

/// Records the queue could not take, per organisation, waiting to be written as one note.
#[derive(Debug, Clone, Copy)]
struct Dropped {
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

/// Counters for logs, metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Rows written (drop notes included).
    pub written: u64,
    /// Records the queue refused (full, or after shutdown).
    pub dropped: u64,
    /// Batches that failed and were retried.
    pub retried_batches: u64,
    /// Records given up at shutdown because the database stayed unreachable.
    pub lost_at_shutdown: u64,
}

#[derive(Default)]
struct Shared {
    /// Raw argument bytes sitting in the queue (see `AuditConfig::queue_bytes`).
    queued_bytes: AtomicUsize,
    dropped: Mutex<HashMap<String, Dropped>>,
    written: AtomicU64,
    dropped_total: AtomicU64,
    retried: AtomicU64,
    lost: AtomicU64,
    /// Wakes a gathering writer early: a batch's worth is queued, or a flush or stop waits.
    urgent: tokio::sync::Notify,
}

/// The audit trail's writer. Cheap to share (`Arc`); `record` never blocks.
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    store: Store,
    cfg: AuditConfig,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl AuditLog {
    /// Starts the writer (and, when retention is on, the pruner) on the current runtime.
    pub fn start(store: Store, cfg: AuditConfig) -> Arc<AuditLog> {
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            rx,
            store: store.clone(),
            shared: shared.clone(),
            cfg: cfg.clone(),
            tally: Tally::new(cfg.usage.clone()),
        };
        let mut tasks = vec![tokio::spawn(writer.run())];
        if let Some(keep) = cfg.retention {
            tasks.push(tokio::spawn(retention::run(store.clone(), keep, cfg.prune_every)));
        }
        Arc::new(AuditLog { tx, shared, store, cfg, tasks: Mutex::new(tasks) })
    }

    /// Waits until every record handed to `record` before this call is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            self.shared.urgent.notify_one();
            let _ = wait.await;
        }
    }

    /// Writes everything queued, then stops the writer and the pruner. Records arriving later are
    /// refused (counted and logged). Waits at most `cfg.shutdown_timeout` for an unreachable
    /// database, then gives up on what is left and says how much in the log.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Stop(done)).await.is_ok() {
            self.shared.urgent.notify_one();
            let _ = wait.await;
        }
        for t in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            t.abort();
        }
    }

    /// Runs one retention pass now (the pruner does this periodically); returns rows deleted.
    pub async fn prune_now(&self) -> Result<u64, StoreError> {
        match self.cfg.retention {
            Some(keep) => retention::prune_all(&self.store, keep).await,
            None => Ok(0),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> AuditStats {
        let s = &self.shared;
        AuditStats {
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped_total.load(Ordering::Relaxed),
            retried_batches: s.retried.load(Ordering::Relaxed),
            lost_at_shutdown: s.lost.load(Ordering::Relaxed),
        }
    }

    /// Records waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The settings in force.
    pub fn config(&self) -> &AuditConfig {
        &self.cfg
    }

    fn note_drop(&self, org: &str, at: i64, why: &str) {
        let total = self.shared.dropped_total.fetch_add(1, Ordering::Relaxed) + 1;
        let mut map = self.shared.dropped.lock().unwrap_or_else(|p| p.into_inner());
        let d = map.entry(org.to_string()).or_insert(Dropped { count: 0, first_ms: at, last_ms: at });
        d.count += 1;
        d.last_ms = d.last_ms.max(at);
        // Loud but bounded: the first drop of a burst, then every 1000th.
        if d.count == 1 || total % 1000 == 0 {
            tracing::error!(org, dropped_total = total, "audit record dropped: {why}");
        }
    }
}

impl AuditSink for AuditLog {
    /// Queues the record without waiting. Redaction and hashing happen on the writer.
    fn record(&self, mut rec: CallRecord) {
        let mut omitted = false;
        if let Some(n) = rec.arguments.as_ref().map(String::len) {
            // Raw arguments can be as large as a request body: past the byte budget they are
            // left out (the row says so) rather than letting the queue grow without bound.
            let before = self.shared.queued_bytes.fetch_add(n, Ordering::Relaxed);
            if before + n > self.cfg.queue_bytes {
                self.shared.queued_bytes.fetch_sub(n, Ordering::Relaxed);
                rec.arguments = None;
                omitted = true;
            }
        }
        match self.tx.try_send(Msg::Record { rec: Box::new(rec), omitted }) {
            Ok(()) => {
                // Exactly at the threshold: one poke per batch, not one per record past it.
                if self.tx.max_capacity() - self.tx.capacity() == self.cfg.batch_rows {
                    self.shared.urgent.notify_one();
                }
            }
            Err(e) => {
                let (why, msg) = match e {
                    mpsc::error::TrySendError::Full(m) => ("the audit queue is full (database too slow or down)", m),
                    mpsc::error::TrySendError::Closed(m) => ("the audit log is shut down", m),
                };
                if let Msg::Record { rec, .. } = msg {
                    self.shared
                        .queued_bytes
                        .fetch_sub(rec.arguments.as_ref().map_or(0, String::len), Ordering::Relaxed);
                    self.note_drop(&rec.origin.principal.org_id, rec.time_ms, why);
                }
            }
        }
    }
}

struct Writer {
    rx: mpsc::Receiver<Msg>,
    store: Store,
    shared: Arc<Shared>,
    cfg: AuditConfig,
    tally: Tally,
}

impl Writer {
    async fn run(mut self) {
        let mut rows: Vec<AuditRow> = Vec::with_capacity(self.cfg.batch_rows);
        let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            // Idle with usage sums in memory: add them to the database once they are due
            // rather than holding them until traffic returns.
            let next = match self.tally.due_in() {
                Some(wait) => tokio::select! {
                    m = self.rx.recv() => m,
                    _ = tokio::time::sleep(wait) => {
                        self.tally.flush(&self.store).await;
                        continue;
                    }
                },
                None => self.rx.recv().await,
            };
            let Some(first) = next else { return };
            let mut stop = self.take(first, &mut rows, &mut flushed);
            // Gather until the batch is full, its time is up, or someone waits for it — without
            // listening on the queue meanwhile: a receiver parked in `recv` is woken by every
            // record (a cross-thread wake-up per call under load). Senders poke `urgent` instead,
            // only for a full batch, a flush or the stop.
            // A backlog (load, or a batch cut short before a flush) is written at once.
            if flushed.is_empty() && stop.is_none() && rows.len() + self.rx.len() < self.cfg.batch_rows {
                tokio::select! {
                    _ = tokio::time::sleep(self.cfg.batch_delay) => {}
                    _ = self.shared.urgent.notified() => {}
                }
            }
            while rows.len() < self.cfg.batch_rows && stop.is_none() {
                let Ok(m) = self.rx.try_recv() else { break };
                stop = self.take(m, &mut rows, &mut flushed);
            }
            if let Some(done) = stop {
                // Refuse newcomers, then write whatever reached the queue before the refusal.
                self.rx.close();
                while let Ok(m) = self.rx.try_recv() {
                    if let Some(d) = self.take(m, &mut rows, &mut flushed) {
                        let _ = d.send(());
                    }
                }
                let give_up_at = Instant::now() + self.cfg.shutdown_timeout;
                self.write(&mut rows, Some(give_up_at)).await;
                if tokio::time::timeout_at(give_up_at, self.tally.flush(&self.store)).await.is_err() {
                    tracing::error!("usage of the last seconds lost at shutdown: the database stayed unavailable");
                }
                flushed.drain(..).for_each(|f| {
                    let _ = f.send(());
                });
                let _ = done.send(());
                return;
            }
            self.write(&mut rows, None).await;
            if !flushed.is_empty() || self.tally.due() {
                self.tally.flush(&self.store).await;
            }
            flushed.drain(..).for_each(|f| {
                let _ = f.send(());
            });
        }
    }

    /// Adds a message to the batch; returns the stop acknowledgement if it is the stop.
    fn take(
        &mut self,
        m: Msg,
        rows: &mut Vec<AuditRow>,
        flushed: &mut Vec<oneshot::Sender<()>>,
    ) -> Option<oneshot::Sender<()>> {
        match m {
            Msg::Record { rec, omitted } => {
                let raw = rec.arguments.as_ref().map_or(0, String::len);
                self.tally.add(&rec);
                rows.push(crate::row::from_record(*rec, omitted, &self.cfg));
                self.shared.queued_bytes.fetch_sub(raw, Ordering::Relaxed);
                None
            }
            Msg::Flush(f) => {
                flushed.push(f);
                None
            }
            Msg::Stop(s) => Some(s),
        }
    }

    /// Appends the batch (and a note per organisation for records dropped since the last one);
    /// on failure keeps it and retries with backoff — forever while serving (the queue absorbs
    /// traffic meanwhile, then drops are counted), until `give_up_at` when stopping.
    async fn write(&self, rows: &mut Vec<AuditRow>, give_up_at: Option<Instant>) {
        let drops: Vec<(String, Dropped)> =
            self.shared.dropped.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        rows.extend(drops.iter().map(|(org, d)| crate::row::drop_note(org, d.count, d.first_ms, d.last_ms)));
        if rows.is_empty() {
            return;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.store.append_audit(rows, chain::row_hash).await {
                Ok(()) => {
                    self.shared.written.fetch_add(rows.len() as u64, Ordering::Relaxed);
                    rows.clear();
                    return;
                }
                Err(e) => {
                    self.shared.retried.fetch_add(1, Ordering::Relaxed);
                    if give_up_at.is_some_and(|t| Instant::now() + backoff > t) {
                        self.shared.lost.fetch_add(rows.len() as u64, Ordering::Relaxed);
                        tracing::error!(error = %e, lost = rows.len(), "audit records lost at shutdown: the database stayed unavailable");
                        rows.clear();
                        return;
                    }
                    tracing::warn!(error = %e, rows = rows.len(), retry_in = ?backoff, "audit batch not written; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
