//! Setting members of a request's `params._meta` in its raw bytes: how the mesh passes trace
//! context (`traceparent`, `tracestate`) on to an upstream without re-serialising the request.

use crate::modern::{member_span, skip_ws};
use crate::Message;

/// `obj` (a JSON object) with member `key` set to `value` (raw JSON): its value replaced where
/// it exists, else the member added first. `None` when `obj` is not an object.
pub fn set_member(obj: &[u8], key: &str, value: &[u8]) -> Option<Vec<u8>> {
    if let Some(r) = member_span(obj, key) {
        let mut out = Vec::with_capacity(obj.len() - r.len() + value.len());
        out.extend_from_slice(&obj[..r.start]);
        out.extend_from_slice(value);
        out.extend_from_slice(&obj[r.end..]);
        return Some(out);
    }
    let open = skip_ws(obj, 0);
    if obj.get(open) != Some(&b'{') {
        return None;
    }
    let empty = obj.get(skip_ws(obj, open + 1)) == Some(&b'}');
    let mut out = Vec::with_capacity(obj.len() + key.len() + value.len() + 4);
    out.extend_from_slice(&obj[..=open]);
    // The key is the mesh's own (`traceparent`): plain, but written as a JSON string anyway.
    out.extend_from_slice(serde_json::to_string(key).ok()?.as_bytes());
    out.push(b':');
    out.extend_from_slice(value);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&obj[open + 1..]);
    Some(out)
}

/// Whether `v` is a W3C `traceparent` of version 00 (`00-<32 hex>-<16 hex>-<2 hex>`, lowercase),
/// the only form the mesh passes on in a header.
pub fn is_traceparent(v: &str) -> bool {
    let b = v.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    b.len() == 55 && b.starts_with(b"00-") && b[35] == b'-' && b[52] == b'-' && hex(3..35) && hex(36..52) && hex(53..55)
}

impl Message {
    /// The same request with `params._meta.<key>` set to each raw JSON value (creating `_meta`
    /// and `params` as needed); everything else byte for byte. `None` when `params` is present
    /// but not an object, or the envelope is not an object.
    pub fn with_meta(&self, members: &[(&str, &[u8])]) -> Option<Message> {
        let raw = self.bytes();
        let mut meta =
            match member_span(raw, "params").and_then(|p| member_span(&raw[p.clone()], "_meta").map(|m| (p, m))) {
                Some((p, m)) => raw[p.start + m.start..p.start + m.end].to_vec(),
                None => b"{}".to_vec(),
            };
        for (k, v) in members {
            meta = set_member(&meta, k, v)?;
        }
        match member_span(raw, "params") {
            Some(p) => {
                let params = set_member(&raw[p.clone()], "_meta", &meta)?;
                self.splice(p, &params)
            }
            None => {
                let open = skip_ws(raw, 0);
                if raw.get(open) != Some(&b'{') {
                    return None;
                }
                let mut member = b"\"params\":{\"_meta\":".to_vec();
                member.extend_from_slice(&meta);
                member.extend_from_slice(b"},");
                self.splice(open + 1..open + 1, &member)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn with(raw: &str) -> String {
        let m = Message::parse(Bytes::from(raw.to_string())).unwrap();
        let out = m.with_meta(&[("traceparent", b"\"00-t-s-01\"")]).expect("set");
        // Still a valid request with its id where it was.
        let again = Message::parse(out.bytes().clone()).unwrap();
        assert_eq!(again.id(), m.id());
        assert_eq!(out.id(), m.id());
        out.as_str().to_string()
    }

    #[test]
    fn trace_context_lands_in_params_meta_whatever_is_there() {
        assert_eq!(
            with(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            r#"{"params":{"_meta":{"traceparent":"00-t-s-01"}},"jsonrpc":"2.0","id":1,"method":"ping"}"#
        );
        assert_eq!(
            with(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"traceparent":"00-t-s-01"}}}"#
        );
        assert_eq!(
            with(
                r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x","_meta":{"progressToken":7}}}"#
            ),
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x","_meta":{"traceparent":"00-t-s-01","progressToken":7}}}"#
        );
        // The client's own context is replaced by the mesh's span.
        assert_eq!(
            with(
                r#"{"id":2,"jsonrpc":"2.0","method":"tools/call","params":{"_meta":{"traceparent":"00-old-01", "x":1},"name":"y"}}"#
            ),
            r#"{"id":2,"jsonrpc":"2.0","method":"tools/call","params":{"_meta":{"traceparent":"00-t-s-01", "x":1},"name":"y"}}"#
        );
        assert_eq!(
            with(r#"{"jsonrpc":"2.0","id":3,"method":"m","params":{ "_meta" : { } }}"#),
            r#"{"jsonrpc":"2.0","id":3,"method":"m","params":{ "_meta" : {"traceparent":"00-t-s-01" } }}"#
        );
    }

    #[test]
    fn only_well_formed_trace_context_is_recognised() {
        assert!(is_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
        assert!(!is_traceparent("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"));
        assert!(!is_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0"));
        assert!(!is_traceparent("anything a client sends"));
    }

    #[test]
    fn params_that_are_not_an_object_are_left_alone() {
        let m = Message::parse(Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}"#)).unwrap();
        assert!(m.with_meta(&[("traceparent", b"\"x\"")]).is_none());
        assert!(set_member(b"[]", "a", b"1").is_none());
        assert_eq!(set_member(b"{}", "a", b"1").unwrap(), b"{\"a\":1}");
    }
}
