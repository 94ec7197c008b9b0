//! The performance benchmark of MCP Mesh (`docs/PERFORMANCE.md`).
//!
//! Why it is built this way:
//! - **The real mesh, as a separate process.** The release `mcp-mesh serve` on a loopback port, so
//!   RSS, CPU time and start-up are the kernel's figures for the mesh alone, and the load client
//!   shares nothing with it but the machine.
//! - **Its own echo upstream** (`mesh-bench upstream`, HTTP or `--stdio`), a few dozen lines that
//!   answer from pre-built bytes, so the figures describe the mesh, not a third-party server.
//! - **A/B interleaved.** Every round runs every path (direct, `/mcp/{connection}`, a virtual MCP,
//!   stdio direct and through the mesh) for one short slice at each concurrency, reversing the
//!   order every other round;
//!   drift of a shared 2-core machine (other builds, thermal limits) then lands on all paths alike
//!   instead of on whichever ran last.
//! - **Targets are reported, not enforced.** The smoke test checks the report's shape and sanity,
//!   never a timing threshold.
#![forbid(unsafe_code)]

pub mod capability;
pub mod client;
pub mod coldstart;
pub mod compare;
pub mod gateway;
pub mod load;
pub mod memory;
pub mod oauth;
pub mod observed;
pub mod pools;
pub mod processes;
pub mod procfs;
pub mod relay;
pub mod report;
pub mod run;
pub mod soak;
pub mod targets;
pub mod upstream;

/// The first line `mesh-bench upstream` prints on stdout, followed by `host:port`.
pub fn upstream_banner() -> &'static str {
    "mesh-bench echo upstream listening on "
}
