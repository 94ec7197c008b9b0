//! What carries a Streamable HTTP link's requests: reqwest for everything, except POSTs to plain
//! `http://` upstreams with no proxy in the environment, which go straight to hyper-util's pooled
//! client.
//!
//! Why two clients: a POST per call is the relay's hot path, and reqwest's layers on top of the
//! same hyper client (a redirect policy that re-parses the URL twice per request, retries, header
//! merging, connector clones) cost several microseconds a call (docs/PERFORMANCE.md). The fast
//! path keeps reqwest's pool settings; TLS, proxies, GET streams and DELETE stay with reqwest.

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::OnceLock;
use std::time::Duration;

type Fast = Client<HttpConnector, Full<Bytes>>;

/// An upstream's answer, whichever client carried it.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Body,
}

enum Body {
    Reqwest(reqwest::Response),
    Hyper(hyper::body::Incoming),
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
            Body::Hyper(body) => match Limited::new(body, limit).collect().await {
                Ok(collected) => Ok(collected.to_bytes()),
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
            Body::Hyper(body) => body.into_data_stream().map(|c| c.map_err(|e| e.to_string())).boxed(),
        }
    }

    /// The body as text, at most 64 KiB of it, empty when unreadable (for error messages).
    pub async fn text(self) -> String {
        self.bytes(64 * 1024).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }
}

/// The process-wide client of the fast path: one pool, set up like `upstream_http_client`'s.
fn fast_client() -> &'static Fast {
    static CLIENT: OnceLock<Fast> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(connector)
    })
}

/// The URI to POST to over the fast path, or `None` when `url` needs reqwest: TLS, credentials in
/// the URL (reqwest turns them into Basic auth), or a proxy set in the environment (reqwest
/// honours `HTTP_PROXY` / `ALL_PROXY`; the fast path would bypass it).
pub(super) fn fast_uri(url: &url::Url) -> Option<http::Uri> {
    const PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];
    if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    if PROXY_VARS.iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty())) {
        return None;
    }
    url.as_str().parse().ok()
}

/// POSTs `body` with `headers`, which carry the mesh's User-Agent as reqwest's would (the
/// client adds Host and Content-Length).
pub(super) async fn post(uri: &http::Uri, headers: HeaderMap, body: Bytes) -> Result<Answer, String> {
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers;
    match fast_client().request(req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            Ok(Answer { status: parts.status, headers: parts.headers, body: Body::Hyper(body) })
        }
        Err(e) if e.is_connect() => Err(format!("cannot connect ({})", causes(&e))),
        Err(e) => Err(format!("request failed ({})", causes(&e))),
    }
}

/// An error with its causes, `a: b: c` (hyper-util's own text is only "client error (Connect)").
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::fast_uri;

    #[test]
    fn only_plain_http_without_credentials_takes_the_fast_path() {
        let uri = |s: &str| fast_uri(&url::Url::parse(s).unwrap());
        assert_eq!(uri("https://example.com/mcp"), None, "TLS stays with reqwest");
        assert_eq!(uri("http://user:secret@127.0.0.1:9/mcp"), None, "URL credentials stay with reqwest");
        assert_eq!(uri("http://user@127.0.0.1:9/mcp"), None);
        let proxied = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        let plain = uri("http://127.0.0.1:9/mcp?x=1");
        if proxied {
            assert_eq!(plain, None, "a proxy in the environment keeps reqwest");
        } else {
            assert_eq!(plain.map(|u| u.to_string()), Some("http://127.0.0.1:9/mcp?x=1".to_string()));
        }
    }
}
