//! The MCP data plane: inbound Streamable HTTP, downstream sessions, and upstream transports.
//!
//! Vocabulary (after linkerd): a *route* names what a client asked for (`/mcp/{connection}`);
//! a [`spec::UpstreamSpec`] is the concrete upstream behind it (URL or command, with credentials);
//! a [`upstream::Link`] is one live upstream MCP session over one transport.
//!
//! Every downstream session owns one upstream session, initialised with the downstream client's
//! own `initialize` request. That is what lets the upstream send sampling, elicitation and roots
//! requests exactly when the real client declared them, and what makes routing a server→client
//! request back "to the right session" true by construction. The cost is one upstream handshake
//! per downstream session — never one per call.
//!
//! Messages are relayed as raw bytes (see `mesh_protocol::Message`); only ids are rewritten.
//!
//! What the relay needs from the rest of the mesh — who a token is, where a route goes, what a
//! principal may do, where audit records go, the management server — it asks through the traits
//! in [`ports`], which the ingress and the sessions both use and the control plane implements.
#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod failure;
pub mod front_stdio;
pub mod ingress;
pub mod ports;
pub mod session;
pub mod spec;
pub mod stats;
pub mod upstream;

pub use error::{AuthorizationLink, Cause, RelayError};
/// What a `code` strategy's script may use.
pub use mesh_sandbox::Limits as CodeLimits;
/// The largest limits a `code` strategy's script may be given.
pub use mesh_sandbox::CEILING as CODE_CEILING;
pub use spec::{Credential, Provider, ProviderSet, Providers, Reach, TransportSpec, UpstreamSpec};
pub use upstream::UpstreamClients;

/// The MCP session header, both ways. A `HeaderName`, not a `&str`: a lookup by string parses
/// and validates the name every time.
pub(crate) const SESSION_HEADER: http::HeaderName = http::HeaderName::from_static("mcp-session-id");
/// The protocol revision a client names on every request after initialize, both ways.
pub(crate) const VERSION_HEADER: http::HeaderName = http::HeaderName::from_static("mcp-protocol-version");
/// The User-Agent the mesh sends to upstreams, whichever HTTP client carries the request.
pub(crate) const USER_AGENT: &str = concat!("mcp-mesh/", env!("CARGO_PKG_VERSION"));
