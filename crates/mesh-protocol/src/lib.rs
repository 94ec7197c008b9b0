//! The wire vocabulary of MCP Mesh: JSON-RPC envelopes, MCP constants and SSE framing.
//!
//! The relay never re-serialises a message it forwards. [`Message`] keeps the exact bytes it was
//! given and remembers where the `id` sits in them, so remapping an id is one splice and every
//! field the mesh does not understand (`_meta`, JSON Schema keywords, future extensions) reaches
//! the other side byte for byte.
#![forbid(unsafe_code)]

pub mod codes;
pub mod message;
pub mod meta;
pub mod modern;
pub mod sse;
pub mod version;

pub use message::{ErrorObject, Kind, Message, ParseError};
