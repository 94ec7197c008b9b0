//! Single sign-on through an external OpenID Connect provider (settings `MESH_OIDC_*`).

/// What the SSO callback needs of the login it completes.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The authorization request (query string) the user was on when they chose SSO.
    pub authorize_query: String,
    /// The OpenID Connect nonce sent to the provider.
    pub nonce: String,
    /// The PKCE verifier of the mesh's own request to the provider.
    pub verifier: String,
}
