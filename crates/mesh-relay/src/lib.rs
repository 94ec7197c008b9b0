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
#![forbid(unsafe_code)]

pub mod audit;
pub mod client;
pub mod error;
pub mod failure;
pub mod front_stdio;
pub mod governor;
pub mod ingress;
pub mod session;
pub mod spec;
pub mod upstream;

pub use error::{Cause, RelayError};
pub use spec::{Reach, TransportSpec, UpstreamSpec};
pub use upstream::UpstreamClients;

/// The User-Agent the mesh sends to upstreams, whichever HTTP client carries the request.
/// The MCP session header, both ways. A `HeaderName`, not a `&str`: a lookup by string parses
/// and validates the name every time.
pub(crate) const SESSION_HEADER: http::HeaderName = http::HeaderName::from_static("mcp-session-id");
/// The protocol revision a client names on every request after initialize, both ways.
pub(crate) const VERSION_HEADER: http::HeaderName = http::HeaderName::from_static("mcp-protocol-version");
pub(crate) const USER_AGENT: &str = concat!("mcp-mesh/", env!("CARGO_PKG_VERSION"));

/// Whether a JSON message may have a member with the name `key` searches for: the name appears
/// in it, or an escape (`\u…`) could spell it. `false` is certain, so a caller can skip
/// deserialising a message just to learn that it has no such member (a success has no `error`):
/// most replies are then read once. (A tool result's `isError` is read by `Message::parse`.)
pub(crate) fn may_have_key(json: &[u8], key: &memchr::memmem::Finder<'_>) -> bool {
    // Searchers are built once (`memmem::find` builds one per call: ~350 instructions, more
    // than searching a short reply).
    static ESCAPE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\\u"));
    key.find(json).is_some() || ESCAPE.find(json).is_some()
}

#[cfg(test)]
mod tests {
    #[test]
    fn may_have_key_is_never_wrong_when_it_says_no() {
        let key = |k: &'static str| memchr::memmem::Finder::new(k);
        assert!(!super::may_have_key(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#, &key("isError")));
        assert!(super::may_have_key(br#"{"result":{"isError":true}}"#, &key("isError")));
        // An escaped name deserialises to the same key: it must not be ruled out.
        assert!(super::may_have_key(br#"{"result":{"is\u0045rror":true}}"#, &key("isError")));
        // Mentions in text take the slow path, which is still right.
        assert!(super::may_have_key(br#"{"result":{"text":"no error here"}}"#, &key("error")));
    }
}
