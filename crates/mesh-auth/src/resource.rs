//! Resource indicators (RFC 8707) and the MCP authorization spec's canonical server URI: the one
//! spelling of an MCP endpoint that tokens are bound to, so that a trailing slash or the case of
//! a host name never makes a token for `/mcp/gateway/dev` fail there — and never makes one for
//! another endpoint pass.

/// Why a `resource` parameter is refused (`invalid_target`, RFC 8707 §2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// Not an absolute http(s) URL.
    #[error("resource must be an absolute http:// or https:// URI")]
    NotAUrl,
    /// RFC 8707 §2: a resource URI has no fragment.
    #[error("resource must not have a fragment")]
    Fragment,
}

/// The canonical form of a resource URI: scheme and host lower-cased and the default port
/// dropped (the URL parser's normalisation), no trailing slash on the path (the MCP spec's
/// SHOULD; `https://mesh.example/` is `https://mesh.example`), the query kept as given.
pub fn canonical(uri: &str) -> Result<String, ResourceError> {
    let u = url::Url::parse(uri).map_err(|_| ResourceError::NotAUrl)?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(ResourceError::NotAUrl);
    }
    if u.fragment().is_some() {
        return Err(ResourceError::Fragment);
    }
    let mut out = format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default());
    if let Some(port) = u.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(u.path().trim_end_matches('/'));
    if let Some(q) = u.query() {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_endpoint() {
        let same = [
            "https://mesh.example/mcp/gateway/dev",
            "https://mesh.example/mcp/gateway/dev/",
            "HTTPS://Mesh.Example/mcp/gateway/dev",
            "https://mesh.example:443/mcp/gateway/dev",
        ];
        for uri in same {
            assert_eq!(canonical(uri).as_deref(), Ok("https://mesh.example/mcp/gateway/dev"), "{uri}");
        }
        let cases = [
            ("https://mesh.example/", Ok("https://mesh.example")),
            ("http://127.0.0.1:3000/mcp/github", Ok("http://127.0.0.1:3000/mcp/github")),
            ("https://mesh.example/MCP/Gateway/Dev", Ok("https://mesh.example/MCP/Gateway/Dev")),
            ("https://mesh.example/mcp?tenant=a", Ok("https://mesh.example/mcp?tenant=a")),
            ("https://mesh.example/mcp#x", Err(ResourceError::Fragment)),
            ("urn:mesh:dev", Err(ResourceError::NotAUrl)),
            ("/mcp/gateway/dev", Err(ResourceError::NotAUrl)),
        ];
        for (uri, want) in cases {
            assert_eq!(canonical(uri).as_deref().map_err(Clone::clone), want, "{uri}");
        }
        // Another endpoint stays another resource.
        assert_ne!(
            canonical("https://mesh.example/mcp/gateway/dev"),
            canonical("https://mesh.example/mcp/gateway/prod")
        );
    }
}
