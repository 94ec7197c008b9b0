//! Why an OAuth step failed. Messages name endpoints and OAuth error codes, never a token, a
//! code, a verifier or a client secret.

/// An OAuth failure toward an upstream's authorization server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// A metadata document could not be found or read.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// A document was found but is not acceptable (wrong issuer, wrong resource, …).
    #[error("metadata refused: {0}")]
    Metadata(String),
    /// The authorization server does not offer PKCE with S256 (MCP: refuse to proceed).
    #[error("the authorization server does not support PKCE with S256")]
    NoPkce,
    /// No way to obtain a client id at this authorization server.
    #[error("client registration failed: {0}")]
    Registration(String),
    /// The authorization response was an error (the user or the server declined).
    #[error("authorization refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        /// The OAuth error code.
        error: String,
        /// Its description, if given.
        description: Option<String>,
    },
    /// The authorization response does not belong to this request (state) or this server (iss).
    #[error("authorization response refused: {0}")]
    Response(String),
    /// The token endpoint refused.
    #[error("token request refused by {endpoint}: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Token {
        /// The token endpoint.
        endpoint: String,
        /// The OAuth error code (`invalid_grant`, …), or the HTTP status when there was none.
        error: String,
        /// Its description, if given.
        description: Option<String>,
    },
    /// The network or the server failed.
    #[error("{0}")]
    Http(String),
}

impl OAuthError {
    /// Whether a new authorization by the user is the way out (the grant is gone or was never
    /// complete), rather than retrying later.
    pub fn needs_user(&self) -> bool {
        match self {
            OAuthError::Token { error, .. } => {
                matches!(error.as_str(), "invalid_grant" | "invalid_scope" | "unauthorized_client")
            }
            OAuthError::Denied { .. } | OAuthError::Response(_) => true,
            _ => false,
        }
    }
}

/// A reqwest error without its URL's query (which may carry a code or a state).
pub(crate) fn failed(context: &str, e: reqwest::Error) -> OAuthError {
    OAuthError::Http(format!("{context}: {}", e.without_url()))
}
