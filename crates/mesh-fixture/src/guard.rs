//! DNS-rebinding protection: only loopback `Host` and `Origin` values reach the MCP endpoint.
//!
//! The fixture binds 127.0.0.1 only, so every legitimate client names it `localhost`,
//! `127.0.0.1` or `[::1]`. A browser page on `evil.example.com` whose DNS was rebound to 127.0.0.1
//! still sends `Host: evil.example.com` (and its own `Origin`), which is what this rejects with 403
//! (spec: Streamable HTTP, "Security Warning"; the `dns-rebinding-protection` scenario). rmcp runs
//! the same check again behind this layer; this one exists because `crate::polling` answers some
//! GETs itself, before rmcp sees them.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode, Uri};

/// Host names accepted in `Host` and `Origin`, any port. rmcp takes the same list.
pub(crate) const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

pub(crate) async fn loopback_only(request: Request, next: Next) -> Response {
    match rejection(request.headers(), request.uri()) {
        Some(reason) => {
            tracing::warn!(reason, "rejected a non-loopback Host/Origin (possible DNS rebinding)");
            (StatusCode::FORBIDDEN, reason).into_response()
        }
        None => next.run(request).await,
    }
}

fn rejection(headers: &HeaderMap, uri: &Uri) -> Option<&'static str> {
    // HTTP/2 carries the host in the :authority pseudo-header, which hyper puts in the URI.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| uri.authority().map(|a| a.as_str()));
    match host {
        Some(host) if is_loopback_authority(host) => {}
        _ => return Some("Forbidden: Host header is not a loopback name"),
    }
    // No Origin is fine (non-browser clients); a present one must be loopback too, `null` included.
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => None,
        Some(Ok(origin)) if is_loopback_origin(origin) => None,
        Some(_) => Some("Forbidden: Origin header is not a loopback origin"),
    }
}

/// `host[:port]`, with IPv6 literals in brackets.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, "")) => host,
            Some((host, port)) if port.strip_prefix(':').is_some_and(is_port) => host,
            _ => return false,
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return false,
            None => authority,
        }
    };
    LOOPBACK_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host))
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u16>().is_ok()
}

fn is_loopback_origin(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") && is_loopback_authority(authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn check(host: &str, origin: Option<&str>) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        rejection(&headers, &Uri::from_static("/mcp")).is_none()
    }

    #[test]
    fn loopback_names_pass_with_or_without_port() {
        for host in ["localhost", "127.0.0.1:8080", "LOCALHOST:1", "[::1]", "[::1]:3000"] {
            assert!(check(host, None), "{host}");
            assert!(check(host, Some(&format!("http://{host}"))), "{host}");
        }
    }

    #[test]
    fn the_rebinding_probe_is_rejected() {
        // What the dns-rebinding-protection scenario sends: both headers point at the attacker.
        assert!(!check("evil.example.com", Some("http://evil.example.com")));
        // Either header alone is enough to refuse.
        assert!(!check("evil.example.com", None));
        assert!(!check("127.0.0.1:1", Some("http://evil.example.com")));
        assert!(!check("127.0.0.1:1", Some("null")));
        assert!(!check("127.0.0.1.evil.example.com", None));
        assert!(!check("localhost:notaport", None));
    }
}
