//! Wires MCP Mesh together: configuration, first-start bootstrap, HTTP routes, graceful shutdown.
//!
//! The server is a library so that tests run the real thing in-process: `Mesh::build` then
//! `Mesh::serve` on a listener bound to `127.0.0.1:0`, with a shutdown future.
#![forbid(unsafe_code)]

mod catalogue;
pub mod config;
mod health;
mod metrics;
mod oauth;
mod registry;
mod rest;
mod rest_config;
mod rest_oauth;

pub use config::Config;

use anyhow::Context;
use axum::ServiceExt;
use mesh_admin::{connections::Routes, keys::KeyCache, tools::ManagementServer, Admin};
use mesh_core::Secret;
use mesh_relay::ingress::{Relay, RelayConfig};
use mesh_store::Store;
use mesh_vault::Keyring;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long in-flight requests get to finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A built mesh, ready to serve.
pub struct Mesh {
    /// The data plane.
    pub relay: Arc<Relay>,
    /// The control plane.
    pub admin: Admin,
    /// The owner key, on the start that created it only.
    pub owner_key: Option<Secret<String>>,
    /// The header a proxy in front names the client's address in (`MESH_CLIENT_IP_HEADER`).
    client_ip_header: Option<axum::http::HeaderName>,
    /// The metrics every request is counted into.
    pub metrics: Arc<mesh_telemetry::Metrics>,
    /// SHA-256 of `MESH_METRICS_TOKEN`, and `MESH_METRICS_LISTEN`.
    metrics_token: Option<[u8; 32]>,
    metrics_listen: Option<std::net::SocketAddr>,
    registry_settings: mesh_admin::registry::RegistrySettings,
    /// The tracer, when `OTEL_*` configures one.
    pub tracing: Option<Arc<mesh_telemetry::Tracing>>,
    /// Where metrics are pushed, when `OTEL_*` says.
    metrics_export: Option<mesh_telemetry::MetricsExport>,
    /// `MESH_PUBLIC_URL`, without a trailing slash.
    public_url: Option<String>,
}

impl Mesh {
    /// Opens storage and the vault, bootstraps on first start, and assembles the relay.
    pub async fn build(cfg: &Config) -> anyhow::Result<Mesh> {
        cfg.ensure_data_dir()?;
        let old: Vec<String> = cfg.old_encryption_keys.iter().map(|k| k.expose().clone()).collect();
        let keyring =
            Keyring::load_or_create(&cfg.data_dir, cfg.encryption_key.as_ref().map(|k| k.expose().as_str()), &old)
                .context("cannot open the vault keyring")?;
        let store = Store::connect(cfg.database_url().expose()).await.context("cannot open the database")?;
        tracing::info!(backend = store.backend_name(), "database ready");
        let owner_key = mesh_admin::bootstrap::ensure_owner(&store, &cfg.data_dir).await?;
        let keys = Arc::new(KeyCache::default());
        let access =
            mesh_admin::governance::AccessRows::load(&store).await.context("cannot load API keys and policies")?;
        let policies = Arc::new(mesh_admin::governance::Policies::default());
        access.apply_to(&keys, &policies);
        keys.reload_anonymous(&store).await.context("cannot load anonymous routes")?;
        let http = cfg.upstream_clients()?;
        let audit_cfg = mesh_audit::AuditConfig {
            retention: mesh_audit::retention_days(cfg.audit_retention_days),
            ..mesh_audit::AuditConfig::default()
        };
        let audit = mesh_audit::AuditLog::start(store.clone(), audit_cfg);
        let oauth = Arc::new(mesh_admin::oauth::OAuth::new(oauth_settings(cfg, &store, &keyring).await?));
        let admin = Admin {
            store,
            keyring: Arc::new(RwLock::new(keyring)),
            data_dir: cfg.data_dir.clone(),
            keys: keys.clone(),
            policies: policies.clone(),
            http: http.clone(),
            audit: audit.clone(),
            changes: tokio::sync::broadcast::channel(256).0,
            live: Arc::default(),
            trust: cfg.trust,
            oauth,
            tool_lists: Arc::default(),
            selectors: Arc::new(mesh_admin::registry::Selectors::new(cfg.registry.unhealthy_after)),
            children_dir: Arc::new(
                tempfile::Builder::new()
                    .prefix("mcp-mesh-children-")
                    .tempdir()
                    .context("cannot create the directory stdio children start in")?,
            ),
        };
        let metrics = Arc::new(mesh_telemetry::Metrics::new());
        // Counted on the request path as each request ends, before its record is queued.
        let metered: Arc<dyn mesh_core::audit::AuditSink> =
            Arc::new(mesh_telemetry::MeteredSink { metrics: metrics.clone(), inner: audit });
        let tracing = match &cfg.tracing {
            Some(t) => {
                let tracing = mesh_telemetry::Tracing::start(t).map_err(anyhow::Error::msg)?;
                tracing::info!(
                    endpoint = t.endpoint.as_deref().unwrap_or("from OTEL_EXPORTER_OTLP_*"),
                    "tracing on: spans export over OTLP/HTTP"
                );
                Some(tracing)
            }
            None => None,
        };
        let reporter: Arc<dyn mesh_core::audit::AuditSink> = match &tracing {
            Some(t) => Arc::new(mesh_telemetry::Traced { tracing: t.clone(), inner: metered }),
            None => metered,
        };
        let relay = Relay::new(
            relay_config(cfg),
            keys,
            Arc::new(Routes(admin.clone())),
            Arc::new(ManagementServer::new(admin.clone())),
            http,
            reporter,
            policies,
        );
        follow_changes(&admin, &relay);
        let _ = admin.live.set(Arc::new(LiveRelay(Arc::downgrade(&relay))));
        let client_ip_header = match &cfg.client_ip_header {
            Some(h) => Some(
                axum::http::HeaderName::try_from(h.as_str()).context("MESH_CLIENT_IP_HEADER is not a header name")?,
            ),
            None => None,
        };
        if cfg.metrics_token.is_none() && cfg.metrics_listen.is_some_and(|a| !a.ip().is_loopback()) {
            tracing::warn!("MESH_METRICS_LISTEN is beyond loopback without MESH_METRICS_TOKEN: anyone who reaches it reads the metrics");
        }
        Ok(Mesh {
            relay,
            admin,
            owner_key,
            client_ip_header,
            metrics,
            metrics_token: cfg.metrics_token.as_ref().map(|t| metrics::digest(t.expose())),
            metrics_listen: cfg.metrics_listen,
            registry_settings: cfg.registry,
            tracing,
            metrics_export: cfg.metrics_export.clone(),
            public_url: cfg.public_url.as_ref().map(|u| u.as_str().trim_end_matches('/').to_string()),
        })
    }

    /// All routes.
    pub fn router(&self) -> axum::Router {
        self.relay
            .router()
            .merge(health::router(self.admin.store.clone()))
            .merge(rest::router(self.admin.clone()))
            .merge(rest_config::router(self.admin.clone()))
            .merge(rest_oauth::router(self.admin.clone()))
            .merge(oauth::router(oauth::Ctx { admin: self.admin.clone(), ip_header: self.client_ip_header.clone() }))
            .merge(metrics::router(self.scrape(self.metrics_token.is_some())))
            .merge(self.dashboard())
            .merge(registry::router(self.registry(), self.relay.router()))
            .merge(catalogue::router(self.admin.clone(), self.public_url.clone()))
            .fallback(health::not_found)
    }

    /// The agent registry.
    fn registry(&self) -> mesh_admin::registry::Registry {
        mesh_admin::registry::Registry { admin: self.admin.clone(), settings: self.registry_settings }
    }

    /// The web dashboard at `/`.
    fn dashboard(&self) -> axum::Router {
        let relay = Arc::downgrade(&self.relay);
        mesh_dashboard::router(mesh_dashboard::Dashboard {
            admin: self.admin.clone(),
            tools: Arc::new(ManagementServer::new(self.admin.clone())),
            mcp: self.relay.router(),
            live: Arc::new(move |org: &str| {
                let c = relay.upgrade().map(|r| r.live_counts_in(Some(org))).unwrap_or_default();
                (c.sessions.iter().map(|(_, n)| n).sum(), c.streams, c.up, c.down)
            }),
            public_url: self.public_url.clone(),
            ip_header: self.client_ip_header.clone(),
            playground: Default::default(),
        })
    }

    fn scrape(&self, enabled: bool) -> metrics::Scrape {
        metrics::Scrape {
            metrics: self.metrics.clone(),
            relay: Arc::downgrade(&self.relay),
            audit: self.admin.audit.clone(),
            tracing: self.tracing.clone(),
            token: self.metrics_token,
            enabled,
        }
    }

    /// Binds `MESH_METRICS_LISTEN`, if set, and serves `/metrics` there until `stop` resolves.
    async fn serve_metrics(
        &self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        let Some(addr) = self.metrics_listen else { return Ok(None) };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on MESH_METRICS_LISTEN {addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
        let app = metrics::router(self.scrape(true)).fallback(health::not_found);
        Ok(Some(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        })))
    }

    /// Serves until `shutdown` resolves, then closes every session (stopping stdio children),
    /// flushes pending writes, and returns.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.relay.spawn_reaper();
        let registry = self.registry();
        let sweeper = tokio::spawn(async move {
            // Often enough that an agent is marked unhealthy within a second of its deadline,
            // so that the others hear of it on their next heartbeat.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = registry.sweep().await {
                    tracing::warn!(error = %e, "registry sweep failed");
                }
            }
        });
        let (keys, store) = (self.admin.keys.clone(), self.admin.store.clone());
        let flusher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            let mut last_prune = std::time::Instant::now();
            loop {
                tick.tick().await;
                keys.flush_usage(&store).await;
                // Expired OAuth codes, tokens and login sessions are only kept to be refused;
                // once expired they are refused without them.
                if last_prune.elapsed() >= Duration::from_secs(3600) {
                    last_prune = std::time::Instant::now();
                    if let Err(e) = store.prune_oauth(mesh_core::id::now_ms()).await {
                        tracing::warn!(error = %e, "could not prune expired OAuth records");
                    }
                }
            }
        });
        let relay = self.relay.clone();
        let stopping = Arc::new(tokio::sync::Notify::new());
        let stopping2 = stopping.clone();
        let metrics_stop = Arc::new(tokio::sync::Notify::new());
        let metrics_stopped = metrics_stop.clone();
        let metrics_server = self.serve_metrics(async move { metrics_stopped.notified().await }).await?;
        let pusher = self.metrics_export.clone().map(|cfg| {
            tracing::info!(endpoint = %cfg.endpoint, every = ?cfg.interval, "metrics pushed over OTLP/HTTP");
            let scrape = self.scrape(true);
            mesh_telemetry::otlp_metrics::spawn(cfg, self.metrics.clone(), move || metrics::refresh(&scrape))
        });
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: closing sessions");
            stopping2.notify_one();
            // Ending sessions ends their SSE streams, which lets in-flight responses complete.
            relay.shutdown().await;
        };
        // `with_state(())` once here, as `axum::serve` would per connection for a router: the
        // fallback handler is then converted once, not on every 404.
        let front = mesh_relay::ingress::Front::new(self.relay.clone(), self.router().with_state(()));
        // With the peer's address: the login backoff and the registration limit count per address.
        let server = axum::serve(listener, front.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(signal);
        tokio::select! {
            r = server => r.context("server failed")?,
            _ = async { stopping.notified().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
                tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; closing them");
                self.relay.shutdown().await;
            }
        }
        flusher.abort();
        sweeper.abort();
        if let Some(p) = pusher {
            p.abort();
        }
        metrics_stop.notify_one();
        if let Some(m) = metrics_server {
            let _ = m.await;
        }
        self.admin.keys.flush_usage(&self.admin.store).await;
        // After the relay: closing sessions ends their in-flight requests, which are recorded.
        self.admin.audit.shutdown().await;
        if let Some(t) = self.tracing.clone() {
            // The last batch is exported (bounded by the exporter's timeout) on a blocking thread.
            let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
        }
        self.admin.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The relay's live state, as the control plane asks for it.
struct LiveRelay(std::sync::Weak<Relay>);

impl mesh_admin::LiveStatus for LiveRelay {
    fn gateway_members(&self, gateway_id: &str) -> (usize, Vec<(String, usize, usize)>) {
        self.0.upgrade().map(|r| r.gateway_health(gateway_id)).unwrap_or_default()
    }
}

/// Applies control-plane changes to open sessions (a gateway edited, a connection added).
fn follow_changes(admin: &Admin, relay: &Arc<Relay>) {
    let mut rx = admin.changes.subscribe();
    let relay = Arc::downgrade(relay);
    tokio::spawn(async move {
        loop {
            let change = match rx.recv().await {
                Ok(c) => c,
                // Missed some: sessions may be stale; the next change or reconnect catches up.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "configuration changes were missed by open sessions");
                    // Missing an access change must not leave a session more permissive than
                    // its rules: recompute every session's access.
                    if let Some(relay) = relay.upgrade() {
                        relay.policy_changed_everywhere();
                    }
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let Some(relay) = relay.upgrade() else { return };
            match change {
                mesh_admin::Change::Gateway { id } => relay.gateway_changed(&id),
                mesh_admin::Change::Connections { org_id } => relay.connections_changed(&org_id),
                mesh_admin::Change::ConnectionEnded { id } => relay.connection_ended(&id),
                mesh_admin::Change::Access { org_id } => relay.policy_changed(&org_id),
            }
        }
    });
}

/// The authorization server's settings from the configuration; single sign-on's client secret
/// is sealed into the vault when given, and opened from it when not.
async fn oauth_settings(
    cfg: &Config,
    store: &Store,
    keyring: &Keyring,
) -> anyhow::Result<mesh_admin::oauth::OAuthSettings> {
    let o = &cfg.oauth;
    let mut s = mesh_admin::oauth::OAuthSettings::new(&cfg.issuer());
    s.access_ttl = Duration::from_secs(o.access_ttl_secs.max(1));
    s.refresh_ttl = Duration::from_secs(o.refresh_ttl_days.max(1) * 86_400);
    s.dynamic_registration = o.dynamic_registration;
    s.registrations_per_hour = o.registrations_per_hour;
    if o.documents_from_private {
        s.document_reach = mesh_relay::Reach::Any;
    }
    if let Some(oidc) = &o.oidc {
        const NAME: &str = "oidc_client_secret";
        let aad = format!("installation/{NAME}/{}", oidc.issuer);
        let secret = match &oidc.client_secret {
            Some(given) => {
                let sealed = keyring.seal(given.expose().as_bytes(), aad.as_bytes())?;
                let stored = serde_json::json!({"keyId": sealed.key_id, "ciphertext": sealed.ciphertext}).to_string();
                store.set_installation_value(NAME, &stored).await?;
                given.expose().clone()
            }
            None => {
                let stored = store.installation_value(NAME).await?.context(
                    "single sign-on is configured without MESH_OIDC_CLIENT_SECRET, and none is sealed in the vault yet",
                )?;
                let v: serde_json::Value =
                    serde_json::from_str(&stored).context("the sealed SSO secret is unreadable")?;
                let plain = keyring
                    .open(v["keyId"].as_str().unwrap_or(""), v["ciphertext"].as_str().unwrap_or(""), aad.as_bytes())
                    .context("the sealed SSO secret does not open (another issuer, or a vault key is missing): give MESH_OIDC_CLIENT_SECRET again")?;
                String::from_utf8(plain).context("the sealed SSO secret is not text")?
            }
        };
        // OpenID Connect Core §3.1.3.7: the ID token's signature is not checked because it comes
        // straight from the provider over TLS, so TLS it must be (loopback, for tests, aside).
        let provider = url::Url::parse(&oidc.issuer).context("MESH_OIDC_ISSUER is not a URL")?;
        let loopback = match provider.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        anyhow::ensure!(
            provider.scheme() == "https" || (provider.scheme() == "http" && loopback),
            "MESH_OIDC_ISSUER must be an https:// URL"
        );
        mesh_core::Role::parse(&oidc.role)
            .filter(|r| *r != mesh_core::Role::Owner)
            .with_context(|| format!("MESH_OIDC_ROLE must be admin, member or viewer, not '{}'", oidc.role))?;
        s.sso = Some(mesh_admin::oauth::login::SsoSettings {
            issuer: oidc.issuer.trim_end_matches('/').to_string(),
            client_id: oidc.client_id.clone(),
            client_secret: Secret::new(secret),
            org: oidc.org.clone(),
            role: oidc.role.clone(),
            label: oidc.label.clone(),
            domains: oidc.domains.clone(),
        });
    }
    Ok(s)
}

/// `{origin}/.well-known/oauth-protected-resource{issuer path}`: what an endpoint's path is
/// appended to for its protected-resource metadata.
fn metadata_base(issuer: &str) -> String {
    match url::Url::parse(issuer) {
        Ok(u) => format!(
            "{}/.well-known/oauth-protected-resource{}",
            u.origin().ascii_serialization(),
            u.path().trim_end_matches('/')
        ),
        Err(_) => format!("{issuer}/.well-known/oauth-protected-resource"),
    }
}

fn relay_config(cfg: &Config) -> RelayConfig {
    let loopback = cfg.listen.ip().is_loopback();
    let mut hosts: Vec<String> = cfg.allowed_hosts.clone();
    let mut origins: Vec<String> = cfg.allowed_origins.clone();
    if let Some(u) = &cfg.public_url {
        if let Some(h) = u.host_str() {
            hosts.push(h.to_ascii_lowercase());
        }
        origins.push(u.origin().ascii_serialization().to_ascii_lowercase());
    }
    let allowed_hosts = if loopback {
        // Bound to loopback: only loopback names (and configured ones) may reach us, which is
        // what defeats DNS rebinding (spec: basic/transports, security warning).
        hosts.extend(["localhost", "127.0.0.1", "[::1]"].map(String::from));
        Some(hosts)
    } else if hosts.is_empty() {
        None
    } else {
        Some(hosts)
    };
    RelayConfig {
        max_body_bytes: cfg.max_body_bytes,
        session_idle: cfg.session_idle,
        allowed_hosts,
        allowed_origins: origins,
        allow_loopback_origins: loopback,
        max_sessions: cfg.max_sessions,
        max_sessions_per_org: cfg.max_sessions_per_org,
        max_sessions_per_key: cfg.max_sessions_per_key,
        session_opens_per_minute: cfg.session_open_per_minute,
        oauth_metadata: Some(metadata_base(&cfg.issuer())),
        code_limits: cfg.code_limits,
        ..RelayConfig::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn protected_resource_metadata_lives_at_the_origin_with_the_issuer_path_after_it() {
        assert_eq!(
            super::metadata_base("https://mesh.example.com"),
            "https://mesh.example.com/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            super::metadata_base("https://example.com/mesh"),
            "https://example.com/.well-known/oauth-protected-resource/mesh"
        );
        assert_eq!(
            super::metadata_base("http://127.0.0.1:3000"),
            "http://127.0.0.1:3000/.well-known/oauth-protected-resource"
        );
    }
}
