//! The fast path's HTTP/1.1 client connection (pooled by `pool`), driven by the task that makes
//! the call.
//!
//! Written here rather than taken from hyper's client connection, which the fast path used before:
//! hyper drives each connection in a task of its own, so a call crossed tasks four times (the
//! request into the connection's dispatch channel, the response head back through a oneshot, the
//! body through a channel of its own, the connection task woken for each) and encoded a cloned
//! `HeaderMap` every time — about 12,000 instructions a call above the HTTP work itself
//! (docs/PERFORMANCE.md, fix 16). Here the request's own task writes the request in one write (a
//! head serialised once per upstream session, the length, the body) and reads the answer.
//!
//! What the mesh needs of HTTP/1.1 as a client is small, and all of it is here: a POST with a known
//! length; an answer framed by Content-Length, the chunked coding or the end of the connection
//! (RFC 9112 §6.3); interim 1xx answers skipped; the connection kept unless either side says close
//! or the framing leaves it unusable. Anything else (a transfer coding other than chunked, which
//! the mesh never asks for; a protocol switch) is refused with a clear error. No error quotes the
//! request (its headers carry credentials) or more than a field's name of the answer. How long a
//! call may take is the session's business: it drops the future at its deadline, which closes
//! the connection.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::io::Write as _;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::reach::NotPublic;
use crate::{Cause, Reach};

/// The largest answer head accepted (status line and headers).
const MAX_HEAD: usize = 128 * 1024;
/// The most header fields an answer may have (hyper's default).
const MAX_HEADERS: usize = 100;
/// The most interim (1xx) answers skipped before the real one.
const MAX_INTERIM: usize = 16;
/// The longest chunk-size line (with extensions) and the most trailer bytes accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 16 * 1024;
/// How much a read asks for at least.
const READ_SIZE: usize = 8 * 1024;
/// Bodies up to this size are copied behind the head (one write); larger ones are written after it.
const COPY_BODY: usize = 64 * 1024;

/// Why a request on the fast path failed: the cause, typed where it happened, and the story.
#[derive(Debug)]
pub(super) struct Failed {
    pub cause: Cause,
    pub detail: String,
}

impl Failed {
    /// A failure after the connection was made (the cause is the upstream's behaviour).
    pub fn other(detail: String) -> Failed {
        Failed { cause: Cause::Other, detail }
    }

    fn connect(e: std::io::Error) -> Failed {
        let refused = e.get_ref().and_then(|i| i.downcast_ref::<NotPublic>()).copied();
        if let Some(refused) = refused {
            return Failed { cause: Cause::NotPublic, detail: refused.to_string() };
        }
        let cause = match e.get_ref().and_then(|i| super::reach::known(i)) {
            Some(cause) => cause,
            None if e.kind() == std::io::ErrorKind::ConnectionRefused => Cause::Refused,
            None if e.kind() == std::io::ErrorKind::TimedOut => Cause::Timeout,
            None => Cause::Other,
        };
        Failed { cause, detail: format!("cannot connect ({e})") }
    }
}

impl From<Failed> for String {
    fn from(f: Failed) -> String {
        f.detail
    }
}

/// One connection to an upstream.
pub(super) struct Conn {
    io: TcpStream,
    /// Bytes read and not consumed yet.
    pub(super) buf: BytesMut,
    /// The request being written, kept for the next one.
    out: Vec<u8>,
}

/// An answer's status line and headers, and how its body is framed.
#[derive(Debug)]
pub(super) struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection can carry another request once the body has been read.
    pub keep_alive: bool,
}

/// How an answer's body ends (RFC 9112 §6.3).
#[derive(Debug)]
pub(super) enum Framing {
    /// After this many more bytes.
    Length(u64),
    /// With the chunked coding's last chunk and trailers.
    Chunked(Chunked),
    /// When the upstream closes the connection.
    Close,
}

/// Where a chunked body's decoder is.
#[derive(Debug)]
pub(super) enum Chunked {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer fields (ignored), with the bytes seen so far.
    Trailers(usize),
    Done,
}

/// What the buffered bytes give next.
#[derive(Debug, PartialEq)]
pub(super) enum Step {
    Data(Bytes),
    /// Nothing until more is read.
    More,
    /// The body is complete.
    End,
}

impl Conn {
    /// A new connection to `addr` (`host:port`), at an address `reach` allows (`reach::resolve`:
    /// the only place the fast path resolves names, so the check cannot be skipped; it runs per
    /// new connection, never per call).
    pub async fn open(addr: &str, reach: Reach, timeout: Duration) -> Result<Conn, Failed> {
        let connect = async {
            let addrs = super::reach::resolve(addr, reach).await?;
            TcpStream::connect(&addrs[..]).await
        };
        let io = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(Failed::connect(e)),
            Err(_) => {
                let detail = format!("cannot connect (no answer within {} s)", timeout.as_secs());
                return Err(Failed { cause: Cause::Timeout, detail });
            }
        };
        // Requests are small and answered at once: never wait to fill a segment.
        let _ = io.set_nodelay(true);
        Ok(Conn { io, buf: BytesMut::with_capacity(READ_SIZE), out: Vec::with_capacity(1024) })
    }

    /// Whether an idle connection can take a request: false once the upstream has closed it (or
    /// sent something unasked). Costs no system call unless the runtime has seen the socket
    /// become readable, which an idle connection only does when it is closing.
    pub fn is_usable(&self) -> bool {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut byte = [0u8; 1];
                matches!(self.io.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Writes a request: `head` is its request line and headers, each ending in CRLF, without
    /// Content-Length, which is written here with the blank line and `body`.
    pub async fn write_request(&mut self, head: &[u8], body: &[u8]) -> std::io::Result<()> {
        self.out.clear();
        self.out.extend_from_slice(head);
        write!(self.out, "content-length: {}\r\n\r\n", body.len())?;
        if body.len() <= COPY_BODY {
            self.out.extend_from_slice(body);
            self.io.write_all(&self.out).await
        } else {
            self.io.write_all(&self.out).await?;
            self.io.write_all(body).await
        }
    }

    /// Reads more into `buf`; 0 at the end of the stream.
    pub async fn fill(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// Reads the answer's head, past any interim (1xx) answers.
    pub async fn read_head(&mut self) -> Result<Head, String> {
        let mut interim = 0;
        loop {
            if let Some((len, head)) = parse_head(&self.buf)? {
                self.buf.advance(len);
                if head.status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err("the upstream switched protocols unasked".into());
                }
                if head.status.is_informational() {
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(format!("more than {MAX_INTERIM} interim answers"));
                    }
                    continue;
                }
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(format!("the answer's head is larger than {} KiB", MAX_HEAD / 1024));
            }
            match self.fill().await {
                Ok(0) if self.buf.is_empty() => {
                    return Err("the upstream closed the connection before answering".into())
                }
                Ok(0) => return Err("the upstream closed the connection in the middle of its answer".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("reading the answer failed ({e})")),
            }
        }
    }
}

/// Parses an answer head at the start of `buf`: `None` until it is complete, then its length.
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<(usize, Head)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(format!("the answer has more than {MAX_HEADERS} header fields"));
        }
        Err(e) => return Err(format!("malformed answer ({e})")),
    };
    let status = resp.code.and_then(|c| StatusCode::from_u16(c).ok()).ok_or("malformed answer (status code)")?;
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for field in resp.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes());
        let value = HeaderValue::from_bytes(field.value);
        match (name, value) {
            (Ok(name), Ok(value)) => headers.append(name, value),
            _ => return Err(format!("malformed answer (header field {:?})", shown(field.name))),
        };
    }
    let http11 = resp.version == Some(1);
    let (framing, reusable) = framing(status, &headers)?;
    let close = tokens(&headers, &CONNECTION).any(|t| t.eq_ignore_ascii_case(b"close"));
    // HTTP/1.0 answers end the connection unless it was negotiated otherwise, which the mesh
    // never asks for.
    let keep_alive = http11 && reusable && !close;
    Ok(Some((len, Head { status, headers, framing, keep_alive })))
}

/// The body's framing (RFC 9112 §6.3), and whether the connection survives it.
fn framing(status: StatusCode, headers: &HeaderMap) -> Result<(Framing, bool), String> {
    if status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Length(0), true));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        // The mesh sends no TE field, so chunked is the only coding an upstream may apply: any
        // other would hand encoded bytes on as if they were the message.
        let mut codings = tokens(headers, &TRANSFER_ENCODING);
        if !codings.next().is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")) || codings.next().is_some() {
            return Err("the answer uses a transfer coding other than chunked, which the mesh did not ask for".into());
        }
        // With both, Transfer-Encoding wins and the connection must not be reused (§6.3 item 3).
        return Ok((Framing::Chunked(Chunked::Size), !headers.contains_key(CONTENT_LENGTH)));
    }
    let mut length = None;
    for token in tokens(headers, &CONTENT_LENGTH) {
        let n = (!token.is_empty() && token.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(token).ok()?.parse::<u64>().ok())
            .flatten()
            .ok_or("malformed answer (Content-Length)")?;
        if length.is_some_and(|l| l != n) {
            return Err("malformed answer (Content-Length values differ)".into());
        }
        length = Some(n);
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), true),
        None => (Framing::Close, false),
    })
}

/// The comma-separated elements of every `name` field, trimmed (as bytes: a value may hold
/// obs-text, which must not hide the tokens beside it).
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers.get_all(name).iter().flat_map(|v| v.as_bytes().split(|&b| b == b',')).map(|t| t.trim_ascii())
}

/// At most 40 characters of an upstream's text, for an error message.
fn shown(text: &str) -> String {
    text.chars().take(40).collect()
}

impl Framing {
    /// Takes the next piece of the body from `buf`.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, String> {
        match self {
            Framing::Length(0) => Ok(Step::End),
            Framing::Length(left) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let n = (*left).min(buf.len() as u64) as usize;
                *left -= n as u64;
                Ok(Step::Data(take(buf, n)))
            }
            Framing::Close if buf.is_empty() => Ok(Step::More),
            Framing::Close => Ok(Step::Data(take(buf, buf.len()))),
            Framing::Chunked(state) => state.step(buf),
        }
    }
}

impl Chunked {
    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, String> {
        loop {
            match self {
                Chunked::Size => {
                    let Some(line) = line(buf, MAX_CHUNK_LINE, "a chunk-size line")? else { return Ok(Step::More) };
                    // Extensions after `;` are allowed and ignored.
                    let size = line.split(|&b| b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(size).unwrap_or("").trim_matches([' ', '\t']);
                    let valid = !size.is_empty() && size.len() <= 16 && size.bytes().all(|b| b.is_ascii_hexdigit());
                    let size = valid
                        .then(|| u64::from_str_radix(size, 16).ok())
                        .flatten()
                        .ok_or("malformed chunked body (chunk size)")?;
                    *self = if size == 0 { Chunked::Trailers(0) } else { Chunked::Data(size) };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let n = (*left).min(buf.len() as u64) as usize;
                    *left -= n as u64;
                    if *left == 0 {
                        *self = Chunked::DataEnd;
                    }
                    return Ok(Step::Data(take(buf, n)));
                }
                Chunked::DataEnd => match buf.first() {
                    None => return Ok(Step::More),
                    Some(b'\n') => {
                        buf.advance(1);
                        *self = Chunked::Size;
                    }
                    Some(b'\r') if buf.len() < 2 => return Ok(Step::More),
                    Some(b'\r') if buf[1] == b'\n' => {
                        buf.advance(2);
                        *self = Chunked::Size;
                    }
                    Some(_) => return Err("malformed chunked body (no line end after a chunk)".into()),
                },
                Chunked::Trailers(seen) => {
                    let room = MAX_TRAILERS.saturating_sub(*seen);
                    let Some(line) = line(buf, room, "the trailers")? else { return Ok(Step::More) };
                    if line.is_empty() {
                        *self = Chunked::Done;
                    } else {
                        *seen += line.len() + 2;
                    }
                }
                Chunked::Done => return Ok(Step::End),
            }
        }
    }
}

/// Takes one line (without its CRLF or bare LF) off the front of `buf`, `None` until it is whole;
/// an error when it runs past `max` bytes.
fn line(buf: &mut BytesMut, max: usize, what: &str) -> Result<Option<Bytes>, String> {
    match memchr::memchr(b'\n', buf) {
        Some(end) if end <= max => {
            let mut line = buf.split_to(end + 1).freeze();
            line.truncate(end - usize::from(end > 0 && line[end - 1] == b'\r'));
            Ok(Some(line))
        }
        None if buf.len() <= max => Ok(None),
        _ => Err(format!("malformed chunked body ({what} too long)")),
    }
}

/// The first `n` buffered bytes: copied when small, so the read buffer is reused for the next
/// answer instead of staying shared with a body the caller keeps.
fn take(buf: &mut BytesMut, n: usize) -> Bytes {
    if n <= COPY_BODY {
        let data = Bytes::copy_from_slice(&buf[..n]);
        buf.advance(n);
        data
    } else {
        buf.split_to(n).freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: impl AsRef<[u8]>) -> Result<Option<(usize, Head)>, String> {
        parse_head(text.as_ref())
    }

    fn complete(text: impl AsRef<[u8]>) -> Head {
        let (len, head) = head(&text).unwrap().expect("a complete head");
        assert_eq!(len, text.as_ref().len());
        head
    }

    #[test]
    fn heads_give_their_framing_and_whether_the_connection_survives() {
        let h = complete("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.headers["content-type"], "application/json");
        assert!(matches!(h.framing, Framing::Length(12)) && h.keep_alive);

        let h = complete("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        assert!(matches!(h.framing, Framing::Chunked(Chunked::Size)) && h.keep_alive);

        let h = complete("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert!(matches!(h.framing, Framing::Chunked(_)) && !h.keep_alive, "both: chunked, then close");

        let h = complete(b"HTTP/1.1 200 OK\r\nConnection: \xff, close\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive, "obs-text beside close does not hide it");

        let h = complete("HTTP/1.1 200 OK\r\n\r\n");
        assert!(matches!(h.framing, Framing::Close) && !h.keep_alive, "no length: read to the close");

        let h = complete("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(matches!(h.framing, Framing::Length(0)) && !h.keep_alive, "Connection: close is honoured");

        let h = complete("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n");
        assert!(!h.keep_alive, "HTTP/1.0 ends the connection");

        let h = complete("HTTP/1.1 204 No Content\r\n\r\n");
        assert!(matches!(h.framing, Framing::Length(0)) && h.keep_alive);

        let h = complete("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n");
        assert!(matches!(h.framing, Framing::Length(7)), "repeated equal lengths are one length");
    }

    #[test]
    fn incomplete_heads_wait_and_malformed_ones_are_refused() {
        let full = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
        for cut in 0..full.len() {
            assert!(head(&full[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.1 2x0 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "x: y\r\n".repeat(MAX_HEADERS + 1));
        assert!(head(&many).unwrap_err().contains("more than 100 header fields"));
    }

    /// Runs `framing` over `wire` fed `split` bytes at a time; the body, and what is left over.
    fn decode(mut framing: Framing, wire: &[u8], split: usize) -> Result<(Vec<u8>, Vec<u8>), String> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match framing.step(&mut buf)? {
                Step::Data(d) => {
                    assert!(!d.is_empty(), "no empty data");
                    body.extend_from_slice(&d);
                }
                Step::End => return Ok((body, buf.to_vec())),
                Step::More if fed == wire.len() => return Err("needs more than the whole input".into()),
                Step::More => {
                    let next = (fed + split).min(wire.len());
                    buf.extend_from_slice(&wire[fed..next]);
                    fed = next;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_however_the_bytes_arrive() {
        let wire = b"5\r\nhello\r\n1;name=value\r\n \r\nA\n0123456789\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for split in 1..=wire.len() {
            let (body, rest) = decode(Framing::Chunked(Chunked::Size), wire, split).unwrap();
            assert_eq!(body, b"hello 0123456789", "split {split}");
            // The next answer's bytes stay in the buffer (whatever of them had been read).
            assert!(b"NEXT".starts_with(&rest), "split {split}: {rest:?}");
            if split == wire.len() {
                assert_eq!(rest, b"NEXT");
            }
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        for bad in [&b"x\r\n"[..], b"\r\n", b"-1\r\n", b"11111111111111111\r\n", b"3\r\nabcX\r\n", b"3\r\nabc\rX"] {
            assert!(decode(Framing::Chunked(Chunked::Size), bad, 1).unwrap_err().starts_with("malformed"), "{bad:?}");
        }
        let long = [b"1".repeat(MAX_CHUNK_LINE + 1), b"\r\n".to_vec()].concat();
        assert!(decode(Framing::Chunked(Chunked::Size), &long, 4096).unwrap_err().contains("too long"));
        let trailers = [b"0\r\n".to_vec(), b"x: y\r\n".repeat(MAX_TRAILERS / 6 + 1), b"\r\n".to_vec()].concat();
        assert!(decode(Framing::Chunked(Chunked::Size), &trailers, 100).unwrap_err().contains("trailers too long"));
    }

    #[test]
    fn lengths_take_exactly_their_bytes() {
        for split in 1..8 {
            let (body, rest) = decode(Framing::Length(5), b"helloNEXT", split).unwrap();
            assert_eq!(body, b"hello");
            assert!(b"NEXT".starts_with(&rest), "split {split}: {rest:?}");
        }
        assert_eq!(decode(Framing::Length(5), b"helloNEXT", 9).unwrap().1, b"NEXT");
        assert_eq!(decode(Framing::Length(0), b"", 1).unwrap(), (vec![], vec![]));
        assert!(decode(Framing::Length(6), b"hello", 2).is_err(), "short bodies wait for more");
    }

    #[test]
    fn large_pieces_are_shared_not_copied() {
        let mut buf = BytesMut::from(&vec![7u8; COPY_BODY + 1][..]);
        let ptr = buf.as_ptr();
        let data = take(&mut buf, COPY_BODY + 1);
        assert_eq!(data.as_ptr(), ptr);
        let mut buf = BytesMut::from(&b"small"[..]);
        let ptr = buf.as_ptr();
        assert_ne!(take(&mut buf, 5).as_ptr(), ptr);
    }
}
