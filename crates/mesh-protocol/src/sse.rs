//! Server-Sent Events framing (WHATWG HTML §9.2), both directions.
//!
//! Written here rather than taken from a crate: the relay needs the decoder's "last event id"
//! and `retry` state for Streamable HTTP resumption, and the encoder is a few lines on the hot path.

use bytes::{BufMut, Bytes, BytesMut};

/// Encodes one event. Data containing newlines is split over several `data:` lines.
pub fn encode(id: Option<&str>, event: Option<&str>, data: &str, retry_ms: Option<u64>) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len() + 48);
    if let Some(ms) = retry_ms {
        b.put_slice(format!("retry: {ms}\n").as_bytes());
    }
    if let Some(id) = id {
        b.put_slice(b"id: ");
        b.put_slice(id.as_bytes());
        b.put_u8(b'\n');
    }
    if let Some(ev) = event {
        b.put_slice(b"event: ");
        b.put_slice(ev.as_bytes());
        b.put_u8(b'\n');
    }
    if data.is_empty() {
        b.put_slice(b"data: \n");
    }
    for line in data.split('\n') {
        if line.is_empty() && !data.is_empty() {
            continue;
        }
        if !line.is_empty() {
            b.put_slice(b"data: ");
            b.put_slice(line.trim_end_matches('\r').as_bytes());
            b.put_u8(b'\n');
        }
    }
    b.put_u8(b'\n');
    b.freeze()
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `id` in force when the event was dispatched.
    pub id: Option<String>,
    /// The `event` type; empty means the default, "message".
    pub event: String,
    /// The data lines joined by `\n`.
    pub data: String,
}

/// An incremental decoder: feed it chunks as they arrive, take events as they complete.
#[derive(Debug, Default)]
pub struct Decoder {
    pending: Vec<u8>,
    data: String,
    event: String,
    has_data: bool,
    last_event_id: Option<String>,
    retry_ms: Option<u64>,
    saw_cr: bool,
}

/// Lines longer than this are a broken or hostile peer; the decoder refuses to buffer more.
pub const MAX_LINE: usize = 16 * 1024 * 1024;
/// The largest event (its `data` lines joined) the decoder will assemble. A line cap alone does
/// not bound an event: a peer may send `data:` lines for ever without the blank line that ends
/// one. The same as a line, so the bound does not depend on how a peer splits its data.
pub const MAX_EVENT: usize = MAX_LINE;

/// The peer sent more than the decoder will buffer: a broken or hostile peer. The stream cannot
/// be trusted to resynchronise, so callers end it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TooLarge {
    /// One line exceeded [`MAX_LINE`].
    #[error("SSE line longer than {MAX_LINE} bytes")]
    Line,
    /// One event's data exceeded [`MAX_EVENT`].
    #[error("SSE event larger than {MAX_EVENT} bytes")]
    Event,
}

impl Decoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last event id seen (also from events with empty data, such as priming events).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The reconnection delay the server asked for, if any.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Consumes a chunk and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, TooLarge> {
        let mut out = Vec::new();
        for &byte in chunk {
            match byte {
                b'\n' if self.saw_cr => self.saw_cr = false,
                b'\n' | b'\r' => {
                    self.saw_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.pending);
                    if let Some(ev) = self.line(&line)? {
                        out.push(ev);
                    }
                }
                _ => {
                    self.saw_cr = false;
                    if self.pending.len() >= MAX_LINE {
                        return Err(TooLarge::Line);
                    }
                    self.pending.push(byte);
                }
            }
        }
        Ok(out)
    }

    fn line(&mut self, line: &[u8]) -> Result<Option<Event>, TooLarge> {
        let line = String::from_utf8_lossy(line);
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&line[..], ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT {
                    return Err(TooLarge::Event);
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_string(),
            "id" if !value.contains('\0') => self.last_event_id = Some(value.to_string()),
            "retry" => {
                if let Ok(ms) = value.parse() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<Event> {
        let has_data = std::mem::take(&mut self.has_data);
        let data = std::mem::take(&mut self.data);
        let event = std::mem::take(&mut self.event);
        // Per the SSE spec an event with no data lines is not dispatched (a priming event only
        // sets the last event id). An explicit empty `data:` line is also nothing to relay.
        if !has_data || data.is_empty() {
            return None;
        }
        Some(Event { id: self.last_event_id.clone(), event, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_in_odd_chunks() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&encode(Some("s1-0"), None, "", Some(1000)));
        wire.extend_from_slice(&encode(Some("s1-1"), None, "{\"a\":1}", None));
        wire.extend_from_slice(&encode(Some("s1-2"), Some("message"), "line1\nline2", None));
        let mut d = Decoder::new();
        let mut events = Vec::new();
        for chunk in wire.chunks(3) {
            events.extend(d.push(chunk).unwrap());
        }
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[0].id.as_deref(), Some("s1-1"));
        assert_eq!(events[1].data, "line1\nline2");
        assert_eq!(events[1].event, "message");
        assert_eq!(d.last_event_id(), Some("s1-2"));
        assert_eq!(d.retry_ms(), Some(1000));
    }

    #[test]
    fn crlf_comments_and_priming() {
        let mut d = Decoder::new();
        let ev =
            d.push(b": keepalive\r\nid: p0\r\ndata:\r\n\r\nevent: endpoint\r\ndata: /messages?x=1\r\n\r\n").unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].event.as_str(), ev[0].data.as_str()), ("endpoint", "/messages?x=1"));
        assert_eq!(d.last_event_id(), Some("p0"));
    }

    #[test]
    fn an_event_is_bounded_however_its_lines_are_split() {
        let line = format!("data: {}\n", "x".repeat(1024 * 1024));
        let mut d = Decoder::new();
        let mut fed = 0;
        let err = loop {
            match d.push(line.as_bytes()) {
                Ok(events) => assert!(events.is_empty(), "no blank line, no event"),
                Err(e) => break e,
            }
            fed += line.len();
            assert!(fed <= MAX_EVENT + line.len(), "the decoder buffered {fed} bytes of one event");
        };
        assert_eq!(err, TooLarge::Event);
        assert_eq!(err.to_string(), format!("SSE event larger than {MAX_EVENT} bytes"));
        // Events up to the bound still pass, however many lines they use.
        let mut d = Decoder::new();
        let events = d.push(b"data: a\ndata: b\n\n").unwrap();
        assert_eq!(events[0].data, "a\nb");
    }

    #[test]
    fn a_line_is_bounded() {
        let mut d = Decoder::new();
        let big = vec![b'x'; MAX_LINE + 1];
        assert_eq!(d.push(&big), Err(TooLarge::Line));
    }
}
