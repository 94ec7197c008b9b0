//! The control plane of MCP Mesh: services for every management operation, and the management
//! MCP server at `/mcp` that exposes them as tools.
//!
//! The management tools, the CLI (through them) and later REST and the dashboard all call the same
//! service functions, where authorization is decided, so they cannot disagree about who may do
//! what. Handlers never touch SQL or plaintext secrets directly: the store holds ciphertext, the
//! vault seals and opens it, and plaintext exists only in the `UpstreamSpec` handed to the relay.
#![forbid(unsafe_code)]

pub mod apikeys;
pub mod audit;
pub mod bootstrap;
pub mod browser;
pub mod catalogue;
pub mod connections;
pub mod error;
pub mod gateways;
pub mod governance;
pub mod import;
pub mod keys;
pub mod limits;
pub mod oauth;
pub mod orgs;
pub mod registry;
pub mod roles;
pub mod templates;
pub mod tools;
pub mod trust;
pub mod upstream_oauth;
pub mod usage;
pub mod vault;

pub use error::AdminError;

use mesh_store::Store;
use mesh_vault::Keyring;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Everything the services need, shared by all of them.
#[derive(Clone)]
pub struct Admin {
    /// The database.
    pub store: Store,
    /// The vault's keys; write-locked only while rotating.
    pub keyring: Arc<RwLock<Keyring>>,
    /// Where the key file and owner key live.
    pub data_dir: PathBuf,
    /// API keys, in memory, for per-request authentication.
    pub keys: Arc<keys::KeyCache>,
    /// Policies and rate limits, in memory, for per-call decisions.
    pub policies: Arc<governance::Policies>,
    /// The pooled HTTP clients for upstreams, one per `Reach` (used by `CONNECTION_TEST`;
    /// `McpClient::connect` picks the spec's).
    pub http: mesh_relay::UpstreamClients,
    /// The audit trail's writer (queries flush it first, to read their own writes).
    pub audit: Arc<mesh_audit::AuditLog>,
    /// Announces configuration changes the data plane must apply to open sessions.
    pub changes: tokio::sync::broadcast::Sender<Change>,
    /// Live state of the data plane, set once the relay exists (it is built after the admin).
    pub live: Arc<std::sync::OnceLock<Arc<dyn LiveStatus>>>,
    /// Who may reach the host: stdio commands, internal networks, new organisations.
    pub trust: trust::Trust,
    /// Where stdio children without a working directory of their own start: a private folder
    /// made for this process (one folder per connection below it; never the mesh's working or
    /// data directory), removed when the mesh stops.
    pub children_dir: Arc<tempfile::TempDir>,
    /// The OAuth authorization server: settings and in-memory state (login throttling, client
    /// metadata documents, registration limits).
    pub oauth: Arc<oauth::OAuth>,
    /// Connections' tool lists fetched recently (`CONNECTION_TOOLS`).
    pub tool_lists: Arc<connections::catalog::ToolLists>,
    /// The providers of capability connections in use, kept current by the registry's sweep.
    pub selectors: Arc<registry::Selectors>,
}

/// What the data plane can tell the control plane about open sessions.
pub trait LiveStatus: Send + Sync + 'static {
    /// For a gateway: the number of open sessions, and per member slug how many of those
    /// sessions have it healthy, out of how many.
    fn gateway_members(&self, gateway_id: &str) -> (usize, Vec<(String, usize, usize)>);
}

/// A configuration change that open MCP sessions must follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A gateway was changed, disabled or deleted.
    Gateway {
        /// Its id.
        id: String,
    },
    /// A connection of this organisation was created, changed or deleted (gateways over all
    /// connections may have new members).
    Connections {
        /// The organisation.
        org_id: String,
    },
    /// A connection was deleted, disabled, or given another upstream: its direct sessions end
    /// (a `Connections` change follows for the gateways).
    ConnectionEnded {
        /// Its id.
        id: String,
    },
    /// Roles, members, keys' narrowing or rate limits of this organisation changed: open
    /// sessions recompute what they may see.
    Access {
        /// The organisation.
        org_id: String,
    },
}

impl Admin {
    /// Reloads keys, tokens and policies from the store, in order with any other reload.
    pub(crate) async fn reload_access(&self) -> Result<(), AdminError> {
        let _order = self.keys.reloading.lock().await;
        let rows = governance::AccessRows::load(&self.store).await?;
        rows.apply_to(&self.keys, &self.policies);
        Ok(())
    }

    /// Announces a change; nobody listening (tests, tools) is fine.
    pub(crate) fn announce(&self, change: Change) {
        let _ = self.changes.send(change);
    }

    /// Reloads keys and policies after a change to who may do what in `org_id`, before the
    /// caller is answered (so it holds on the very next request), and tells open sessions.
    pub(crate) async fn access_changed(&self, org_id: &str) -> Result<(), AdminError> {
        self.reload_access().await?;
        self.announce(Change::Access { org_id: org_id.to_string() });
        Ok(())
    }
}
