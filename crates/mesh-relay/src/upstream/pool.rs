//! The fast path's pool of HTTP/1 connections to plain `http://` upstreams (see `wire`).
//!
//! Written here rather than taken from hyper-util's pooled client, which the fast path used
//! before: per call that client formats its pool key and hashes it with SipHash on checkout and
//! again on return, rewrites the URI to origin form, inserts Host and moves its large futures
//! several times — about 8,000 instructions a call, more than any part of the mesh's own logic
//! (docs/PERFORMANCE.md, fix 13). Here a link holds its origin's pool, so a call pops from one
//! short `Vec` under a lock, and the path and Host are computed once per link. The connections
//! are hyper's own HTTP/1 client connections, each driven by a task of its own, as before.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How long a connection may sit idle before it is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per origin; past that, a connection is closed after its call.
const MAX_IDLE: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long checkout waits for an idle connection still finishing its last response.
const READY_WAIT: Duration = Duration::from_millis(100);
/// How long a connection whose response was not read to the end may take to drain it (hyper
/// reads and discards the rest) before it is closed instead of reused.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

type Sender = SendRequest<Full<Bytes>>;

/// The connections to one `host:port`, shared by every link to it.
pub(super) struct Origin {
    addr: String,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// A connection in use: given back by `release` once its response has been read whole. Dropped
/// unreleased (a 202, an error status, an SSE stream left once the reply was in), it goes back
/// only if hyper finishes the response by itself soon: a connection with a response half read
/// cannot carry another request.
pub(super) struct Lease {
    sender: Option<Sender>,
    origin: Arc<Origin>,
}

impl Origin {
    /// The pool of `addr` (`host:port`): one per address while any link holds it.
    pub fn of(addr: &str) -> Arc<Origin> {
        static ORIGINS: OnceLock<Mutex<HashMap<String, Weak<Origin>>>> = OnceLock::new();
        let mut all = ORIGINS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(origin) = all.get(addr).and_then(Weak::upgrade) {
            return origin;
        }
        all.retain(|_, o| o.strong_count() > 0);
        let origin = Arc::new(Origin { addr: addr.to_string(), idle: Mutex::new(Vec::new()) });
        all.insert(addr.to_string(), Arc::downgrade(&origin));
        // Closes connections idle past the timeout even when no call comes to notice them.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(reap(Arc::downgrade(&origin)));
        }
        origin
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `req` on an idle connection, or on a new one when none is ready. A request that a
    /// reused connection gives back unsent (the upstream closed it while it was idle) goes out
    /// again on a new connection; one that was sent is never repeated.
    pub async fn send(
        self: &Arc<Self>,
        req: http::Request<Full<Bytes>>,
    ) -> Result<(http::Response<Incoming>, Lease), String> {
        let (mut sender, reused) = match self.checkout().await {
            Some(sender) => (sender, true),
            None => (self.connect().await?, false),
        };
        let req = match sender.try_send_request(req).await {
            Ok(resp) => return Ok((resp, Lease { sender: Some(sender), origin: self.clone() })),
            Err(mut e) => match e.take_message() {
                Some(req) if reused => req,
                _ => return Err(format!("request failed ({})", causes(&e.into_error()))),
            },
        };
        let mut sender = self.connect().await?;
        match sender.send_request(req).await {
            Ok(resp) => Ok((resp, Lease { sender: Some(sender), origin: self.clone() })),
            Err(e) => Err(format!("request failed ({})", causes(&e))),
        }
    }

    /// The newest idle connection that can take a request (the newest is the least likely to
    /// have been closed by the upstream); closed and expired ones are dropped on the way.
    async fn checkout(&self) -> Option<Sender> {
        loop {
            let Idle { mut sender, since } = self.idle().pop()?;
            if since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            if sender.is_ready() {
                return Some(sender);
            }
            // Given back just as its last response ended: its task may not have caught up yet.
            // Never wait long: a new connection is always possible.
            if !sender.is_closed() && matches!(tokio::time::timeout(READY_WAIT, sender.ready()).await, Ok(Ok(()))) {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<Sender, String> {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&self.addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("cannot connect ({e})")),
            Err(_) => return Err(format!("cannot connect (no answer within {} s)", CONNECT_TIMEOUT.as_secs())),
        };
        // Requests are small and answered at once: never wait to fill a segment.
        let _ = stream.set_nodelay(true);
        let (sender, conn) =
            http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("cannot connect ({})", causes(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %causes(&e), "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// Keeps `sender` for the next call, unless it is closed or the pool is full.
    fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle();
        let now = Instant::now();
        Origin::expire(&mut idle, now);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { sender, since: now });
        }
    }

    /// Drops idle connections past the timeout, oldest first (the vector is in release order).
    fn expire(idle: &mut Vec<Idle>, now: Instant) {
        let fresh = idle.iter().position(|i| now.duration_since(i.since) <= IDLE_TIMEOUT).unwrap_or(idle.len());
        idle.drain(..fresh);
    }
}

impl Lease {
    /// Gives the connection back for the next call.
    pub fn release(mut self) {
        if let Some(sender) = self.sender.take() {
            self.origin.put(sender);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut sender) = self.sender.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let origin = self.origin.clone();
        rt.spawn(async move {
            // Ready again only once hyper has read the rest of the response.
            if let Ok(Ok(())) = tokio::time::timeout(DRAIN_WAIT, sender.ready()).await {
                origin.put(sender);
            }
        });
    }
}

async fn reap(origin: Weak<Origin>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(origin) = origin.upgrade() else { return };
        Origin::expire(&mut origin.idle(), Instant::now());
    }
}

/// An error with its causes, `a: b: c` (hyper's own text is often just "connection error").
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
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// How the test server treats a connection after answering on it.
    #[derive(Clone, Copy)]
    enum After {
        KeepOpen,
        /// Closes it without saying so (no `Connection: close`), as an idle timeout would.
        Close,
    }

    /// A real HTTP/1 server on loopback (a thread of its own) answering every request with `ok`;
    /// counts connections.
    async fn server(after: After) -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || match after {
                    After::KeepOpen => while serve_one(&mut sock) {},
                    After::Close => {
                        serve_one(&mut sock);
                    }
                });
            }
        });
        (addr, accepted)
    }

    async fn call(origin: &Arc<Origin>) -> Result<Bytes, String> {
        let mut req = http::Request::new(Full::new(Bytes::from_static(b"{}")));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = "/mcp".parse().unwrap();
        let (resp, lease) = origin.send(req).await?;
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        lease.release();
        Ok(body)
    }

    #[tokio::test]
    async fn calls_one_after_another_share_one_connection() {
        let (addr, accepted) = server(After::KeepOpen).await;
        let origin = Origin::of(&addr);
        for _ in 0..20 {
            assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"ok"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert!(Arc::ptr_eq(&origin, &Origin::of(&addr)), "one pool per address");
    }

    #[tokio::test]
    async fn concurrent_calls_open_connections_and_keep_them() {
        let (addr, accepted) = server(After::KeepOpen).await;
        let origin = Origin::of(&addr);
        for _ in 0..3 {
            let calls: Vec<_> = (0..8).map(|_| call(&origin)).collect();
            for r in futures_util::future::join_all(calls).await {
                assert_eq!(r.unwrap(), Bytes::from_static(b"ok"));
            }
        }
        let n = accepted.load(Ordering::SeqCst);
        assert!((1..=8).contains(&n), "at most one connection per concurrent call, reused after: {n}");
        assert!(origin.idle().len() <= 8);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_while_idle_is_replaced() {
        let (addr, accepted) = server(After::Close).await;
        let origin = Origin::of(&addr);
        for i in 1..=5 {
            assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"ok"));
            // Wait (bounded) until the pool's connection has seen the close, so that the next
            // call finds a closed idle connection rather than racing the close.
            let deadline = Instant::now() + Duration::from_secs(10);
            while origin.idle().iter().any(|i| !i.sender.is_closed()) {
                assert!(Instant::now() < deadline, "the close was never seen");
                tokio::task::yield_now().await;
            }
            assert_eq!(accepted.load(Ordering::SeqCst), i);
        }
    }

    /// Reads one request (head and Content-Length body) and answers `ok`; false at end of stream.
    fn serve_one(sock: &mut std::net::TcpStream) -> bool {
        use std::io::{Read, Write};
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() >= end + 4 + len {
                    return sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").is_ok();
                }
            }
            match sock.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    #[tokio::test]
    async fn a_close_the_pool_has_not_seen_fails_one_call_clearly_and_is_never_replayed() {
        // The server runs on a thread of its own, so it can close the pooled connection while
        // this runtime's thread is blocked: the pool cannot have noticed, and the request is
        // handed to the dead connection, which hyper writes before it reads the close. The
        // request may have reached the upstream, so it is not sent again (a tool call is not
        // idempotent); the call fails with a clear error and the next one gets a new connection.
        // (A request hyper gives back unsent is sent again; when that happens is hyper's choice,
        // so no test forces it.) In service the pool sees a close as soon as the runtime polls
        // the connection, so only a call racing the close itself lands here, as with any client.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (close, close_rx) = std::sync::mpsc::channel::<()>();
        let (closed_tx, closed) = std::sync::mpsc::channel::<()>();
        let count = accepted.clone();
        std::thread::spawn(move || {
            for (i, sock) in listener.incoming().enumerate() {
                let Ok(mut sock) = sock else { return };
                count.fetch_add(1, Ordering::SeqCst);
                if i == 0 {
                    assert!(serve_one(&mut sock));
                    let _ = close_rx.recv();
                    drop(sock);
                    let _ = closed_tx.send(());
                } else {
                    std::thread::spawn(move || while serve_one(&mut sock) {});
                }
            }
        });
        let origin = Origin::of(&addr);
        assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"ok"));
        close.send(()).unwrap();
        closed.recv().unwrap();
        assert!(origin.idle().iter().all(|i| !i.sender.is_closed()), "the pool has not seen the close");
        match call(&origin).await {
            // Written to the dead connection (what hyper 1.12 does): not replayed.
            Err(err) => {
                assert!(err.starts_with("request failed ("), "{err}");
                assert_eq!(accepted.load(Ordering::SeqCst), 1, "not replayed on a new connection");
                assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"ok"));
            }
            // Given back unsent: sent once, on a new connection.
            Ok(body) => assert_eq!(body, Bytes::from_static(b"ok")),
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_response_left_unread_gives_its_connection_back_once_drained() {
        let (addr, accepted) = server(After::KeepOpen).await;
        let origin = Origin::of(&addr);
        let mut req = http::Request::new(Full::new(Bytes::from_static(b"{}")));
        *req.uri_mut() = "/mcp".parse().unwrap();
        let (resp, lease) = origin.send(req).await.unwrap();
        drop((resp, lease));
        let deadline = Instant::now() + Duration::from_secs(10);
        while origin.idle().is_empty() {
            assert!(Instant::now() < deadline, "the connection never came back");
            tokio::task::yield_now().await;
        }
        assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"ok"));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unreachable_origin_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = call(&Origin::of(&addr)).await.unwrap_err();
        assert!(err.starts_with("cannot connect ("), "{err}");
    }

    #[tokio::test]
    async fn a_connection_idle_past_the_timeout_is_not_reused() {
        let (addr, accepted) = server(After::KeepOpen).await;
        let origin = Origin::of(&addr);
        call(&origin).await.unwrap();
        let long_ago = Instant::now().checked_sub(IDLE_TIMEOUT * 2).expect("the monotonic clock started minutes ago");
        origin.idle().iter_mut().for_each(|i| i.since = long_ago);
        call(&origin).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(origin.idle().len(), 1, "the new connection is kept, the expired one closed");
    }
}
