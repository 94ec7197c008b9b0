//! Whose fault an error is: decides the status a caller sees and whether a retry can help.

/// The party responsible for a failure, as in pingora's error model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The caller sent something wrong: fix the request, do not retry it as is.
    Downstream,
    /// The upstream MCP server failed, hung, or answered garbage: a retry may help.
    Upstream,
    /// Policy said no (authentication, authorization, limits).
    Policy,
    /// A bug or resource problem inside the mesh.
    Internal,
}

impl Fault {
    /// Whether repeating the same request later could succeed.
    pub fn retryable(self) -> bool {
        matches!(self, Fault::Upstream | Fault::Internal)
    }
}
