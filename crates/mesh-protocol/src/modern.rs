//! MCP 2026-07-28, the stateless revision, as far as a relay must read it: the per-request
//! envelope in `params._meta`, the mirrored routing headers, the HTTP status of an error, and the
//! fields every result of the revision carries.
//!
//! Everything here is pure: the ingress decides what to do with the answers.

use crate::codes;
use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;
use std::ops::Range;

mod read;
mod scan;
mod tasks;

pub use scan::{has_member, keep_members, member_cut, member_span};
use scan::{member_start, present_member, value_end, Kept};
pub(crate) use scan::{skip_ws, walk_members};
pub use tasks::{created_task, task_error_renamed, with_task_id, MAX_TASK_ID};

/// `_meta` key of the request's protocol revision (required).
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the request's client capabilities (required).
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client's name and version (recommended).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key of the log level the request opts into.
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key of a result's server name and version.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key tying a notification to its `subscriptions/listen` request.
pub const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";

/// Methods of the earlier revisions that 2026-07-28 removed: a modern request for one is an
/// unknown method (404, -32601) even where the upstream behind the mesh would still accept it.
pub const REMOVED: &[&str] = &[
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
    "tasks/list",
    "tasks/result",
];

/// Methods whose complete results must carry the caching hints `ttlMs` and `cacheScope`.
pub const CACHEABLE: &[&str] =
    &["server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"];

/// Methods that may answer with an input-required result (MRTR).
pub const MAY_NEED_INPUT: &[&str] = &["tools/call", "prompts/get", "resources/read"];

/// Whether `v` (an `MCP-Protocol-Version` header) names a revision with per-request metadata:
/// anything the earlier revisions did not define, including revisions the mesh does not know
/// (those are answered -32022, which only the modern path can say).
pub fn is_modern_header(v: &str) -> bool {
    !v.is_empty() && !crate::version::is_supported(v)
}

/// The HTTP status a JSON-RPC error with `code` travels with on the modern wire (spec
/// basic/transports/streamable-http: protocol-level refusals are HTTP errors too).
pub fn status_of(code: i64) -> u16 {
    match code {
        codes::METHOD_NOT_FOUND => 404,
        codes::PARSE_ERROR
        | codes::INVALID_REQUEST
        | codes::INVALID_PARAMS
        | codes::HEADER_MISMATCH
        | codes::MISSING_CLIENT_CAPABILITY
        | codes::UNSUPPORTED_PROTOCOL_VERSION => 400,
        codes::RATE_LIMITED => 429,
        _ => 200,
    }
}

/// What a modern request carries beyond the JSON-RPC envelope, read from `params` in one pass
/// ([`Request::read`]).
#[derive(Debug, Default)]
pub struct Request<'a> {
    /// `params._meta`, its JSON text.
    pub meta: Option<&'a str>,
    /// `params.name` (tools/call, prompts/get).
    pub name: Option<Cow<'a, str>>,
    /// `params.uri` (resources/read).
    pub uri: Option<Cow<'a, str>>,
    /// `params.taskId` (tasks/get, tasks/update, tasks/cancel).
    pub task_id: Option<Cow<'a, str>>,
    /// `params.requestState` of an MRTR retry.
    pub request_state: Option<Cow<'a, str>>,
    /// `params.inputResponses` of an MRTR retry, its JSON text.
    pub input_responses: Option<&'a str>,
    /// `params.arguments`, its JSON text, when the scan read the request (see
    /// [`Request::audited`]).
    arguments: Option<&'a str>,
    /// Whether the scan read the request (not serde): then `arguments` was read too.
    by_scan: bool,
    /// The envelope, when the scan read it on its way through `_meta`.
    scanned: Option<Meta<'a>>,
    /// Where `_meta`'s members sit, when the scan could say.
    members: Option<MetaMembers>,
}

/// The envelope of `params._meta`.
#[derive(Debug, Default, Clone)]
pub struct Meta<'a> {
    /// The revision the request speaks.
    pub version: Option<Cow<'a, str>>,
    /// The client's capabilities for this request, JSON text.
    pub capabilities: Option<&'a str>,
    /// The client's name and version, JSON text.
    pub client_info: Option<&'a str>,
    /// The lowest log level the request wants to hear about.
    pub log_level: Option<Cow<'a, str>>,
}

/// Where the members of a `_meta` object sit in its text, as the scan found them, so that the
/// relay can cut the envelope out without walking `_meta` again. Only for an object of at most
/// [`MetaMembers::MAX`] members whose names have no escapes.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaMembers {
    at: [MemberAt; MetaMembers::MAX],
    len: usize,
}

/// One member of [`MetaMembers`]: offsets into `_meta`'s text.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemberAt {
    /// Where the member starts (its name's opening quote).
    pub start: u32,
    /// Where its name ends (its closing quote): the name is `start + 1..name_end`.
    pub name_end: u32,
    /// Where its value ends.
    pub end: u32,
}

impl MemberAt {
    /// The member's name, as written.
    pub fn name(&self) -> Range<usize> {
        self.start as usize + 1..self.name_end as usize
    }

    /// The whole member, name to value.
    pub fn member(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

impl MetaMembers {
    /// The most members described; real envelopes have three or four.
    pub const MAX: usize = 8;

    /// The members, in order.
    pub fn members(&self) -> &[MemberAt] {
        &self.at[..self.len]
    }

    /// [`keep_members`] of `meta`, the text these members were found in, by their spans instead
    /// of a walk; `None` when a span does not fit `meta`.
    pub fn kept(&self, meta: &[u8], keep: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let mut out = Kept::new(meta.len());
        for m in self.members() {
            if keep(meta.get(m.name())?) {
                out.push(meta.get(m.member())?);
            }
        }
        Some(out.done())
    }

    /// The members' names as written in `meta`.
    pub fn names<'m>(&self, meta: &'m [u8]) -> impl Iterator<Item = &'m [u8]> + use<'_, 'm> {
        self.members().iter().filter_map(|m| meta.get(m.name()))
    }

    /// Adds one; `false` when full.
    fn push(&mut self, m: MemberAt) -> bool {
        match self.at.get_mut(self.len) {
            Some(slot) => {
                *slot = m;
                self.len += 1;
                true
            }
            None => false,
        }
    }
}

impl<'a> Request<'a> {
    /// `params` of `raw`, a message [`crate::message::Message::parse`] accepted; `None` when it
    /// has none, or it does not read as this shape (a member twice, a name that is no string).
    pub fn read(raw: &'a [u8]) -> Option<Request<'a>> {
        read::request(raw)
    }

    /// The name the `Mcp-Name` header must mirror for `method`, if it has one.
    pub fn routed_name(&self, method: &str) -> Option<&str> {
        match method {
            "tools/call" | "prompts/get" => self.name.as_deref(),
            "resources/read" => self.uri.as_deref(),
            "tasks/get" | "tasks/update" | "tasks/cancel" => self.task_id.as_deref(),
            _ => None,
        }
    }

    /// What an audit record names of a request to `method` — its name (for `resources/*` its
    /// `uri` first, else its `name` first) and its arguments' JSON text — when the scan read
    /// them as serde would (each member once, no escapes); `None` when serde read the request,
    /// so that the caller reads `params` itself.
    pub fn audited(&self, method: &str) -> Option<(Option<&'a str>, Option<&'a str>)> {
        if !self.by_scan {
            return None;
        }
        let (first, second) = match crate::message::named_by_uri(method) {
            true => (&self.uri, &self.name),
            false => (&self.name, &self.uri),
        };
        let name = match first.as_ref().or(second.as_ref()) {
            None => None,
            Some(Cow::Borrowed(n)) => Some(*n),
            // The scan borrows every string it hands out.
            Some(Cow::Owned(_)) => return None,
        };
        Some((name, self.arguments))
    }

    /// Where `_meta`'s members sit in its text, when the scan could say.
    pub fn meta_members(&self) -> Option<MetaMembers> {
        self.members
    }

    /// The envelope, if `_meta` is an object (a malformed one reads as absent).
    pub fn envelope(&self) -> Meta<'a> {
        match &self.scanned {
            Some(m) => m.clone(),
            None => self.meta.map(read::meta).unwrap_or_default(),
        }
    }
}

/// Whether `method` must carry `Mcp-Name`.
pub fn needs_name(method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read" | "tasks/get" | "tasks/update" | "tasks/cancel")
}

/// Where `inner` sits within `outer`, when it is a slice of it (a value deserialised borrowing
/// from `outer`): the span a splice needs, found without scanning.
pub fn span_within(outer: &[u8], inner: &[u8]) -> Option<Range<usize>> {
    let (base, at) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    let start = at.checked_sub(base)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len()).then_some(start..end)
}

/// A mirrored header's value as the sender meant it: surrounding whitespace trimmed, and the
/// `=?base64?…?=` form (used for values that are not plain ASCII) decoded. `None` when the value
/// is not valid in either form.
pub fn header_value(raw: &[u8]) -> Option<Cow<'_, str>> {
    // Trimmed as bytes (both are ASCII), before the check: cheaper than a pattern of chars.
    let start = raw.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(raw.len());
    let end = raw.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    let text = std::str::from_utf8(raw.get(start..end)?).ok()?;
    match text.strip_prefix("=?base64?").and_then(|t| t.strip_suffix("?=")) {
        Some(encoded) => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
            String::from_utf8(bytes).ok().map(Cow::Owned)
        }
        None => Some(Cow::Borrowed(text)),
    }
}

/// Whether `result` names `cacheScope` at most once and only as written: then the scope the
/// mesh sets is the only one a client can read. An upstream's duplicate, or a name spelled with
/// `\u` escapes (the only escapes that make letters), could leave a client's parser another.
fn one_plain_scope(result: &[u8]) -> bool {
    let escapes = memchr::memmem::find(result, b"\\u").is_some();
    if !escapes && memchr::memmem::find_iter(result, b"\"cacheScope\"").count() <= 1 {
        return true;
    }
    // Some bytes say it may not be: the members say whether it is.
    let (mut named, mut plain) = (0, true);
    let walked = walk_members(result, |_, name, at| {
        plain &= !name.escaped;
        named += usize::from(name.raw == b"cacheScope");
        value_end(result, at)
    });
    walked.is_some() && plain && named <= 1
}

/// [`completed`] through `serde_json`: the result read as an object (a duplicate member keeps its
/// last value, as most parsers do), completed, and written back in its place.
fn completed_by_value(reply: &Bytes, span: Range<usize>) -> Option<Bytes> {
    let mut result: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&reply[span.clone()]).ok()?;
    result.entry("resultType").or_insert_with(|| "complete".into());
    result.entry("ttlMs").or_insert_with(|| 0.into());
    result.insert("cacheScope".into(), "private".into());
    let written = serde_json::to_vec(&result).ok()?;
    Some(spliced(reply, [(span, &written)]))
}

/// A legacy upstream's successful reply made a valid 2026-07-28 result: `resultType` added, and
/// for a cacheable method the caching hints (`ttlMs: 0` and `cacheScope: "private"`: an earlier
/// upstream promised nothing, and the mesh filters lists per caller). Members already present are
/// kept — except a `cacheScope` other than `"private"`, which becomes `"private"`: what the mesh
/// serves depends on who asks, so no cache may share it across callers, whatever the upstream
/// said of its own answer. The bytes are spliced, not re-serialised: the result may be large.
pub fn complete_result(reply: &Bytes, cacheable: bool) -> Bytes {
    completed(reply, cacheable).unwrap_or_else(|| reply.clone())
}

/// [`complete_result`] of a reply that has a `result`; `None` for one that has not (an error),
/// told apart by the same scan. The reply is one [`crate::message::Message::parse`] accepted:
/// well-formed JSON.
pub fn completed(reply: &Bytes, cacheable: bool) -> Option<Bytes> {
    completed_at(reply, member_start(reply, "result")?, cacheable)
}

/// [`completed`] of a reply, answered under `id` (raw JSON): a reply written under another id
/// (a pooled session's, which leaves the client's id to its caller) gets `id` in the same copy
/// that completes it. `None` for a reply without an id or a result (an error). One walk of the
/// reply's top level finds both (every relayed result passes here).
pub fn completed_as(reply: &Bytes, id: &[u8], cacheable: bool) -> Option<Bytes> {
    let (mut written, mut result) = (None, None);
    walk_members(reply, |_, name, at| match name.raw {
        b"id" if written.is_none() => {
            let end = value_end(reply, at)?;
            written = Some(at..end);
            // The id after the result ends the walk.
            result.is_none().then_some(end)
        }
        b"result" if result.is_none() => {
            result = Some(at);
            match written {
                Some(_) => None,
                None => value_end(reply, at),
            }
        }
        _ => value_end(reply, at),
    });
    let (written, start) = (written?, result?);
    if reply.get(written.clone()) == Some(id) {
        return completed_at(reply, start, cacheable);
    }
    // The usual result (see `completed_at`): the id and `resultType` in one copy.
    if !cacheable && reply.get(start) == Some(&b'{') && RESULT_TYPE.find(&reply[start..]).is_none() {
        return Some(with_members(reply, start, RESULT_TYPE_COMPLETE, Some((written, id))));
    }
    let start = match written.end <= start {
        true => start - written.len() + id.len(),
        false => start,
    };
    completed_at(&spliced(reply, [(written, id)]), start, cacheable)
}

/// The member every completed result gains, as `with_members` adds it.
const RESULT_TYPE_COMPLETE: &str = r#""resultType":"complete","#;

/// `resultType`, searched for in every relayed result: its searcher is built once.
static RESULT_TYPE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new("resultType"));

/// [`completed`] of the reply whose `result` starts at `start`.
fn completed_at(reply: &Bytes, start: usize, cacheable: bool) -> Option<Bytes> {
    if reply.get(start) != Some(&b'{') {
        return Some(reply.clone());
    }
    // The usual reply, a `tools/call` result: nothing from the result on names `resultType`, so
    // it is not a member, and it goes in without a walk through the result.
    if !cacheable && RESULT_TYPE.find(&reply[start..]).is_none() {
        return Some(with_members(reply, start, RESULT_TYPE_COMPLETE, None));
    }
    let span = start..value_end(reply, start)?;
    let result = &reply[span.clone()];
    if cacheable && !one_plain_scope(result) {
        return completed_by_value(reply, span);
    }
    if cacheable {
        if let Some(scope) = present_member(result, "cacheScope").filter(|s| &result[s.clone()] != br#""private""#) {
            let at = span.start + scope.start..span.start + scope.end;
            return completed(&spliced(reply, [(at, br#""private""#)]), cacheable);
        }
    }
    let mut add = String::new();
    if !has_member(result, "resultType") {
        add.push_str(r#""resultType":"complete","#);
    }
    if cacheable {
        if !has_member(result, "ttlMs") {
            add.push_str(r#""ttlMs":0,"#);
        }
        if !has_member(result, "cacheScope") {
            add.push_str(r#""cacheScope":"private","#);
        }
    }
    if add.is_empty() {
        return Some(reply.clone());
    }
    Some(with_members(reply, span.start, &add, None))
}

/// `reply` with `add` (members, each followed by a comma) first in the object starting at `at`,
/// and with the value at `id.0` (outside that object) replaced by `id.1` when given: one copy.
/// Borrowed: the usual `add` is a constant, and every relayed result passes here.
fn with_members(reply: &Bytes, at: usize, add: &str, id: Option<(Range<usize>, &[u8])>) -> Bytes {
    let empty = reply[at + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let add = match empty {
        true => add.strip_suffix(',').unwrap_or(add),
        false => add,
    }
    .as_bytes();
    let at = at + 1;
    match id {
        None => spliced(reply, [(at..at, add)]),
        Some((span, new)) => spliced(reply, [(span, new), (at..at, add)]),
    }
}

/// `bytes` with each range replaced by its bytes, in one copy. The ranges, in any order, are
/// spans a scan of `bytes` found, and do not overlap.
fn spliced<const N: usize>(bytes: &[u8], mut edits: [(Range<usize>, &[u8]); N]) -> Bytes {
    edits.sort_unstable_by_key(|(range, _)| range.start);
    let grown: usize = edits.iter().map(|(_, with)| with.len()).sum();
    let mut out = BytesMut::with_capacity(bytes.len() + grown);
    let mut from = 0;
    for (range, with) in &edits {
        out.put_slice(&bytes[from..range.start]);
        out.put_slice(with);
        from = range.end;
    }
    out.put_slice(&bytes[from..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_one_of_the_objects_own() {
        let obj = br#"{"content":[{"resultType":"x"}],"text":"resultType","isError":false}"#;
        assert!(!has_member(obj, "resultType"), "nested or in a string is not a member");
        assert!(has_member(obj, "isError"));
        assert!(!has_member(obj, "ttlMs"));
        assert!(has_member(br#"{"a":{"b":1},"resultType":"complete"}"#, "resultType"));
    }

    #[test]
    fn no_upstream_spelling_leaves_a_client_a_shared_cache_scope() {
        let cases = [
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"cacheScope":"private","cacheScope":"public"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"cache\u0053cope":"public"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a\u00e9"}],"cacheScope":"public","ttlMs":5}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"description":"cacheScope \"cacheScope\""}]}}"#,
        ];
        for raw in cases {
            let out = completed(&Bytes::from(raw), true).expect("a result");
            let text = std::str::from_utf8(&out).expect("utf-8");
            // However a client's parser treats duplicates and escapes, it reads one scope.
            let scopes: Vec<serde_json::Value> = text
                .match_indices("cacheScope")
                .filter(|(at, _)| text[..*at].ends_with('"') && text[at + 10..].starts_with("\":"))
                .map(|(at, _)| {
                    serde_json::from_str::<serde_json::Value>(text[at + 12..].split([',', '}']).next().unwrap_or(""))
                        .unwrap_or_default()
                })
                .collect();
            assert_eq!(scopes, vec![serde_json::json!("private")], "{raw} → {text}");
            assert!(!text.contains("\\u0053cope"), "{text}");
            let v: serde_json::Value = serde_json::from_str(text).expect("json");
            assert_eq!(v["result"]["resultType"], "complete", "{text}");
        }
    }

    #[test]
    fn a_value_ends_where_json_says_whatever_its_strings_hold() {
        let cases: [(&str, &str); 7] = [
            (r#"{"a":1}, "#, r#"{"a":1}"#),
            (r#"[1,[2,[3]],{"b":[]}]x"#, r#"[1,[2,[3]],{"b":[]}]"#),
            (r#"{"s":"}]{[","t":"\"}"}"#, r#"{"s":"}]{[","t":"\"}"}"#),
            (r#"{"e":"a\\"} tail"#, r#"{"e":"a\\"}"#),
            (r#""x\"y" ,"#, r#""x\"y""#),
            ("-12.5e3,", "-12.5e3"),
            ("true}", "true"),
        ];
        for (json, value) in cases {
            assert_eq!(value_end(json.as_bytes(), 0).map(|e| &json[..e]), Some(value), "{json}");
        }
        for unfinished in [r#"{"a":[1,2}"#, r#"{"a":"b}"#, r#"["#] {
            assert_eq!(value_end(unfinished.as_bytes(), 0), None, "{unfinished}");
        }
    }

    #[test]
    fn span_within_finds_borrowed_slices_only() {
        let outer = br#"{"a":{"b":1}}"#;
        assert_eq!(span_within(outer, &outer[5..12]), Some(5..12));
        assert_eq!(span_within(outer, &outer[..0]), Some(0..0));
        assert_eq!(span_within(&outer[..4], &outer[5..12]), None);
        // Equal bytes elsewhere are not a slice of it.
        let copy = outer[5..12].to_vec();
        assert_eq!(span_within(outer, &copy), None);
    }

    #[test]
    fn member_span_finds_top_level_members_only() {
        let j = br#"{"jsonrpc":"2.0","id":"a\"result\":","x":{"result":1},"result":{"k":[1,{"a":"}"}]}}"#;
        let s = member_span(j, "result").expect("found");
        assert_eq!(&j[s], br#"{"k":[1,{"a":"}"}]}"#);
        assert!(member_span(br#"{"a":1}"#, "result").is_none());
        assert!(member_span(b"[1]", "a").is_none());
        assert!(member_span(br#"{"a":"#, "a").is_none());
        let ws = member_span(b" { \"a\" : true , \"b\" : null } ", "b").expect("b");
        assert_eq!(&b" { \"a\" : true , \"b\" : null } "[ws], b"null");
    }

    #[test]
    fn complete_result_adds_what_is_missing_and_keeps_the_rest() {
        let r = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#);
        let out = complete_result(&r, true);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["result"]["resultType"], "complete");
        assert_eq!(v["result"]["ttlMs"], 0);
        assert_eq!(v["result"]["cacheScope"], "private");
        assert_eq!(v["result"]["tools"], serde_json::json!([]));

        let empty = complete_result(&Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{ }}"#), false);
        let v: serde_json::Value = serde_json::from_slice(&empty).expect("json");
        assert_eq!(v["result"], serde_json::json!({"resultType": "complete"}));

        // An upstream's "public" is not the mesh's to pass on: it filters per caller.
        let public = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"ttlMs":5,"cacheScope":"public","resultType":"complete"}}"#);
        let v: serde_json::Value = serde_json::from_slice(&complete_result(&public, true)).expect("json");
        assert_eq!((v["result"]["cacheScope"].as_str(), v["result"]["ttlMs"].as_i64()), (Some("private"), Some(5)));

        // Named inside the result but not as its member: still added.
        let nested = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"resultType"}],"isError":false}}"#,
        );
        let v: serde_json::Value = serde_json::from_slice(&complete_result(&nested, false)).expect("json");
        assert_eq!(
            (v["result"]["resultType"].as_str(), v["result"]["isError"].as_bool()),
            (Some("complete"), Some(false))
        );
        let plain = Bytes::from_static(br#"{"jsonrpc":"2.0","id":"x","result":{"content":[]}}"#);
        assert_eq!(
            complete_result(&plain, false),
            Bytes::from_static(br#"{"jsonrpc":"2.0","id":"x","result":{"resultType":"complete","content":[]}}"#)
        );

        let already = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required"}}"#);
        assert_eq!(complete_result(&already, false), already);
        let error = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}"#);
        assert_eq!(complete_result(&error, true), error);
    }

    #[test]
    fn completed_as_answers_under_the_id_it_is_given() {
        let id_first = Bytes::from_static(br#"{"jsonrpc":"2.0","id":"a","result":{"content":[]}}"#);
        let result_first = Bytes::from_static(br#"{"result":{"content":[]},"jsonrpc":"2.0","id":"a"}"#);
        for reply in [&id_first, &result_first] {
            assert_eq!(completed_as(reply, br#""a""#, false), completed(reply, false));
            assert!(completed_as(reply, br#""a""#, false).is_some());
        }
        // Another id is replaced in the same copy, wherever it sits, whatever the result needs.
        let cases: [(&[u8], &[u8], bool, &str); 7] = [
            (
                br#"{"jsonrpc":"2.0","id":1,"result":[1]}"#,
                br#""q""#,
                false,
                r#"{"jsonrpc":"2.0","id":"q","result":[1]}"#,
            ),
            (
                br#"{"result":{},"jsonrpc":"2.0","id":"upstream"}"#,
                b"9",
                false,
                r#"{"result":{"resultType":"complete"},"jsonrpc":"2.0","id":9}"#,
            ),
            (
                br#"{"jsonrpc":"2.0","id":17,"result":{"content":[]}}"#,
                br#""abc""#,
                false,
                r#"{"jsonrpc":"2.0","id":"abc","result":{"resultType":"complete","content":[]}}"#,
            ),
            (
                br#"{"result":{"content":[]},"jsonrpc":"2.0","id":17}"#,
                br#""abc""#,
                false,
                r#"{"result":{"resultType":"complete","content":[]},"jsonrpc":"2.0","id":"abc"}"#,
            ),
            (
                br#"{"jsonrpc":"2.0","id":"long-upstream-id","result":{ }}"#,
                b"7",
                false,
                r#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"complete" }}"#,
            ),
            (
                br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]}}"#,
                br#""x""#,
                true,
                r#"{"jsonrpc":"2.0","id":"x","result":{"resultType":"complete","ttlMs":0,"cacheScope":"private","tools":[]}}"#,
            ),
            (
                br#"{"result":{"resultType":"input_required"},"id":3,"jsonrpc":"2.0"}"#,
                b"12",
                false,
                r#"{"result":{"resultType":"input_required"},"id":12,"jsonrpc":"2.0"}"#,
            ),
        ];
        for (reply, id, cacheable, want) in cases {
            let got = completed_as(&Bytes::copy_from_slice(reply), id, cacheable).expect("completed");
            assert_eq!(std::str::from_utf8(&got).expect("text"), want);
        }
        let error = Bytes::from_static(br#"{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"m"}}"#);
        assert_eq!(completed_as(&error, br#""b""#, false), None);
        let bare = Bytes::from_static(br#"{"jsonrpc":"2.0","result":{}}"#);
        assert_eq!(completed_as(&bare, br#""a""#, false), None);
    }

    #[test]
    fn keep_members_copies_what_it_keeps() {
        let o = br#"{ "a" : 1, "io.x/y":{"n":[1]}, "b":"s,}" }"#;
        let kept = keep_members(o, |n| !n.starts_with(b"io.")).expect("object");
        assert_eq!(kept, br#"{"a" : 1,"b":"s,}"}"#);
        assert_eq!(keep_members(b"{}", |_| true).expect("empty"), b"{}");
        assert_eq!(keep_members(br#"{"a":1}"#, |_| false).expect("none kept"), b"{}");
        assert!(keep_members(b"[1]", |_| true).is_none());
    }

    #[test]
    fn header_values_are_trimmed_and_decoded() {
        assert_eq!(header_value(b"  tools/call\t").as_deref(), Some("tools/call"));
        assert_eq!(header_value(b"=?base64?w6lsw6hwaGFudA==?=").as_deref(), Some("élèphant"));
        assert_eq!(header_value(b"=?base64?!!?="), None);
        assert_eq!((header_value(b" \t ").as_deref(), header_value(b"").as_deref()), (Some(""), Some("")));
        assert_eq!(header_value(b" a b ").as_deref(), Some("a b"));
        assert_eq!(header_value(b"\xff"), None);
    }

    #[test]
    fn eras_are_told_apart_by_the_header() {
        assert!(is_modern_header("2026-07-28"));
        assert!(is_modern_header("v999.0.0"));
        assert!(!is_modern_header("2025-11-25"));
        assert!(!is_modern_header(""));
        assert_eq!(status_of(codes::METHOD_NOT_FOUND), 404);
        assert_eq!(status_of(codes::HEADER_MISMATCH), 400);
        assert_eq!(status_of(codes::UPSTREAM_TIMEOUT), 200);
    }
}
