//! The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) at 2026-07-28: the store behind
//! `tasks/get`, `tasks/update` and `tasks/cancel`.
//!
//! A task-supporting tool called by a request that declares the extension answers at once with a
//! flat `CreateTaskResult` (`resultType: "task"`) and goes on working in the background
//! ([`TaskStore::create`]); the client polls `tasks/get`, which inlines the tool's result (or, for
//! a protocol-level failure, the JSON-RPC error) once the task is terminal. A task that needs the
//! client's input parks as `input_required` with its questions in `inputRequests` and resumes when
//! `tasks/update` has answered every one of them ([`Questions::ask`]). rmcp routes the three
//! methods and gates them on the extension (`-32021` for a request that did not declare it); what
//! a task *is* lives here.
//!
//! Bounds: at most [`CAPACITY`] tasks, each kept for [`TTL`] from its creation (then dropped, its
//! work stopped). A new task first evicts expired ones, then the oldest terminal one; when every
//! slot holds a running task, the call is refused rather than a live task dropped early.
//!
//! Isolation: the 2026-07-28 wire has no sessions and the fixture no authentication, so there is no
//! client identity to bind a task to. A task id is a bearer capability instead: 128 random bits,
//! never derived from anything a client sent. A stdio process serves one client, so its store is
//! that client's alone; over HTTP every request of the process shares one store.

use crate::input::{self, Ask};
use crate::wire::decode;
use rand::RngCore;
use rmcp::model::{
    CallToolResult, DetailedTask, InputResponses, JsonObject, ResultType, Task, TaskPayload, TaskStatus,
};
use rmcp::ErrorData as McpError;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

/// Most tasks kept at once.
pub(crate) const CAPACITY: usize = 1_000;
/// How long a task stays readable after its creation (`ttlMs`). Longer than any fixture tool runs.
pub(crate) const TTL: Duration = Duration::from_secs(600);
/// The polling pace suggested to clients (`pollIntervalMs`).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The tasks of one process (over HTTP) or one stdio peer. Cheap to clone; clones share the tasks.
#[derive(Clone)]
pub(crate) struct TaskStore {
    tasks: Arc<Mutex<HashMap<String, Entry>>>,
    capacity: usize,
}

impl Default for TaskStore {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl std::fmt::Debug for TaskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TaskStore({} of {})", lock(&self.tasks).len(), self.capacity)
    }
}

struct Entry {
    /// The base fields; `status` and `lastUpdatedAt` are kept current.
    task: Task,
    born: Instant,
    /// Set once, when the task becomes terminal; never changed after.
    outcome: Option<TaskPayload>,
    /// The questions the work is waiting on, by key.
    pending: BTreeMap<String, Pending>,
    /// Stops the work (cancel, expiry, shutdown).
    stop: CancellationToken,
}

struct Pending {
    ask: Ask,
    answer: oneshot::Sender<Value>,
}

impl Entry {
    fn touch(&mut self) {
        self.task.last_updated_at = timestamp(SystemTime::now());
        self.task.status = match &self.outcome {
            Some(outcome) => outcome.status(),
            None if self.pending.is_empty() => TaskStatus::Working,
            None => TaskStatus::InputRequired,
        };
    }

    fn detailed(&self) -> Result<DetailedTask, McpError> {
        let payload = match &self.outcome {
            Some(outcome) => outcome.clone(),
            None if self.pending.is_empty() => TaskPayload::Working,
            None => {
                let open = self.pending.iter().map(|(key, p)| (key.as_str(), &p.ask));
                TaskPayload::InputRequired { input_requests: input::requests(open)? }
            }
        };
        Ok(DetailedTask::new(self.task.clone(), payload))
    }
}

impl TaskStore {
    /// A store holding at most `capacity` tasks.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self { tasks: Arc::default(), capacity }
    }

    /// Creates a task running `work` and returns its seed state. The task is readable before this
    /// returns (`tasks/get` right after the `CreateTaskResult` must find it). `work` gets the
    /// task's [`Questions`]; its `Ok` is the tool result, its `Err` the protocol error that fails
    /// the task.
    pub(crate) fn create<W, F>(&self, work: W) -> Result<Task, McpError>
    where
        W: FnOnce(Questions) -> F,
        F: Future<Output = Result<Value, McpError>> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let task = {
            let mut tasks = lock(&self.tasks);
            sweep(&mut tasks, Instant::now());
            make_room(&mut tasks, self.capacity)?;
            let now = timestamp(SystemTime::now());
            let task = Task::new(mint_id(), TaskStatus::Working, now.clone(), now)
                .with_ttl_ms(millis(TTL))
                .with_poll_interval_ms(millis(POLL_INTERVAL));
            let entry = Entry {
                task: task.clone(),
                born: Instant::now(),
                outcome: None,
                pending: BTreeMap::new(),
                stop: stop.clone(),
            };
            tasks.insert(task.task_id.clone(), entry);
            task
        };
        let id = task.task_id.clone();
        // The work runs in a task of its own so that a panic in it fails the task instead of
        // unwinding through the store.
        let mut job = tokio::spawn(work(Questions { id: id.clone(), store: self.clone() }));
        let store = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => job.abort(),
                joined = &mut job => store.settle(&id, joined),
            }
        });
        Ok(task)
    }

    /// `tasks/get`: the task with its result, error or open questions inlined.
    pub(crate) fn get(&self, id: &str) -> Result<DetailedTask, McpError> {
        let mut tasks = lock(&self.tasks);
        sweep(&mut tasks, Instant::now());
        tasks.get(id).ok_or_else(|| unknown(id))?.detailed()
    }

    /// `tasks/update`: hands each answer to the question waiting under its key. Keys nothing waits
    /// for (unknown, answered already, or the task is terminal) are ignored, as the spec says; a
    /// malformed answer to an open question is `-32602` and nothing is applied.
    pub(crate) fn update(&self, id: &str, responses: &InputResponses) -> Result<(), McpError> {
        let mut tasks = lock(&self.tasks);
        sweep(&mut tasks, Instant::now());
        let entry = tasks.get_mut(id).ok_or_else(|| unknown(id))?;
        for (key, answer) in responses {
            if let Some(pending) = entry.pending.get(key) {
                pending.ask.check(key, answer)?;
            }
        }
        let mut answered = false;
        for (key, answer) in responses {
            if let Some(pending) = entry.pending.remove(key) {
                // A dropped receiver means the work is gone; the answer has nowhere to go.
                let _ = pending.answer.send(answer.clone());
                answered = true;
            }
        }
        if answered {
            entry.touch();
        }
        Ok(())
    }

    /// `tasks/cancel`: a running task becomes `cancelled` at once and its work is stopped, so the
    /// status a client reads next is deterministic. A terminal task keeps its status (the ack is
    /// the same: cancelling is idempotent).
    pub(crate) fn cancel(&self, id: &str) -> Result<(), McpError> {
        let mut tasks = lock(&self.tasks);
        sweep(&mut tasks, Instant::now());
        let entry = tasks.get_mut(id).ok_or_else(|| unknown(id))?;
        if entry.outcome.is_none() {
            entry.outcome = Some(TaskPayload::Cancelled);
            entry.pending.clear();
            entry.stop.cancel();
            entry.touch();
        }
        Ok(())
    }

    /// Stops every task's work and forgets every task (process shutdown).
    pub(crate) fn shut_down(&self) {
        for (_, entry) in lock(&self.tasks).drain() {
            entry.stop.cancel();
        }
    }

    /// Records how the work ended, unless the task was cancelled (or dropped) meanwhile.
    fn settle(&self, id: &str, joined: Result<Result<Value, McpError>, JoinError>) {
        let outcome = match joined {
            Ok(Ok(result)) => match completed(result) {
                Ok(result) => TaskPayload::Completed { result },
                Err(error) => TaskPayload::Failed { error: error_object(&error) },
            },
            Ok(Err(error)) => TaskPayload::Failed { error: error_object(&error) },
            Err(join) => {
                tracing::warn!(task = id, error = %join, "a task's work ended abnormally");
                let error = McpError::internal_error("the task's work ended abnormally", None);
                TaskPayload::Failed { error: error_object(&error) }
            }
        };
        let mut tasks = lock(&self.tasks);
        if let Some(entry) = tasks.get_mut(id).filter(|e| e.outcome.is_none()) {
            entry.outcome = Some(outcome);
            entry.pending.clear();
            entry.touch();
        }
    }
}

/// What a task's work uses to ask the client for input.
pub(crate) struct Questions {
    id: String,
    store: TaskStore,
}

impl Questions {
    /// Parks the task as `input_required` with every question of `round` open at once, and waits
    /// until `tasks/update` has answered them all (in one update or several).
    pub(crate) async fn ask(&self, round: &[(&'static str, Ask)]) -> Result<BTreeMap<String, Value>, McpError> {
        let waiting: Vec<(&str, oneshot::Receiver<Value>)> = {
            let mut tasks = lock(&self.store.tasks);
            let entry = tasks.get_mut(&self.id).ok_or_else(|| McpError::internal_error("the task is gone", None))?;
            let waiting = round
                .iter()
                .map(|(key, ask)| {
                    let (answer, received) = oneshot::channel();
                    entry.pending.insert((*key).to_owned(), Pending { ask: ask.clone(), answer });
                    (*key, received)
                })
                .collect();
            entry.touch();
            waiting
        };
        let mut answers = BTreeMap::new();
        for (key, received) in waiting {
            let answer = received.await.map_err(|_| McpError::internal_error("the task stopped waiting", None))?;
            answers.insert(key.to_owned(), answer);
        }
        Ok(answers)
    }
}

/// The inlined `result`: the tool result exactly as the synchronous call answers it at
/// 2026-07-28 (`resultType: "complete"` included; no related-task `_meta`).
fn completed(result: Value) -> Result<JsonObject, McpError> {
    let mut result: CallToolResult = decode(result)?;
    result.result_type = Some(ResultType::COMPLETE);
    match serde_json::to_value(result) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(McpError::internal_error("a tool result did not encode as an object", None)),
    }
}

/// The inlined `error`: the JSON-RPC error object (`code`, `message`, `data` if any).
fn error_object(error: &McpError) -> JsonObject {
    let mut object = JsonObject::new();
    object.insert("code".into(), json!(error.code.0));
    object.insert("message".into(), json!(error.message));
    if let Some(data) = &error.data {
        object.insert("data".into(), data.clone());
    }
    object
}

/// Drops the tasks whose TTL has run out, stopping their work.
fn sweep(tasks: &mut HashMap<String, Entry>, now: Instant) {
    tasks.retain(|_, entry| {
        let alive = now.duration_since(entry.born) < TTL;
        if !alive {
            entry.stop.cancel();
        }
        alive
    });
}

/// Frees one slot if the store is full by evicting the oldest terminal task; refuses when every
/// task is still running (dropping one would break its TTL promise while a client polls it).
fn make_room(tasks: &mut HashMap<String, Entry>, capacity: usize) -> Result<(), McpError> {
    while tasks.len() >= capacity {
        let oldest_terminal =
            tasks.iter().filter(|(_, e)| e.outcome.is_some()).min_by_key(|(_, e)| e.born).map(|(id, _)| id.clone());
        match oldest_terminal {
            Some(id) => {
                tasks.remove(&id);
            }
            None => {
                return Err(McpError::internal_error(
                    format!("too many running tasks (at most {capacity}); try again later"),
                    None,
                ))
            }
        }
    }
    Ok(())
}

fn unknown(id: &str) -> McpError {
    McpError::invalid_params(format!("Unknown task: {id}"), Some(json!({"taskId": id})))
}

/// 128 random bits, hex: unguessable, and a valid `Mcp-Name` header value as it stands.
fn mint_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// ISO 8601 in UTC with milliseconds, e.g. `2026-07-28T09:30:00.000Z`.
fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_date(secs / 86_400);
    let (h, m, s) = (secs % 86_400 / 3_600, secs % 3_600 / 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z", since.subsec_millis())
}

/// The proleptic Gregorian date `days` after 1970-01-01, counted in 400-year cycles that start on
/// 1 March (so the leap day is the last day of a cycle year).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let cycle = shifted / 146_097;
    let day_of_cycle = shifted % 146_097;
    let year_of_cycle = (day_of_cycle - day_of_cycle / 1_460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year = day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_cycle + cycle * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A poisoned lock only means a handler panicked mid-update; the map is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::text_result;

    async fn settled(store: &TaskStore, id: &str) -> DetailedTask {
        for _ in 0..200 {
            let task = store.get(id).unwrap();
            if task.status().is_terminal() {
                return task;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("task {id} never settled");
    }

    async fn until_status(store: &TaskStore, id: &str, status: TaskStatus) -> Value {
        for _ in 0..200 {
            let task = store.get(id).unwrap();
            if task.status() == status {
                return serde_json::to_value(task).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("task {id} never reached {status:?}");
    }

    #[test]
    fn timestamps_are_iso_8601_utc() {
        let at = |secs: u64, ms: u64| timestamp(UNIX_EPOCH + Duration::from_millis(secs * 1_000 + ms));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_704_067_199, 999), "2023-12-31T23:59:59.999Z");
        assert_eq!(at(1_785_231_000, 0), "2026-07-28T09:30:00.000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn ids_are_long_random_hex() {
        let (a, b) = (mint_id(), mint_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[tokio::test]
    async fn a_task_is_readable_at_once_and_inlines_its_result_when_done() {
        let store = TaskStore::default();
        let task = store.create(|_| async { Ok(text_result("done")) }).unwrap();
        assert_eq!(task.status, TaskStatus::Working);
        assert_eq!((task.ttl_ms, task.poll_interval_ms), (Some(600_000), Some(200)));
        let seed = serde_json::to_value(rmcp::model::CreateTaskResult::new(task.clone())).unwrap();
        assert_eq!(seed["resultType"], "task");
        for absent in ["task", "result", "error", "inputRequests", "requestState", "ttl", "pollInterval"] {
            assert!(seed.get(absent).is_none(), "{absent} in {seed}");
        }
        let done = serde_json::to_value(settled(&store, &task.task_id).await).unwrap();
        assert_eq!(done["status"], "completed");
        assert_eq!(done["result"]["content"][0]["text"], "done");
        assert_eq!(done["result"]["resultType"], "complete");
        assert!(done.get("error").is_none());
    }

    #[tokio::test]
    async fn a_protocol_error_or_a_panic_fails_the_task_with_an_inlined_error() {
        let store = TaskStore::default();
        let failing = store.create(|_| async { Err(McpError::internal_error("boom", None)) }).unwrap();
        let failed = serde_json::to_value(settled(&store, &failing.task_id).await).unwrap();
        assert_eq!((failed["status"].as_str(), failed["error"]["code"].as_i64()), (Some("failed"), Some(-32603)));
        assert!(failed.get("result").is_none());
        let panicking = store
            .create(|_| async {
                if true {
                    panic!("deliberate panic in a unit test");
                }
                Ok(Value::Null)
            })
            .unwrap();
        assert_eq!(settled(&store, &panicking.task_id).await.status(), TaskStatus::Failed);
    }

    #[tokio::test]
    async fn cancel_stops_the_work_and_is_idempotent() {
        let store = TaskStore::default();
        let (tx, rx) = oneshot::channel::<()>();
        let task = store
            .create(|_| async move {
                let _dropped_when_stopped = tx;
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(text_result("too late"))
            })
            .unwrap();
        store.cancel(&task.task_id).unwrap();
        assert!(rx.await.is_err(), "the work was stopped");
        assert_eq!(store.get(&task.task_id).unwrap().status(), TaskStatus::Cancelled);
        store.cancel(&task.task_id).unwrap();
        assert_eq!(store.get(&task.task_id).unwrap().status(), TaskStatus::Cancelled);

        let quick = store.create(|_| async { Ok(text_result("done")) }).unwrap();
        settled(&store, &quick.task_id).await;
        store.cancel(&quick.task_id).unwrap();
        assert_eq!(store.get(&quick.task_id).unwrap().status(), TaskStatus::Completed);
    }

    #[tokio::test]
    async fn unknown_ids_are_invalid_params() {
        let store = TaskStore::default();
        assert_eq!(store.get("nope").unwrap_err().code.0, -32602);
        assert_eq!(store.update("nope", &InputResponses::new()).unwrap_err().code.0, -32602);
        assert_eq!(store.cancel("nope").unwrap_err().code.0, -32602);
    }

    #[tokio::test]
    async fn questions_stay_open_until_every_one_is_answered() {
        let store = TaskStore::default();
        let round = vec![("a", Ask::text_field("A?", "name")), ("b", Ask::text_field("B?", "name"))];
        let task = store
            .create(move |questions| async move {
                let answers = questions.ask(&round).await?;
                Ok(text_result(format!("{}", answers.len())))
            })
            .unwrap();
        let id = task.task_id;
        let parked = until_status(&store, &id, TaskStatus::InputRequired).await;
        assert_eq!(parked["inputRequests"]["a"]["method"], "elicitation/create");
        assert!(parked.get("requestState").is_none());

        let answer = json!({"action": "accept", "content": {"name": "x"}});
        let responses = |pairs: &[(&str, Value)]| -> InputResponses {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
        };
        let malformed = store.update(&id, &responses(&[("a", json!(7))])).unwrap_err();
        assert_eq!(malformed.code.0, -32602);
        store.update(&id, &responses(&[("a", answer.clone()), ("unknown", json!(1))])).unwrap();
        let partial = serde_json::to_value(store.get(&id).unwrap()).unwrap();
        assert_eq!(partial["status"], "input_required");
        assert_eq!(partial["inputRequests"].as_object().unwrap().keys().collect::<Vec<_>>(), ["b"]);
        store.update(&id, &responses(&[("b", answer)])).unwrap();
        let done = serde_json::to_value(settled(&store, &id).await).unwrap();
        assert_eq!(done["result"]["content"][0]["text"], "2");
    }

    #[tokio::test]
    async fn a_full_store_evicts_the_oldest_terminal_task_and_refuses_when_all_run() {
        let store = TaskStore::with_capacity(2);
        let first = store.create(|_| async { Ok(text_result("1")) }).unwrap();
        settled(&store, &first.task_id).await;
        let running = store.create(|_| std::future::pending()).unwrap();
        let third = store.create(|_| std::future::pending()).unwrap();
        assert_eq!(store.get(&first.task_id).unwrap_err().code.0, -32602, "the terminal task made room");
        assert!(store.get(&running.task_id).is_ok() && store.get(&third.task_id).is_ok());
        assert_eq!(store.create(|_| std::future::pending()).unwrap_err().code.0, -32603);
        store.shut_down();
        assert_eq!(store.get(&running.task_id).unwrap_err().code.0, -32602);
    }
}
