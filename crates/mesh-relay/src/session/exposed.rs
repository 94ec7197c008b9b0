//! A virtual MCP's members name resources in their replies by the URIs they know; its client
//! knows them under the member's prefix (`{prefix}+{uri}`, as the merged lists expose them). A
//! read's contents, a tool's resource links and embedded resources (in a task's result too), and
//! a prompt's embedded resources are rewritten on their way back, so that a client can read what
//! it is pointed to through the virtual MCP (`route_uri` takes the prefix off again).
//!
//! Every URI a prefixed member names gets its prefix, as its lists and resource updates do: the
//! exact inverse of `route_uri`, which takes exactly one off. (A tool that echoes an exposed URI
//! its client gave it therefore names it with the prefix twice; leaving it alone would make a
//! member's own `git+https://…` unreadable behind the prefix `git`.)
//!
//! The reply is not re-serialised: the prefix is inserted before each URI in the reply's bytes,
//! so the id and every number, key order and escape in the result stay as the member wrote them.

use mesh_protocol::Message;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// `reply`, a member's answer to `method`, with the resource URIs it names as the client of a
/// virtual MCP knows them (`uri_prefix` is the member's, empty when it is exposed unprefixed).
/// The reply itself when it names none, or does not read as the method's result (an error, a
/// shape of its own): those pass as they are. Read only when its bytes hold `"uri"`.
pub(super) fn exposed_reply(uri_prefix: &str, method: &str, reply: Message) -> Message {
    if uri_prefix.is_empty() || memchr::memmem::find(reply.bytes(), b"\"uri\"").is_none() {
        return reply;
    }
    let bytes = reply.bytes();
    let uris: Vec<&RawValue> = match method {
        "resources/read" => result::<Read<'_>>(bytes).map(|r| r.contents.into_iter().filter_map(|c| c.uri).collect()),
        "tools/call" => result::<Content<'_>>(bytes).map(Content::uris),
        // A task's `tasks/get` carries its tool's result once it has one.
        "tasks/get" => result::<Task<'_>>(bytes).and_then(|t| t.result).map(Content::uris),
        "prompts/get" => result::<Prompt<'_>>(bytes)
            .map(|p| p.messages.into_iter().filter_map(|m| m.content.and_then(Block::uri)).collect()),
        _ => None,
    }
    .unwrap_or_default();
    // Where each URI's text starts: after its opening quote (a value that is no string is left).
    let mut at: Vec<usize> = uris
        .iter()
        .filter(|u| u.get().starts_with('"'))
        .filter_map(|u| mesh_protocol::modern::span_within(bytes, u.get().as_bytes()))
        .map(|span| span.start + 1)
        .collect();
    if at.is_empty() {
        return reply;
    }
    at.sort_unstable();
    at.dedup();
    let with = format!("{uri_prefix}+");
    reply.inserted(&at, with.as_bytes()).unwrap_or(reply)
}

/// The `result` of `reply` read as `T`, borrowing from its bytes.
fn result<'a, T: Deserialize<'a>>(reply: &'a [u8]) -> Option<T> {
    #[derive(Deserialize)]
    struct R<T> {
        result: Option<T>,
    }
    serde_json::from_slice::<R<T>>(reply).ok()?.result
}

/// What names a resource: its `uri`, left as raw JSON so that where it sits can be found.
#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Read<'a> {
    #[serde(borrow, default)]
    contents: Vec<Named<'a>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    content: Vec<Block<'a>>,
}

impl<'a> Content<'a> {
    fn uris(self) -> Vec<&'a RawValue> {
        self.content.into_iter().filter_map(Block::uri).collect()
    }
}

#[derive(Deserialize)]
struct Task<'a> {
    #[serde(borrow, default)]
    result: Option<Content<'a>>,
}

#[derive(Deserialize)]
struct Prompt<'a> {
    #[serde(borrow, default)]
    messages: Vec<Said<'a>>,
}

#[derive(Deserialize)]
struct Said<'a> {
    #[serde(borrow, default)]
    content: Option<Block<'a>>,
}

/// A content block: a resource link names its URI, an embedded resource its resource's.
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
}

impl<'a> Block<'a> {
    fn uri(self) -> Option<&'a RawValue> {
        match self.kind.as_deref() {
            Some("resource_link") => self.uri,
            // Read apart: a block of another type may carry a `resource` of any shape.
            Some("resource") => serde_json::from_str::<Named<'a>>(self.resource?.get()).ok()?.uri,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn rewritten(method: &str, result: Value) -> Value {
        let reply = Message::response("7", &result);
        exposed_reply("ev", method, reply).result::<Value>().unwrap()
    }

    #[test]
    fn a_read_names_its_contents_under_the_prefix() {
        let out = rewritten("resources/read", json!({"contents": [{"uri": "demo://a", "text": "x"}, {"uri": "ev+b"}]}));
        assert_eq!(out["contents"][0]["uri"], "ev+demo://a");
        // A member's own URI that starts like an exposed one is its own all the same.
        assert_eq!(out["contents"][1]["uri"], "ev+ev+b");
    }

    #[test]
    fn resource_links_and_embedded_resources_are_exposed() {
        let out = rewritten(
            "tools/call",
            json!({"content": [
                {"type": "text", "text": "see \"uri\""},
                {"type": "resource_link", "uri": "demo://1", "name": "one"},
                {"type": "resource", "resource": {"uri": "demo://2", "text": "two"}},
                {"type": "image", "uri": "demo://not-a-resource", "resource": 3},
                {"type": "resource_link", "uri": 4}
            ]}),
        );
        let uris = [&out["content"][1]["uri"], &out["content"][2]["resource"]["uri"], &out["content"][3]["uri"]];
        assert_eq!(uris, [&json!("ev+demo://1"), &json!("ev+demo://2"), &json!("demo://not-a-resource")]);
        assert_eq!(out["content"][4]["uri"], 4);
        let task = rewritten(
            "tasks/get",
            json!({"taskId": "t", "status": "completed",
                   "result": {"resultType": "complete", "content": [{"type": "resource_link", "uri": "demo://t"}]}}),
        );
        assert_eq!(task["result"]["content"][0]["uri"], "ev+demo://t");
        let prompt = rewritten(
            "prompts/get",
            json!({"messages": [{"role": "user", "content": {"type": "resource", "resource": {"uri": "demo://p"}}}]}),
        );
        assert_eq!(prompt["messages"][0]["content"]["resource"]["uri"], "ev+demo://p");
    }

    #[test]
    fn only_the_uris_change() {
        // A large number, escapes and key order, which a round trip through a Value would
        // change, and an id no f64 holds.
        let raw = r#"{"jsonrpc":"2.0","id":12345678901234567890123,"result":{"z":123456789012345678901234567890,"w":1.10,"contents":[{"text":"\u00e9","uri":"demo:\/\/a"}]}}"#;
        let reply = Message::parse(bytes::Bytes::from_static(raw.as_bytes())).unwrap();
        let out = exposed_reply("ev", "resources/read", reply);
        assert_eq!(out.as_str(), raw.replace(r#""uri":"demo"#, r#""uri":"ev+demo"#));
        assert_eq!(out.id(), Some("12345678901234567890123"));
    }

    #[test]
    fn a_reply_without_resources_is_the_same_message() {
        let same = Message::response("7", &json!({"content": [{"type": "text", "text": "no links"}]}));
        let out = exposed_reply("ev", "tools/call", same.clone());
        assert!(std::ptr::eq(out.bytes().as_ptr(), same.bytes().as_ptr()), "not copied");
        let unprefixed = Message::response("7", &json!({"contents": [{"uri": "demo://a"}]}));
        assert_eq!(exposed_reply("", "resources/read", unprefixed.clone()).bytes(), unprefixed.bytes());
        let error = Message::error(Some("7"), -32002, "Resource not found", Some(json!({"uri": "demo://a"})));
        assert_eq!(exposed_reply("ev", "resources/read", error.clone()).bytes(), error.bytes());
        let other = Message::response("7", &json!({"contents": [{"uri": "demo://a"}]}));
        assert_eq!(exposed_reply("ev", "completion/complete", other.clone()).bytes(), other.bytes());
        let odd = Message::response("7", &json!({"contents": {"uri": "demo://a"}}));
        assert_eq!(exposed_reply("ev", "resources/read", odd.clone()).bytes(), odd.bytes(), "not its shape");
    }
}
