//! MCP Mesh as an OAuth 2.1 client of the upstream MCP servers it connects (MCP authorization,
//! 2025-11-25 and 2026-07-28): discovery from a server's 401, client identity at its
//! authorization server, the authorization code grant with PKCE and resource indicators, and
//! refresh. Storage-agnostic: the caller keeps clients and tokens (sealed in the vault) and
//! decides when to ask a user.
#![forbid(unsafe_code)]

pub mod challenge;
pub mod discover;
pub mod error;
pub mod flow;
pub mod grant;
pub mod metadata;
pub mod net;
pub mod register;
pub mod scope;

pub use challenge::Challenge;
pub use discover::Discovery;
pub use error::OAuthError;
pub use flow::{AuthMethod, Client, Pending, Tokens};
pub use grant::Grant;
pub use net::Net;
