//! Task ids in the tasks extension (SEP-2663), as an intermediary renames them: the mesh never
//! shows a client the id an upstream chose, and a virtual MCP never lets two members' ids meet.
//! What a task id may appear in — a `CreateTaskResult`, a task request's `params.taskId`, the
//! result of one, an error about one — is read and rewritten here, the rest of each message
//! byte for byte.

use super::scan::{member_span, present_member};
use crate::Message;

/// The longest task id the mesh records.
pub const MAX_TASK_ID: usize = 256;

/// The task a `tools/call` reply created: its `taskId` and `ttlMs`, when the result is a
/// `CreateTaskResult` (`resultType: "task"`). Most replies are not, and are told apart by a scan
/// that parses nothing.
pub fn created_task(reply: &[u8]) -> Option<(String, Option<u64>)> {
    let result = &reply[member_span(reply, "result")?];
    let kind = present_member(result, "resultType")?;
    if &result[kind] != br#""task""# {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Created {
        #[serde(rename = "taskId")]
        task_id: String,
        #[serde(rename = "ttlMs")]
        ttl_ms: Option<u64>,
    }
    let c: Created = serde_json::from_slice(result).ok()?;
    // An id is a handle, not a payload: one longer than this is not recorded (the mesh keeps
    // ids in memory, and an upstream chooses them).
    (c.task_id.len() <= MAX_TASK_ID).then_some((c.task_id, c.ttl_ms))
}

/// `msg` with the `taskId` member of its `outer` object (`params` of a request, `result` of a
/// reply) set to `id`; the rest of the message byte for byte. `None` when there is none.
pub fn with_task_id(msg: &Message, outer: &str, id: &str) -> Option<Message> {
    let raw = msg.bytes();
    let object = member_span(raw, outer)?;
    let at = member_span(&raw[object.clone()], "taskId")?;
    let value = serde_json::Value::from(id).to_string();
    msg.splice(object.start + at.start..object.start + at.end, value.as_bytes())
}

/// An error about task `from`, with that id replaced by `to` where it stands as a word of its own
/// (in the message, and in the strings of `data`), so that a short id ("1") never rewrites other
/// numbers; other messages as they are.
pub fn task_error_renamed(msg: &Message, from: &str, to: &str) -> Message {
    fn rename(v: &mut serde_json::Value, from: &str, to: &str) {
        match v {
            serde_json::Value::String(s) => *s = replace_word(s, from, to),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| rename(v, from, to)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|v| rename(v, from, to)),
            _ => {}
        }
    }
    let Some(mut e) = msg.error_object() else { return msg.clone() };
    if from.is_empty() || !msg.as_str().contains(from) {
        return msg.clone();
    }
    e.message = replace_word(&e.message, from, to);
    if let Some(d) = e.data.as_mut() {
        rename(d, from, to);
    }
    Message::error(msg.id(), e.code, &e.message, e.data)
}

/// `text` with each occurrence of `word` that no letter, digit, `-` or `_` touches replaced.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let part_of_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let (before, after) = (rest[..at].chars().next_back(), rest[at + word.len()..].chars().next());
        let alone = !part_of_word(before) && !part_of_word(after);
        out.push_str(&rest[..at]);
        out.push_str(if alone { with } else { word });
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &'static str) -> Message {
        Message::parse(bytes::Bytes::from_static(text.as_bytes())).expect("a message")
    }

    #[test]
    fn a_task_id_is_swapped_in_place() {
        let reply =
            parse(r#"{"jsonrpc":"2.0","id":3,"result":{"resultType":"task","taskId":"up-1","status":"working"}}"#);
        let out = with_task_id(&reply, "result", "mt-x").expect("swapped");
        assert_eq!(
            out.as_str(),
            r#"{"jsonrpc":"2.0","id":3,"result":{"resultType":"task","taskId":"mt-x","status":"working"}}"#
        );
        assert_eq!(out.id(), Some("3"));
        let request = parse(r#"{"jsonrpc":"2.0","id":"a","method":"tasks/get","params":{"taskId":"mt-x","_meta":{}}}"#);
        let out = with_task_id(&request, "params", "up-1").expect("swapped");
        assert!(out.as_str().contains(r#""taskId":"up-1""#), "{}", out.as_str());
        assert_eq!((out.id(), out.method()), (Some(r#""a""#), Some("tasks/get")));
        assert!(with_task_id(&parse(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#), "result", "x").is_none());
    }

    #[test]
    fn only_a_create_task_result_creates_a_task() {
        let task = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"abc","status":"working","ttlMs":5000}}"#;
        assert_eq!(created_task(task), Some(("abc".into(), Some(5000))));
        let no_ttl = br#"{"jsonrpc":"2.0","id":1,"result":{"taskId":"abc","resultType":"task","ttlMs":null}}"#;
        assert_eq!(created_task(no_ttl), Some(("abc".into(), None)));
        let plain = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","content":[],"taskId":"x"}}"#;
        assert_eq!(created_task(plain), None);
        assert_eq!(created_task(br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}"#), None);
        let long =
            format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"resultType":"task","taskId":"{}"}}}}"#, "x".repeat(300));
        assert_eq!(created_task(long.as_bytes()), None);
    }

    #[test]
    fn an_error_is_renamed_only_where_the_id_is_a_word() {
        let up = Message::error(
            Some("7"),
            -32602,
            "Unknown task: 41 (of 141, 41a)",
            Some(serde_json::json!({"taskId": "41", "seen": ["41", 41, "task 41."]})),
        );
        let out = task_error_renamed(&up, "41", "mt-abc");
        let e = out.error_object().expect("an error");
        assert_eq!((e.code, e.message.as_str()), (-32602, "Unknown task: mt-abc (of 141, 41a)"));
        assert_eq!(e.data, Some(serde_json::json!({"taskId": "mt-abc", "seen": ["mt-abc", 41, "task mt-abc."]})));
        assert_eq!(out.id(), Some("7"));
        // Nothing to rename: the same message.
        let other = Message::error(Some("7"), -32603, "boom", None);
        assert_eq!(task_error_renamed(&other, "41", "mt-abc").as_str(), other.as_str());
    }
}
