//! Limits on opening sessions: how many one API key, one organisation and the whole mesh may
//! hold at once, and how fast one key may open them.
//!
//! Each stdio session is a child process and every session holds upstream state, so opening
//! sessions is the one cheap request that costs the mesh dearly. The counts are kept by the
//! session table (`registry.rs`), changed only when a session is reserved, registered or removed:
//! a call on an open session never touches them. A slot is reserved *before* the upstream is
//! connected (before a child is spawned), so concurrent initializes cannot overshoot a cap.

use mesh_core::ratelimit::Bucket;
use mesh_core::Principal;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The limits in force (from `RelayConfig`).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Sessions one API key may hold (all anonymous callers of an organisation share one key).
    pub per_key: usize,
    /// Sessions one organisation may hold.
    pub per_org: usize,
    /// Sessions the whole mesh may hold.
    pub total: usize,
    /// Sessions one API key may open per minute on connections and gateways (also the burst);
    /// 0 means unlimited.
    pub opens_per_minute: u32,
}

/// Which cap refused a new session, with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCap {
    /// The API key holds `per_key` sessions.
    Key(usize),
    /// The organisation holds `per_org` sessions.
    Org(usize),
    /// The mesh holds `total` sessions.
    Total(usize),
}

impl fmt::Display for SessionCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FREE: &str = "close some (DELETE) or wait for idle ones to expire";
        match self {
            SessionCap::Key(n) => write!(f, "too many sessions for this API key ({n}); {FREE}"),
            SessionCap::Org(n) => write!(f, "too many sessions for this organisation ({n}); {FREE}"),
            SessionCap::Total(n) => write!(f, "the mesh is at its limit of {n} sessions; try again later"),
        }
    }
}

/// Who a session is counted against: (organisation, key). The organisation is part of the key's
/// identity because the anonymous principal has one key id in every organisation.
pub(super) type Owner = (String, String);

/// The owner of sessions opened by `p`.
pub(super) fn owner_of(p: &Principal) -> Owner {
    (p.org_id.clone(), p.key_id.clone())
}

/// Live (and reserved) sessions, per key, per organisation and in total.
#[derive(Default)]
pub(super) struct Counts {
    total: usize,
    /// foldhash: the keys are ids the mesh issued, not strings a caller picks.
    per_key: foldhash::HashMap<Owner, usize>,
    per_org: foldhash::HashMap<String, usize>,
}

impl Counts {
    /// Counts one more session for `owner`, unless a cap is reached. The narrowest cap is named
    /// first: it is the one the caller can do something about.
    ///
    /// `org_counted` is false for management sessions: they start no upstream, and counting
    /// them against the organisation would let any member, with keys of their own, fill it and
    /// lock its owners out of the management they need to stop it (issue #16 review).
    pub fn admit(&mut self, owner: &Owner, limits: &SessionLimits, org_counted: bool) -> Result<(), SessionCap> {
        let key = self.per_key.get(owner).copied().unwrap_or(0);
        let org = self.per_org.get(&owner.0).copied().unwrap_or(0);
        if key >= limits.per_key {
            return Err(SessionCap::Key(limits.per_key));
        }
        if org_counted && org >= limits.per_org {
            return Err(SessionCap::Org(limits.per_org));
        }
        if self.total >= limits.total {
            return Err(SessionCap::Total(limits.total));
        }
        self.total += 1;
        *self.per_key.entry(owner.clone()).or_default() += 1;
        if org_counted {
            *self.per_org.entry(owner.0.clone()).or_default() += 1;
        }
        Ok(())
    }

    /// Counts one session of `owner` less (it was removed, or its reservation was not used);
    /// `org_counted` as it was admitted.
    pub fn release(&mut self, owner: &Owner, org_counted: bool) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_key.get_mut(owner) {
            *n -= 1;
            if *n == 0 {
                self.per_key.remove(owner);
            }
        }
        if let Some(n) = self.per_org.get_mut(&owner.0).filter(|_| org_counted) {
            *n -= 1;
            if *n == 0 {
                self.per_org.remove(&owner.0);
            }
        }
    }

    /// Forgets everything (every session was removed at once).
    pub fn clear(&mut self) {
        *self = Counts::default();
    }

    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.total
    }
}

/// How fast each API key opens sessions: one token bucket per key, in memory (like the call
/// rate limits, counted per mesh process).
#[derive(Default)]
pub struct OpenRate {
    /// With each bucket, when it was last used: a bucket untouched for a full refill is full
    /// again, so it can be dropped (`prune`) and recreated full on the next open.
    buckets: Mutex<foldhash::HashMap<Owner, (Bucket, Instant)>>,
}

impl OpenRate {
    /// Takes one open for `p`, or says how long until one is allowed.
    pub fn take(&self, p: &Principal, per_minute: u32, now: Instant) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (bucket, used) = buckets.entry(owner_of(p)).or_insert_with(|| (Bucket::full(per_minute, now), now));
        *used = now;
        bucket.take(per_minute, per_minute, now)
    }

    /// Drops buckets that have refilled completely (the burst equals the per-minute rate, so a
    /// minute untouched refills any bucket); keeps the map as small as the keys in use.
    pub fn prune(&self, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.retain(|_, (_, used)| now.saturating_duration_since(*used) < Duration::from_secs(60));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(org: &str, key: &str) -> Owner {
        (org.into(), key.into())
    }

    const LIMITS: SessionLimits = SessionLimits { per_key: 2, per_org: 3, total: 4, opens_per_minute: 30 };

    #[test]
    fn caps_apply_per_key_then_per_org_then_in_total() {
        let mut c = Counts::default();
        let (a1, a2, b1) = (owner("a", "k1"), owner("a", "k2"), owner("b", "k1"));
        assert_eq!(c.admit(&a1, &LIMITS, true), Ok(()));
        assert_eq!(c.admit(&a1, &LIMITS, true), Ok(()));
        assert_eq!(c.admit(&a1, &LIMITS, true), Err(SessionCap::Key(2)), "the key's third");
        assert_eq!(c.admit(&a2, &LIMITS, true), Ok(()), "another key of the organisation");
        assert_eq!(c.admit(&a2, &LIMITS, true), Err(SessionCap::Org(3)), "the organisation's fourth");
        // The same key id in another organisation (the anonymous principal) is another owner.
        assert_eq!(c.admit(&b1, &LIMITS, true), Ok(()));
        assert_eq!(c.admit(&b1, &LIMITS, true), Err(SessionCap::Total(4)), "the mesh's fifth");
        assert_eq!(c.total(), 4);
        c.release(&a1, true);
        assert_eq!(c.admit(&b1, &LIMITS, true), Ok(()), "a released slot is free again");
        for o in [&a1, &a2, &b1, &b1] {
            c.release(o, true);
        }
        assert_eq!(c.total(), 0);
        assert!(c.per_key.is_empty() && c.per_org.is_empty(), "nothing kept for owners without sessions");
    }

    #[test]
    fn management_sessions_do_not_fill_the_organisation() {
        let mut c = Counts::default();
        let (a1, a2, a3) = (owner("a", "k1"), owner("a", "k2"), owner("a", "k3"));
        for o in [&a1, &a1, &a2] {
            assert_eq!(c.admit(o, &LIMITS, false), Ok(()));
        }
        assert_eq!(c.admit(&a1, &LIMITS, false), Err(SessionCap::Key(2)), "still one key's cap");
        assert_eq!(c.admit(&a3, &LIMITS, true), Ok(()), "the organisation's traffic still has room");
        assert_eq!(c.admit(&a3, &LIMITS, false), Err(SessionCap::Total(4)), "and the mesh's total holds");
        for o in [&a1, &a1, &a2] {
            c.release(o, false);
        }
        c.release(&a3, true);
        assert!(c.per_key.is_empty() && c.per_org.is_empty() && c.total() == 0);
    }

    #[test]
    fn messages_name_the_cap() {
        assert_eq!(
            SessionCap::Key(64).to_string(),
            "too many sessions for this API key (64); close some (DELETE) or wait for idle ones to expire"
        );
        assert!(SessionCap::Org(1000).to_string().contains("organisation (1000)"));
        assert!(SessionCap::Total(10_000).to_string().contains("limit of 10000 sessions"));
    }

    #[test]
    fn opens_are_rate_limited_per_key_and_pruned_when_refilled() {
        let rate = OpenRate::default();
        let t0 = Instant::now();
        let p = Principal::anonymous("org");
        let mut q = Principal::anonymous("org");
        q.key_id = "other".into();
        for _ in 0..30 {
            assert!(rate.take(&p, 30, t0).is_ok());
        }
        let wait = rate.take(&p, 30, t0).expect_err("the burst is spent");
        assert!(wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2), "{wait:?}");
        assert!(rate.take(&q, 30, t0).is_ok(), "another key has its own bucket");
        assert!(rate.take(&p, 30, t0 + Duration::from_secs(2)).is_ok(), "one token back after 2 s");
        assert!(rate.take(&p, 0, t0).is_ok(), "0 is unlimited");
        rate.prune(t0 + Duration::from_secs(30));
        assert_eq!(rate.len(), 2, "recently used buckets stay");
        rate.prune(t0 + Duration::from_secs(62));
        assert_eq!(rate.len(), 0, "refilled buckets go");
    }
}
