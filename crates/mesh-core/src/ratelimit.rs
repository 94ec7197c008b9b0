//! Token buckets: the arithmetic of rate limits, without clocks of its own.

use std::time::{Duration, Instant};

/// What a limit is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitScope {
    /// One API key.
    Key,
    /// One user, across all their keys.
    User,
    /// One connection, across all callers of the organisation.
    Connection,
    /// One tool of one connection, across all callers of the organisation.
    Tool,
}

impl LimitScope {
    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<LimitScope> {
        match s {
            "key" => Some(LimitScope::Key),
            "user" => Some(LimitScope::User),
            "connection" => Some(LimitScope::Connection),
            "tool" => Some(LimitScope::Tool),
            _ => None,
        }
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Key => "key",
            LimitScope::User => "user",
            LimitScope::Connection => "connection",
            LimitScope::Tool => "tool",
        }
    }
}

/// A bucket holding up to `burst` tokens, refilled at `per_minute / 60` tokens a second.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(burst: u32, now: Instant) -> Bucket {
        Bucket { tokens: f64::from(burst), last: now }
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&mut self, per_minute: u32, burst: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(per_minute.max(1)) / 60.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst.max(1)));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }

    /// Whether the bucket has refilled completely by `now` (then it is the same as a new one).
    pub fn is_full(&self, per_minute: u32, burst: u32, now: Instant) -> bool {
        let rate = f64::from(per_minute.max(1)) / 60.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * rate >= f64::from(burst.max(1))
    }

    /// Returns a token taken by a call that another limit then refused.
    pub fn give_back(&mut self, burst: u32) {
        self.tokens = (self.tokens + 1.0).min(f64::from(burst.max(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3, t0);
        assert!(b.take(60, 3, t0).is_ok());
        assert!(b.take(60, 3, t0).is_ok());
        assert!(b.take(60, 3, t0).is_ok());
        let wait = b.take(60, 3, t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(b.take(60, 3, t0 + Duration::from_millis(1001)).is_ok(), "one token per second at 60/min");
        assert!(b.take(60, 3, t0 + Duration::from_millis(1002)).is_err());
        // Never more than the burst, however long it rested.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.take(60, 3, later).is_ok());
        }
        assert!(b.take(60, 3, later).is_err());
    }

    #[test]
    fn scopes_round_trip() {
        for s in [LimitScope::Key, LimitScope::User, LimitScope::Connection, LimitScope::Tool] {
            assert_eq!(LimitScope::parse(s.as_str()), Some(s));
        }
        assert_eq!(LimitScope::parse("org"), None);
    }
}
