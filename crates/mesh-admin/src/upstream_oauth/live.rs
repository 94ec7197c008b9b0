//! The live credential of a session at an OAuth connection: the token it sends, renewed in the
//! background before it expires.

use crate::Admin;
use mesh_core::Principal;
use mesh_oauth::Grant;
use mesh_store::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// How long a live token whose renewal failed waits before it tries again.
const RETRY_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(30);

/// The live tokens of open sessions, by grant (`connection/subject`): a new authorization (a
/// step-up's wider scope) or a refresh reaches the sessions already open at once, instead of
/// at their next renewal — a client retrying the call a step-up refused must not meet the old
/// token again.
#[derive(Default)]
pub(crate) struct LiveTokens(Mutex<HashMap<String, Vec<Weak<LiveToken>>>>);

impl LiveTokens {
    fn add(&self, key: String, token: &Arc<LiveToken>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Sessions that ended are dropped as new ones come: the map stays as small as what is open.
        map.retain(|_, v| {
            v.retain(|w| w.strong_count() > 0);
            !v.is_empty()
        });
        map.entry(key).or_default().push(Arc::downgrade(token));
    }

    /// The upstream refused the token of `subject` at `connection_id`: the open sessions that
    /// still send it (a virtual MCP's goes on after a member's 401) renew it at their next use.
    pub(crate) fn refused(&self, connection_id: &str, subject: &str) {
        let key = format!("{connection_id}/{subject}");
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for token in map.get(&key).into_iter().flatten().filter_map(Weak::upgrade) {
            token.current.write().unwrap_or_else(|p| p.into_inner()).1 = Some(0);
        }
    }

    /// The grant of `subject` at `connection_id` now holds `grant`'s tokens.
    pub(crate) fn renewed(&self, connection_id: &str, subject: &str, grant: &Grant) {
        let Some(t) = grant.tokens.as_ref() else { return };
        let key = format!("{connection_id}/{subject}");
        let live: Vec<Arc<LiveToken>> = {
            let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&key).map(|v| v.iter().filter_map(Weak::upgrade).collect()).unwrap_or_default()
        };
        let current: (Arc<str>, Option<u64>) = (t.access_token.as_str().into(), t.renew_at());
        for token in live {
            *token.current.write().unwrap_or_else(|p| p.into_inner()) = current.clone();
        }
    }
}

/// A user's upstream token as a live credential of their open sessions: links read it on every
/// request (a lock read and a clock read), and the first read once it is due for renewal
/// (`Tokens::renew_at`: a minute before expiry, or a quarter of a short lifetime) starts one
/// refresh in the background, so that a long session never sends an expired token.
pub(crate) struct LiveToken {
    me: std::sync::Weak<LiveToken>,
    admin: Admin,
    principal: Principal,
    connection: Connection,
    /// The token, and when to renew it.
    current: std::sync::RwLock<(Arc<str>, Option<u64>)>,
    refreshing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for LiveToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveToken").field("connection", &self.connection.slug).finish_non_exhaustive()
    }
}

impl LiveToken {
    /// The credential for `p` at `c`, starting from `token`.
    pub(crate) fn new(admin: Admin, p: Principal, c: Connection, token: (String, Option<u64>)) -> Arc<LiveToken> {
        let key = format!("{}/{}", c.id, super::subject_of(&c, &p));
        let live = Arc::new_cyclic(|me| LiveToken {
            me: me.clone(),
            admin,
            principal: p,
            connection: c,
            current: std::sync::RwLock::new((token.0.into(), token.1)),
            refreshing: Default::default(),
        });
        live.admin.oauth.live.add(key, &live);
        live
    }
}

impl mesh_relay::Credential for LiveToken {
    fn bearer(&self) -> Option<Arc<str>> {
        use std::sync::atomic::Ordering;
        let (token, renew_at) = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        let due = renew_at.is_some_and(|at| at <= mesh_oauth::flow::now());
        if due && !self.refreshing.swap(true, Ordering::AcqRel) {
            if let Some(me) = self.me.upgrade() {
                tokio::spawn(async move {
                    // The grant's own single flight: one refresh however many sessions ask.
                    match me.admin.upstream_token(&me.principal, &me.connection).await {
                        Ok((t, at)) => *me.current.write().unwrap_or_else(|p| p.into_inner()) = (t.into(), at),
                        // Nothing better to send meanwhile (the upstream's 401 ends a direct
                        // session); asked again in a while, not on every request.
                        Err(e) => {
                            tracing::info!(connection = %me.connection.slug, error = %e, "live token not renewed");
                            let retry = mesh_oauth::flow::now() + RETRY_AFTER_FAILURE.as_secs();
                            me.current.write().unwrap_or_else(|p| p.into_inner()).1 = Some(retry);
                        }
                    }
                    me.refreshing.store(false, Ordering::Release);
                });
            }
        }
        Some(token)
    }
}
