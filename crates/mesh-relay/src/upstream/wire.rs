//! What carries a Streamable HTTP link's requests: reqwest for everything, except POSTs to plain
//! `http://` upstreams with no proxy in the environment, which go over the mesh's own HTTP/1.1
//! connections and pool (`h1`, `pool`).
//!
//! Why two clients: a POST per call is the relay's hot path, and reqwest's layers on top of
//! hyper-util's pooled client (a redirect policy that re-parses the URL twice per request,
//! retries, header merging, connector clones), then that client's own per-call work, cost
//! several microseconds a call (docs/PERFORMANCE.md, fixes 6, 13 and 16). The fast path keeps
//! reqwest's pool settings (idle timeout, idle connections per host, no Nagle, connect timeout);
//! TLS, proxies, GET streams and DELETE stay with reqwest.

use super::pool::{self, Origin};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http::header::HOST;
use http::{HeaderMap, StatusCode};
use std::sync::Arc;

/// An upstream's answer, whichever client carried it.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Body,
}

enum Body {
    Reqwest(reqwest::Response),
    /// Read from the connection it arrives on, which goes back to the pool once it has all been.
    Own(pool::Body),
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
        let mut whole = Gather::default();
        match self.body {
            Body::Own(mut body) => {
                while let Some(piece) = body.data().await? {
                    whole.push(piece, limit).map_err(|()| too_large())?;
                }
            }
            Body::Reqwest(resp) => {
                let mut stream = resp.bytes_stream();
                while let Some(piece) = stream.next().await {
                    // `without_url`: a URL may carry a token in its query string.
                    let piece = piece.map_err(|e| e.without_url().to_string())?;
                    whole.push(piece, limit).map_err(|()| too_large())?;
                }
            }
        }
        Ok(whole.into_bytes())
    }

    /// The body as it arrives (SSE).
    pub fn stream(self) -> BoxStream<'static, Result<Bytes, String>> {
        match self.body {
            Body::Reqwest(resp) => resp.bytes_stream().map(|c| c.map_err(|e| e.without_url().to_string())).boxed(),
            Body::Own(body) => futures_util::stream::unfold(Some(body), |body| async move {
                let mut body = body?;
                match body.data().await {
                    Ok(Some(data)) => Some((Ok(data), Some(body))),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), None)),
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

/// A body gathered piece by piece. A body that comes in one piece (usually: read with the head)
/// is kept as it is, never copied.
#[derive(Default)]
struct Gather {
    first: Bytes,
    joined: bytes::BytesMut,
}

impl Gather {
    /// Adds `piece`; an error when the body would pass `limit` bytes.
    fn push(&mut self, piece: Bytes, limit: usize) -> Result<(), ()> {
        if self.first.len() + self.joined.len() + piece.len() > limit {
            return Err(());
        }
        if self.first.is_empty() && self.joined.is_empty() {
            self.first = piece;
        } else {
            self.joined.extend_from_slice(&std::mem::take(&mut self.first));
            self.joined.extend_from_slice(&piece);
        }
        Ok(())
    }

    fn into_bytes(self) -> Bytes {
        if self.joined.is_empty() {
            self.first
        } else {
            self.joined.freeze()
        }
    }
}

/// Where a link's POSTs go over the fast path.
pub(super) struct Fast {
    origin: Arc<Origin>,
    /// The request target in origin form (path and query), as HTTP/1 sends it.
    path: String,
    /// The `Host` header (the port only when it is not 80, as reqwest writes it).
    pub host: http::HeaderValue,
}

/// The fast path for `url`, or `None` when `url` needs reqwest: TLS, credentials in the URL
/// (reqwest turns them into Basic auth), or a proxy set in the environment (reqwest honours
/// `HTTP_PROXY` / `ALL_PROXY`; the fast path would bypass it).
pub(super) fn fast(url: &url::Url, reach: crate::Reach) -> Option<Fast> {
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
    let path = url[url::Position::BeforePath..url::Position::AfterQuery].to_string();
    let header = http::HeaderValue::from_str(&header).ok()?;
    Some(Fast { origin: Origin::of(&format!("{host}:{port}"), reach), path, host: header })
}

/// The request line and header fields of a POST with `headers` (which carry Host and the mesh's
/// User-Agent as reqwest's would), serialised once per upstream session for `post`. Fields that
/// frame the message or manage the connection are the connection's own business: configured
/// ones are not copied.
pub(super) fn head(fast: &Fast, headers: &HeaderMap) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(fast.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Host first, as RFC 9112 §3.2 recommends.
    let fields = headers.get_all(HOST).iter().map(|v| (&HOST, v));
    let others = headers.iter().filter(|(k, _)| *k != HOST && !crate::spec::MESH_OWNED_HEADERS.contains(&k.as_str()));
    for (name, value) in fields.chain(others) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        // A `HeaderValue` holds no CR or LF: no field can end early or add another.
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.into()
}

/// POSTs `body` after `head` (from `head`; Content-Length is added).
pub(super) async fn post(fast: &Fast, head: &[u8], body: &[u8]) -> Result<Answer, super::h1::Failed> {
    let (status, headers, body) = fast.origin.send(head, body).await?;
    Ok(Answer { status, headers, body: Body::Own(body) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_plain_http_without_credentials_takes_the_fast_path() {
        let uri = |s: &str| fast(&url::Url::parse(s).unwrap(), crate::Reach::Any).map(|f| (f.path, f.host));
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

    #[test]
    fn the_head_has_host_first_and_never_a_framing_field_of_the_configuration() {
        let Some(fast) = fast(&url::Url::parse("http://127.0.0.1:9/mcp?x=1").unwrap(), crate::Reach::Any) else {
            return; // a proxy in the environment: no fast path
        };
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer t".parse().unwrap());
        headers.insert(HOST, fast.host.clone());
        for (name, value) in [("content-length", "5"), ("transfer-encoding", "chunked"), ("connection", "close")]
            .into_iter()
            .chain([("keep-alive", "x"), ("upgrade", "websocket"), ("te", "gzip"), ("expect", "100-continue")])
        {
            headers.insert(name, value.parse().unwrap());
        }
        let head = head(&fast, &headers);
        assert_eq!(&head[..], b"POST /mcp?x=1 HTTP/1.1\r\nhost: 127.0.0.1:9\r\nauthorization: Bearer t\r\n");
    }

    #[test]
    fn a_body_in_one_piece_is_kept_and_pieces_are_joined_within_the_limit() {
        let one = Bytes::from_static(b"{\"whole\":1}");
        let mut g = Gather::default();
        g.push(one.clone(), 64).unwrap();
        assert_eq!(g.into_bytes().as_ptr(), one.as_ptr(), "one piece: no copy");

        let mut g = Gather::default();
        for piece in ["ab", "cd", "ef"] {
            g.push(Bytes::from(piece), 6).unwrap();
        }
        assert_eq!(g.into_bytes(), Bytes::from_static(b"abcdef"));

        let mut g = Gather::default();
        g.push(Bytes::from_static(b"abcd"), 6).unwrap();
        assert_eq!(g.push(Bytes::from_static(b"efg"), 6), Err(()), "7 bytes pass a limit of 6");
    }
}
