//! Fixture MCP server for MCP Mesh tests.
//!
//! It implements, under the exact names the official conformance suite
//! (`@modelcontextprotocol/conformance`) calls, every tool, resource, resource template, prompt,
//! completion, logging, progress, sampling and elicitation behaviour of the suite's *server*
//! scenarios. No published MCP server has those names, so this is the upstream the mesh is proved
//! against: the suite is run against the fixture directly (the control) and through the mesh, with
//! the fixture as a stdio child and as an HTTP upstream. A relay that drops, reorders or reshapes
//! anything shows up as a scenario that passes directly and fails through the mesh.
//!
//! Design choices:
//! - The MCP protocol machinery is rmcp's (sessions, SSE, resumption, version negotiation), so the
//!   fixture is an independent implementation from the mesh's own relay code.
//! - Fixture data is written as wire JSON ([`wire`]), so what a relay must preserve is readable in
//!   the source as it appears on the wire.
//! - Everything a scenario checks is deterministic; the only timing is the ~50 ms steps the
//!   logging and progress scenarios ask for.
//!
//! See `conformance.sh` in this crate for running the suite.
#![forbid(unsafe_code)]

mod guard;
pub mod http;
mod media;
mod polling;
mod prompts;
mod resources;
mod server;
mod session;
mod tools;
mod wire;

pub use server::Fixture;

/// Serves one MCP session on stdin/stdout (newline-delimited JSON-RPC) until stdin closes.
pub async fn serve_stdio() -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let running = Fixture::new().serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
