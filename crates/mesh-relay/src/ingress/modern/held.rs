//! Text of a stateless request's own, held as a shared slice of its bytes rather than copied: a
//! stateless request carries its id and capabilities on every call, and most calls read them
//! once (allocations are much of what the stateless path adds; docs/PERFORMANCE.md).

use bytes::Bytes;
use mesh_protocol::Message;

/// UTF-8 text: built only from a `&str` (the field is private to this module), so reading it
/// back cannot fail. Holding a slice keeps the whole request alive: what outlives the call (a
/// listen stream, a parked retry) holds a copy ([`Held::copied`]).
#[derive(Clone)]
pub(in crate::ingress) struct Held(Bytes);

impl Held {
    /// `part` of `msg`: a slice of its bytes when it is one (the scan's and serde's borrowed
    /// answers are), else a copy.
    pub(super) fn of(msg: &Message, part: &str) -> Held {
        let raw = msg.bytes();
        let (at, within) = ((part.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize), raw.len());
        match at <= within && part.len() <= within - at {
            true => Held(raw.slice(at..at + part.len())),
            false => Held(Bytes::copy_from_slice(part.as_bytes())),
        }
    }

    /// The same text in a buffer of its own, for what outlives the request.
    pub(super) fn copied(&self) -> Held {
        Held(Bytes::copy_from_slice(&self.0))
    }

    /// The text's bytes, not checked again (hashed on every request).
    pub(super) fn raw(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Held {
    type Target = str;

    fn deref(&self) -> &str {
        // Built from a `&str` only, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// For tests' requests built by hand; the ingress takes text from the request ([`Held::of`]).
#[cfg(test)]
impl From<&str> for Held {
    fn from(text: &str) -> Held {
        Held(Bytes::copy_from_slice(text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_request_holds_is_shared_not_copied() {
        let sent = r#"{"jsonrpc":"2.0","id":"a-1","method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"x":{}}}}}"#;
        let msg = Message::parse(Bytes::from(sent)).expect("message");
        let within = |h: &Held| msg.bytes().as_ptr_range().contains(&h.as_ptr());
        let id = Held::of(&msg, msg.id().expect("id"));
        assert_eq!((&*id, within(&id)), (r#""a-1""#, true));
        let read = mesh_protocol::modern::Request::read(msg.bytes()).expect("params");
        let caps = Held::of(&msg, read.envelope().capabilities.expect("capabilities"));
        assert_eq!((&*caps, within(&caps), caps.raw()), (r#"{"x":{}}"#, true, br#"{"x":{}}"#.as_slice()));
        // Text from elsewhere (serde's answer for a value with escapes) is copied; so is what
        // outlives the request.
        let other = String::from(r#"{"y":1}"#);
        let copied = Held::of(&msg, &other);
        assert_eq!((&*copied, within(&copied)), (r#"{"y":1}"#, false));
        let kept = id.copied();
        assert_eq!((&*kept, within(&kept)), (r#""a-1""#, false));
    }
}
