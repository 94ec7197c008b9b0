//! A stateless request's `params` and `_meta`, read by scanning bytes rather than by serde.
//!
//! Every stateless request is read here before anything else, and serde spent more on it than
//! the session-based path spends on its whole lookup: it parsed the whole message again to reach
//! `params`, then `_meta` a second time for the envelope (about 7,600 instructions a call under
//! callgrind). The message has already been parsed as JSON once (`Message::parse`), so the scan
//! only has to find members. What it does not read the way serde would — a member name written
//! with escapes, a member given twice, a value of another type, a string with escapes — goes to
//! serde, whose answer stays the reference (the tests hold the two to the same answers).

use super::{value_end, walk_members, MemberAt, Meta, MetaMembers, Request};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// `params` of `raw`, by the scan, else by serde.
pub(super) fn request(raw: &[u8]) -> Option<Request<'_>> {
    scan_request(raw).or_else(|| serde_request(raw))
}

/// `_meta`'s envelope, by the scan, else by serde; an absent or malformed one reads as empty.
pub(super) fn meta(text: &str) -> Meta<'_> {
    scan_meta(text).or_else(|| serde_meta(text)).unwrap_or_default()
}

/// `None` when the scan cannot vouch for its answer (then serde reads it). One pass: `params`
/// is read where the top level finds it, not found first and read again.
fn scan_request(raw: &[u8]) -> Option<Request<'_>> {
    // Checked once as UTF-8 (`Message::parse` skipped `params` without checking it): every
    // value the scan hands out is a slice of it, not checked again.
    let whole = std::str::from_utf8(raw).ok()?;
    let json = whole.as_bytes();
    let mut r = None;
    members(json, |name, start| match name {
        b"params" if r.is_some() => None,
        b"params" if json.get(start) == Some(&b'{') => {
            let mut params = Request { by_scan: true, ..Request::default() };
            let end = scan_params(whole, start, &mut params)?;
            r = Some(params);
            Some(end)
        }
        // `null` or another type: serde says what that means.
        b"params" => None,
        _ => value_end(json, start),
    })?;
    r
}

fn scan_params<'a>(whole: &'a str, start: usize, r: &mut Request<'a>) -> Option<usize> {
    let obj = &whole.as_bytes()[start..];
    let mut seen = [false; 7];
    let end = members(obj, |name, at| {
        let i = match name {
            b"_meta" => 0,
            b"name" => 1,
            b"uri" => 2,
            b"taskId" => 3,
            b"requestState" => 4,
            b"inputResponses" => 5,
            // Read for the audit record only (`Request::audited`). Twice, and the request goes
            // to serde, which does not read it: then the relay reads `params` itself.
            b"arguments" => 6,
            _ => return value_end(obj, at),
        };
        // A member twice: serde refuses the whole request.
        if std::mem::replace(&mut seen[i], true) {
            return None;
        }
        // The envelope is read on the way through `_meta`, not in a pass of its own.
        let end = match (i, obj.get(at)) {
            (0, Some(b'{')) => {
                let mut envelope = Meta::default();
                let (len, members) = scan_meta_into(whole, &obj[at..], &mut envelope)?;
                (r.scanned, r.members) = (Some(envelope), members);
                at + len
            }
            _ => value_end(obj, at)?,
        };
        let value = &obj[at..end];
        match i {
            0 => r.meta = raw_text(whole, value)?,
            1 => r.name = text(whole, value)?,
            2 => r.uri = text(whole, value)?,
            3 => r.task_id = text(whole, value)?,
            4 => r.request_state = text(whole, value)?,
            5 => r.input_responses = raw_text(whole, value)?,
            _ => r.arguments = raw_text(whole, value)?,
        }
        Some(end)
    })?;
    Some(start + end)
}

fn scan_meta(meta: &str) -> Option<Meta<'_>> {
    let mut m = Meta::default();
    scan_meta_into(meta, meta.as_bytes(), &mut m)?;
    Some(m)
}

/// Reads the envelope members of the object `meta` (a slice of `whole`) into `m`; where the
/// object ends, and where its members sit.
fn scan_meta_into<'a>(whole: &'a str, meta: &'a [u8], m: &mut Meta<'a>) -> Option<(usize, Option<MetaMembers>)> {
    const PREFIX: &[u8] = b"io.modelcontextprotocol/";
    let mut seen = [false; 4];
    let mut spans = Some(MetaMembers::default());
    let end = walk_members(meta, |at, name, value_at| {
        if name.escaped {
            return None;
        }
        let end = value_end(meta, value_at)?;
        let member = member_at(at, name.raw.len(), end);
        if !spans.as_mut().zip(member).is_some_and(|(s, m)| s.push(m)) {
            spans = None;
        }
        let Some(own) = name.raw.strip_prefix(PREFIX) else { return Some(end) };
        let i = match own {
            b"protocolVersion" => 0,
            b"clientCapabilities" => 1,
            b"clientInfo" => 2,
            b"logLevel" => 3,
            _ => return Some(end),
        };
        if std::mem::replace(&mut seen[i], true) {
            return None;
        }
        let value = &meta[value_at..end];
        match i {
            0 => m.version = text(whole, value)?,
            1 => m.capabilities = raw_text(whole, value)?,
            2 => m.client_info = raw_text(whole, value)?,
            _ => m.log_level = text(whole, value)?,
        }
        Some(end)
    })?;
    Some((end, spans))
}

/// A member starting at `at` whose name has `name_len` bytes and whose value ends at `end`.
fn member_at(at: usize, name_len: usize, end: usize) -> Option<MemberAt> {
    let at32 = |i: usize| u32::try_from(i).ok();
    Some(MemberAt { start: at32(at)?, name_end: at32(at + 1 + name_len)?, end: at32(end)? })
}

/// [`walk_members`] for the scan: `f(name, start)` answers where each value ends. `None` when a
/// name has escapes (serde reads those), or `f` says `None`.
fn members<'a>(obj: &'a [u8], mut f: impl FnMut(&'a [u8], usize) -> Option<usize>) -> Option<usize> {
    walk_members(obj, |_, name, at| if name.escaped { None } else { f(name.raw, at) })
}

/// `part`, a slice of `whole`'s bytes, as text: a value the scan found starts and ends at
/// JSON's ASCII delimiters, so at character boundaries (which `get` checks).
fn str_at<'a>(whole: &'a str, part: &[u8]) -> Option<&'a str> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    whole.get(start..start + part.len())
}

/// A string value, borrowed (`null` is absent). `None` for another type, or escapes.
fn text<'a>(whole: &'a str, v: &[u8]) -> Option<Option<Cow<'a, str>>> {
    if v == b"null" {
        return Some(None);
    }
    let inner = v.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        return None;
    }
    Some(Some(Cow::Borrowed(str_at(whole, inner)?)))
}

/// Any value as its JSON text (`null` is absent, as serde reads an `Option<&RawValue>`).
fn raw_text<'a>(whole: &'a str, v: &[u8]) -> Option<Option<&'a str>> {
    match v {
        b"null" => Some(None),
        _ => Some(Some(str_at(whole, v)?)),
    }
}

#[derive(Deserialize)]
struct Loose<'a> {
    #[serde(borrow, rename = "_meta", default)]
    meta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "taskId")]
    task_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "requestState")]
    request_state: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "inputResponses")]
    input_responses: Option<&'a RawValue>,
}

fn serde_request(raw: &[u8]) -> Option<Request<'_>> {
    #[derive(Deserialize)]
    struct P<T> {
        params: Option<T>,
    }
    let l: Loose<'_> = serde_json::from_slice::<P<Loose<'_>>>(raw).ok()?.params?;
    Some(Request {
        meta: l.meta.map(RawValue::get),
        name: l.name,
        uri: l.uri,
        task_id: l.task_id,
        request_state: l.request_state,
        input_responses: l.input_responses.map(RawValue::get),
        arguments: None,
        by_scan: false,
        scanned: None,
        members: None,
    })
}

fn serde_meta(text: &str) -> Option<Meta<'_>> {
    #[derive(Deserialize)]
    struct LooseMeta<'a> {
        #[serde(borrow, rename = "io.modelcontextprotocol/protocolVersion", default)]
        version: Option<Cow<'a, str>>,
        #[serde(borrow, rename = "io.modelcontextprotocol/clientCapabilities", default)]
        capabilities: Option<&'a RawValue>,
        #[serde(borrow, rename = "io.modelcontextprotocol/clientInfo", default)]
        client_info: Option<&'a RawValue>,
        #[serde(borrow, rename = "io.modelcontextprotocol/logLevel", default)]
        log_level: Option<Cow<'a, str>>,
    }
    let l: LooseMeta<'_> = serde_json::from_str(text).ok()?;
    Some(Meta {
        version: l.version,
        capabilities: l.capabilities.map(RawValue::get),
        client_info: l.client_info.map(RawValue::get),
        log_level: l.log_level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a reader said about a message (its request and envelope), comparable.
    fn summary(read: Option<(Request<'_>, Meta<'_>)>) -> Option<String> {
        let (r, m) = read?;
        Some(format!(
            "meta={:?} name={:?} uri={:?} task={:?} state={:?} responses={:?} | {:?}",
            r.meta,
            r.name,
            r.uri,
            r.task_id,
            r.request_state,
            r.input_responses,
            r.meta.map(|_| (m.version, m.capabilities, m.client_info, m.log_level)),
        ))
    }

    #[test]
    fn the_scan_reads_what_serde_reads() {
        let cases = [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"a":[1,{"b":"}"}]},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},"io.modelcontextprotocol/logLevel":"info","x":null},"name":"echo","arguments":{"text":"a \"quoted\" {brace"}}}"#,
            r#" { "params" : { "name" : "t" , "uri" : "file:///a" , "taskId" : "k" , "requestState" : "s" , "inputResponses" : { "q" : 1 } , "_meta" : { } } , "id" : "x" , "jsonrpc" : "2.0" , "method" : "m" } "#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":null,"_meta":null}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":null}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}"#,
            // Where the scan hands over to serde:
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":null,"name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"n\u0061me":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"n\u0061me":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":"a\"b\u00e9"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":7}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":"a"},"params":{"name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","p\u0061rams":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"a","io.modelcontextprotocol/protocolVersion":"b"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":5}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"io.modelcontextprotocol\/protocolVersion":"2026-07-28"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":[1,2]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":"text"}}"#,
        ];
        let not_utf8: &[u8] =
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"\xff\":1,\"name\":\"echo\"}}";
        assert!(request(not_utf8).is_none(), "a name that is not UTF-8 is refused, as serde does");
        for raw in cases {
            let by_serde = serde_request(raw.as_bytes()).map(|r| {
                let m = r.meta.and_then(serde_meta).unwrap_or_default();
                (r, m)
            });
            let by_scan = request(raw.as_bytes()).map(|r| {
                let m = r.envelope();
                (r, m)
            });
            assert_eq!(summary(by_scan), summary(by_serde), "{raw}");
        }
    }

    #[test]
    fn the_scan_says_where_metas_members_sit_up_to_its_limit() {
        let with = |n: usize| {
            let members: Vec<String> = (0..n).map(|i| format!(r#""k{i}" : [{i}]"#)).collect();
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"_meta":{{{}}}}}}}"#, members.join(","))
        };
        let raw = with(MetaMembers::MAX);
        let r = request(raw.as_bytes()).expect("read");
        let meta = r.meta.expect("meta");
        let m = r.meta_members().expect("members");
        assert_eq!(m.members().len(), MetaMembers::MAX);
        let last = m.members()[MetaMembers::MAX - 1];
        assert_eq!(&meta[last.name()], "k7");
        assert_eq!(&meta[last.member()], r#""k7" : [7]"#);
        // One more, and the relay walks `_meta` itself.
        let raw = with(MetaMembers::MAX + 1);
        assert!(request(raw.as_bytes()).expect("read").meta_members().is_none());
    }

    #[test]
    fn the_usual_request_is_read_by_the_scan_alone() {
        let raw = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"echo","arguments":{"text":"hi"}}}"#;
        let r = scan_request(raw.as_bytes()).expect("scanned");
        assert_eq!(r.name.as_deref(), Some("echo"));
        assert!(matches!(r.name, Some(Cow::Borrowed(_))));
        let m = scan_meta(r.meta.expect("meta")).expect("scanned");
        assert_eq!((m.version.as_deref(), m.capabilities), (Some("2026-07-28"), Some("{}")));
        // And a name with an escape is left to serde.
        let escaped = raw.replace(r#""name":"echo""#, r#""name":"ec\u0068o""#);
        assert!(scan_request(escaped.as_bytes()).is_none());
        assert_eq!(request(escaped.as_bytes()).and_then(|r| r.name).as_deref(), Some("echo"));
    }

    #[test]
    fn what_an_audit_record_names_is_what_serde_reads_or_left_to_the_relay() {
        // The reference: how the relay reads `params` for an audit record (`Call::of`).
        #[derive(Deserialize)]
        struct Audit<'a> {
            #[serde(borrow)]
            name: Option<Cow<'a, str>>,
            #[serde(borrow)]
            uri: Option<Cow<'a, str>>,
            #[serde(borrow)]
            arguments: Option<&'a RawValue>,
            #[serde(borrow, rename = "_meta")]
            _meta: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct P<T> {
            params: Option<T>,
        }
        let by_serde = |method: &str, raw: &str| {
            let a = serde_json::from_str::<P<Audit<'_>>>(raw).ok()?.params?;
            let name = match crate::message::named_by_uri(method) {
                true => a.uri.or(a.name),
                false => a.name.or(a.uri),
            };
            Some((name.map(|n| n.into_owned()), a.arguments.map(|v| v.get().to_string())))
        };
        let cases = [
            (
                "tools/call",
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{},"name":"echo","arguments":{"text":"a \"b\" {c}"}}}"#,
                true,
            ),
            (
                "tools/call",
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments" : [1, "}"] , "name":"echo"}}"#,
                true,
            ),
            (
                "tools/call",
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":null}}"#,
                true,
            ),
            ("tools/call", r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"uri":"file:///a"}}"#, true),
            (
                "resources/read",
                r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"n","uri":"file:///a"}}"#,
                true,
            ),
            ("resources/read", r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"n"}}"#, true),
            ("tools/list", r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#, true),
            // Left to the relay: serde read the request.
            (
                "tools/call",
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{},"arguments":{}}}"#,
                false,
            ),
            (
                "tools/call",
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ec\u0068o","arguments":{}}}"#,
                false,
            ),
        ];
        for (method, raw, scanned) in cases {
            let r = request(raw.as_bytes());
            let audited = r.as_ref().and_then(|r| r.audited(method));
            assert_eq!(audited.is_some(), scanned, "{raw}");
            if let Some((name, arguments)) = audited {
                let expected = by_serde(method, raw).expect("serde reads it");
                assert_eq!((name.map(str::to_string), arguments.map(str::to_string)), expected, "{raw}");
            }
        }
    }
}
