//! Asking the client for input mid-request, in either era, from one description of the exchange.
//!
//! A [`Dialogue`] is a list of rounds, each a set of keyed questions ([`Ask`]: an elicitation, a
//! sampling request or `roots/list`). How it runs depends on the request's era:
//!
//! - **legacy** (2025-11-25 session): each question is sent to the client as a server→client
//!   request and awaited, round after round, inside the one call;
//! - **modern** (2026-07-28, SEP-2322 "MRTR"): the call answers `resultType: "input_required"`
//!   with the questions still open; the client retries the same request with `inputResponses`
//!   (and, for a *stateful* dialogue, the sealed `requestState` naming the round and the answers
//!   so far). An *ephemeral* dialogue keeps no state: answers supplied up front are used as they
//!   are (the `ignore-extra-params` scenario), and unknown keys are ignored.
//!
//! Both eras check the client's declared capabilities first: a question the client cannot answer
//! is `-32021` (MissingRequiredClientCapability) with the capability in `data`, never a request it
//! did not declare (spec `basic/index.mdx` §Error Codes; `server-stateless` probes this).
//! A structurally wrong answer (an elicitation answer that is not an `ElicitResult`) is `-32602`;
//! a missing one is asked again (spec `basic/patterns/mrtr.mdx`).

// Sampling and roots are deprecated by rmcp for 2026-07-28 (SEP-2577) but still in both wires.
#![allow(deprecated)]

use crate::era::Wire;
use crate::state::Sealer;
use crate::wire::decode;
use rmcp::model::{
    ClientCapabilities, CreateMessageRequestParams, ElicitRequestParams, InputRequests, InputRequiredResult,
    InputResponses, JsonObject, ProtocolVersion,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The vendor `_meta` key on the server→client requests a legacy dialogue sends, naming the key the
/// question has in the modern form of the same dialogue. A relay that turns these requests into
/// input-required results can use it to keep the fixture's keys (`user_name`) stable.
pub(crate) const INPUT_KEY_META: &str = "mcp-mesh/inputKey";

/// One question for the client.
#[derive(Debug, Clone)]
pub(crate) enum Ask {
    /// `elicitation/create`, form mode.
    Elicit { message: String, schema: Value },
    /// `sampling/createMessage` of one user message.
    Sample { prompt: String },
    /// `roots/list`.
    Roots,
}

impl Ask {
    /// A form asking for one string field.
    pub(crate) fn text_field(message: &str, field: &str) -> Self {
        let schema = json!({"type": "object", "properties": {field: {"type": "string"}}, "required": [field]});
        Ask::Elicit { message: message.to_owned(), schema }
    }

    fn method(&self) -> &'static str {
        match self {
            Ask::Elicit { .. } => "elicitation/create",
            Ask::Sample { .. } => "sampling/createMessage",
            Ask::Roots => "roots/list",
        }
    }

    fn params(&self) -> Value {
        match self {
            Ask::Elicit { message, schema } => json!({"mode": "form", "message": message, "requestedSchema": schema}),
            Ask::Sample { prompt } => json!({
                "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
                "maxTokens": 100
            }),
            Ask::Roots => json!({}),
        }
    }

    /// The capability the client must have declared, as `requiredCapabilities` spells it.
    fn capability(&self) -> &'static str {
        match self {
            Ask::Elicit { .. } => "elicitation",
            Ask::Sample { .. } => "sampling",
            Ask::Roots => "roots",
        }
    }

    pub(crate) fn declared_by(&self, caps: &ClientCapabilities) -> bool {
        match self {
            Ask::Elicit { .. } => caps.elicitation.is_some(),
            Ask::Sample { .. } => caps.sampling.is_some(),
            Ask::Roots => caps.roots.is_some(),
        }
    }

    /// Structural check of the client's answer: the result type of the method asked.
    pub(crate) fn check(&self, key: &str, answer: &Value) -> Result<(), McpError> {
        let ok = match self {
            Ask::Elicit { .. } => {
                matches!(answer["action"].as_str(), Some("accept" | "decline" | "cancel"))
                    && answer.get("content").is_none_or(Value::is_object)
            }
            Ask::Sample { .. } => answer["role"].is_string() && !answer["content"].is_null(),
            Ask::Roots => answer["roots"].is_array(),
        };
        if ok {
            return Ok(());
        }
        let expected = match self {
            Ask::Elicit { .. } => "an ElicitResult",
            Ask::Sample { .. } => "a CreateMessageResult",
            Ask::Roots => "a ListRootsResult",
        };
        Err(McpError::invalid_params(format!("inputResponses.{key} is not {expected}"), Some(json!({"key": key}))))
    }
}

/// The questions of one exchange, in rounds; `stateful` ones carry a sealed `requestState`.
#[derive(Debug, Clone)]
pub(crate) struct Dialogue {
    pub(crate) rounds: Vec<Vec<(&'static str, Ask)>>,
    pub(crate) stateful: bool,
}

impl Dialogue {
    /// One round, no state: the answers alone carry the exchange.
    pub(crate) fn ephemeral(asks: Vec<(&'static str, Ask)>) -> Self {
        Self { rounds: vec![asks], stateful: false }
    }

    pub(crate) fn stateful(rounds: Vec<Vec<(&'static str, Ask)>>) -> Self {
        Self { rounds, stateful: true }
    }
}

/// The request a dialogue runs in.
pub(crate) struct Exchange<'a> {
    pub(crate) cx: &'a RequestContext<RoleServer>,
    pub(crate) sealer: &'a Sealer,
    /// `tools/call`, `prompts/get` or `resources/read`, and the tool, prompt or URI: what a state
    /// is bound to.
    pub(crate) method: &'static str,
    pub(crate) name: &'a str,
    pub(crate) arguments: &'a JsonObject,
    pub(crate) responses: Option<&'a InputResponses>,
    pub(crate) state: Option<&'a str>,
}

/// Where a dialogue stands after this request.
pub(crate) enum Reply {
    /// Every question answered: the answers by key.
    Done(BTreeMap<String, Value>),
    /// Modern only: the result to send instead of the complete one.
    InputRequired(InputRequiredResult),
}

/// The era of the request in `cx`: what its own `_meta` names, else what the session negotiated.
pub(crate) fn wire_of(cx: &RequestContext<RoleServer>) -> Wire {
    match cx.protocol_version() {
        Some(v) if v.as_str() >= ProtocolVersion::V_2026_07_28.as_str() => Wire::Modern,
        _ => Wire::Legacy,
    }
}

/// `-32021` naming every capability the dialogue needs that the request did not declare.
pub(crate) fn require_capabilities(cx: &RequestContext<RoleServer>, dialogue: &Dialogue) -> Result<(), McpError> {
    let caps = cx.client_capabilities().unwrap_or_default();
    let missing: Map<String, Value> = dialogue
        .rounds
        .iter()
        .flatten()
        .filter(|(_, ask)| !ask.declared_by(&caps))
        .map(|(_, ask)| (ask.capability().to_owned(), json!({})))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let required: ClientCapabilities = decode(Value::Object(missing))?;
    Err(McpError::missing_required_client_capability(required))
}

/// Runs `dialogue` for this request, in the request's era.
pub(crate) async fn run(dialogue: &Dialogue, x: &Exchange<'_>) -> Result<Reply, McpError> {
    match wire_of(x.cx) {
        Wire::Legacy => legacy(dialogue, x.cx).await.map(Reply::Done),
        Wire::Modern if dialogue.stateful => stateful(dialogue, x),
        Wire::Modern => {
            let round = dialogue.rounds.first().map(Vec::as_slice).unwrap_or_default();
            let mut answers = BTreeMap::new();
            match take_answers(round, x.responses, &mut answers)? {
                Some(open) => Ok(Reply::InputRequired(InputRequiredResult::new(Some(requests(pairs(&open))?), None))),
                None => Ok(Reply::Done(answers)),
            }
        }
    }
}

/// Modern, stateful: the state names the round and carries the answers of the rounds before it.
fn stateful(dialogue: &Dialogue, x: &Exchange<'_>) -> Result<Reply, McpError> {
    let seal = |round: usize, answers: &BTreeMap<String, Value>| {
        x.sealer.seal(x.method, x.name, x.arguments, &json!({"round": round, "answers": answers}))
    };
    let ask = |round: usize, open: &[(&str, Ask)], answers: &BTreeMap<String, Value>| {
        Ok(Reply::InputRequired(InputRequiredResult::new(Some(requests(pairs(open))?), Some(seal(round, answers)))))
    };
    let Some(sealed) = x.state else {
        // First contact: whatever was answered without a state is not trusted to belong here.
        return ask(0, &dialogue.rounds[0], &BTreeMap::new());
    };
    let state = x.sealer.open(x.method, x.name, x.arguments, sealed)?;
    let round = state["round"].as_u64().and_then(|r| usize::try_from(r).ok()).filter(|r| *r < dialogue.rounds.len());
    let (Some(round), Some(earlier)) = (round, state["answers"].as_object()) else {
        return Err(McpError::invalid_params("requestState rejected: not a state of this dialogue", None));
    };
    let mut answers: BTreeMap<String, Value> = earlier.clone().into_iter().collect();
    if let Some(open) = take_answers(&dialogue.rounds[round], x.responses, &mut answers)? {
        return ask(round, &open, &answers);
    }
    match dialogue.rounds.get(round + 1) {
        Some(next) => ask(round + 1, next, &answers),
        None => Ok(Reply::Done(answers)),
    }
}

/// Moves this round's answers from `responses` into `answers` (checking their shape); returns the
/// questions still open, if any. Keys the round did not ask are ignored.
fn take_answers(
    round: &[(&'static str, Ask)],
    responses: Option<&InputResponses>,
    answers: &mut BTreeMap<String, Value>,
) -> Result<Option<Vec<(&'static str, Ask)>>, McpError> {
    let mut open = Vec::new();
    for (key, ask) in round {
        match responses.and_then(|r| r.get(*key)) {
            Some(answer) => {
                ask.check(key, answer)?;
                answers.insert((*key).to_owned(), answer.clone());
            }
            None => open.push((*key, ask.clone())),
        }
    }
    Ok((!open.is_empty()).then_some(open))
}

/// The `inputRequests` map: each question as `{method, params}` (no `jsonrpc`, no `id`). Also what
/// `tasks/get` shows of a task's open questions ([`crate::tasks`]).
pub(crate) fn requests<'a>(open: impl IntoIterator<Item = (&'a str, &'a Ask)>) -> Result<InputRequests, McpError> {
    let map: Map<String, Value> = open
        .into_iter()
        .map(|(key, ask)| (key.to_owned(), json!({"method": ask.method(), "params": ask.params()})))
        .collect();
    decode(Value::Object(map))
}

fn pairs<'a>(open: &'a [(&'a str, Ask)]) -> impl Iterator<Item = (&'a str, &'a Ask)> {
    open.iter().map(|(key, ask)| (*key, ask))
}

/// Legacy: every question, round after round, as a request to the client, answered in-call.
async fn legacy(dialogue: &Dialogue, cx: &RequestContext<RoleServer>) -> Result<BTreeMap<String, Value>, McpError> {
    let mut answers = BTreeMap::new();
    for (key, ask) in dialogue.rounds.iter().flatten() {
        let mut params = ask.params();
        params["_meta"] = json!({INPUT_KEY_META: key});
        let answer = match ask {
            Ask::Elicit { .. } => {
                let p: ElicitRequestParams = decode(params)?;
                cx.peer.create_elicitation(p).await.map(|r| serde_json::to_value(r).unwrap_or_default())
            }
            Ask::Sample { .. } => {
                let p: CreateMessageRequestParams = decode(params)?;
                cx.peer.create_message(p).await.map(|r| serde_json::to_value(r).unwrap_or_default())
            }
            Ask::Roots => cx.peer.list_roots().await.map(|r| serde_json::to_value(r).unwrap_or_default()),
        }
        .map_err(|e| McpError::internal_error(format!("{} failed: {e}", ask.method()), None))?;
        answers.insert((*key).to_owned(), answer);
    }
    Ok(answers)
}

/// The `content.<field>` of an accepted elicitation answer, or how the user declined.
pub(crate) fn elicited<'a>(answers: &'a BTreeMap<String, Value>, key: &str, field: &str) -> &'a str {
    let answer = &answers[key];
    match answer["action"].as_str() {
        Some("accept") => answer["content"][field].as_str().unwrap_or("(no value)"),
        Some("decline") => "(declined)",
        _ => "(cancelled)",
    }
}

/// The text of a `CreateMessageResult`, whose `content` is one block or (2025-11-25) an array.
pub(crate) fn sampled(answer: &Value) -> String {
    let content = &answer["content"];
    let block = if content.is_array() { &content[0] } else { content };
    block["text"].as_str().map_or_else(|| content.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(asks: Vec<(&'static str, Ask)>) -> Vec<(&'static str, Ask)> {
        asks
    }

    #[test]
    fn every_kind_of_question_decodes_as_an_input_request() {
        let asks = one(vec![
            ("a", Ask::text_field("Name?", "name")),
            ("b", Ask::Sample { prompt: "hi".into() }),
            ("c", Ask::Roots),
        ]);
        let map = requests(pairs(&asks)).unwrap();
        let on_wire = serde_json::to_value(&map).unwrap();
        assert_eq!(on_wire["a"]["method"], "elicitation/create");
        assert_eq!(on_wire["b"]["method"], "sampling/createMessage");
        assert_eq!(on_wire["c"]["method"], "roots/list");
        assert!(on_wire["a"].get("id").is_none() && on_wire["a"].get("jsonrpc").is_none());
    }

    #[test]
    fn answers_are_checked_against_the_question() {
        let elicit = Ask::text_field("Name?", "name");
        assert!(elicit.check("k", &json!({"action": "accept", "content": {"name": "A"}})).is_ok());
        assert!(elicit.check("k", &json!({"action": "decline"})).is_ok());
        assert_eq!(elicit.check("k", &json!(12345)).unwrap_err().code.0, -32602);
        assert!(Ask::Roots.check("k", &json!({"roots": []})).is_ok());
        assert!(Ask::Roots.check("k", &json!({"nope": 1})).is_err());
        let sample = Ask::Sample { prompt: "p".into() };
        assert!(sample.check("k", &json!({"role": "assistant", "content": {"type": "text", "text": "x"}})).is_ok());
    }

    #[test]
    fn missing_answers_stay_open_and_unknown_keys_are_ignored() {
        let round = one(vec![("a", Ask::Roots), ("b", Ask::Roots)]);
        let responses: InputResponses =
            [("a".to_owned(), json!({"roots": []})), ("zzz".to_owned(), json!(1))].into_iter().collect();
        let mut answers = BTreeMap::new();
        let open = take_answers(&round, Some(&responses), &mut answers).unwrap().unwrap();
        assert_eq!(open.iter().map(|(k, _)| *k).collect::<Vec<_>>(), ["b"]);
        assert_eq!(answers.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn sampled_text_reads_single_and_array_content() {
        assert_eq!(sampled(&json!({"content": {"type": "text", "text": "a"}})), "a");
        assert_eq!(sampled(&json!({"content": [{"type": "text", "text": "b"}]})), "b");
    }
}
