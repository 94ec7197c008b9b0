//! The table of live downstream sessions, with idle expiry.

use super::Session;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// All live sessions, by id.
#[derive(Default)]
pub struct Sessions {
    /// foldhash, not SipHash: the ids are the mesh's own random strings; a caller can look one
    /// up but never choose what is stored.
    map: RwLock<foldhash::HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// Registers a session.
    pub fn insert(&self, s: Arc<Session>) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).insert(s.id.clone(), s);
    }

    /// Looks a session up by id.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Removes a session; the caller closes it.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.map.write().unwrap_or_else(|p| p.into_inner()).remove(id)
    }

    /// The sessions for which `pred` holds.
    pub fn matching(&self, pred: impl Fn(&Session) -> bool) -> Vec<Arc<Session>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).values().filter(|s| pred(s)).cloned().collect()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and closes sessions idle for longer than `idle`.
    pub async fn reap(&self, idle: Duration) -> usize {
        let cutoff = mesh_core::id::now_ms() - idle.as_millis() as i64;
        let expired: Vec<Arc<Session>> = {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            let ids: Vec<String> =
                map.values().filter(|s| s.last_active_ms() < cutoff && s.is_idle()).map(|s| s.id.clone()).collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for s in &expired {
            tracing::info!(session = %s.id, route = %s.label, "closing idle session");
            s.close().await;
        }
        expired.len()
    }

    /// Removes and closes every session (graceful shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Arc<Session>> =
            self.map.write().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, s)| s).collect();
        futures_util::future::join_all(all.iter().map(|s| s.close())).await;
    }
}
