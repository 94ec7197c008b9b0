//! The audit trail's appends on an SQLite file: one connection of their own (rusqlite), owned by
//! a thread of their own.
//!
//! Why not the `Any` pool every other query uses: the append is the only write on the data
//! plane's hot path (one row per call), and through sqlx's `Any` driver it cost a fifth of the
//! mesh's CPU under load (profiled, docs/PERFORMANCE.md): every value was cloned into an `Any`
//! argument, converted again for SQLite, and a batch took about eight round trips to sqlx's
//! worker thread, each a cross-thread wake-up. Here a batch is one message to a thread that owns
//! the connection and runs one cached single-row INSERT per row, binding the row's strings where
//! they are, and only those that changed from the row before. The statements and the chain rules
//! are those of `audit.rs` (lock the chain, number and seal each organisation's rows in batch
//! order, move the head, all in one transaction); the store story runs every append through this
//! path on SQLite and through `audit.rs` on PostgreSQL.
//!
//! Locking: `BEGIN IMMEDIATE` takes SQLite's write lock before the chain head is read, so a
//! prune through the pool (or another process) waits its turn (busy timeout) instead of
//! interleaving; no unique-violation retry is needed, unlike PostgreSQL's first-chain race.

use std::path::Path;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::audit::{
    link, orgs_of, AuditSeal, AUDIT_GENESIS, COLUMNS, COLUMN_COUNT, CREATE_CHAIN, MOVE_HEAD, READ_HEAD,
};
use crate::{AuditRow, StoreError};

/// How long a write waits for another writer's lock (sqlx's default for the pool, too).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A batch on its way to the writer thread, and where its rows come back.
struct Job {
    rows: Vec<AuditRow>,
    seal: AuditSeal,
    done: tokio::sync::oneshot::Sender<(Vec<AuditRow>, Result<(), String>)>,
}

/// The handle on the writer thread; the thread ends at [`Appender::close`] or when the last
/// handle is dropped.
#[derive(Debug)]
pub(crate) struct Appender {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Appender {
    /// Opens the (existing, migrated) database file and starts the writer thread.
    pub(crate) fn open(path: &Path) -> Result<Appender, StoreError> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| StoreError::Audit(format!("opening the audit connection: {e}")))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| StoreError::Audit(e.to_string()))?;
        // Spelled out rather than left to the build's default: a committed batch survives power loss.
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| StoreError::Audit(e.to_string()))?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("mesh-audit-sqlite".into())
            .spawn(move || run(conn, &insert_sql(), rx))
            .map_err(|e| StoreError::Audit(format!("starting the audit writer thread: {e}")))?;
        Ok(Appender { jobs: Mutex::new(Some(jobs)), thread: Mutex::new(Some(thread)) })
    }

    /// Appends `rows` (numbered, linked and sealed in place) in one transaction. On failure the
    /// rows are back in `rows` for a retry — unless the thread died mid-batch, which it cannot
    /// do short of aborting the process (it catches panics and answers); that loss is logged.
    pub(crate) async fn append(&self, rows: &mut Vec<AuditRow>, seal: AuditSeal) -> Result<(), StoreError> {
        let Some(jobs) = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return Err(StoreError::Audit("the store is closed".into()));
        };
        let (done, wait) = tokio::sync::oneshot::channel();
        let count = rows.len();
        let job = Job { rows: std::mem::take(rows), seal, done };
        if let Err(mpsc::SendError(job)) = jobs.send(job) {
            *rows = job.rows;
            return Err(StoreError::Audit("the audit writer thread is gone".into()));
        }
        match wait.await {
            Ok((back, result)) => {
                *rows = back;
                result.map_err(StoreError::Audit)
            }
            Err(_) => {
                tracing::error!(lost = count, "the audit writer thread stopped during a batch; the batch is lost");
                Err(StoreError::Audit("the audit writer thread stopped during a batch".into()))
            }
        }
    }

    /// Lets the thread finish the batch in hand, then closes its connection (SQLite checkpoints
    /// the WAL into the database file on the last close). Later appends fail.
    pub(crate) async fn close(&self) {
        drop(self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// `INSERT INTO audit_log (…) VALUES (?1, …, ?23)`, from the column list `audit.rs` uses.
fn insert_sql() -> String {
    let params: Vec<String> = (1..=COLUMN_COUNT).map(|i| format!("?{i}")).collect();
    format!("INSERT INTO audit_log ({COLUMNS}) VALUES ({})", params.join(", "))
}

fn run(mut conn: Connection, insert: &str, jobs: mpsc::Receiver<Job>) {
    while let Ok(Job { mut rows, seal, done }) = jobs.recv() {
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| append(&mut conn, insert, &mut rows, seal)));
        let result = match result {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("the audit append panicked".to_string()),
        };
        let _ = done.send((rows, result));
    }
}

fn append(conn: &mut Connection, insert_sql: &str, rows: &mut [AuditRow], seal: AuditSeal) -> rusqlite::Result<()> {
    if !conn.is_autocommit() {
        // A transaction left open by a failed rollback would make every later BEGIN fail.
        let _ = conn.execute_batch("ROLLBACK");
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for org in &orgs_of(rows) {
        let head = chain_head(&tx, org)?;
        let mut mine: Vec<&mut AuditRow> = rows.iter_mut().filter(|r| &r.org_id == org).collect();
        let (seq, prev) = link(&mut mine, head, seal);
        let mut insert = tx.prepare_cached(insert_sql)?;
        let mut last: Option<&AuditRow> = None;
        for row in mine {
            bind(&mut insert, row, last)?;
            insert.raw_execute()?;
            last = Some(row);
        }
        tx.prepare_cached(MOVE_HEAD)?.execute(params![seq, prev, org])?;
    }
    tx.commit()
}

/// Binds a row's values to the INSERT, each column in `COLUMNS` order, skipping those equal to
/// the previous row's: SQLite keeps a statement's bindings from one execution to the next, and
/// rusqlite copies every text it binds (an allocation each), while consecutive rows mostly share
/// their organisation, user, key, role, client, route, method and tool (−4,500 instructions a
/// row, docs/PERFORMANCE.md). `prev` must be the row the statement executed last; the statement
/// cache clears the bindings when the statement goes back to it.
fn bind(insert: &mut rusqlite::CachedStatement<'_>, row: &AuditRow, prev: Option<&AuditRow>) -> rusqlite::Result<()> {
    // Positions follow the list, which is `COLUMNS` in order.
    let mut position = 0;
    macro_rules! columns {
        ($($field:ident),* $(,)?) => {
            $(position += 1;
            if prev.is_none_or(|p| p.$field != row.$field) {
                insert.raw_bind_parameter(position, &row.$field)?;
            })*
        };
    }
    columns!(
        org_id,
        seq,
        time_ms,
        user_id,
        key_id,
        role,
        session_id,
        client_name,
        client_version,
        route_kind,
        route,
        method,
        name,
        arguments,
        arguments_truncated,
        outcome,
        error,
        latency_us,
        bytes_in,
        bytes_out,
        request_id,
        prev_hash,
        hash,
    );
    debug_assert_eq!(position, COLUMN_COUNT);
    Ok(())
}

/// An organisation's chain head, creating the chain at genesis when it has none.
fn chain_head(tx: &rusqlite::Transaction<'_>, org: &str) -> rusqlite::Result<(i64, String)> {
    let head = tx
        .prepare_cached(READ_HEAD)?
        .query_row(params![org], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .optional()?;
    if let Some(head) = head {
        return Ok(head);
    }
    tx.prepare_cached(CREATE_CHAIN)?.execute(params![org, AUDIT_GENESIS, AUDIT_GENESIS])?;
    Ok((0, AUDIT_GENESIS.to_string()))
}
