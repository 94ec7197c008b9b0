//! The load loop: K workers, each on its own session, calling until a deadline or a call budget.
//!
//! Latencies are kept exactly (a sorted `Vec` of nanoseconds, not a histogram): a run records a
//! few million calls at most, and exact percentiles need no bucket-precision caveat.

use crate::client::{Call, Session};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When a slice ends: whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Wall-clock length of the slice.
    pub duration: Duration,
    /// Calls across all workers (`u64::MAX`: no limit).
    pub calls: u64,
}

/// What a set of calls measured. Merging samples of several slices keeps percentiles exact.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    /// Per-call latency in nanoseconds, successful calls only.
    pub latencies_ns: Vec<u64>,
    /// Calls that failed.
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Wall-clock time the workers were running.
    pub elapsed: Duration,
}

impl Samples {
    /// Adds another slice's samples.
    pub fn merge(&mut self, other: Samples) {
        self.latencies_ns.extend(other.latencies_ns);
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.elapsed += other.elapsed;
    }

    /// Successful calls.
    pub fn calls(&self) -> u64 {
        self.latencies_ns.len() as u64
    }

    /// Successful calls per second of wall-clock time.
    pub fn throughput(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.calls() as f64 / s
        } else {
            0.0
        }
    }

    /// The `q` quantile (0 < q ≤ 1) in milliseconds, nearest-rank; `None` without samples.
    /// Sorts in place (cheap when already sorted).
    pub fn quantile_ms(&mut self, q: f64) -> Option<f64> {
        if self.latencies_ns.is_empty() {
            return None;
        }
        self.latencies_ns.sort_unstable();
        let n = self.latencies_ns.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Some(self.latencies_ns[rank - 1] as f64 / 1e6)
    }

    /// Mean latency in milliseconds.
    pub fn mean_ms(&self) -> Option<f64> {
        if self.latencies_ns.is_empty() {
            return None;
        }
        Some(self.latencies_ns.iter().sum::<u64>() as f64 / self.latencies_ns.len() as f64 / 1e6)
    }
}

/// Runs `call` on every session concurrently until the budget is spent; gives the sessions back.
pub async fn slice(sessions: Vec<Session>, call: Call, budget: Budget) -> (Vec<Session>, Samples) {
    let claimed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + budget.duration;
    let workers: Vec<_> = sessions
        .into_iter()
        .map(|mut session| {
            let claimed = claimed.clone();
            tokio::spawn(async move {
                let mut out = Samples::default();
                while Instant::now() < deadline && claimed.fetch_add(1, Ordering::Relaxed) < budget.calls {
                    let t0 = Instant::now();
                    match session.call(call).await {
                        Ok(()) => out.latencies_ns.push(t0.elapsed().as_nanos() as u64),
                        Err(e) => {
                            out.errors += 1;
                            out.first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
                (session, out)
            })
        })
        .collect();
    let mut sessions = Vec::with_capacity(workers.len());
    let mut total = Samples::default();
    for w in workers {
        match w.await {
            Ok((s, samples)) => {
                sessions.push(s);
                total.merge(samples);
            }
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| format!("worker panicked: {e}"));
            }
        }
    }
    total.elapsed = start.elapsed();
    (sessions, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut s = Samples { latencies_ns: (1..=1000).rev().map(|i| i * 1_000).collect(), ..Samples::default() };
        assert_eq!(s.quantile_ms(0.5), Some(0.5));
        assert_eq!(s.quantile_ms(0.99), Some(0.99));
        assert_eq!(s.quantile_ms(0.999), Some(0.999));
        assert_eq!(s.quantile_ms(1.0), Some(1.0));
        assert_eq!(Samples::default().quantile_ms(0.5), None);
    }
}
