//! Inbound Streamable HTTP: the routes clients talk to.
//!
//! The order of checks on every request is part of the security model:
//! 1. Origin/Host (DNS-rebinding defence) — before anything else reads the request;
//! 2. authentication — nothing below runs for anonymous callers;
//! 3. transport shape (Accept, Content-Type, body size, JSON-RPC envelope);
//! 4. session lookup, bound to the principal that created it (another key gets 404) — or, for
//!    a stateless request, the pooled session of its principal;
//! 5. the session's driver: authorize, rate-limit, forward (upstream credentials exist only
//!    inside the link), audit on every exit.
//!
//! A POST of either revision runs through one driver (`driver.rs`) that owns this order.

mod driver;
mod front;
mod guard;
mod modern;
mod respond;
mod streamable_http;

pub use front::Front;
pub use guard::bearer;

use crate::ports::{AuditSink, Authenticator, Governor, LocalService, RouteResolver};
use crate::session::registry::Sessions;
use crate::session::RouteKind as SessionKind;
use axum::routing::any;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// Transport-level settings of the inbound side.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Largest accepted POST body, in bytes.
    pub max_body_bytes: usize,
    /// Sessions without activity for this long are closed.
    pub session_idle: Duration,
    /// Accepted `Host` header values (host part, lowercase); `None` accepts any.
    pub allowed_hosts: Option<Vec<String>>,
    /// Accepted `Origin` values (`scheme://host[:port]`), besides loopback ones if allowed.
    pub allowed_origins: Vec<String>,
    /// Accept any `Origin` whose host is a loopback name or address.
    pub allow_loopback_origins: bool,
    /// Timeout for the management server's requests.
    pub management_timeout: Duration,
    /// Sessions one API key may hold at once (default 64: far more than one person's clients
    /// and agents use — most open a handful — yet a leaked or looping key cannot spawn more
    /// than 64 stdio children). Beyond it: 429.
    pub max_sessions_per_key: usize,
    /// Sessions one organisation may hold at once (default 1,000: one organisation cannot take
    /// the whole mesh). Beyond it: 429.
    pub max_sessions_per_org: usize,
    /// Sessions the mesh holds at once (default 10,000: each may be a child process, and with a
    /// few MiB per child this is what a large host can carry). Beyond it: 503.
    pub max_sessions: usize,
    /// Sessions one API key may open per minute on connections and gateways, also the burst
    /// (default 120: a client opens one session per server it uses, but `mcp-mesh call` in a
    /// script opens one per call, and two a second is still far from a child-spawning flood the
    /// per-key cap cannot see; 0 = unlimited). Beyond it: 429 with `Retry-After`. Management sessions (`/mcp`, one per
    /// CLI command, no upstream) are not rate-limited, only counted against the caps.
    pub session_opens_per_minute: u32,
    /// Where the mesh's protected-resource metadata lives, up to the endpoint's path
    /// (`{origin}/.well-known/oauth-protected-resource{issuer path}`, RFC 9728 §3.1), when it is
    /// an OAuth authorization server: a 401 then names the route's metadata (RFC 9728 §5.1) so
    /// that an MCP client can discover how to log in.
    pub oauth_metadata: Option<String>,
    /// What a script of a virtual MCP with the `code` strategy may use (`MESH_CODE_*`).
    pub code_limits: mesh_sandbox::Limits,
}

impl RelayConfig {
    /// The session caps in force.
    pub fn session_limits(&self) -> crate::session::caps::SessionLimits {
        crate::session::caps::SessionLimits {
            per_key: self.max_sessions_per_key,
            per_org: self.max_sessions_per_org,
            total: self.max_sessions,
            opens_per_minute: self.session_opens_per_minute,
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            max_body_bytes: 4 * 1024 * 1024,
            session_idle: Duration::from_secs(30 * 60),
            allowed_hosts: Some(guard::loopback_hosts()),
            allowed_origins: Vec::new(),
            allow_loopback_origins: true,
            management_timeout: Duration::from_secs(120),
            max_sessions_per_key: 64,
            max_sessions_per_org: 1_000,
            max_sessions: 10_000,
            session_opens_per_minute: 120,
            oauth_metadata: None,
            code_limits: mesh_sandbox::Limits::default(),
        }
    }
}

/// The data plane's shared state.
pub struct Relay {
    /// Live downstream sessions.
    pub sessions: Sessions,
    auth: Arc<dyn Authenticator>,
    routes: Arc<dyn RouteResolver>,
    management: Arc<dyn LocalService>,
    http: crate::upstream::UpstreamClients,
    cfg: RelayConfig,
    audit: Arc<dyn AuditSink>,
    governor: Arc<dyn Governor>,
    /// How fast each key opens sessions.
    opens: crate::session::caps::OpenRate,
    /// Pooled sessions and parked calls of stateless (2026-07-28) requests.
    modern: modern::State,
}

impl Relay {
    /// Assembles the relay.
    pub fn new(
        cfg: RelayConfig,
        auth: Arc<dyn Authenticator>,
        routes: Arc<dyn RouteResolver>,
        management: Arc<dyn LocalService>,
        http: crate::upstream::UpstreamClients,
        audit: Arc<dyn AuditSink>,
        governor: Arc<dyn Governor>,
    ) -> Arc<Relay> {
        let opens = Default::default();
        let modern = Default::default();
        Arc::new(Relay {
            sessions: Sessions::default(),
            auth,
            routes,
            management,
            http,
            cfg,
            audit,
            governor,
            opens,
            modern,
        })
    }

    /// The `/mcp` and `/mcp/{route}` routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/mcp", any(streamable_http::management))
            .route("/mcp/{route}", any(streamable_http::connection))
            .route("/mcp/gateway/{gateway}", any(streamable_http::gateway))
            // The same endpoints spelled with a trailing slash: an OAuth resource is canonical
            // without it, and a client that adds one must not land on a 404.
            .route("/mcp/", any(streamable_http::management))
            .route("/mcp/{route}/", any(streamable_http::connection))
            .route("/mcp/gateway/{gateway}/", any(streamable_http::gateway))
            .with_state(self.clone())
    }

    /// Starts the task that closes idle sessions (and forgets refilled session-open buckets);
    /// it stops when the relay is dropped.
    pub fn spawn_reaper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        // A session is closed between `session_idle` and `session_idle` + one tick after it went idle.
        let every = (self.cfg.session_idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(relay) = weak.upgrade() else { return };
                relay.opens.prune(std::time::Instant::now());
                // First: it marks the pooled sessions holding live tasks as active, so this
                // round's reap spares them.
                relay.modern.tidy(&relay);
                relay.sessions.reap(relay.cfg.session_idle).await;
            }
        });
    }

    /// Applies a changed (or deleted, or disabled) gateway definition to its open sessions: each
    /// is reconfigured and told of visible list changes, or ended when the gateway is gone.
    pub fn gateway_changed(self: &Arc<Self>, gateway_id: &str) {
        for s in self.sessions.matching(|s| s.route_kind == SessionKind::Gateway && s.route == gateway_id) {
            let relay = self.clone();
            tokio::spawn(async move {
                match relay.routes.resolve_gateway(&s.principal, &s.route).await {
                    Ok(def) => s.reconfigure(&def, &relay.http).await,
                    // A member this user has not authorized yet: the session goes on as it was;
                    // the next one they open asks for it.
                    Err(e @ crate::RelayError::AuthorizationRequired(_)) => {
                        tracing::info!(session = %s.id, gateway = %s.label, error = %e, "gateway changed; a member needs the user's authorization first");
                    }
                    Err(e) => {
                        tracing::info!(session = %s.id, gateway = %s.label, error = %e, "gateway gone; ending its session");
                        relay.sessions.remove(&s.id);
                        s.close().await;
                    }
                }
            });
        }
    }

    /// Open sessions per route kind, the upstream links they hold that are up and down (a
    /// virtual MCP's members one by one), and the streams clients are attached to, for the
    /// metrics.
    pub fn live_counts(&self) -> LiveCounts {
        self.live_counts_in(None)
    }

    /// [`Relay::live_counts`] of one organisation's sessions (`None`: all of them).
    pub fn live_counts_in(&self, org_id: Option<&str>) -> LiveCounts {
        let mut c = LiveCounts::default();
        for s in self.sessions.matching(|s| org_id.is_none_or(|o| s.principal.org_id == o)) {
            let i = match s.route_kind {
                SessionKind::Connection => 0,
                SessionKind::Gateway => 1,
                SessionKind::Management => 2,
            };
            c.sessions[i].1 += 1;
            c.streams += s.live_streams();
            match s.route_kind {
                SessionKind::Gateway => {
                    s.gateway_health().iter().for_each(|(_, up)| if *up { c.up += 1 } else { c.down += 1 })
                }
                SessionKind::Connection if s.is_dead() => c.down += 1,
                SessionKind::Connection => c.up += 1,
                SessionKind::Management => {}
            }
        }
        c
    }

    /// For a gateway: open sessions, and per member (slug, sessions where healthy, sessions).
    pub fn gateway_health(&self, gateway_id: &str) -> (usize, Vec<(String, usize, usize)>) {
        let sessions = self.sessions.matching(|s| s.route_kind == SessionKind::Gateway && s.route == gateway_id);
        let mut members: Vec<(String, usize, usize)> = Vec::new();
        for s in &sessions {
            for (slug, healthy) in s.gateway_health() {
                match members.iter_mut().find(|(m, ..)| *m == slug) {
                    Some(entry) => {
                        entry.1 += usize::from(healthy);
                        entry.2 += 1;
                    }
                    None => members.push((slug, usize::from(healthy), 1)),
                }
            }
        }
        (sessions.len(), members)
    }

    /// A connection was deleted, disabled, or pointed at another upstream: its direct sessions
    /// end (the next request answers 404 and the client opens a new session, if it still may).
    pub fn connection_ended(self: &Arc<Self>, connection_id: &str) {
        for s in self.sessions.matching(|s| s.route_kind == SessionKind::Connection && s.route == connection_id) {
            let relay = self.clone();
            tokio::spawn(async move {
                tracing::info!(session = %s.id, connection = %s.label, "connection deleted, disabled or changed; ending its session");
                relay.sessions.remove(&s.id);
                s.close().await;
            });
        }
    }

    /// A connection of `org_id` changed: gateways over all connections may have new members.
    pub fn connections_changed(self: &Arc<Self>, org_id: &str) {
        let ids: std::collections::HashSet<String> = self
            .sessions
            .matching(|s| s.route_kind == SessionKind::Gateway && s.principal.org_id == org_id)
            .into_iter()
            .map(|s| s.route.clone())
            .collect();
        for id in ids {
            self.gateway_changed(&id);
        }
    }

    /// The policy of `org_id` changed: every open session of it recomputes its access, and
    /// those whose access changed are told `list_changed`.
    pub fn policy_changed(&self, org_id: &str) {
        self.recompute_access(Some(org_id));
    }

    /// Every open session recomputes its access (changes may have been missed).
    pub fn policy_changed_everywhere(&self) {
        self.recompute_access(None);
    }

    fn recompute_access(&self, org_id: Option<&str>) {
        let wanted = |s: &crate::session::Session| {
            s.route_kind != SessionKind::Management && org_id.is_none_or(|o| s.principal.org_id == o)
        };
        for s in self.sessions.matching(wanted) {
            s.access_changed();
        }
    }

    /// Closes every session and its upstream (graceful shutdown).
    pub async fn shutdown(&self) {
        self.sessions.close_all().await;
    }
}

/// What [`Relay::live_counts`] answers.
#[derive(Debug, Clone)]
pub struct LiveCounts {
    /// Open sessions per route kind.
    pub sessions: [(&'static str, usize); 3],
    /// Upstream links that are up.
    pub up: usize,
    /// Upstream links that are down.
    pub down: usize,
    /// Streams clients are attached to (SSE responses in flight, GET streams).
    pub streams: usize,
}

impl Default for LiveCounts {
    fn default() -> Self {
        LiveCounts { sessions: [("connection", 0), ("gateway", 0), ("management", 0)], up: 0, down: 0, streams: 0 }
    }
}

/// The W3C trace context headers of a request, borrowed.
pub(crate) fn trace_parent(headers: &axum::http::HeaderMap) -> Option<mesh_core::trace::Parent<'_>> {
    let traceparent = headers.get("traceparent")?.to_str().ok()?;
    let tracestate = headers.get("tracestate").and_then(|v| v.to_str().ok());
    Some(mesh_core::trace::Parent { traceparent, tracestate })
}
