//! MCP protocol revisions the mesh speaks.

/// The newest revision; the mesh answers with it when a client asks for one it does not know.
pub const LATEST: &str = "2025-11-25";

/// Revisions accepted from clients, newest first. 2024-11-05 predates Streamable HTTP but its
/// messages are a subset of the later ones, so an upstream speaking it is still relayed.
pub const SUPPORTED: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// What a request without `MCP-Protocol-Version` is assumed to speak (spec: basic/transports).
pub const DEFAULT_WITHOUT_HEADER: &str = "2025-03-26";

/// Whether `v` is a revision the mesh accepts.
pub fn is_supported(v: &str) -> bool {
    SUPPORTED.contains(&v)
}

/// Whether SSE streams for a client at revision `v` start with a priming event (an id and empty
/// data). Added in 2025-11-25; older clients may choke on an event with empty data.
pub fn primes_sse(v: &str) -> bool {
    v >= "2025-11-25"
}

/// Revisions with per-request metadata and no sessions (2026-07-28 on), newest first: what
/// `server/discover` lists and a -32022 offers.
pub const MODERN: &[&str] = &["2026-07-28"];

/// Whether `v` is a stateless revision the mesh speaks.
pub fn is_modern(v: &str) -> bool {
    MODERN.contains(&v)
}
