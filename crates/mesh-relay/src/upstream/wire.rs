//! What carries a Streamable HTTP link's requests: reqwest for everything, except POSTs to plain
//! `http://` upstreams with no proxy in the environment, which go straight to hyper's HTTP/1
//! client connections over a pool of the mesh's own (`pool`).
//!
//! Why two clients: a POST per call is the relay's hot path, and reqwest's layers on top of
//! hyper-util's pooled client (a redirect policy that re-parses the URL twice per request,
//! retries, header merging, connector clones), then that client's own per-call work, cost
//! several microseconds a call (docs/PERFORMANCE.md, fixes 6 and 13). The fast path keeps
//! reqwest's pool settings (idle timeout, idle connections per host, no Nagle, connect timeout);
//! TLS, proxies, GET streams and DELETE stay with reqwest.

use super::pool::{Lease, Origin};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;

/// An upstream's answer, whichever client carried it.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Body,
}

enum Body {
    Reqwest(reqwest::Response),
    /// With the connection it arrives on, given back to the pool once the body has been read.
    Hyper(hyper::body::Incoming, Lease),
}

impl Answer {
    pub fn from_reqwest(mut resp: reqwest::Response) -> Answer {
        let headers = std::mem::take(resp.headers_mut());
        Answer { status: resp.status(), headers, body: Body::Reqwest(resp) }
    }

    /// The whole body, refused past `limit` bytes.
    pub async fn bytes(self, limit: usize) -> Result<Bytes, String> {
        let too_large = || format!("body larger than {limit} bytes");
        let declared = self.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
        if declared.is_some_and(|n: usize| n > limit) {
            return Err(too_large());
        }
        match self.body {
            Body::Hyper(body, lease) => match Limited::new(body, limit).collect().await {
                Ok(collected) => {
                    lease.release();
                    Ok(collected.to_bytes())
                }
                Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
                Err(e) => Err(e.to_string()),
            },
            Body::Reqwest(resp) => {
                let mut out = bytes::BytesMut::new();
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    // `without_url`: a URL may carry a token in its query string.
                    let chunk = chunk.map_err(|e| e.without_url().to_string())?;
                    if out.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok(out.freeze())
            }
        }
    }

    /// The body as it arrives (SSE).
    pub fn stream(self) -> BoxStream<'static, Result<Bytes, String>> {
        match self.body {
            Body::Reqwest(resp) => resp.bytes_stream().map(|c| c.map_err(|e| e.without_url().to_string())).boxed(),
            Body::Hyper(body, lease) => futures_util::stream::unfold(Some((body, lease)), |state| async move {
                let (mut body, lease) = state?;
                loop {
                    match body.frame().await {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) => return Some((Ok(data), Some((body, lease)))),
                            Err(_trailers) => continue,
                        },
                        Some(Err(e)) => return Some((Err(e.to_string()), None)),
                        None => {
                            // The whole stream read: the connection can carry the next call.
                            lease.release();
                            return None;
                        }
                    }
                }
            })
            .boxed(),
        }
    }

    /// The body as text, at most 64 KiB of it, empty when unreadable (for error messages).
    pub async fn text(self) -> String {
        self.bytes(64 * 1024).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }
}

/// Where a link's POSTs go over the fast path.
pub(super) struct Fast {
    origin: Arc<Origin>,
    /// The request target in origin form (path and query), as HTTP/1 sends it.
    path: http::Uri,
    /// The `Host` header (the port only when it is not 80, as reqwest writes it).
    pub host: http::HeaderValue,
}

/// The fast path for `url`, or `None` when `url` needs reqwest: TLS, credentials in the URL
/// (reqwest turns them into Basic auth), or a proxy set in the environment (reqwest honours
/// `HTTP_PROXY` / `ALL_PROXY`; the fast path would bypass it).
pub(super) fn fast(url: &url::Url) -> Option<Fast> {
    const PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];
    if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    if PROXY_VARS.iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty())) {
        return None;
    }
    // `host_str` keeps an IPv6 address's brackets, which both forms need.
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let path = url[url::Position::BeforePath..url::Position::AfterQuery].parse().ok()?;
    let header = http::HeaderValue::from_str(&header).ok()?;
    Some(Fast { origin: Origin::of(&format!("{host}:{port}")), path, host: header })
}

/// POSTs `body` with `headers`, which carry Host and the mesh's User-Agent as reqwest's would
/// (hyper adds Content-Length).
pub(super) async fn post(fast: &Fast, headers: HeaderMap, body: Bytes) -> Result<Answer, String> {
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = fast.path.clone();
    *req.headers_mut() = headers;
    let (resp, lease) = fast.origin.send(req).await?;
    let (parts, body) = resp.into_parts();
    Ok(Answer { status: parts.status, headers: parts.headers, body: Body::Hyper(body, lease) })
}

#[cfg(test)]
mod tests {
    use super::fast;

    #[tokio::test]
    async fn only_plain_http_without_credentials_takes_the_fast_path() {
        let uri = |s: &str| fast(&url::Url::parse(s).unwrap()).map(|f| (f.path.to_string(), f.host));
        assert_eq!(uri("https://example.com/mcp"), None, "TLS stays with reqwest");
        assert_eq!(uri("http://user:secret@127.0.0.1:9/mcp"), None, "URL credentials stay with reqwest");
        assert_eq!(uri("http://user@127.0.0.1:9/mcp"), None);
        let proxied = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        if proxied {
            assert_eq!(uri("http://127.0.0.1:9/mcp?x=1"), None, "a proxy in the environment keeps reqwest");
            return;
        }
        let plain = |s: &str| uri(s).map(|(path, host)| (path, host.to_str().unwrap().to_string()));
        let expect = |path: &str, host: &str| Some((path.to_string(), host.to_string()));
        assert_eq!(plain("http://127.0.0.1:9/mcp?x=1#frag"), expect("/mcp?x=1", "127.0.0.1:9"), "origin form");
        assert_eq!(plain("http://localhost:80/mcp"), expect("/mcp", "localhost"), "the default port is not written");
        assert_eq!(plain("http://[::1]:8080"), expect("/", "[::1]:8080"));
    }
}
