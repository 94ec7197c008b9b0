//! Usage over time (`usage_buckets`, migration 0009): sums of calls, errors, bytes and latency,
//! per organisation, user, key, route, tool and method, in minute, hour and day buckets.
//!
//! [`Store::add_usage`] adds one batch of per-minute sums to all three granularities in one
//! transaction (an upsert per bucket that adds to what is there), so partial flushes from
//! several replicas simply add up. [`Store::query_usage`] groups one granularity's buckets.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::audit::Bind;
use crate::{Store, StoreError};

/// A bucket's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageSpan {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl UsageSpan {
    /// All of them, finest first.
    pub const ALL: [UsageSpan; 3] = [UsageSpan::Minute, UsageSpan::Hour, UsageSpan::Day];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSpan::Minute => "minute",
            UsageSpan::Hour => "hour",
            UsageSpan::Day => "day",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<UsageSpan> {
        UsageSpan::ALL.into_iter().find(|u| u.as_str() == s)
    }

    /// The length in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            UsageSpan::Minute => 60_000,
            UsageSpan::Hour => 3_600_000,
            UsageSpan::Day => 86_400_000,
        }
    }

    /// The start of the bucket holding `ms`.
    pub fn floor(self, ms: i64) -> i64 {
        ms - ms.rem_euclid(self.millis())
    }
}

/// The sums for one minute and one (user, key, route, tool, method) of one organisation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    /// The organisation.
    pub org_id: String,
    /// The minute's start, unix milliseconds.
    pub minute: i64,
    /// Whose requests.
    pub user_id: String,
    /// Through which key.
    pub key_id: String,
    /// `connection`, `gateway`, `management` or `rest`.
    pub route_kind: String,
    /// The connection or gateway slug.
    pub route: String,
    /// The tool, prompt or resource named (`""` for none).
    pub tool: String,
    /// The JSON-RPC method.
    pub method: String,
    /// Requests.
    pub calls: i64,
    /// Requests that did not end well (any outcome but `ok`).
    pub errors: i64,
    /// Request bytes.
    pub bytes_in: i64,
    /// Reply bytes.
    pub bytes_out: i64,
    /// Sum of latencies, microseconds.
    pub latency_us: i64,
    /// The largest latency, microseconds.
    pub latency_max_us: i64,
}

/// What a usage total can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageDim {
    /// The user.
    User,
    /// The API key (or OAuth token's grant).
    Key,
    /// The route: a connection or a virtual MCP (`route_kind` and `route`).
    Route,
    /// The tool, prompt or resource.
    Tool,
    /// The JSON-RPC method.
    Method,
    /// The bucket's start (a time series).
    Time,
}

impl UsageDim {
    fn columns(self) -> &'static [&'static str] {
        match self {
            UsageDim::User => &["user_id"],
            UsageDim::Key => &["key_id"],
            UsageDim::Route => &["route_kind", "route"],
            UsageDim::Tool => &["tool"],
            UsageDim::Method => &["method"],
            UsageDim::Time => &["bucket"],
        }
    }
}

/// A usage question: one organisation, one granularity, a time range, optional filters.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    /// The organisation.
    pub org_id: String,
    /// Which buckets to read.
    pub span: UsageSpan,
    /// Buckets that overlap `[from_ms, to_ms)`.
    pub from_ms: i64,
    /// See `from_ms`.
    pub to_ms: i64,
    /// Group by these, in this order (none: one grand total).
    pub by: Vec<UsageDim>,
    /// Only this user.
    pub user_id: Option<String>,
    /// Only this key.
    pub key_id: Option<String>,
    /// Only this route (connection or gateway slug).
    pub route: Option<String>,
    /// Only this tool.
    pub tool: Option<String>,
    /// Only this JSON-RPC method.
    pub method: Option<String>,
    /// At most this many groups (clamped to 1..=10,000).
    pub limit: i64,
}

/// One group's sums.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotal {
    /// The values of the grouping columns, in the order of `UsageQuery::by` (a route gives two:
    /// its kind and slug; time gives the bucket's start in ms, as text).
    pub group: Vec<String>,
    /// Requests.
    pub calls: i64,
    /// Requests that did not end well.
    pub errors: i64,
    /// Request bytes.
    pub bytes_in: i64,
    /// Reply bytes.
    pub bytes_out: i64,
    /// Sum of latencies, microseconds.
    pub latency_us: i64,
    /// The largest latency, microseconds.
    pub latency_max_us: i64,
}

const UPSERT: &str = "INSERT INTO usage_buckets (org_id, span, bucket, user_id, key_id, route_kind, route, tool, \
     method, calls, errors, bytes_in, bytes_out, latency_us, latency_max_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
     ON CONFLICT (org_id, span, bucket, user_id, key_id, route_kind, route, tool, method) DO UPDATE SET \
     calls = usage_buckets.calls + excluded.calls, errors = usage_buckets.errors + excluded.errors, \
     bytes_in = usage_buckets.bytes_in + excluded.bytes_in, bytes_out = usage_buckets.bytes_out + excluded.bytes_out, \
     latency_us = usage_buckets.latency_us + excluded.latency_us, \
     latency_max_us = CASE WHEN excluded.latency_max_us > usage_buckets.latency_max_us \
     THEN excluded.latency_max_us ELSE usage_buckets.latency_max_us END";

impl Store {
    /// Adds per-minute sums to their minute, hour and day buckets, all or nothing.
    pub async fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for r in rows {
            for span in UsageSpan::ALL {
                sqlx::query(UPSERT)
                    .bind(&r.org_id)
                    .bind(span.as_str())
                    .bind(span.floor(r.minute))
                    .bind(&r.user_id)
                    .bind(&r.key_id)
                    .bind(&r.route_kind)
                    .bind(&r.route)
                    .bind(&r.tool)
                    .bind(&r.method)
                    .bind(r.calls)
                    .bind(r.errors)
                    .bind(r.bytes_in)
                    .bind(r.bytes_out)
                    .bind(r.latency_us)
                    .bind(r.latency_max_us)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The sums of `q.span` buckets overlapping the range, grouped by `q.by`, most calls first.
    pub async fn query_usage(&self, q: &UsageQuery) -> Result<Vec<UsageTotal>, StoreError> {
        let group: Vec<&str> = q.by.iter().flat_map(|d| d.columns().iter().copied()).collect();
        let mut binds: Vec<Bind> = vec![
            Bind::Text(q.org_id.clone()),
            Bind::Text(q.span.as_str().to_string()),
            // Overlap: a bucket that starts before `from` but ends after it counts.
            Bind::Int(q.from_ms - q.span.millis()),
            Bind::Int(q.to_ms),
        ];
        let mut sql = String::from("SELECT ");
        for c in &group {
            sql.push_str(c);
            sql.push_str(", ");
        }
        // PostgreSQL sums BIGINT into NUMERIC: cast back so both backends answer integers.
        sql.push_str(
            "CAST(SUM(calls) AS BIGINT) AS calls, CAST(SUM(errors) AS BIGINT) AS errors, \
             CAST(SUM(bytes_in) AS BIGINT) AS bytes_in, CAST(SUM(bytes_out) AS BIGINT) AS bytes_out, \
             CAST(SUM(latency_us) AS BIGINT) AS latency_us, MAX(latency_max_us) AS latency_max_us \
             FROM usage_buckets WHERE org_id = $1 AND span = $2 AND bucket > $3 AND bucket < $4",
        );
        for (column, value) in [
            ("user_id", &q.user_id),
            ("key_id", &q.key_id),
            ("route", &q.route),
            ("tool", &q.tool),
            ("method", &q.method),
        ] {
            if let Some(v) = value {
                binds.push(Bind::Text(v.clone()));
                sql.push_str(&format!(" AND {column} = ${}", binds.len()));
            }
        }
        if !group.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", group.join(", ")));
        }
        // A grand total over no rows is one row of NULLs: no rows at all is the honest answer.
        sql.push_str(" HAVING COUNT(*) > 0");
        let order = if q.by.contains(&UsageDim::Time) { "bucket".to_string() } else { "calls DESC".to_string() };
        let tie = if group.is_empty() { String::new() } else { format!(", {}", group.join(", ")) };
        sql.push_str(&format!(" ORDER BY {order}{tie} LIMIT {}", q.limit.clamp(1, 10_000)));
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = match b {
                Bind::Text(s) => query.bind(s),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut values = Vec::with_capacity(group.len());
            for c in &group {
                values.push(if *c == "bucket" { row.try_get::<i64, _>(*c)?.to_string() } else { row.try_get(*c)? });
            }
            out.push(UsageTotal {
                group: values,
                calls: row.try_get("calls")?,
                errors: row.try_get("errors")?,
                bytes_in: row.try_get("bytes_in")?,
                bytes_out: row.try_get("bytes_out")?,
                latency_us: row.try_get("latency_us")?,
                latency_max_us: row.try_get("latency_max_us")?,
            });
        }
        Ok(out)
    }

    /// Deletes `span` buckets that start before `before_ms`; returns how many.
    pub async fn prune_usage(&self, span: UsageSpan, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM usage_buckets WHERE span = $1 AND bucket < $2")
            .bind(span.as_str())
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_on_their_boundary() {
        let t = 1_700_000_123_456;
        assert_eq!(UsageSpan::Minute.floor(t) % 60_000, 0);
        assert!(UsageSpan::Minute.floor(t) <= t && t - UsageSpan::Minute.floor(t) < 60_000);
        assert_eq!(UsageSpan::Day.floor(t) % 86_400_000, 0);
        assert_eq!(UsageSpan::parse("hour"), Some(UsageSpan::Hour));
        assert_eq!(UsageSpan::parse("week"), None);
    }
}
