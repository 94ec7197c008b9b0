//! The tools the 2026-07-28 scenarios call to exercise input from the client: the
//! `test_input_required_result_*` family (SEP-2322, the `input-required-result-*` scenarios),
//! `test_missing_capability` and `test_streaming_elicitation` (`server-stateless`).
//!
//! Each is a [`Dialogue`]; [`crate::input`] runs it as input-required results at 2026-07-28 and as
//! server→client requests in a 2025-11-25 session, so the same tool can sit behind a bridge in
//! either direction. Keys are fixed (`user_name` is asserted by `basic-elicitation`).

use super::{text_result, tool};
use crate::input::{self, elicited, sampled, Ask, Dialogue, Exchange, Reply};
use crate::wire::decode;
use rmcp::model::{CallToolResponse, ClientCapabilities};
use rmcp::ErrorData as McpError;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub(crate) const MISSING_CAPABILITY: &str = "test_missing_capability";
pub(crate) const STREAMING_ELICITATION: &str = "test_streaming_elicitation";
pub(crate) const ELICITATION: &str = "test_input_required_result_elicitation";
pub(crate) const SAMPLING: &str = "test_input_required_result_sampling";
pub(crate) const LIST_ROOTS: &str = "test_input_required_result_list_roots";
pub(crate) const REQUEST_STATE: &str = "test_input_required_result_request_state";
pub(crate) const MULTIPLE_INPUTS: &str = "test_input_required_result_multiple_inputs";
pub(crate) const MULTI_ROUND: &str = "test_input_required_result_multi_round";
pub(crate) const TAMPERED_STATE: &str = "test_input_required_result_tampered_state";
pub(crate) const CAPABILITIES: &str = "test_input_required_result_capabilities";

/// The key the name question has in every dialogue that asks it.
pub(crate) const USER_NAME: &str = "user_name";
const SAMPLE: &str = "sampling";
const ROOTS: &str = "roots";
const COLOR: &str = "favorite_color";

pub(super) fn catalogue() -> Vec<Value> {
    let none = || json!({"type": "object", "properties": {}});
    vec![
        tool(MISSING_CAPABILITY, "Needs sampling: -32021 when the request did not declare it.", none()),
        tool(STREAMING_ELICITATION, "Asks for the user's name (elicitation) and greets them.", none()),
        tool(ELICITATION, "Asks for the user's name (key user_name), no state.", none()),
        tool(SAMPLING, "Asks the client for an LLM completion (key sampling), no state.", none()),
        tool(LIST_ROOTS, "Asks the client for its roots (key roots), no state.", none()),
        tool(REQUEST_STATE, "Asks for the user's name with a sealed requestState.", none()),
        tool(
            MULTIPLE_INPUTS,
            "Asks for a name, a completion and the roots at once, with a sealed requestState.",
            none(),
        ),
        tool(MULTI_ROUND, "Asks for a name, then for a favourite colour; the requestState changes per round.", none()),
        tool(TAMPERED_STATE, "Like the request-state tool; a changed requestState is -32602.", none()),
        tool(
            CAPABILITIES,
            "Asks only what the request's clientCapabilities allow (elicitation, sampling, roots).",
            none(),
        ),
    ]
}

fn name() -> Ask {
    Ask::text_field("What is your name?", "name")
}

fn sample() -> Ask {
    Ask::Sample { prompt: "Say hello to the conformance suite.".into() }
}

/// The dialogue behind `tool`, or `None` if the tool is not one of these.
fn dialogue(tool: &str, caps: &ClientCapabilities) -> Option<Dialogue> {
    Some(match tool {
        MISSING_CAPABILITY => Dialogue::ephemeral(vec![(SAMPLE, sample())]),
        STREAMING_ELICITATION | ELICITATION => Dialogue::ephemeral(vec![(USER_NAME, name())]),
        SAMPLING => Dialogue::ephemeral(vec![(SAMPLE, sample())]),
        LIST_ROOTS => Dialogue::ephemeral(vec![(ROOTS, Ask::Roots)]),
        REQUEST_STATE | TAMPERED_STATE => Dialogue::stateful(vec![vec![(USER_NAME, name())]]),
        MULTIPLE_INPUTS => Dialogue::stateful(vec![vec![(USER_NAME, name()), (SAMPLE, sample()), (ROOTS, Ask::Roots)]]),
        MULTI_ROUND => Dialogue::stateful(vec![
            vec![(USER_NAME, name())],
            vec![(COLOR, Ask::text_field("What is your favourite colour?", "color"))],
        ]),
        // Only what was declared: the capability-check scenario declares sampling alone.
        CAPABILITIES => Dialogue::ephemeral(
            [(USER_NAME, name()), (SAMPLE, sample()), (ROOTS, Ask::Roots)]
                .into_iter()
                .filter(|(_, ask)| ask.declared_by(caps))
                .collect(),
        ),
        _ => return None,
    })
}

/// Runs one of these tools; `None` if `x.name` is not one of them.
pub(super) async fn call(x: &Exchange<'_>) -> Option<Result<CallToolResponse, McpError>> {
    let caps = x.cx.client_capabilities().unwrap_or_default();
    let dialogue = dialogue(x.name, &caps)?;
    Some(run(&dialogue, x).await)
}

async fn run(dialogue: &Dialogue, x: &Exchange<'_>) -> Result<CallToolResponse, McpError> {
    if dialogue.rounds.iter().all(Vec::is_empty) {
        return decode(text_result("Nothing to ask: the request declared no input capability."))
            .map(CallToolResponse::Complete);
    }
    input::require_capabilities(x.cx, dialogue)?;
    match input::run(dialogue, x).await? {
        Reply::InputRequired(irr) => Ok(CallToolResponse::InputRequired(irr)),
        Reply::Done(answers) => decode(text_result(summary(&answers))).map(CallToolResponse::Complete),
    }
}

/// What the tool saw, in key order, so a test can tell every answer arrived.
pub(crate) fn summary(answers: &BTreeMap<String, Value>) -> String {
    let parts: Vec<String> = answers
        .iter()
        .map(|(key, answer)| match key.as_str() {
            USER_NAME => format!("name={}", elicited(answers, key, "name")),
            COLOR => format!("color={}", elicited(answers, key, "color")),
            SAMPLE => format!("sampled={}", sampled(answer)),
            ROOTS => format!("roots={}", answer["roots"].as_array().map_or(0, Vec::len)),
            other => format!("{other}={answer}"),
        })
        .collect();
    format!("Input received: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capability_tool_asks_only_what_was_declared() {
        let sampling_only: ClientCapabilities = decode(json!({"sampling": {}})).unwrap();
        let d = dialogue(CAPABILITIES, &sampling_only).unwrap();
        let keys: Vec<&str> = d.rounds.iter().flatten().map(|(k, _)| *k).collect();
        assert_eq!(keys, [SAMPLE]);
        let nothing = ClientCapabilities::default();
        assert!(dialogue(CAPABILITIES, &nothing).unwrap().rounds.iter().all(Vec::is_empty));
    }

    #[test]
    fn the_summary_names_every_answer() {
        let answers: BTreeMap<String, Value> = [
            (USER_NAME.to_owned(), json!({"action": "accept", "content": {"name": "Alice"}})),
            (SAMPLE.to_owned(), json!({"role": "assistant", "content": {"type": "text", "text": "hi"}})),
            (ROOTS.to_owned(), json!({"roots": [{"uri": "file:///a"}]})),
        ]
        .into_iter()
        .collect();
        assert_eq!(summary(&answers), "Input received: roots=1, sampled=hi, name=Alice");
    }
}
