//! The rules of OAuth 2.1 that MCP Mesh applies as an authorization server for MCP clients
//! (issue #17; docs/design/oauth-research.md), as pure functions: no I/O, no clock, no storage.
//!
//! They are the parts of the protocol where a byte of difference is a security hole or a client
//! that cannot connect — PKCE verification (RFC 7636, S256 only), redirect-URI matching (exact,
//! with RFC 8252's loopback ports), canonical resource URIs (RFC 8707, the MCP authorization
//! spec), and scopes (RFC 6749 §3.3) — so they live apart from the HTTP handlers and are
//! table-tested against the RFCs' own examples.
#![forbid(unsafe_code)]

pub mod pkce;
pub mod redirect;
pub mod resource;
pub mod scope;
