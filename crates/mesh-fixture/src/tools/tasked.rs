//! The tools of the tasks scenarios (SEP-2663, the suite's `tasks-*`), under the names the suite
//! calls: `greet` (never a task), and the task-supporting `slow_compute`, `failing_job`,
//! `protocol_error_job`, `confirm_delete`, `multi_input` and `test_tool_with_task`.
//!
//! The server decides, not the client: a task-supporting tool runs as a task exactly when the
//! request is 2026-07-28 and declares `io.modelcontextprotocol/tasks` in its own
//! `_meta` capabilities (a legacy `task` param changes nothing). Otherwise it runs in the call, as
//! any tool does — input-required results at 2026-07-28, server→client requests in a 2025-11-25
//! session — except that a tool *requiring* a task is `-32021` for a 2026-07-28 request that did
//! not declare the extension (with `requiredCapabilities.extensions` naming it). Sessions never
//! get tasks: the extension is not offered to them, so there the requirement is moot.
//!
//! Each tool is a [`Plan`]: its questions, where they are asked, and its [`Work`]. Questions are
//! asked inside the task (`input_required` on `tasks/get`, answered by `tasks/update`), except for
//! `test_tool_with_task`, which gathers its answer by input-required results first and only then
//! becomes a task (the suite's MRTR→task composition).

use super::input_required::USER_NAME;
use super::{error_result, required_str, text_result, tool};
use crate::era::Wire;
use crate::input::{self, elicited, wire_of, Ask, Dialogue, Exchange, Reply};
use crate::tasks::TaskStore;
use crate::wire::decode;
use rmcp::model::{CallToolResponse, ClientCapabilities, CreateTaskResult, JsonObject, TASKS_EXTENSION_ID};
use rmcp::ErrorData as McpError;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) const GREET: &str = "greet";
pub(crate) const SLOW_COMPUTE: &str = "slow_compute";
pub(crate) const FAILING_JOB: &str = "failing_job";
pub(crate) const PROTOCOL_ERROR_JOB: &str = "protocol_error_job";
pub(crate) const CONFIRM_DELETE: &str = "confirm_delete";
pub(crate) const MULTI_INPUT: &str = "multi_input";
pub(crate) const TOOL_WITH_TASK: &str = "test_tool_with_task";

/// The longest `slow_compute` runs; well inside a task's TTL, so its result is always readable.
const MAX_SECONDS: f64 = 300.0;
/// How long `failing_job` works before it reports its error (the suite asks for ~1 s).
const FAILING_AFTER: Duration = Duration::from_secs(1);
/// How long the other jobs take: long enough that a client sees them `working` first.
const BRIEFLY: Duration = Duration::from_millis(200);

/// The key of the yes/no question (`confirm_delete`, `multi_input`).
const CONFIRM: &str = "confirm";

pub(super) fn catalogue() -> Vec<Value> {
    let none = || json!({"type": "object", "properties": {}});
    let string = |description: &str| json!({"type": "string", "description": description});
    vec![
        tool(
            GREET,
            "Returns 'Hello, {name}!'. Never a task.",
            json!({"type": "object", "properties": {"name": string("Who to greet")}, "required": ["name"]}),
        ),
        tool(
            SLOW_COMPUTE,
            "Works for `seconds` seconds (at most 300; progress 0 on the caller's token as it starts), then reports its `label` (and links to `link`). Task support: optional.",
            json!({
                "type": "object",
                "properties": {
                    "seconds": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS, "description": "How long to work"},
                    "label": string("Echoed in the result"),
                    "link": string("A resource URI the result links to")
                },
                "required": ["seconds"]
            }),
        ),
        tool(FAILING_JOB, "Reports a tool execution error (isError) after about a second. Task support: required.", none()),
        tool(
            PROTOCOL_ERROR_JOB,
            "Ends in an internal (protocol-level) error: a failed task, or -32603. Task support: optional.",
            none(),
        ),
        tool(
            CONFIRM_DELETE,
            "Asks the user to confirm deleting `filename` (elicitation, key confirm); deletes nothing. Task support: optional.",
            json!({"type": "object", "properties": {"filename": string("The file to pretend to delete")}, "required": ["filename"]}),
        ),
        tool(
            MULTI_INPUT,
            "Asks two questions at once (elicitations user_name and confirm). Task support: optional.",
            none(),
        ),
        tool(
            TOOL_WITH_TASK,
            "Asks for the user's name by input-required results, then becomes a task greeting them. Task support: required.",
            none(),
        ),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Support {
    Optional,
    Required,
}

/// One call of a task-supporting tool, decided from its name and arguments.
struct Plan {
    support: Support,
    questions: Dialogue,
    /// Ask `questions` by input-required results before the task exists, not inside it.
    ask_first: bool,
    work: Work,
}

/// What a tool does once its questions are answered.
#[derive(Debug, Clone)]
enum Work {
    Compute { seconds: f64, label: String, link: Option<String> },
    FailAsTool,
    FailAsProtocol,
    Delete { filename: String },
    Gather,
    Welcome,
}

/// `None` if `x.name` is not one of these tools.
pub(super) async fn call(tasks: &TaskStore, x: &Exchange<'_>) -> Option<Result<CallToolResponse, McpError>> {
    if x.name == GREET {
        let result =
            required_str(x.arguments, "name").map_or_else(|e| e, |name| text_result(format!("Hello, {name}!")));
        return Some(decode(result).map(CallToolResponse::Complete));
    }
    let plan = match plan(x.name, x.arguments)? {
        Ok(plan) => plan,
        Err(tool_error) => return Some(decode(tool_error).map(CallToolResponse::Complete)),
    };
    Some(run(tasks, x, plan).await)
}

fn plan(name: &str, args: &JsonObject) -> Option<Result<Plan, Value>> {
    let none = || Dialogue::ephemeral(Vec::new());
    let plan = |support, questions, work| Ok(Plan { support, questions, ask_first: false, work });
    Some(match name {
        SLOW_COMPUTE => match args.get("seconds").map(Value::as_f64) {
            Some(Some(seconds)) if (0.0..=MAX_SECONDS).contains(&seconds) => {
                let label = args.get("label").and_then(Value::as_str).unwrap_or("unlabelled").to_owned();
                let link = args.get("link").and_then(Value::as_str).map(str::to_owned);
                plan(Support::Optional, none(), Work::Compute { seconds, label, link })
            }
            _ => Err(error_result(format!("'seconds' must be a number from 0 to {MAX_SECONDS}"))),
        },
        FAILING_JOB => plan(Support::Required, none(), Work::FailAsTool),
        PROTOCOL_ERROR_JOB => plan(Support::Optional, none(), Work::FailAsProtocol),
        CONFIRM_DELETE => required_str(args, "filename").and_then(|filename| {
            let ask = confirmation(&format!("Delete {filename}?"));
            plan(
                Support::Optional,
                Dialogue::ephemeral(vec![(CONFIRM, ask)]),
                Work::Delete { filename: filename.into() },
            )
        }),
        MULTI_INPUT => {
            let name = Ask::text_field("What is your name?", "name");
            let both = Dialogue::ephemeral(vec![(USER_NAME, name), (CONFIRM, confirmation("Go ahead?"))]);
            plan(Support::Optional, both, Work::Gather)
        }
        TOOL_WITH_TASK => {
            // Stateful, so the requestState of the first round is what the final round must not
            // leak into the CreateTaskResult.
            let name = Dialogue::stateful(vec![vec![(USER_NAME, Ask::text_field("What is your name?", "name"))]]);
            Ok(Plan { support: Support::Required, questions: name, ask_first: true, work: Work::Welcome })
        }
        _ => return None,
    })
}

/// A form with one required boolean, `confirm`.
fn confirmation(message: &str) -> Ask {
    let schema = json!({
        "type": "object",
        "properties": {CONFIRM: {"type": "boolean", "description": "Yes to go ahead"}},
        "required": [CONFIRM]
    });
    Ask::Elicit { message: message.to_owned(), schema }
}

async fn run(tasks: &TaskStore, x: &Exchange<'_>, plan: Plan) -> Result<CallToolResponse, McpError> {
    let as_task = match (wire_of(x.cx), declares_tasks(x), plan.support) {
        (Wire::Legacy, _, _) => false,
        (Wire::Modern, true, _) => true,
        (Wire::Modern, false, Support::Optional) => false,
        (Wire::Modern, false, Support::Required) => return Err(tasks_required()?),
    };
    let Plan { questions, ask_first, work, .. } = plan;
    let asks = questions.rounds.iter().any(|round| !round.is_empty());
    if asks {
        input::require_capabilities(x.cx, &questions)?;
    }
    let answers = if asks && (ask_first || !as_task) {
        match input::run(&questions, x).await? {
            Reply::InputRequired(irr) => return Ok(CallToolResponse::InputRequired(irr)),
            Reply::Done(answers) => answers,
        }
    } else {
        BTreeMap::new()
    };
    if !as_task {
        if let (Work::Compute { .. }, Some(token)) = (&work, x.cx.meta.get_progress_token()) {
            // Tells a client the work has begun: a test can then act while it is in flight.
            let started = rmcp::model::ProgressNotificationParam::new(token, 0.0);
            if let Err(e) = x.cx.peer.notify_progress(started).await {
                tracing::debug!(error = %e, "could not send notifications/progress");
            }
        }
        return decode(work.run(answers).await?).map(CallToolResponse::Complete);
    }
    let in_task = if ask_first { Vec::new() } else { questions.rounds };
    let task = tasks.create(move |asker| async move {
        let mut answers = answers;
        for round in in_task.iter().filter(|round| !round.is_empty()) {
            answers.extend(asker.ask(round).await?);
        }
        work.run(answers).await
    })?;
    Ok(CallToolResponse::Task(CreateTaskResult::new(task)))
}

/// Only the request's own `_meta` counts: the 2026-07-28 wire has no session to remember it.
fn declares_tasks(x: &Exchange<'_>) -> bool {
    x.cx.meta.client_capabilities().is_some_and(|caps| caps.supports_tasks())
}

/// `-32021` naming the tasks extension, shaped as `requiredCapabilities` mirrors client capabilities.
fn tasks_required() -> Result<McpError, McpError> {
    let required: ClientCapabilities = decode(json!({"extensions": {TASKS_EXTENSION_ID: {}}}))?;
    Ok(McpError::missing_required_client_capability(required))
}

impl Work {
    /// The tool result (`Ok`), or the protocol error the call ends in (`Err`).
    async fn run(self, answers: BTreeMap<String, Value>) -> Result<Value, McpError> {
        match self {
            Work::Compute { seconds, label, link } => {
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                let mut result = text_result(format!("Computed '{label}' in {seconds} s"));
                if let (Some(uri), Some(content)) = (link, result["content"].as_array_mut()) {
                    content.push(json!({"type": "resource_link", "uri": uri, "name": "linked"}));
                }
                Ok(result)
            }
            Work::FailAsTool => {
                tokio::time::sleep(FAILING_AFTER).await;
                Ok(error_result("failing_job ran and failed: a tool execution error, not a protocol error"))
            }
            Work::FailAsProtocol => {
                tokio::time::sleep(BRIEFLY).await;
                Err(McpError::internal_error("protocol_error_job crashed (a simulated internal failure)", None))
            }
            Work::Delete { filename } => {
                let verdict = if confirmed(&answers) { "Deleted" } else { "Kept (not confirmed)" };
                Ok(text_result(format!("{verdict}: {filename}")))
            }
            Work::Gather => {
                let name = elicited(&answers, USER_NAME, "name");
                Ok(text_result(format!("Input received: name={name}, confirmed={}", confirmed(&answers))))
            }
            Work::Welcome => {
                tokio::time::sleep(BRIEFLY).await;
                Ok(text_result(format!(
                    "Hello, {}! (name gathered before the task)",
                    elicited(&answers, USER_NAME, "name")
                )))
            }
        }
    }
}

/// Whether the `confirm` answer accepted with `confirm: true`.
fn confirmed(answers: &BTreeMap<String, Value>) -> bool {
    answers.get(CONFIRM).is_some_and(|a| a["action"] == "accept" && a["content"][CONFIRM] == true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn plans_say_where_questions_are_asked_and_whether_a_task_is_required() {
        let p = |name, a: Value| plan(name, &args(a)).unwrap();
        let compute = p(SLOW_COMPUTE, json!({"seconds": 0, "label": "x"})).ok().unwrap();
        assert_eq!(compute.support, Support::Optional);
        assert!(matches!(compute.work, Work::Compute { seconds, .. } if seconds == 0.0));
        assert!(p(SLOW_COMPUTE, json!({"seconds": -1})).is_err());
        assert!(p(SLOW_COMPUTE, json!({"seconds": "soon"})).is_err());
        assert_eq!(p(FAILING_JOB, json!({})).ok().unwrap().support, Support::Required);
        let composed = p(TOOL_WITH_TASK, json!({})).ok().unwrap();
        assert!(composed.ask_first && composed.questions.stateful);
        let multi = p(MULTI_INPUT, json!({})).ok().unwrap();
        let keys: Vec<&str> = multi.questions.rounds[0].iter().map(|(k, _)| *k).collect();
        assert_eq!((multi.ask_first, keys), (false, vec![USER_NAME, CONFIRM]));
        assert!(p(CONFIRM_DELETE, json!({})).is_err());
        assert!(plan(GREET, &JsonObject::new()).is_none() && plan("other", &JsonObject::new()).is_none());
    }

    #[test]
    fn the_missing_capability_error_names_the_extension() {
        let error = tasks_required().unwrap();
        assert_eq!(error.code.0, -32021);
        assert!(error.data.unwrap()["requiredCapabilities"]["extensions"].get(TASKS_EXTENSION_ID).is_some());
    }

    #[tokio::test]
    async fn work_reports_answers_and_errors() {
        let accept = json!({"action": "accept", "content": {"confirm": true, "name": "Alice"}});
        let answers: BTreeMap<String, Value> =
            [(CONFIRM.to_owned(), accept.clone()), (USER_NAME.to_owned(), accept)].into_iter().collect();
        let text = |v: Value| v["content"][0]["text"].as_str().unwrap().to_owned();
        let deleted = Work::Delete { filename: "f.txt".into() }.run(answers.clone()).await.unwrap();
        assert_eq!(text(deleted), "Deleted: f.txt");
        let gathered = Work::Gather.run(answers.clone()).await.unwrap();
        assert_eq!(text(gathered), "Input received: name=Alice, confirmed=true");
        assert!(text(Work::Welcome.run(answers).await.unwrap()).contains("Alice"));
        assert_eq!(Work::FailAsProtocol.run(BTreeMap::new()).await.unwrap_err().code.0, -32603);
    }
}
