//! Fixture MCP server for MCP Mesh tests.
//!
//! It implements, under the exact names the official conformance suite
//! (`@modelcontextprotocol/conformance`) calls, every tool, resource, resource template, prompt,
//! completion, logging, progress, sampling, elicitation and task behaviour of the suite's *server*
//! scenarios. No published MCP server has those names, so this is the upstream the mesh is proved
//! against: the suite is run against the fixture directly (the control) and through the mesh, with
//! the fixture as a stdio child and as an HTTP upstream. A relay that drops, reorders or reshapes
//! anything shows up as a scenario that passes directly and fails through the mesh.
//!
//! It speaks MCP 2025-11-25 (sessions) and 2026-07-28 (stateless, per-request `_meta`) on the
//! same endpoint, or only one of them (`--era`, [`Era`]): the mesh's bridges between the eras are
//! tested against it forced to one side.
//!
//! Design choices:
//! - The MCP protocol machinery is rmcp's (sessions, SSE, resumption, version negotiation, the
//!   2026-07-28 envelope, headers and listen streams), so the fixture is an independent
//!   implementation from the mesh's own relay code. What rmcp does not do is written here, small
//!   and commented: the era gate ([`era`]), input-required dialogues ([`input`]) and their sealed
//!   state ([`state`]), and the task store of the tasks extension ([`tasks`]; rmcp routes and
//!   gates `tasks/*`, the fixture keeps the tasks).
//! - Fixture data is written as wire JSON ([`wire`]), so what a relay must preserve is readable in
//!   the source as it appears on the wire.
//! - Everything a scenario checks is deterministic; the only timing is the ~50 ms steps the
//!   logging and progress scenarios ask for.
//!
//! See `conformance.sh` in this crate for running the suite.
#![forbid(unsafe_code)]

mod era;
mod guard;
pub mod http;
mod input;
mod listen;
mod media;
mod polling;
mod prompts;
mod resources;
mod server;
mod session;
mod state;
pub mod stdio;
mod tasks;
mod tools;
mod wire;

pub use era::Era;
pub use server::{Fixture, Shared};

/// Serves one MCP peer on stdin/stdout (newline-delimited JSON-RPC) until stdin closes.
pub async fn serve_stdio(era: Era) -> anyhow::Result<()> {
    stdio::serve(era, tokio::io::stdin(), tokio::io::stdout()).await
}
