//! Usage over time, summed from the records the audit writer takes (so off the request path, and
//! counting exactly what the trail holds): per minute and (organisation, user, key, route, name,
//! method) in memory, added to the store's minute, hour and day buckets every
//! [`UsageConfig::flush_every`], at every [`crate::AuditLog::flush`] and at shutdown.

use std::collections::HashMap;
use std::time::Duration;

use mesh_core::audit::{CallRecord, Outcome, OTHER_NAME};
use mesh_store::{Store, UsageRow, UsageSpan};
use tokio::time::Instant;

/// Settings of usage accounting.
#[derive(Debug, Clone)]
pub struct UsageConfig {
    /// How often the sums in memory are added to the database.
    pub flush_every: Duration,
    /// Distinct rows an organisation may add per minute; past it new names count as `(other)`.
    pub max_rows_per_org: usize,
    /// How long each granularity is kept: minutes, hours, days (`None`: forever).
    pub keep: [Option<Duration>; 3],
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            flush_every: Duration::from_secs(10),
            max_rows_per_org: 2_000,
            keep: [
                Some(Duration::from_secs(2 * 86_400)),
                Some(Duration::from_secs(60 * 86_400)),
                Some(Duration::from_secs(400 * 86_400)),
            ],
        }
    }
}

#[derive(Hash, PartialEq, Eq)]
struct Key {
    org_id: String,
    minute: i64,
    user_id: String,
    key_id: String,
    route_kind: &'static str,
    route: String,
    tool: String,
    method: String,
}

#[derive(Default, Clone, Copy)]
struct Sums {
    calls: i64,
    errors: i64,
    bytes_in: i64,
    bytes_out: i64,
    latency_us: i64,
    latency_max_us: i64,
}

/// The sums not yet in the database.
pub(crate) struct Tally {
    cfg: UsageConfig,
    sums: HashMap<Key, Sums>,
    /// Distinct rows per organisation and minute, kept across flushes for the current minutes.
    rows_per_org: HashMap<(String, i64), usize>,
    /// Rows whose write failed, retried once with the next flush.
    failed: Vec<UsageRow>,
    last_flush: Instant,
    last_prune: Option<Instant>,
}

impl Tally {
    pub(crate) fn new(cfg: UsageConfig) -> Tally {
        Tally {
            cfg,
            sums: HashMap::new(),
            rows_per_org: HashMap::new(),
            failed: Vec::new(),
            last_flush: Instant::now(),
            last_prune: None,
        }
    }

    /// Counts one record.
    pub(crate) fn add(&mut self, rec: &CallRecord) {
        let p = &rec.origin.principal;
        // MCP routes are slugs an admin created; a REST or OAuth record's route is a request path
        // a caller chose, so only its kind is kept (the audit trail has the path).
        let route = match rec.origin.route_kind {
            "connection" | "gateway" | "management" => rec.origin.route.clone(),
            _ => String::new(),
        };
        let mut key = Key {
            org_id: p.org_id.clone(),
            minute: UsageSpan::Minute.floor(rec.time_ms),
            user_id: p.user_id.clone(),
            key_id: p.key_id.clone(),
            route_kind: rec.origin.route_kind,
            route,
            tool: rec.counted_name().unwrap_or("").to_string(),
            method: rec.counted_method().to_string(),
        };
        if !self.sums.contains_key(&key) {
            let rows = self.rows_per_org.entry((key.org_id.clone(), key.minute)).or_default();
            if *rows >= self.cfg.max_rows_per_org {
                key.tool = OTHER_NAME.to_string();
            } else {
                *rows += 1;
            }
        }
        let s = self.sums.entry(key).or_default();
        let latency = i64::try_from(rec.latency_us).unwrap_or(i64::MAX);
        s.calls += 1;
        s.errors += i64::from(rec.outcome != Outcome::Ok);
        s.bytes_in += i64::try_from(rec.bytes_in).unwrap_or(i64::MAX);
        s.bytes_out += i64::try_from(rec.bytes_out).unwrap_or(i64::MAX);
        s.latency_us = s.latency_us.saturating_add(latency);
        s.latency_max_us = s.latency_max_us.max(latency);
    }

    /// Whether a flush is due without anyone asking.
    pub(crate) fn due(&self) -> bool {
        self.due_in().is_some_and(|d| d.is_zero())
    }

    /// How long until a flush is due, when there is anything to flush.
    pub(crate) fn due_in(&self) -> Option<Duration> {
        (!self.sums.is_empty() || !self.failed.is_empty())
            .then(|| self.cfg.flush_every.saturating_sub(self.last_flush.elapsed()))
    }

    /// Adds the sums to the database. A failed write keeps them for the next flush; a second
    /// failure in a row logs and keeps trying (the rows are small and bounded per organisation).
    pub(crate) async fn flush(&mut self, store: &Store) {
        self.last_flush = Instant::now();
        // The per-minute caps of minutes that are over are no longer needed.
        let current = UsageSpan::Minute.floor(mesh_core::id::now_ms());
        self.rows_per_org.retain(|(_, minute), _| *minute >= current - 120_000);
        let retried = std::mem::take(&mut self.failed);
        let mut rows = Vec::with_capacity(self.sums.len());
        rows.extend(self.sums.drain().map(|(k, s)| UsageRow {
            org_id: k.org_id,
            minute: k.minute,
            user_id: k.user_id,
            key_id: k.key_id,
            route_kind: k.route_kind.to_string(),
            route: k.route,
            tool: k.tool,
            method: k.method,
            calls: s.calls,
            errors: s.errors,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            latency_us: s.latency_us,
            latency_max_us: s.latency_max_us,
        }));
        // One order for every writer: two replicas adding to the same hour and day buckets take
        // their row locks in the same order and cannot deadlock.
        rows.sort_by(|a, b| {
            (&a.org_id, a.minute, &a.user_id, &a.key_id, &a.route_kind, &a.route, &a.tool, &a.method).cmp(&(
                &b.org_id,
                b.minute,
                &b.user_id,
                &b.key_id,
                &b.route_kind,
                &b.route,
                &b.tool,
                &b.method,
            ))
        });
        if !retried.is_empty() {
            // Written apart from the new rows: rows that fail twice are given up, so that one
            // row the database refuses cannot keep every later flush from being written.
            if let Err(e) = store.add_usage(&retried).await {
                tracing::error!(error = %e, rows = retried.len(), "usage rows given up after a second failed write");
            }
        }
        if rows.is_empty() {
            return;
        }
        if let Err(e) = store.add_usage(&rows).await {
            tracing::warn!(error = %e, rows = rows.len(), "usage not written; trying once more with the next flush");
            // Bounded: a database down for long keeps at most this many rows waiting.
            rows.truncate(100_000);
            self.failed = rows;
        }
        self.prune_if_due(store).await;
    }

    async fn prune_if_due(&mut self, store: &Store) {
        if self.last_prune.is_some_and(|t| t.elapsed() < Duration::from_secs(3600)) {
            return;
        }
        self.last_prune = Some(Instant::now());
        let now = mesh_core::id::now_ms();
        for (span, keep) in UsageSpan::ALL.into_iter().zip(self.cfg.keep) {
            let Some(keep) = keep else { continue };
            let before = now - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
            match store.prune_usage(span, before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(span = span.as_str(), deleted = n, "pruned old usage buckets"),
                Err(e) => tracing::warn!(error = %e, "could not prune usage buckets"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::audit::Origin;
    use std::borrow::Cow;
    use std::sync::Arc;

    fn rec(kind: &'static str, route: &str, method: Cow<'static, str>, name: &str) -> CallRecord {
        CallRecord {
            time_ms: 1_796_205_600_000,
            origin: Arc::new(Origin {
                principal: mesh_core::Principal {
                    user_id: "u".into(),
                    key_id: "k".into(),
                    role: mesh_core::Role::Member,
                    ..mesh_core::Principal::anonymous("o")
                },
                session_id: String::new(),
                client: None,
                route_kind: kind,
                route: route.into(),
            }),
            method,
            name: Some(name.into()),
            arguments: None,
            outcome: Outcome::Ok,
            error: None,
            latency_us: 10,
            bytes_in: 1,
            bytes_out: 2,
            request_id: "1".into(),
        }
    }

    #[test]
    fn what_a_caller_chooses_adds_no_rows_past_the_cap() {
        let mut t = Tally::new(UsageConfig { max_rows_per_org: 3, ..UsageConfig::default() });
        for i in 0..100 {
            // Made-up methods and REST paths count under one row each.
            t.add(&rec("connection", "files", Cow::Owned(format!("made/up/{i}")), "echo"));
            t.add(&rec("rest", &format!("/api/v1/x/{i}"), Cow::Owned(format!("GET /api/v1/x/{i}")), ""));
        }
        assert_eq!(t.sums.len(), 2);
        assert!(t.sums.keys().all(|k| k.method == "_OTHER"));
        assert!(t.sums.keys().any(|k| k.route_kind == "rest" && k.route.is_empty()));
        // Distinct names past the cap of the minute count as (other).
        for i in 0..100 {
            t.add(&rec("connection", "files", Cow::Borrowed("tools/call"), &format!("tool-{i}")));
        }
        assert_eq!(t.sums.len(), 4, "one more name, then (other)");
        assert_eq!(t.sums.keys().filter(|k| k.tool == OTHER_NAME).count(), 1);
        assert_eq!(t.sums.values().map(|s| s.calls).sum::<i64>(), 300, "every call still counted");
    }
}
