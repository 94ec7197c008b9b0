//! The table of live downstream sessions, with idle expiry and the session caps' counts.

use super::caps::{owner_of, Counts, Owner, SessionCap, SessionLimits};
use super::Session;
use mesh_core::Principal;
use std::sync::{Arc, RwLock, RwLockWriteGuard};
use std::time::Duration;

/// All live sessions, by id.
#[derive(Default)]
pub struct Sessions {
    table: RwLock<Table>,
}

#[derive(Default)]
struct Table {
    /// foldhash, not SipHash: the ids are the mesh's own random strings; a caller can look one
    /// up but never choose what is stored.
    map: foldhash::HashMap<String, Arc<Session>>,
    /// Registered sessions plus reserved slots, counted against the caps. Changed under the same
    /// lock as `map`, only when a session opens or goes: lookups (every call) never touch it.
    counts: Counts,
}

/// A place for one session, counted against the caps from the moment it is reserved: handed to
/// [`Sessions::insert`] once the session is open, or given back when dropped unused.
pub struct Slot<'a> {
    sessions: &'a Sessions,
    owner: Option<Owner>,
    org_counted: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            self.sessions.write().counts.release(&owner, self.org_counted);
        }
    }
}

/// Whether a session counts against its organisation's cap: management sessions do not
/// (`Counts::admit`).
fn org_counted(s: &Session) -> bool {
    s.route_kind != super::RouteKind::Management
}

impl Sessions {
    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves a slot for a session `principal` is about to open, or names the cap it would break.
    /// `management`: a session of the management server (not counted against the organisation).
    pub fn reserve(
        &self,
        principal: &Principal,
        limits: &SessionLimits,
        management: bool,
    ) -> Result<Slot<'_>, SessionCap> {
        let owner = owner_of(principal);
        self.write().counts.admit(&owner, limits, !management)?;
        Ok(Slot { sessions: self, owner: Some(owner), org_counted: !management })
    }

    /// Registers a session in the slot reserved for it.
    pub fn insert(&self, mut slot: Slot<'_>, s: Arc<Session>) {
        debug_assert!(slot.owner.as_ref().is_some_and(|o| *o == owner_of(&s.principal)), "the slot is the session's");
        debug_assert_eq!(slot.org_counted, org_counted(&s), "the slot was reserved for this kind of session");
        // The count moves from the slot to the registered session, which `remove` releases.
        slot.owner = None;
        self.write().map.insert(s.id.clone(), s);
    }

    /// Looks a session up by id.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).map.get(id).cloned()
    }

    /// Removes a session; the caller closes it.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let mut t = self.write();
        let s = t.map.remove(id)?;
        t.counts.release(&owner_of(&s.principal), org_counted(&s));
        Some(s)
    }

    /// The sessions for which `pred` holds.
    pub fn matching(&self, pred: impl Fn(&Session) -> bool) -> Vec<Arc<Session>> {
        let t = self.table.read().unwrap_or_else(|p| p.into_inner());
        t.map.values().filter(|s| pred(s)).cloned().collect()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.table.read().unwrap_or_else(|p| p.into_inner()).map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and closes sessions idle for longer than `idle`: no client activity since, nothing
    /// in flight, and no client connected to any of its streams (see `Session::is_idle`).
    pub async fn reap(&self, idle: Duration) -> usize {
        let cutoff = mesh_core::id::now_ms() - idle.as_millis() as i64;
        let expired = |s: &Session| s.last_active_ms() < cutoff && s.is_idle();
        // Looked for under no lock of the table's: every call's lookup takes it, and a scan of all
        // sessions (each one's own lock taken) must not hold them up, nor, holding the read lock,
        // keep a writer waiting that the lookups then queue behind. Only what it found is checked
        // again under the write lock, where a call can no longer pick the session up.
        let all: Vec<Arc<Session>> =
            self.table.read().unwrap_or_else(|p| p.into_inner()).map.values().cloned().collect();
        let found: Vec<String> = all.iter().filter(|s| expired(s)).map(|s| s.id.clone()).collect();
        drop(all);
        if found.is_empty() {
            return 0;
        }
        let expired: Vec<Arc<Session>> = {
            let mut t = self.write();
            let mut gone: Vec<Arc<Session>> = Vec::with_capacity(found.len());
            for id in &found {
                if t.map.get(id.as_str()).is_some_and(|s| expired(s)) {
                    gone.extend(t.map.remove(id));
                }
            }
            for s in &gone {
                t.counts.release(&owner_of(&s.principal), org_counted(s));
            }
            gone
        };
        for s in &expired {
            tracing::info!(session = %s.id, route = %s.label, "closing idle session");
            s.close().await;
        }
        expired.len()
    }

    /// Removes and closes every session (graceful shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Arc<Session>> = {
            let mut t = self.write();
            t.counts.clear();
            t.map.drain().map(|(_, s)| s).collect()
        };
        futures_util::future::join_all(all.iter().map(|s| s.close())).await;
    }
}
