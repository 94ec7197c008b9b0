//! The fast path's pool of HTTP/1.1 connections to plain `http://` upstreams (see `wire`).
//!
//! Written here rather than taken from hyper-util's pooled client, which the fast path used
//! before: per call that client formats its pool key and hashes it with SipHash on checkout and
//! again on return, rewrites the URI to origin form, inserts Host and moves its large futures
//! several times — about 8,000 instructions a call, more than any part of the mesh's own logic
//! (docs/PERFORMANCE.md, fix 13). Here a link holds its origin's pool, so a call pops from one
//! short `Vec` under a lock, and the request head is serialised once per link. The connections
//! are the mesh's own too (`h1`, fix 16), driven by the task that makes the call: an idle one is
//! a socket in the pool, polled by nobody.

use super::h1::{Conn, Failed, Framing, Head, Step};
use crate::Reach;
use bytes::{Buf, Bytes};
use http::{HeaderMap, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How long a connection may sit idle before it is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per origin; past that, a connection is closed after its call.
const MAX_IDLE: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections to one `host:port`, shared by every link to it of the same [`Reach`]: a
/// connection an operator's link opened to an internal address is never handed to a `Public`
/// link, whose new connections are checked when they are opened (`h1::Conn::open`).
pub(super) struct Origin {
    addr: String,
    reach: Reach,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// An answer's body, read from the connection it arrives on. Read to its end, the connection goes
/// back to the pool; dropped before, it goes back only if the rest is already buffered (a 202, a
/// short error body), else it is closed: a connection with an answer half read cannot carry
/// another request.
pub(super) struct Body {
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    origin: Arc<Origin>,
}

impl Origin {
    /// The pool of `addr` (`host:port`) for links of `reach`: one per pair while any link holds
    /// it. Looked up when a link is made, never per call.
    pub fn of(addr: &str, reach: Reach) -> Arc<Origin> {
        type Key = (String, Reach);
        static ORIGINS: OnceLock<Mutex<HashMap<Key, Weak<Origin>>>> = OnceLock::new();
        let mut all = ORIGINS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        let key = (addr.to_string(), reach);
        if let Some(origin) = all.get(&key).and_then(Weak::upgrade) {
            return origin;
        }
        all.retain(|_, o| o.strong_count() > 0);
        let origin = Arc::new(Origin { addr: addr.to_string(), reach, idle: Mutex::new(Vec::new()) });
        all.insert(key, Arc::downgrade(&origin));
        // Closes connections idle past the timeout even when no call comes to notice them.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(reap(Arc::downgrade(&origin)));
        }
        origin
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a request (`head` as `h1::Conn::write_request` takes it) on an idle connection, or
    /// on a new one when none is usable, and reads the answer's head. A request that could not be
    /// written whole on a reused connection (the upstream closed it while it was idle) goes out
    /// again on a new connection; one that was written is never repeated.
    pub async fn send(self: &Arc<Self>, head: &[u8], body: &[u8]) -> Result<(StatusCode, HeaderMap, Body), Failed> {
        if let Some(mut conn) = self.checkout() {
            if conn.write_request(head, body).await.is_ok() {
                return self.answer(conn).await;
            }
        }
        let mut conn = Conn::open(&self.addr, self.reach, CONNECT_TIMEOUT).await?;
        conn.write_request(head, body).await.map_err(|e| Failed::other(format!("request failed ({e})")))?;
        self.answer(conn).await
    }

    async fn answer(self: &Arc<Self>, mut conn: Conn) -> Result<(StatusCode, HeaderMap, Body), Failed> {
        let Head { status, headers, framing, keep_alive } =
            conn.read_head().await.map_err(|e| Failed::other(format!("request failed ({e})")))?;
        Ok((status, headers, Body { conn: Some(conn), framing, keep_alive, origin: self.clone() }))
    }

    /// The newest idle connection still usable (the newest is the least likely to have been
    /// closed by the upstream); closed and expired ones are dropped on the way.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle();
        while let Some(Idle { conn, since }) = idle.pop() {
            if since.elapsed() <= IDLE_TIMEOUT && conn.is_usable() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next call, unless the pool is full.
    fn put(&self, conn: Conn) {
        let mut idle = self.idle();
        let now = Instant::now();
        Origin::expire(&mut idle, now);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { conn, since: now });
        }
    }

    /// Drops idle connections past the timeout, oldest first (the vector is in release order).
    fn expire(idle: &mut Vec<Idle>, now: Instant) {
        let fresh = idle.iter().position(|i| now.duration_since(i.since) <= IDLE_TIMEOUT).unwrap_or(idle.len());
        idle.drain(..fresh);
    }
}

impl Body {
    /// The next piece of the body; `None` once it has all been read.
    pub async fn data(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            let Some(conn) = self.conn.as_mut() else { return Ok(None) };
            let step = self.framing.step(&mut conn.buf);
            match step {
                Ok(Step::Data(data)) => return Ok(Some(data)),
                Ok(Step::End) => {
                    self.finish();
                    return Ok(None);
                }
                Ok(Step::More) => {}
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
            match conn.fill().await {
                Ok(0) if matches!(self.framing, Framing::Close) => {
                    self.conn = None;
                    return Ok(None);
                }
                Ok(0) => {
                    self.conn = None;
                    return Err("the upstream closed the connection before the body ended".into());
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Err(format!("reading the body failed ({e})"));
                }
            }
        }
    }

    /// The body has ended: its connection goes back to the pool if it can carry another request
    /// (nothing unasked left over after the body).
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                self.origin.put(conn);
            }
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // The rest of the body may be buffered already: then the connection is still good.
        if let (Some(conn), Framing::Length(left)) = (self.conn.as_mut(), &mut self.framing) {
            // Skipped without the copies `step` makes.
            let n = (*left).min(conn.buf.len() as u64);
            conn.buf.advance(n as usize);
            *left -= n;
        }
        while let Some(conn) = self.conn.as_mut() {
            match self.framing.step(&mut conn.buf) {
                Ok(Step::Data(_)) => {}
                Ok(Step::End) => self.finish(),
                Ok(Step::More) | Err(_) => self.conn = None,
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
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
        let serve: fn(usize, std::net::TcpStream) = match after {
            After::KeepOpen => |_, mut sock| while serve_one(&mut sock) {},
            After::Close => |_, mut sock| {
                serve_one(&mut sock);
            },
        };
        serve_with(serve)
    }

    /// A server on loopback that hands each connection, with its number from 0, to `serve` on a
    /// thread of its own; counts connections.
    fn serve_with(serve: fn(usize, std::net::TcpStream)) -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for (i, sock) in listener.incoming().enumerate() {
                let Ok(sock) = sock else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(i, sock));
            }
        });
        (addr, accepted)
    }

    const HEAD: &[u8] = b"POST /mcp HTTP/1.1\r\nhost: test\r\n";

    async fn call(origin: &Arc<Origin>) -> Result<Bytes, String> {
        let (status, _, mut body) = origin.send(HEAD, b"{}").await?;
        assert_eq!(status, StatusCode::OK);
        let mut all = Vec::new();
        while let Some(data) = body.data().await? {
            all.extend_from_slice(&data);
        }
        Ok(all.into())
    }

    #[tokio::test]
    async fn calls_one_after_another_share_one_connection() {
        let (addr, accepted) = server(After::KeepOpen).await;
        let origin = Origin::of(&addr, Reach::Any);
        for _ in 0..20 {
            assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"ok"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert!(Arc::ptr_eq(&origin, &Origin::of(&addr, Reach::Any)), "one pool per address");
    }

    #[tokio::test]
    async fn concurrent_calls_open_connections_and_keep_them() {
        let (addr, accepted) = server(After::KeepOpen).await;
        let origin = Origin::of(&addr, Reach::Any);
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
        let origin = Origin::of(&addr, Reach::Any);
        for i in 1..=5 {
            assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"ok"));
            // Wait (bounded) until the pool's connection has seen the close, so that the next
            // call finds a closed idle connection rather than racing the close.
            let deadline = Instant::now() + Duration::from_secs(10);
            while origin.idle().iter().any(|i| i.conn.is_usable()) {
                assert!(Instant::now() < deadline, "the close was never seen");
                tokio::task::yield_now().await;
            }
            assert_eq!(accepted.load(Ordering::SeqCst), i);
        }
    }

    /// Reads one request (head and Content-Length body) and answers `ok`; false at end of stream.
    fn serve_one(sock: &mut std::net::TcpStream) -> bool {
        use std::io::Write;
        read_request(sock) && sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").is_ok()
    }

    /// Reads one request whole without answering it; false at end of stream.
    fn read_request(sock: &mut std::net::TcpStream) -> bool {
        use std::io::Read;
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
                    return true;
                }
            }
            match sock.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    #[tokio::test]
    async fn a_request_that_was_written_is_never_sent_again() {
        // The upstream takes the second request on the pooled connection whole, then closes it
        // without answering. It may have acted on it (a tool call is not idempotent), so the call
        // fails with a clear error instead of going out again on a new connection; the next call
        // gets a new connection. (A request whose write fails on a reused connection is sent
        // again; whether the kernel fails a write is its choice, so no test forces that.)
        let (addr, accepted) = serve_with(|i, mut sock| {
            if i == 0 {
                assert!(serve_one(&mut sock));
                assert!(read_request(&mut sock));
            } else {
                while serve_one(&mut sock) {}
            }
        });
        let origin = Origin::of(&addr, Reach::Any);
        assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"ok"));
        let err = call(&origin).await.unwrap_err();
        assert!(err.starts_with("request failed (the upstream closed the connection before answering"), "{err}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "not sent again on a new connection");
        assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"ok"));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_with_bytes_after_the_answer_is_not_reused() {
        let (addr, accepted) = serve_with(|_, mut sock| {
            use std::io::Write;
            while read_request(&mut sock) {
                // Two bytes more than the length: the connection is out of step.
                if sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokXX").is_err() {
                    return;
                }
            }
        });
        let origin = Origin::of(&addr, Reach::Any);
        for i in 1..=3 {
            assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"ok"));
            assert!(origin.idle().is_empty(), "call {i}: not pooled");
            assert_eq!(accepted.load(Ordering::SeqCst), i);
        }
    }

    #[tokio::test]
    async fn a_body_left_unread_gives_its_connection_back_only_when_it_had_all_arrived() {
        let (addr, accepted) = server(After::KeepOpen).await;
        let origin = Origin::of(&addr, Reach::Any);
        // `ok` comes with the head: dropping the body unread still leaves the connection clean.
        let (_, _, body) = origin.send(HEAD, b"{}").await.unwrap();
        drop(body);
        assert_eq!(origin.idle().len(), 1);
        assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"ok"));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        // A body still on its way when dropped: the connection is closed, never reused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (finish, finish_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            use std::io::Write;
            let (mut sock, _) = listener.accept().unwrap();
            let mut scratch = [0u8; 4096];
            let _ = std::io::Read::read(&mut sock, &mut scratch);
            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf").unwrap();
            let _ = finish_rx.recv();
        });
        let origin = Origin::of(&addr, Reach::Any);
        let (_, _, body) = origin.send(HEAD, b"{}").await.unwrap();
        drop(body);
        assert!(origin.idle().is_empty(), "a half-read connection is not pooled");
        let _ = finish.send(());
    }

    #[tokio::test]
    async fn answers_that_end_the_connection_are_read_whole_and_not_pooled() {
        // HTTP/1.0 without a length, then chunked with `Connection: close`: one connection each.
        for answer in [
            &b"HTTP/1.0 200 OK\r\n\r\nuntil the close"[..],
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n4\r\nunti\r\nb\r\nl the close\r\n0\r\n\r\n",
        ] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            std::thread::spawn(move || {
                use std::io::Write;
                let (mut sock, _) = listener.accept().unwrap();
                let mut scratch = [0u8; 4096];
                let _ = std::io::Read::read(&mut sock, &mut scratch);
                // In pieces, so that the body is read across several reads.
                for piece in answer.chunks(7) {
                    sock.write_all(piece).unwrap();
                    sock.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            let origin = Origin::of(&addr, Reach::Any);
            assert_eq!(call(&origin).await.unwrap(), Bytes::from_static(b"until the close"));
            assert!(origin.idle().is_empty());
        }
    }

    #[tokio::test]
    async fn a_public_pool_never_connects_to_loopback_nor_takes_an_operator_links_connection() {
        let (addr, accepted) = server(After::KeepOpen).await;
        let any = Origin::of(&addr, Reach::Any);
        call(&any).await.unwrap();
        assert_eq!(any.idle().len(), 1, "an operator's link left a pooled connection");
        let port = addr.rsplit(':').next().unwrap();
        for addr in [addr.clone(), format!("localhost:{port}")] {
            let public = Origin::of(&addr, Reach::Public);
            assert!(!Arc::ptr_eq(&any, &public), "one pool per reach");
            let Err(err) = public.send(HEAD, b"{}").await else { panic!("{addr}: a public link reached loopback") };
            assert_eq!(err.cause, crate::Cause::NotPublic, "{addr}: {err:?}");
            assert!(err.detail.contains("is not public"), "{err:?}");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "no connection was opened for the public links");
        assert_eq!(any.idle().len(), 1, "the operator's connection stayed where it was");
    }

    #[tokio::test]
    async fn an_unreachable_origin_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let Err(err) = Origin::of(&addr, Reach::Any).send(HEAD, b"{}").await else { panic!("connected") };
        assert!(err.detail.starts_with("cannot connect ("), "{err:?}");
        assert_eq!(err.cause, crate::Cause::Refused);
    }

    #[tokio::test]
    async fn a_connection_idle_past_the_timeout_is_not_reused() {
        let (addr, accepted) = server(After::KeepOpen).await;
        let origin = Origin::of(&addr, Reach::Any);
        call(&origin).await.unwrap();
        let long_ago = Instant::now().checked_sub(IDLE_TIMEOUT * 2).expect("the monotonic clock started minutes ago");
        origin.idle().iter_mut().for_each(|i| i.since = long_ago);
        call(&origin).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(origin.idle().len(), 1, "the new connection is kept, the expired one closed");
    }
}
