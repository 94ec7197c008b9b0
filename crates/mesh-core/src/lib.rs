//! Shared vocabulary of MCP Mesh: identifiers, names, principals and faults.
//!
//! This crate does no I/O. Everything that more than one layer must agree on lives here, so that
//! the data plane (`mesh-relay`), the control plane (`mesh-admin`) and storage (`mesh-store`) cannot
//! drift apart on what a slug is or whose fault an error was.
#![forbid(unsafe_code)]

pub mod audit;
pub mod fault;
pub mod gateway;
pub mod id;
pub mod policy;
pub mod principal;
pub mod ratelimit;
pub mod registry;
pub mod search;
pub mod secret;
pub mod slug;
pub mod trace;

pub use fault::Fault;
pub use principal::{Principal, Role};
pub use secret::Secret;
