//! A virtual MCP's members name resources in their replies by the URIs they know; its client
//! knows them under the member's prefix (`{prefix}+{uri}`, as the merged lists expose them). A
//! read's contents, a tool's resource links and embedded resources, and a prompt's embedded
//! resources are rewritten on their way back, so that a client can read what it is pointed to
//! through the virtual MCP (`route_uri` takes the prefix off again).

use mesh_protocol::Message;
use serde_json::Value;

/// `reply`, a member's answer to `method`, with the resource URIs it names as the client of a
/// virtual MCP knows them (`uri_prefix` is the member's, empty when it is exposed unprefixed).
/// The reply itself when there is nothing to rewrite; parsed only when its bytes hold a `"uri"`.
pub(super) fn exposed_reply(uri_prefix: &str, method: &str, reply: Message) -> Message {
    if uri_prefix.is_empty() || memchr::memmem::find(reply.bytes(), b"\"uri\"").is_none() {
        return reply;
    }
    let Some(mut result) = reply.result::<Value>() else { return reply };
    let exposed = |uri: &mut Value, again: bool| expose(uri, uri_prefix, again);
    let changed = match method {
        // What was read is the member's own: exactly the inverse of the prefix the read lost.
        "resources/read" => each(result.get_mut("contents"), |c| c.get_mut("uri").is_some_and(|u| exposed(u, true))),
        "tools/call" | "tasks/result" => each(result.get_mut("content"), |c| block(c, &exposed)),
        "prompts/get" => each(result.get_mut("messages"), |m| m.get_mut("content").is_some_and(|c| block(c, &exposed))),
        _ => false,
    };
    match changed {
        true => Message::response(reply.id().unwrap_or("null"), &result),
        false => reply,
    }
}

/// Whether `f` changed any item of `items`, an array.
fn each(items: Option<&mut Value>, mut f: impl FnMut(&mut Value) -> bool) -> bool {
    let Some(items) = items.and_then(Value::as_array_mut) else { return false };
    items.iter_mut().fold(false, |changed, item| f(item) | changed)
}

/// A content block: a resource link names its URI, an embedded resource its resource's. A tool
/// or prompt may echo a URI its client gave it (already exposed): that one is left as it is.
fn block(content: &mut Value, exposed: &impl Fn(&mut Value, bool) -> bool) -> bool {
    let uri = match content.get("type").and_then(Value::as_str) {
        Some("resource_link") => content.get_mut("uri"),
        Some("resource") => content.get_mut("resource").and_then(|r| r.get_mut("uri")),
        _ => None,
    };
    uri.is_some_and(|u| exposed(u, false))
}

/// Puts `uri_prefix` before `uri` (a string); unless `again`, not before one that has it.
fn expose(uri: &mut Value, uri_prefix: &str, again: bool) -> bool {
    let Some(s) = uri.as_str() else { return false };
    let has = s.strip_prefix(uri_prefix).is_some_and(|rest| rest.starts_with('+'));
    if has && !again {
        return false;
    }
    *uri = Value::String(format!("{uri_prefix}+{s}"));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(result: Value) -> Message {
        Message::response("7", &result)
    }

    fn rewritten(method: &str, result: Value) -> Value {
        exposed_reply("ev", method, reply(result)).result::<Value>().unwrap()
    }

    #[test]
    fn a_read_names_its_contents_under_the_prefix() {
        let out = rewritten("resources/read", json!({"contents": [{"uri": "demo://a", "text": "x"}, {"uri": "ev+b"}]}));
        // The member's own URI that happens to start like an exposed one is still its own.
        assert_eq!(out["contents"][0]["uri"], "ev+demo://a");
        assert_eq!(out["contents"][1]["uri"], "ev+ev+b");
    }

    #[test]
    fn resource_links_and_embedded_resources_are_exposed_once() {
        let out = rewritten(
            "tools/call",
            json!({"content": [
                {"type": "text", "text": "see \"uri\""},
                {"type": "resource_link", "uri": "demo://1", "name": "one"},
                {"type": "resource", "resource": {"uri": "demo://2", "text": "two"}},
                {"type": "resource_link", "uri": "ev+demo://3", "name": "echoed"},
                {"type": "image", "uri": "demo://not-a-resource"}
            ]}),
        );
        let uris: Vec<&Value> = [
            &out["content"][1]["uri"],
            &out["content"][2]["resource"]["uri"],
            &out["content"][3]["uri"],
            &out["content"][4]["uri"],
        ]
        .into();
        assert_eq!(
            uris,
            [&json!("ev+demo://1"), &json!("ev+demo://2"), &json!("ev+demo://3"), &json!("demo://not-a-resource")]
        );
        let prompt = rewritten(
            "prompts/get",
            json!({"messages": [{"role": "user", "content": {"type": "resource", "resource": {"uri": "demo://p"}}}]}),
        );
        assert_eq!(prompt["messages"][0]["content"]["resource"]["uri"], "ev+demo://p");
    }

    #[test]
    fn a_reply_without_resources_is_the_same_message() {
        let same = reply(json!({"content": [{"type": "text", "text": "no links"}]}));
        let out = exposed_reply("ev", "tools/call", same.clone());
        assert!(std::ptr::eq(out.bytes().as_ptr(), same.bytes().as_ptr()), "not copied");
        let unprefixed = reply(json!({"contents": [{"uri": "demo://a"}]}));
        assert_eq!(exposed_reply("", "resources/read", unprefixed.clone()).bytes(), unprefixed.bytes());
        let error = Message::error(Some("7"), -32002, "Resource not found", Some(json!({"uri": "demo://a"})));
        assert_eq!(exposed_reply("ev", "resources/read", error.clone()).bytes(), error.bytes());
        let other = reply(json!({"contents": [{"uri": "demo://a"}]}));
        assert_eq!(exposed_reply("ev", "completion/complete", other.clone()).bytes(), other.bytes());
    }
}
