//! One JSON-RPC message, kept as its original bytes plus what routing needs.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

mod probe;

/// What a message is, from the envelope alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`: expects a response.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `result` and `id`.
    Response,
    /// Has `error` (its `id` may be null when the request could not be parsed).
    Error,
}

impl Kind {
    /// Responses and errors both answer a request.
    pub fn is_reply(self) -> bool {
        matches!(self, Kind::Response | Kind::Error)
    }
}

/// Why bytes were not accepted as one JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all.
    #[error("invalid JSON: {0}")]
    NotJson(String),
    /// A JSON array: batching was removed from MCP in 2025-06-18.
    #[error("JSON-RPC batches are not supported; send one message per request")]
    Batch,
    /// JSON, but not an object with a valid JSON-RPC 2.0 shape.
    #[error("invalid JSON-RPC message: {0}")]
    Invalid(&'static str),
}

/// A parsed JSON-RPC message. Cloning is cheap (the bytes are shared).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    raw: Bytes,
    kind: Kind,
    /// Where the `id` value sits in `raw`, so it can be replaced without re-serialising.
    id_span: Option<Range<usize>>,
    /// Shared, not owned: every message derived from this one (`with_id`, `splice`) names the
    /// same method, and a relayed request is derived at least once.
    method: Option<Arc<str>>,
    /// `result.isError` when it is a boolean (a tool result's failure flag), read during `parse`.
    result_is_error: Option<bool>,
}

impl std::fmt::Debug for Message {
    // Messages carry tool arguments that may be secret; debug output names only the envelope.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("kind", &self.kind)
            .field("id", &self.id())
            .field("method", &self.method())
            .field("bytes", &self.raw.len())
            .finish()
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    /// Read in the same pass as the rest, not kept: a reply's result is most of its bytes.
    #[serde(default)]
    result: Option<probe::ResultProbe>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

impl Message {
    /// Parses one message, keeping `raw` as is.
    pub fn parse(raw: Bytes) -> Result<Message, ParseError> {
        match raw.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => return Err(ParseError::Batch),
            Some(b'{') => {}
            Some(_) => {
                // Distinguish "not JSON" from "JSON but not an object" for a clearer error.
                return match serde_json::from_slice::<serde::de::IgnoredAny>(&raw) {
                    Ok(_) => Err(ParseError::Invalid("expected a JSON object")),
                    Err(e) => Err(ParseError::NotJson(e.to_string())),
                };
            }
            None => return Err(ParseError::NotJson("empty body".into())),
        }
        let env: Envelope<'_> = serde_json::from_slice(&raw).map_err(|e| ParseError::NotJson(e.to_string()))?;
        if env.jsonrpc.as_deref() != Some("2.0") {
            return Err(ParseError::Invalid("\"jsonrpc\" must be \"2.0\""));
        }
        let id_span = match env.id {
            Some(id) => {
                let text = id.get();
                let first = text.as_bytes().first().copied().unwrap_or(b' ');
                if !(first == b'"' || first == b'-' || first.is_ascii_digit()) {
                    return Err(ParseError::Invalid("\"id\" must be a string or a number"));
                }
                // The borrowed RawValue points into `raw`; its offset is the id's position.
                let start = text.as_ptr() as usize - raw.as_ptr() as usize;
                Some(start..start + text.len())
            }
            None => None,
        };
        let result_is_error = env.result.as_ref().and_then(|r| r.is_error);
        let kind = match (&env.method, &id_span, env.result.is_some(), env.error.is_some()) {
            (Some(_), Some(_), false, false) => Kind::Request,
            (Some(_), None, false, false) => Kind::Notification,
            (None, Some(_), true, false) => Kind::Response,
            (None, _, false, true) => Kind::Error,
            _ => return Err(ParseError::Invalid("not a request, notification, response or error")),
        };
        let method = env.method.map(|m| Arc::from(m.as_ref()));
        Ok(Message { raw, kind, id_span, method, result_is_error })
    }

    /// The message's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// [`Message::method`], shared rather than copied (for a caller that keeps it past the
    /// message).
    pub fn method_shared(&self) -> Option<Arc<str>> {
        self.method.clone()
    }

    /// The `id` exactly as it was written (e.g. `7` or `"abc"`), if any.
    pub fn id(&self) -> Option<&str> {
        let span = self.id_span.clone()?;
        std::str::from_utf8(&self.raw[span]).ok()
    }

    /// For a response: its `result.isError` when that is a boolean — how a tool call says it
    /// failed. `None` when absent, not a boolean, given twice, or the message is no response.
    pub fn result_is_error(&self) -> Option<bool> {
        self.result_is_error
    }

    /// The whole message as sent.
    pub fn bytes(&self) -> &Bytes {
        &self.raw
    }

    /// The whole message as text; empty if it is not UTF-8 (serde checks the strings it reads,
    /// not those it skips, so a peer's bytes in a skipped value may not be).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.raw).unwrap_or("")
    }

    /// The same message with its `id` replaced by `new_id` (raw JSON text: `17` or `"x"`).
    /// Everything else stays byte for byte. A message without an id is returned unchanged.
    pub fn with_id(&self, new_id: &str) -> Message {
        let Some(span) = self.id_span.clone() else {
            return self.clone();
        };
        if &self.raw[span.clone()] == new_id.as_bytes() {
            // Already so (a reply that already carries the client's id): no copy.
            return self.clone();
        }
        let mut buf = BytesMut::with_capacity(self.raw.len() + new_id.len());
        buf.put_slice(&self.raw[..span.start]);
        buf.put_slice(new_id.as_bytes());
        buf.put_slice(&self.raw[span.end..]);
        self.rewritten(buf.freeze(), Some(span.start..span.start + new_id.len()))
    }

    /// The same message with the bytes at `range` replaced by `with` — for a caller that found a
    /// member's value with [`crate::modern::member_span`] and rewrites it, so that nothing is parsed
    /// again. `None` when `range` is out of bounds or overlaps the id.
    pub fn splice(&self, range: Range<usize>, with: &[u8]) -> Option<Message> {
        if range.start > range.end || range.end > self.raw.len() {
            return None;
        }
        let id_span = match &self.id_span {
            Some(s) if range.end <= s.start => {
                let start = s.start - range.len() + with.len();
                Some(start..start + s.len())
            }
            Some(s) if range.start >= s.end => Some(s.clone()),
            Some(_) => return None,
            None => None,
        };
        let mut buf = BytesMut::with_capacity(self.raw.len() - range.len() + with.len());
        buf.put_slice(&self.raw[..range.start]);
        buf.put_slice(with);
        buf.put_slice(&self.raw[range.end..]);
        Some(self.rewritten(buf.freeze(), id_span))
    }

    /// The same message with `with` inserted at each of `at` (ascending offsets of its bytes),
    /// in one copy: everything else, the id included, stays byte for byte. `None` when an offset
    /// is out of order, out of bounds, or inside the id.
    pub fn inserted(&self, at: &[usize], with: &[u8]) -> Option<Message> {
        if !at.windows(2).all(|w| w[0] <= w[1]) || at.last().is_some_and(|&i| i > self.raw.len()) {
            return None;
        }
        let id_span = match &self.id_span {
            Some(s) if at.iter().any(|&i| i > s.start && i < s.end) => return None,
            Some(s) => {
                let shift = at.iter().filter(|&&i| i <= s.start).count() * with.len();
                Some(s.start + shift..s.end + shift)
            }
            None => None,
        };
        let mut buf = BytesMut::with_capacity(self.raw.len() + at.len() * with.len());
        let mut from = 0;
        for &i in at {
            buf.put_slice(&self.raw[from..i]);
            buf.put_slice(with);
            from = i;
        }
        buf.put_slice(&self.raw[from..]);
        Some(self.rewritten(buf.freeze(), id_span))
    }

    /// This message as `raw`, rewritten from its bytes without touching its kind, method or
    /// outcome; its id now at `id_span`.
    fn rewritten(&self, raw: Bytes, id_span: Option<Range<usize>>) -> Message {
        Message { raw, kind: self.kind, id_span, method: self.method.clone(), result_is_error: self.result_is_error }
    }

    /// Deserialises `params` into `T` (borrowing where `T` allows). `None` when absent or not `T`.
    pub fn params<'a, T: Deserialize<'a>>(&'a self) -> Option<T> {
        #[derive(Deserialize)]
        struct P<T> {
            params: Option<T>,
        }
        serde_json::from_slice::<P<T>>(&self.raw).ok()?.params
    }

    /// Deserialises `result` into `T`.
    pub fn result<'a, T: Deserialize<'a>>(&'a self) -> Option<T> {
        #[derive(Deserialize)]
        struct R<T> {
            result: Option<T>,
        }
        serde_json::from_slice::<R<T>>(&self.raw).ok()?.result
    }

    /// The `error` member of an error reply (`None` for anything else, or a malformed one).
    pub fn error_object(&self) -> Option<ErrorObject> {
        error_object(&self.raw)
    }

    /// The `params._meta.progressToken` of a request, as raw JSON text.
    pub fn progress_token(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(borrow, rename = "_meta")]
            meta: Option<&'a RawValue>,
        }
        let p: Params<'_> = self.params()?;
        progress_token_in(p.meta?)
    }

    /// For `notifications/progress`: the token it reports on, as raw JSON text.
    pub fn progress_notification_token(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(borrow, rename = "progressToken")]
            progress_token: Option<&'a RawValue>,
        }
        let p: Params<'_> = self.params()?;
        Some(p.progress_token?.get().to_string())
    }

    /// For `notifications/cancelled`: the request id it cancels, as raw JSON text.
    pub fn cancelled_request_id(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(borrow, rename = "requestId")]
            request_id: Option<&'a RawValue>,
        }
        let p: Params<'_> = self.params()?;
        Some(p.request_id?.get().to_string())
    }

    /// Builds a request. `id` is raw JSON text.
    pub fn request(id: &str, method: &str, params: Option<&serde_json::Value>) -> Message {
        let mut obj = serde_json::Map::new();
        obj.insert("jsonrpc".into(), "2.0".into());
        obj.insert("id".into(), raw_to_value(id));
        obj.insert("method".into(), method.into());
        if let Some(p) = params {
            obj.insert("params".into(), p.clone());
        }
        Self::from_value(serde_json::Value::Object(obj))
    }

    /// Builds a notification.
    pub fn notification(method: &str, params: Option<&serde_json::Value>) -> Message {
        let mut obj = serde_json::Map::new();
        obj.insert("jsonrpc".into(), "2.0".into());
        obj.insert("method".into(), method.into());
        if let Some(p) = params {
            obj.insert("params".into(), p.clone());
        }
        Self::from_value(serde_json::Value::Object(obj))
    }

    /// Builds a successful response. `id` is raw JSON text.
    pub fn response(id: &str, result: &serde_json::Value) -> Message {
        Self::from_value(serde_json::json!({"jsonrpc": "2.0", "id": raw_to_value(id), "result": result}))
    }

    /// Builds an error response. `id` is raw JSON text, or `None` for `null`.
    pub fn error(id: Option<&str>, code: i64, message: &str, data: Option<serde_json::Value>) -> Message {
        let mut err = serde_json::json!({"code": code, "message": message});
        if let Some(d) = data {
            err["data"] = d;
        }
        let id = id.map(raw_to_value).unwrap_or(serde_json::Value::Null);
        Self::from_value(serde_json::json!({"jsonrpc": "2.0", "id": id, "error": err}))
    }

    fn from_value(v: serde_json::Value) -> Message {
        let raw = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
        // Always well-formed: we built it.
        Message::parse(raw).unwrap_or_else(|_| unreachable_message())
    }
}

/// Whether a request to `method` is named by its `params.uri` before its `params.name` (a
/// resource is what its URI says), in audit rows and policy.
pub fn named_by_uri(method: &str) -> bool {
    method.starts_with("resources/")
}

/// The `progressToken` of a request's `params._meta` (given as raw JSON), as raw JSON text; for a
/// caller that has read `_meta` along with other params already.
pub fn progress_token_in(meta: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(borrow, rename = "progressToken")]
        progress_token: Option<&'a RawValue>,
    }
    let m: Meta<'_> = serde_json::from_str(meta.get()).ok()?;
    Some(m.progress_token?.get().to_string())
}

fn unreachable_message() -> Message {
    Message {
        raw: Bytes::from_static(b"{}"),
        kind: Kind::Notification,
        id_span: None,
        method: None,
        result_is_error: None,
    }
}

/// A JSON-RPC error object: `{"code", "message", "data"?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorObject {
    /// The error code.
    pub code: i64,
    /// The short description.
    pub message: String,
    /// Anything the sender attached.
    pub data: Option<serde_json::Value>,
}

/// The `error` member of a JSON-RPC message given as bytes (for callers holding a body rather
/// than a parsed [`Message`]).
pub fn error_object(json: &[u8]) -> Option<ErrorObject> {
    #[derive(Deserialize)]
    struct E {
        error: ErrorObject,
    }
    serde_json::from_slice::<E>(json).ok().map(|e| e.error)
}

fn raw_to_value(id: &str) -> serde_json::Value {
    serde_json::from_str(id).unwrap_or_else(|_| serde_json::Value::String(id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Result<Message, ParseError> {
        Message::parse(Bytes::from(s.to_string()))
    }

    #[test]
    fn splice_keeps_the_id_where_it_moved() {
        let m =
            Message::parse(Bytes::from_static(br#"{"params":{"a":1},"jsonrpc":"2.0","id":"x","method":"m"}"#)).unwrap();
        let at = crate::modern::member_span(m.bytes(), "params").unwrap();
        let out = m.splice(at, br#"{"bb":22}"#).unwrap();
        assert_eq!(out.as_str(), r#"{"params":{"bb":22},"jsonrpc":"2.0","id":"x","method":"m"}"#);
        assert_eq!((out.id(), out.method()), (Some(r#""x""#), Some("m")));
        assert_eq!(out.with_id("7").as_str(), r#"{"params":{"bb":22},"jsonrpc":"2.0","id":7,"method":"m"}"#);
        let id = crate::modern::member_span(m.bytes(), "id").unwrap();
        assert!(m.splice(id, b"1").is_none(), "the id itself is not spliced");
    }

    #[test]
    fn insertions_keep_the_id_and_every_other_byte() {
        let raw = r#"{"result":{"a":"x","b":"y"},"jsonrpc":"2.0","id":12345678901234567890123}"#;
        let m = msg(raw).unwrap();
        let (a, b) = (raw.find(r#""x""#).unwrap() + 1, raw.find(r#""y""#).unwrap() + 1);
        let out = m.inserted(&[a, b], b"p+").unwrap();
        let want = r#"{"result":{"a":"p+x","b":"p+y"},"jsonrpc":"2.0","id":12345678901234567890123}"#;
        assert_eq!(out.as_str(), want);
        assert_eq!(out.id(), Some("12345678901234567890123"), "the id moved with its bytes");
        assert_eq!(out.with_id("7").as_str(), want.replace("12345678901234567890123", "7"));
        assert!(m.inserted(&[b, a], b"p+").is_none(), "out of order");
        assert!(m.inserted(&[raw.len() + 1], b"p+").is_none(), "out of bounds");
        assert!(m.inserted(&[raw.find("123").unwrap() + 1], b"p+").is_none(), "inside the id");
        assert_eq!(m.inserted(&[], b"p+").unwrap().as_str(), raw);
    }

    #[test]
    fn error_objects_are_read_from_error_replies_only() {
        let e = msg(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-31029,"message":"slow down","data":{"retryAfterMs":1500}}}"#,
        )
        .unwrap()
        .error_object()
        .unwrap();
        assert_eq!((e.code, e.message.as_str()), (-31029, "slow down"));
        assert_eq!(e.data.unwrap()["retryAfterMs"], 1500);
        assert_eq!(msg(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap().error_object(), None);
        assert_eq!(error_object(br#"{"error":{"code":"x"}}"#), None, "malformed: no object");
    }

    #[test]
    fn a_results_is_error_is_read_in_the_same_pass() {
        let flag = |text: &str| msg(text).unwrap().result_is_error();
        assert_eq!(flag(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#), Some(true));
        assert_eq!(
            flag(r#"{"jsonrpc":"2.0","id":1,"result":{"isError":false,"content":[{"isError":true}]}}"#),
            Some(false)
        );
        assert_eq!(flag(r#"{"jsonrpc":"2.0","id":1,"result":{"is\u0045rror":true}}"#), Some(true), "escaped key");
        assert_eq!(flag(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"text":"\"isError\":true"}]}}"#), None);
        assert_eq!(flag(r#"{"jsonrpc":"2.0","id":1,"result":{"isError":"true"}}"#), None, "not a boolean");
        assert_eq!(flag(r#"{"jsonrpc":"2.0","id":1,"result":{"isError":true,"isError":false}}"#), None, "twice");
        assert_eq!(
            flag(r#"{"jsonrpc":"2.0","id":1,"result":{"nested":{"isError":true}}}"#),
            None,
            "only the top level"
        );
        assert_eq!(flag(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"isError":true}}"#), None);
        // Any JSON value is a result the parse accepts, as before.
        for result in ["1", "-2.5", "\"s\"", "true", "[1,{\"isError\":true}]", "{}"] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
            let m = msg(&text).unwrap();
            assert_eq!((m.kind(), m.result_is_error()), (Kind::Response, None), "{text}");
        }
        assert!(msg(r#"{"jsonrpc":"2.0","id":1,"result":{"isError":true}"#).is_err(), "unclosed");
    }

    #[test]
    fn kinds() {
        let cases = [
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, Kind::Request),
            (r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, Kind::Notification),
            (r#"{"jsonrpc":"2.0","id":"a","result":{}}"#, Kind::Response),
            (r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#, Kind::Error),
        ];
        for (text, kind) in cases {
            assert_eq!(msg(text).unwrap().kind(), kind, "{text}");
        }
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(msg(r#"[{"jsonrpc":"2.0","id":1,"method":"x"}]"#), Err(ParseError::Batch));
        assert!(matches!(msg("{nope"), Err(ParseError::NotJson(_))));
        assert!(matches!(msg(""), Err(ParseError::NotJson(_))));
        assert!(matches!(msg("42"), Err(ParseError::Invalid(_))));
        assert!(matches!(msg(r#"{"id":1,"method":"x"}"#), Err(ParseError::Invalid(_))));
        assert!(matches!(msg(r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#), Err(ParseError::Invalid(_))));
        assert!(matches!(msg(r#"{"jsonrpc":"2.0","id":1}"#), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn id_splice_keeps_every_other_byte() {
        let text = r#"{ "jsonrpc":"2.0", "id" : "client-7", "method":"tools/call","params":{"_meta":{"progressToken":"p1","x-vendor":[1,2]},"name":"t","arguments":{"$schema":"https://json-schema.org/draft/2020-12/schema"}}, "extra": true}"#;
        let m = msg(text).unwrap();
        assert_eq!(m.id(), Some(r#""client-7""#));
        let up = m.with_id("42");
        assert_eq!(up.as_str(), text.replace(r#""client-7""#, "42"));
        assert_eq!(up.id(), Some("42"));
        let back = up.with_id(r#""client-7""#);
        assert_eq!(back.as_str(), text);
        assert_eq!(m.progress_token().as_deref(), Some(r#""p1""#));
    }

    #[test]
    fn params_helpers() {
        let c = msg(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"x"}}"#)
            .unwrap();
        assert_eq!(c.cancelled_request_id().as_deref(), Some("5"));
        let p = msg(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":1}}"#)
            .unwrap();
        assert_eq!(p.progress_notification_token().as_deref(), Some("7"));
        let r = msg(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        assert_eq!(r.progress_token(), None);
    }

    #[test]
    fn builders_round_trip() {
        let e = Message::error(Some("3"), -32601, "nope", None);
        assert_eq!(e.kind(), Kind::Error);
        assert_eq!(e.id(), Some("3"));
        let r = Message::request(r#""s1""#, "ping", None);
        assert_eq!((r.kind(), r.id(), r.method()), (Kind::Request, Some(r#""s1""#), Some("ping")));
    }
}
