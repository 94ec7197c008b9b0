//! Request checks that run before a message is looked at: Origin/Host, authentication, media types.

use crate::RelayError;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};
use http::HeaderMap;

use super::RelayConfig;

/// Host names that mean "this machine".
pub(super) fn loopback_hosts() -> Vec<String> {
    ["localhost", "127.0.0.1", "[::1]"].iter().map(|s| s.to_string()).collect()
}

/// Whether a parsed host names this machine: `localhost` and its subdomains (RFC 6761), or a
/// loopback IP address. Parsed whole, never by prefix: `127.evil.example` is someone's name.
fn is_loopback(host: &str) -> bool {
    let h = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    h.eq_ignore_ascii_case("localhost")
        || h.to_ascii_lowercase().ends_with(".localhost")
        || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host part of a `Host` header value, port removed (`[::1]:3000` → `[::1]`), as written:
/// compare it ignoring ASCII case. Borrowed, because every request asks.
pub(super) fn host_only(value: &str) -> &str {
    let v = value.trim();
    if v.starts_with('[') {
        return v.find(']').map_or(v, |end| &v[..=end]);
    }
    v.rsplit_once(':').filter(|(_, p)| p.bytes().all(|c| c.is_ascii_digit())).map_or(v, |(h, _)| h)
}

/// DNS-rebinding defence (spec: basic/transports, security warning): a browser page on another
/// origin must not reach a mesh bound to loopback, even through a rebound DNS name.
pub(super) fn origin_and_host(cfg: &RelayConfig, headers: &HeaderMap) -> Result<(), RelayError> {
    if let Some(allowed) = &cfg.allowed_hosts {
        let host = headers.get(HOST).and_then(|h| h.to_str().ok()).map(host_only).unwrap_or_default();
        // The allowed names are lowercase (configuration lowercases them).
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            return Err(RelayError::Forbidden(format!("Host '{host}' is not allowed")));
        }
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("").trim().trim_end_matches('/').to_ascii_lowercase();
        let host = url::Url::parse(&origin).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
        let ok = (cfg.allow_loopback_origins && is_loopback(&host)) || cfg.allowed_origins.contains(&origin);
        if !ok {
            return Err(RelayError::Forbidden(format!("Origin '{origin}' is not allowed")));
        }
    }
    Ok(())
}

/// The bearer token, if the request carries one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Whether the `Accept` header(s) admit `exact` (`type/subtype`): listed itself, as its type's
/// wildcard, or as `*/*`. Parameters (`;q=…`) are ignored. No allocation: every POST asks twice.
fn accepts(headers: &HeaderMap, exact: &str) -> bool {
    let family = exact.split_once('/').map_or(exact, |(f, _)| f);
    headers.get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|range| {
        let t = range.split(';').next().unwrap_or("").trim();
        t.eq_ignore_ascii_case(exact)
            || t == "*/*"
            || t.split_once('/').is_some_and(|(f, sub)| sub == "*" && f.eq_ignore_ascii_case(family))
    })
}

/// POST: the client must accept both reply forms (spec: sending messages to the server).
pub(super) fn accepts_json_and_sse(headers: &HeaderMap) -> Result<(), RelayError> {
    // What the SDKs send, byte for byte: settled without splitting anything.
    const USUAL: &[u8] = b"application/json, text/event-stream";
    let mut all = headers.get_all(ACCEPT).iter();
    if let (Some(only), None) = (all.next(), all.next()) {
        if only.as_bytes() == USUAL {
            return Ok(());
        }
    }
    if accepts(headers, "application/json") && accepts(headers, "text/event-stream") {
        Ok(())
    } else {
        Err(RelayError::NotAcceptable("Accept must list both application/json and text/event-stream"))
    }
}

/// GET: the client must accept an event stream.
pub(super) fn accepts_sse(headers: &HeaderMap) -> Result<(), RelayError> {
    if accepts(headers, "text/event-stream") {
        Ok(())
    } else {
        Err(RelayError::NotAcceptable("Accept must list text/event-stream"))
    }
}

/// POST bodies are JSON.
pub(super) fn content_type_json(headers: &HeaderMap) -> Result<(), RelayError> {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(RelayError::UnsupportedMediaType)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue16_item11_loopback_origins_are_parsed_not_prefix_matched() {
        for host in ["localhost", "LOCALHOST", "app.localhost", "127.0.0.1", "127.1.2.3", "[::1]"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in
            ["127.evil.example", "127.0.0.1.evil.example", "localhost.evil.example", "evil-localhost", "[::2]", ""]
        {
            assert!(!is_loopback(host), "{host}");
        }
    }
    use http::HeaderValue;

    fn h(pairs: &[(http::header::HeaderName, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn host_parsing() {
        assert_eq!(host_only("LocalHost:3000"), "LocalHost");
        assert_eq!(host_only(" 127.0.0.1 "), "127.0.0.1");
        assert_eq!(host_only("[::1]:8080"), "[::1]");
        assert_eq!(host_only("example.com"), "example.com");
    }

    #[test]
    fn rebinding_defence() {
        let cfg = RelayConfig::default();
        assert!(origin_and_host(&cfg, &h(&[(HOST, "127.0.0.1:3000")])).is_ok());
        assert!(origin_and_host(&cfg, &h(&[(HOST, "LOCALHOST:3000")])).is_ok(), "host names ignore case");
        assert!(origin_and_host(&cfg, &h(&[(HOST, "localhost:3000"), (ORIGIN, "http://localhost:6274")])).is_ok());
        assert!(origin_and_host(&cfg, &h(&[(HOST, "evil.example:3000")])).is_err());
        assert!(origin_and_host(&cfg, &h(&[(HOST, "127.0.0.1:3000"), (ORIGIN, "https://evil.example")])).is_err());
        assert!(origin_and_host(&cfg, &h(&[(HOST, "127.0.0.1"), (ORIGIN, "null")])).is_err());
    }

    #[test]
    fn accept_rules() {
        assert!(accepts_json_and_sse(&h(&[(ACCEPT, "application/json, text/event-stream")])).is_ok());
        assert!(accepts_json_and_sse(&h(&[(ACCEPT, "*/*")])).is_ok());
        assert!(accepts_json_and_sse(&h(&[(ACCEPT, "Application/JSON;q=0.9, text/*")])).is_ok());
        assert!(accepts_json_and_sse(&h(&[(ACCEPT, "application/json"), (ACCEPT, "text/event-stream")])).is_ok());
        assert!(accepts_json_and_sse(&h(&[(ACCEPT, "application/*")])).is_err());
        assert!(accepts_json_and_sse(&h(&[(ACCEPT, "application/jsonx, text/event-stream")])).is_err());
        assert!(accepts_json_and_sse(&h(&[(ACCEPT, "application/json")])).is_err());
        assert!(accepts_json_and_sse(&h(&[])).is_err());
        assert!(accepts_sse(&h(&[(ACCEPT, "text/event-stream")])).is_ok());
        assert_eq!(bearer(&h(&[(AUTHORIZATION, "Bearer abc")])), Some("abc"));
        assert_eq!(bearer(&h(&[(AUTHORIZATION, "Basic abc")])), None);
    }
}
