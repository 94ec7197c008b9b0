//! Redirect URIs: which a client may register, and whether a requested one is a registered one.
//!
//! OAuth 2.1 §2.3.1 and the MCP authorization spec: redirect URIs are compared as exact strings,
//! and are either HTTPS or loopback URLs. The one exception is RFC 8252 §7.3 (kept by OAuth 2.1
//! §8.4.2): a native client listening on loopback gets whatever port the OS gives it, so for an
//! `http` loopback URI the port is ignored — and only the port.

/// Why a redirect URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    /// Not an absolute URL.
    #[error("redirect URI '{0}' is not an absolute URL")]
    NotAUrl(String),
    /// Neither HTTPS nor HTTP on a loopback host.
    #[error("redirect URI '{0}' must be https:// or http:// on localhost, 127.0.0.1 or [::1]")]
    Scheme(String),
    /// Has a fragment or credentials (RFC 6749 §3.1.2: no fragment).
    #[error("redirect URI '{0}' must have no fragment and no user information")]
    Parts(String),
}

/// Whether `host` names this machine's loopback interface.
fn loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Whether `uri` is an `http` URL on a loopback host (a native app on this device).
pub fn is_loopback(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| u.scheme() == "http" && u.host().as_ref().is_some_and(loopback))
}

/// Whether `uri`'s host, whatever its scheme, is this device's loopback interface.
pub fn on_loopback(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| u.host().as_ref().is_some_and(loopback))
}

/// Checks a redirect URI a client registers (by pre-registration, metadata document or DCR).
pub fn check_registered(uri: &str) -> Result<(), RedirectError> {
    let u = url::Url::parse(uri).map_err(|_| RedirectError::NotAUrl(uri.into()))?;
    if u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return Err(RedirectError::Parts(uri.into()));
    }
    match (u.scheme(), u.host()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(h)) if loopback(&h) => Ok(()),
        _ => Err(RedirectError::Scheme(uri.into())),
    }
}

/// Whether `requested` (from an authorization or token request) is `registered`: the same
/// string, or for an `http` loopback URI the same but for its port.
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(a), Ok(b)) = (url::Url::parse(registered), url::Url::parse(requested)) else { return false };
    let loopback_http = |u: &url::Url| u.scheme() == "http" && u.host().as_ref().is_some_and(loopback);
    loopback_http(&a)
        && loopback_http(&b)
        && a.host_str() == b.host_str()
        && a.path() == b.path()
        && a.query() == b.query()
        && a.fragment().is_none()
        && b.fragment().is_none()
        && a.username().is_empty()
        && b.username().is_empty()
        && a.password().is_none()
        && b.password().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_uris_match_exactly_except_a_loopback_port() {
        let cases = [
            ("https://app.example.com/cb", "https://app.example.com/cb", true),
            ("https://app.example.com/cb", "https://app.example.com/cb/", false),
            ("https://app.example.com/cb", "https://APP.example.com/cb", false),
            ("https://app.example.com/cb", "https://app.example.com:8443/cb", false),
            ("https://app.example.com/cb", "https://app.example.com/cb?x=1", false),
            ("http://127.0.0.1/callback", "http://127.0.0.1:53682/callback", true),
            ("http://127.0.0.1:3000/callback", "http://127.0.0.1:53682/callback", true),
            ("http://[::1]/callback", "http://[::1]:4000/callback", true),
            ("http://localhost:1/cb", "http://localhost:2/cb", true),
            ("http://127.0.0.1/callback", "http://localhost:53682/callback", false),
            ("http://127.0.0.1/callback", "http://127.0.0.1:53682/other", false),
            ("http://127.0.0.1/callback?a=1", "http://127.0.0.1:5/callback?a=2", false),
            ("http://127.0.0.1/callback", "http://evil@127.0.0.1:5/callback", false),
            ("https://127.0.0.1/cb", "https://127.0.0.1:5/cb", false),
            ("http://app.example.com/cb", "http://app.example.com:81/cb", false),
        ];
        for (registered, requested, want) in cases {
            assert_eq!(matches(registered, requested), want, "{registered} vs {requested}");
        }
    }

    #[test]
    fn only_https_and_loopback_http_uris_register() {
        for ok in
            ["https://app.example.com/cb", "http://127.0.0.1/callback", "http://localhost:8080/cb", "http://[::1]/cb"]
        {
            assert_eq!(check_registered(ok), Ok(()), "{ok}");
        }
        let refused = [
            ("http://app.example.com/cb", RedirectError::Scheme("http://app.example.com/cb".into())),
            ("myapp://cb", RedirectError::Scheme("myapp://cb".into())),
            ("https://app.example.com/cb#x", RedirectError::Parts("https://app.example.com/cb#x".into())),
            ("https://u:p@app.example.com/cb", RedirectError::Parts("https://u:p@app.example.com/cb".into())),
            ("/relative", RedirectError::NotAUrl("/relative".into())),
        ];
        for (uri, want) in refused {
            assert_eq!(check_registered(uri), Err(want), "{uri}");
        }
    }
}
