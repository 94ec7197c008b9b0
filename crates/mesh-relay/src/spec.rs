//! What the relay needs to reach one upstream: transport, address, credentials, limits.
//!
//! Built by the control plane from a stored connection with its secrets decrypted. Plaintext
//! credentials exist only inside these values, wrapped in [`Secret`] so they never reach a log.

use mesh_core::Secret;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A credential that changes while a link lives — an OAuth access token the control plane
/// refreshes before it expires — read by an HTTP link on every request (it must be cheap: a
/// cached value; renewing happens elsewhere).
pub trait Credential: Send + Sync + std::fmt::Debug {
    /// The bearer token to send now, if any.
    fn bearer(&self) -> Option<Arc<str>>;
}

/// One upstream MCP server, ready to connect to.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    /// The connection's slug, used in logs and error messages.
    pub name: String,
    /// How to reach it.
    pub transport: TransportSpec,
    /// How long one request may go without an answer (progress notifications extend it).
    pub timeout: Duration,
    /// Which network addresses the mesh may connect to for it (HTTP and SSE upstreams).
    pub reach: Reach,
    /// A live `Authorization: Bearer` credential for Streamable HTTP links (upstream OAuth); it
    /// replaces any configured Authorization header.
    pub credential: Option<Arc<dyn Credential>>,
}

/// Which addresses an HTTP or SSE upstream may resolve to when the mesh connects.
///
/// Decided by the control plane from who made the connection (docs/SECURITY.md): an
/// organisation's admin must not reach the host's loopback, private networks or the cloud
/// metadata address through the mesh. Checked on the resolved address at connect time, so a
/// name that resolves elsewhere later (DNS rebinding) is caught too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reach {
    /// Any address: the installation's operators configured it.
    #[default]
    Any,
    /// Public addresses only: no loopback, private, link-local, unique-local, or unspecified.
    Public,
}

/// Request fields the mesh writes itself on every upstream request (framing, hop-by-hop,
/// RFC 9110 §7.6.1, and the host): a connection's configured headers never carry them, and the control plane
/// refuses them when a connection is saved.
pub const MESH_OWNED_HEADERS: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "expect",
    "proxy-connection",
    // The URL names the host: a configured Host would send a request for one site to another.
    "host",
];

/// The three upstream transports MCP defines.
#[derive(Debug, Clone)]
pub enum TransportSpec {
    /// Streamable HTTP (2025-03-26 and later).
    Http {
        /// The MCP endpoint.
        url: url::Url,
        /// Extra request headers, e.g. `Authorization`; values are secret.
        headers: Vec<(String, Secret<String>)>,
    },
    /// The legacy HTTP+SSE transport (2024-11-05): GET an event stream, POST to the endpoint it names.
    Sse {
        /// The SSE endpoint.
        url: url::Url,
        /// Extra request headers; values are secret.
        headers: Vec<(String, Secret<String>)>,
    },
    /// A child process speaking newline-delimited JSON-RPC on stdin/stdout.
    Stdio {
        /// The program to run (looked up in `PATH`).
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Extra environment; values are secret.
        env: Vec<(String, Secret<String>)>,
        /// Working directory, if not the mesh's.
        cwd: Option<PathBuf>,
    },
    /// Not one server but every healthy provider of a capability (#22): each request goes to
    /// one of them (`upstream::balance`).
    Balanced {
        /// What the selector asks for, for logs and errors (`date_service tags=[system]`).
        selector: String,
        /// The providers now, kept current by the control plane.
        providers: Arc<dyn Providers>,
    },
}

/// The providers a capability selector balances over, kept current by the control plane from
/// the registry's health; read on every call, so it answers from memory.
pub trait Providers: Send + Sync + std::fmt::Debug {
    /// The providers now.
    fn current(&self) -> Arc<ProviderSet>;
}

/// One snapshot of a selector's providers.
#[derive(Debug, Default)]
pub struct ProviderSet {
    /// Changes whenever the set does, so a link rebuilds its view only then.
    pub version: u64,
    /// The healthy providers, in no particular order.
    pub providers: Vec<Provider>,
}

/// One provider of a capability: a registered agent and how to reach it.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Stable while the provider lives (its agent id).
    pub key: Arc<str>,
    /// Changes when how to reach it does (its connection was edited): the link reconnects.
    pub revision: i64,
    /// Its upstream (an agent's Streamable HTTP endpoint, with its connection's credentials).
    pub spec: UpstreamSpec,
    /// Its tools that serve the capability: the only ones listed, and a call of one goes only to
    /// providers that have it.
    pub tools: Vec<String>,
}

impl TransportSpec {
    /// The transport's short name, as stored and shown.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportSpec::Http { .. } => "http",
            TransportSpec::Sse { .. } => "sse",
            TransportSpec::Stdio { .. } => "stdio",
            TransportSpec::Balanced { .. } => "capability",
        }
    }
}
