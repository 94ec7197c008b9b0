//! The audit trail's storage: appending hash-chained rows, querying them, reading the chain back
//! for verification, and pruning its oldest rows behind a checkpoint.
//!
//! The store numbers the rows and links them (`seq`, `prev_hash`) inside the append transaction,
//! but does not know how a row is hashed: the caller passes the `seal` function
//! (`mesh_audit::chain::row_hash`), so the encoding lives in one place, beside the verifier.
//!
//! Concurrency: every append or prune first runs a no-op `UPDATE` on the organisation's
//! `audit_chain` row. On PostgreSQL that takes the row lock, so writers on several replicas take
//! turns per organisation; on SQLite it makes the transaction a writer at once (no lock upgrade
//! later). Two writers that both create an organisation's first chain row collide on its primary
//! key; the loser retries the whole batch.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::{Any, Row, Transaction};

use crate::{Store, StoreError};

/// The `prev_hash` of an organisation's first row: 64 zeros.
pub const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Rows per multi-row INSERT: 64 × 23 columns stays far below every backend's parameter limit
/// (SQLite's is 32,766). On SQLite the placeholders are anonymous `?`: its driver looks each
/// numbered one (`$N`) up by name, and SQLite walks the whole parameter list per lookup, which
/// made a 64-row statement quadratic (a quarter of the mesh's CPU under load, profiled); with
/// `?` there are no names to look up, and one statement per batch saves a round trip to the
/// SQLite worker thread per row (profiled again: one-row statements cost ~15% of the mesh's CPU
/// in that thread's wake-ups). Since then SQLite files take `audit_sqlite.rs`; this path serves
/// PostgreSQL and in-memory SQLite.
const INSERT_CHUNK: usize = 64;
/// How often an append is retried after losing a race to create a chain (another replica).
const APPEND_RETRIES: usize = 5;

pub(crate) const COLUMNS: &str =
    "org_id, seq, time_ms, user_id, key_id, role, session_id, client_name, client_version, \
     route_kind, route, method, name, arguments, arguments_truncated, outcome, error, latency_us, bytes_in, \
     bytes_out, request_id, prev_hash, hash";
pub(crate) const COLUMN_COUNT: usize = 23;

/// The statements on an organisation's chain row, shared by both append paths (`$N` are numbered
/// in order of appearance, which SQLite also reads as positions for rusqlite's binding).
pub(crate) const READ_HEAD: &str = "SELECT head_seq, head_hash FROM audit_chain WHERE org_id = $1";
pub(crate) const CREATE_CHAIN: &str = "INSERT INTO audit_chain (org_id, head_seq, head_hash, pruned_seq, pruned_hash, \
     pruned_at) VALUES ($1, 0, $2, 0, $3, NULL)";
pub(crate) const MOVE_HEAD: &str = "UPDATE audit_chain SET head_seq = $1, head_hash = $2 WHERE org_id = $3";

/// Computes a row's `hash` (mesh-audit's `chain::row_hash`); a plain function, so that a batch
/// can be sealed on the SQLite writer's thread.
pub type AuditSeal = fn(&AuditRow) -> String;

/// One stored audit record. `seq`, `prev_hash` and `hash` are assigned by [`Store::append_audit`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// The organisation whose chain holds the row.
    pub org_id: String,
    /// Position in the organisation's chain: 1, 2, 3, … without gaps.
    pub seq: i64,
    /// When the request arrived, unix milliseconds.
    pub time_ms: i64,
    /// The user the API key acts for (`anonymous` for callers without credentials).
    pub user_id: String,
    /// The API key.
    pub key_id: String,
    /// The user's role when the request was made.
    pub role: String,
    /// The downstream MCP session.
    pub session_id: String,
    /// `clientInfo.name` of the session's `initialize`.
    pub client_name: Option<String>,
    /// `clientInfo.version`.
    pub client_version: Option<String>,
    /// `connection`, `management`, `gateway`, `rest`, or `audit` (the trail's own notes).
    pub route_kind: String,
    /// The connection slug, `management`, or the REST path.
    pub route: String,
    /// The JSON-RPC method (or HTTP method and path).
    pub method: String,
    /// The tool, prompt or resource the request addressed.
    pub name: Option<String>,
    /// Redacted JSON text, capped in size.
    pub arguments: Option<String>,
    /// Whether `arguments` is a cut prefix (or was omitted) rather than the whole value.
    pub arguments_truncated: bool,
    /// `ok`, `tool_error`, `protocol_error`, `denied`, `rate_limited`, `upstream_down`, `timeout`,
    /// `cancelled`, `client_gone` (the client left before the request ended), or `dropped`
    /// (records the audit queue could not take).
    pub outcome: String,
    /// Error text, capped in size.
    pub error: Option<String>,
    /// Microseconds from arrival to the end.
    pub latency_us: i64,
    /// Request bytes.
    pub bytes_in: i64,
    /// Reply bytes.
    pub bytes_out: i64,
    /// The client's request id as raw JSON.
    pub request_id: String,
    /// The previous row's `hash` ([`AUDIT_GENESIS`] for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of `prev_hash` and every other column.
    pub hash: String,
}

/// The head and the retention checkpoint of one organisation's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditChain {
    /// The organisation.
    pub org_id: String,
    /// The last appended row's seq (0 before the first).
    pub head_seq: i64,
    /// The last appended row's hash.
    pub head_hash: String,
    /// The last pruned row's seq (0 when nothing was pruned).
    pub pruned_seq: i64,
    /// The last pruned row's hash: the `prev_hash` the first remaining row must have.
    pub pruned_hash: String,
    /// When rows were last pruned, unix milliseconds.
    pub pruned_at: Option<i64>,
}

/// Which way a query walks the chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOrder {
    /// Highest seq first (the default: what happened last).
    #[default]
    Desc,
    /// Lowest seq first (exports).
    Asc,
}

/// What to look for. Every filter is exact and optional except the organisation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The organisation (required: queries never cross tenants).
    pub org_id: String,
    /// Arrived at or after, unix milliseconds.
    pub from_ms: Option<i64>,
    /// Arrived before, unix milliseconds.
    pub to_ms: Option<i64>,
    /// The user.
    pub user_id: Option<String>,
    /// The API key.
    pub key_id: Option<String>,
    /// The route (connection slug, `management`, …).
    pub route: Option<String>,
    /// The route kind.
    pub route_kind: Option<String>,
    /// The JSON-RPC method.
    pub method: Option<String>,
    /// The tool, prompt or resource.
    pub name: Option<String>,
    /// The outcome.
    pub outcome: Option<String>,
    /// Continue after this seq (exclusive) in `order`: the cursor of the previous page.
    pub cursor: Option<i64>,
    /// Walk direction.
    pub order: AuditOrder,
    /// At most this many rows.
    pub limit: i64,
}

impl Store {
    /// Appends rows to their organisations' chains in one transaction: assigns each its `seq`
    /// and `prev_hash`, then `hash = seal(row)`, and moves the chain heads. Rows of one
    /// organisation keep their order. On failure nothing is written (the caller may retry).
    /// On an SQLite file the batch goes to the audit writer thread (`audit_sqlite.rs`).
    pub async fn append_audit(&self, rows: &mut Vec<AuditRow>, seal: AuditSeal) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(appender) = &self.sqlite_audit {
            return appender.append(rows, seal).await;
        }
        let mut attempt = 0;
        loop {
            match self.try_append(rows, seal).await {
                Ok(()) => return Ok(()),
                // Another replica created the same organisation's chain row first: go again.
                Err(e) if is_unique_violation(&e) && attempt < APPEND_RETRIES => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn try_append(&self, rows: &mut [AuditRow], seal: AuditSeal) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for org in &orgs_of(rows) {
            let head = lock_chain(&mut tx, org).await?;
            let mut mine: Vec<&mut AuditRow> = rows.iter_mut().filter(|r| &r.org_id == org).collect();
            let (seq, prev) = link(&mut mine, head, seal);
            let positional = self.backend_name() == "sqlite";
            for chunk in mine.chunks(INSERT_CHUNK) {
                insert_rows(&mut tx, chunk, positional).await?;
            }
            sqlx::query(MOVE_HEAD).bind(seq).bind(&prev).bind(org).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Rows matching `f`, in `f.order`, at most `f.limit` (clamped to 1..=1000).
    pub async fn query_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE org_id = $1");
        let mut binds: Vec<Bind> = vec![Bind::Text(f.org_id.clone())];
        let mut cond = |sql: &mut String, expr: &str, v: Bind| {
            binds.push(v);
            sql.push_str(&format!(" AND {expr} ${}", binds.len()));
        };
        if let Some(v) = f.from_ms {
            cond(&mut sql, "time_ms >=", Bind::Int(v));
        }
        if let Some(v) = f.to_ms {
            cond(&mut sql, "time_ms <", Bind::Int(v));
        }
        for (column, value) in [
            ("user_id", &f.user_id),
            ("key_id", &f.key_id),
            ("route", &f.route),
            ("route_kind", &f.route_kind),
            ("method", &f.method),
            ("name", &f.name),
            ("outcome", &f.outcome),
        ] {
            if let Some(v) = value {
                cond(&mut sql, &format!("{column} ="), Bind::Text(v.clone()));
            }
        }
        let (cmp, dir) = match f.order {
            AuditOrder::Desc => ("seq <", "DESC"),
            AuditOrder::Asc => ("seq >", "ASC"),
        };
        if let Some(c) = f.cursor {
            cond(&mut sql, cmp, Bind::Int(c));
        }
        sql.push_str(&format!(" ORDER BY seq {dir} LIMIT {}", f.limit.clamp(1, 1000)));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = match b {
                Bind::Text(s) => q.bind(s),
                Bind::Int(i) => q.bind(i),
            };
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(row_from).collect::<Result<_, _>>()?)
    }

    /// The head and checkpoint of an organisation's chain; `None` before its first row.
    pub async fn audit_chain(&self, org_id: &str) -> Result<Option<AuditChain>, StoreError> {
        let row = sqlx::query(
            "SELECT org_id, head_seq, head_hash, pruned_seq, pruned_hash, pruned_at FROM audit_chain WHERE org_id = $1",
        )
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(AuditChain {
            org_id: r.try_get("org_id")?,
            head_seq: r.try_get("head_seq")?,
            head_hash: r.try_get("head_hash")?,
            pruned_seq: r.try_get("pruned_seq")?,
            pruned_hash: r.try_get("pruned_hash")?,
            pruned_at: r.try_get("pruned_at")?,
        }))
    }

    /// Every organisation that has an audit chain.
    pub async fn audit_orgs(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT org_id FROM audit_chain ORDER BY org_id").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| r.try_get("org_id")).collect::<Result<_, _>>()?)
    }

    /// Up to `limit` rows of an organisation's chain with seq > `after_seq`, in seq order: how
    /// verification reads the chain, a page at a time.
    pub async fn audit_chain_rows(
        &self,
        org_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE org_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3");
        let rows = sqlx::query(&sql).bind(org_id).bind(after_seq).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(row_from).collect::<Result<_, _>>()?)
    }

    /// Deletes the oldest rows of an organisation's chain — the prefix that ends before the first
    /// row that arrived at or after `before_ms`, at most `max_rows` of it — and moves the
    /// checkpoint to the last deleted row, so verification still starts from a known hash.
    /// Returns how many rows were deleted (0 when nothing is old enough).
    ///
    /// Only a prefix is ever deleted: a row that arrived before the cutoff but was written after a
    /// newer one (a long request) waits for the next pass rather than leaving a hole.
    pub async fn prune_audit(
        &self,
        org_id: &str,
        before_ms: i64,
        max_rows: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let locked = sqlx::query("UPDATE audit_chain SET head_seq = head_seq WHERE org_id = $1")
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Ok(0);
        }
        let chain = sqlx::query("SELECT head_seq, pruned_seq FROM audit_chain WHERE org_id = $1")
            .bind(org_id)
            .fetch_one(&mut *tx)
            .await?;
        let (head, pruned): (i64, i64) = (chain.try_get("head_seq")?, chain.try_get("pruned_seq")?);
        let keep_from: Option<i64> =
            sqlx::query("SELECT MIN(seq) AS s FROM audit_log WHERE org_id = $1 AND time_ms >= $2")
                .bind(org_id)
                .bind(before_ms)
                .fetch_one(&mut *tx)
                .await?
                .try_get("s")?;
        let upto = keep_from.map_or(head, |s| s - 1).min(pruned.saturating_add(max_rows.max(1)));
        // The checkpoint is the newest row actually deleted.
        let last = sqlx::query(
            "SELECT seq, hash FROM audit_log WHERE org_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq DESC LIMIT 1",
        )
        .bind(org_id)
        .bind(pruned)
        .bind(upto)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(last) = last else {
            tx.commit().await?;
            return Ok(0);
        };
        let (last_seq, last_hash): (i64, String) = (last.try_get("seq")?, last.try_get("hash")?);
        let done = sqlx::query("DELETE FROM audit_log WHERE org_id = $1 AND seq <= $2")
            .bind(org_id)
            .bind(last_seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE audit_chain SET pruned_seq = $1, pruned_hash = $2, pruned_at = $3 WHERE org_id = $4")
            .bind(last_seq)
            .bind(&last_hash)
            .bind(now_ms)
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Runs one SQL statement as is and returns the rows it affected. For tests that tamper with
    /// the database behind the mesh's back (audit verification must notice); compiled only with
    /// the `test-util` feature.
    #[cfg(feature = "test-util")]
    pub async fn execute_raw_for_tests(&self, sql: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query(sql).execute(&self.pool).await?.rows_affected())
    }
}

/// A value bound to a query assembled at run time (audit and usage filters).
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// The organisations of a batch, each once, in the one global order in which their chains are
/// locked (so two replicas' batches cannot deadlock).
pub(crate) fn orgs_of(rows: &[AuditRow]) -> Vec<String> {
    let mut orgs: Vec<String> = rows.iter().map(|r| r.org_id.clone()).collect();
    orgs.sort();
    orgs.dedup();
    orgs
}

/// Appends one organisation's rows, in batch order, to its chain whose head is `(seq, hash)`:
/// numbers them, links each to the previous hash and seals it. Returns the new head.
pub(crate) fn link(rows: &mut [&mut AuditRow], head: (i64, String), seal: AuditSeal) -> (i64, String) {
    let (mut seq, mut prev) = head;
    for row in rows.iter_mut() {
        seq += 1;
        row.seq = seq;
        row.prev_hash = std::mem::take(&mut prev);
        row.hash = seal(row);
        prev.clone_from(&row.hash);
    }
    (seq, prev)
}

/// Locks (creating if needed) an organisation's chain row; returns its head.
async fn lock_chain(tx: &mut Transaction<'_, Any>, org: &str) -> Result<(i64, String), sqlx::Error> {
    let locked = sqlx::query("UPDATE audit_chain SET head_seq = head_seq WHERE org_id = $1")
        .bind(org)
        .execute(&mut **tx)
        .await?;
    if locked.rows_affected() == 0 {
        sqlx::query(CREATE_CHAIN).bind(org).bind(AUDIT_GENESIS).bind(AUDIT_GENESIS).execute(&mut **tx).await?;
        return Ok((0, AUDIT_GENESIS.to_string()));
    }
    let head = sqlx::query(READ_HEAD).bind(org).fetch_one(&mut **tx).await?;
    Ok((head.try_get("head_seq")?, head.try_get("head_hash")?))
}

/// `positional`: anonymous `?` placeholders (SQLite), else numbered `$N` (PostgreSQL).
async fn insert_rows(
    tx: &mut Transaction<'_, Any>,
    rows: &[&mut AuditRow],
    positional: bool,
) -> Result<(), sqlx::Error> {
    let values: Vec<String> = (0..rows.len())
        .map(|i| {
            let ps: Vec<String> = (1..=COLUMN_COUNT)
                .map(|c| if positional { "?".to_string() } else { format!("${}", i * COLUMN_COUNT + c) })
                .collect();
            format!("({})", ps.join(", "))
        })
        .collect();
    let sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES {}", values.join(", "));
    let mut q = sqlx::query(&sql);
    for r in rows {
        q = q
            .bind(r.org_id.clone())
            .bind(r.seq)
            .bind(r.time_ms)
            .bind(r.user_id.clone())
            .bind(r.key_id.clone())
            .bind(r.role.clone())
            .bind(r.session_id.clone())
            .bind(r.client_name.clone())
            .bind(r.client_version.clone())
            .bind(r.route_kind.clone())
            .bind(r.route.clone())
            .bind(r.method.clone())
            .bind(r.name.clone())
            .bind(r.arguments.clone())
            .bind(i64::from(r.arguments_truncated))
            .bind(r.outcome.clone())
            .bind(r.error.clone())
            .bind(r.latency_us)
            .bind(r.bytes_in)
            .bind(r.bytes_out)
            .bind(r.request_id.clone())
            .bind(r.prev_hash.clone())
            .bind(r.hash.clone());
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.kind() == ErrorKind::UniqueViolation)
}

fn row_from(r: &AnyRow) -> Result<AuditRow, sqlx::Error> {
    Ok(AuditRow {
        org_id: r.try_get("org_id")?,
        seq: r.try_get("seq")?,
        time_ms: r.try_get("time_ms")?,
        user_id: r.try_get("user_id")?,
        key_id: r.try_get("key_id")?,
        role: r.try_get("role")?,
        session_id: r.try_get("session_id")?,
        client_name: r.try_get("client_name")?,
        client_version: r.try_get("client_version")?,
        route_kind: r.try_get("route_kind")?,
        route: r.try_get("route")?,
        method: r.try_get("method")?,
        name: r.try_get("name")?,
        arguments: r.try_get("arguments")?,
        arguments_truncated: r.try_get::<i64, _>("arguments_truncated")? != 0,
        outcome: r.try_get("outcome")?,
        error: r.try_get("error")?,
        latency_us: r.try_get("latency_us")?,
        bytes_in: r.try_get("bytes_in")?,
        bytes_out: r.try_get("bytes_out")?,
        request_id: r.try_get("request_id")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}
