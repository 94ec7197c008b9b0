//! The data plane alone: a real `Relay` on `127.0.0.1:0` with a fixed key and fixed routes, for
//! testing relay behaviour (virtual MCPs, streams) independently of the control plane.

use mesh_core::{Principal, Role};
use mesh_protocol::{codes, Message};
use mesh_relay::ingress::{Relay, RelayConfig};
use mesh_relay::ports::{Authenticator, LocalService, ResolvedGateway, ResolvedRoute, RouteResolver};
use mesh_relay::RelayError;
use std::collections::HashMap;
use std::sync::Arc;

/// The key every bare relay accepts.
pub const KEY: &str = "bare-test-key";

struct OneKey {
    open: bool,
}

impl Authenticator for OneKey {
    fn authenticate(&self, token: &str) -> Option<Principal> {
        (token == KEY).then(|| Principal {
            org_id: "org".into(),
            user_id: "usr".into(),
            key_id: "key".into(),
            role: Role::Owner,
            custom_role: None,
            operator: false,
            manage: true,
            key_expires_at: None,
            audience: None,
        })
    }

    fn anonymous(&self, route: &str) -> Option<Principal> {
        (self.open && route.starts_with("gateway/")).then(|| Principal::anonymous("org"))
    }
}

struct Fixed {
    gateways: Arc<std::sync::RwLock<HashMap<String, ResolvedGateway>>>,
}

#[async_trait::async_trait]
impl RouteResolver for Fixed {
    async fn resolve(&self, _p: &Principal, route: &str) -> Result<ResolvedRoute, RelayError> {
        Err(RelayError::RouteNotFound(route.into()))
    }

    async fn resolve_gateway(&self, _p: &Principal, g: &str) -> Result<ResolvedGateway, RelayError> {
        let gateways = self.gateways.read().unwrap_or_else(|p| p.into_inner());
        gateways.values().find(|d| d.slug == g || d.id == g).cloned().ok_or_else(|| RelayError::RouteNotFound(g.into()))
    }
}

struct NoManagement;

#[async_trait::async_trait]
impl LocalService for NoManagement {
    async fn handle(&self, _p: &Principal, req: &Message) -> Message {
        Message::error(req.id(), codes::METHOD_NOT_FOUND, "no management here", None)
    }
}

/// A running bare relay.
pub struct BareRelay {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The relay, for inspecting sessions.
    pub relay: Arc<Relay>,
    table: Arc<std::sync::RwLock<HashMap<String, ResolvedGateway>>>,
    task: tokio::task::JoinHandle<()>,
}

impl BareRelay {
    /// Serves the given gateways at `/mcp/gateway/{slug}`, to the one key only.
    pub async fn start(gateways: Vec<ResolvedGateway>) -> BareRelay {
        Self::start_with(gateways, false).await
    }

    /// Serves the given gateways, also to anonymous callers when `open` (for clients that send
    /// no credentials, like the conformance suite).
    pub async fn start_with(gateways: Vec<ResolvedGateway>, open: bool) -> BareRelay {
        crate::init_logs();
        let table = Arc::new(std::sync::RwLock::new(gateways.into_iter().map(|g| (g.slug.clone(), g)).collect()));
        let routes = Fixed { gateways: table.clone() };
        let relay = Relay::new(
            // One caller (one key, or every anonymous one) driving whole suites: no open rate.
            RelayConfig { session_opens_per_minute: 0, ..RelayConfig::default() },
            Arc::new(OneKey { open }),
            Arc::new(routes),
            Arc::new(NoManagement),
            mesh_relay::UpstreamClients::default(),
            Arc::new(mesh_core::audit::NoAudit),
            Arc::new(mesh_relay::ports::Ungoverned),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let router = relay.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        BareRelay { url: format!("http://127.0.0.1:{port}"), relay, table, task }
    }

    /// Replaces (or, with `None`, deletes) a gateway definition and tells the relay, as the
    /// control plane does after a change.
    pub fn change_gateway(&self, slug: &str, def: Option<ResolvedGateway>) {
        let id = {
            let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
            let id = t.get(slug).map(|d| d.id.clone());
            match def {
                Some(d) => {
                    t.insert(slug.to_string(), d);
                }
                None => {
                    t.remove(slug);
                }
            }
            id
        };
        if let Some(id) = id {
            self.relay.gateway_changed(&id);
        }
    }

    /// The endpoint of a gateway.
    pub fn gateway(&self, slug: &str) -> String {
        format!("{}/mcp/gateway/{slug}", self.url)
    }

    /// Closes every session (stopping children) and the server.
    pub async fn stop(self) {
        self.relay.shutdown().await;
        self.task.abort();
    }
}
