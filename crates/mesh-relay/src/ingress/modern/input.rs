//! A stateless request in flight, and input-required results (MRTR) bridged from an upstream
//! that asks its client directly.
//!
//! An upstream of the session-based revision asks for sampling, elicitation or roots by sending a
//! request to its client while a call is pending. A stateless client cannot receive requests, so
//! the mesh ends the client's exchange with an input-required result carrying the upstream's
//! request, and *parks* the call: the upstream request stays pending, its stream keeps filling.
//! The client retries with its answers and the `requestState` the mesh gave it; the mesh delivers
//! the answers to the waiting upstream and goes on reading the same call.
//!
//! `requestState` is a random handle (256 bits) into the relay's memory, not a sealed blob: the
//! call it names lives in this process anyway (its upstream request is pending here), so nothing
//! is gained by carrying it, and a handle cannot be tampered with into another valid one. A
//! retry must come from the same API key, to the same endpoint, with the same method and the same
//! params (apart from the answers); anything else is refused without touching the parked call.

use super::{finished, json, refuse, Ask};
use crate::ingress::Relay;
use crate::session::streams::Event;
use crate::session::{Session, Use};
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use mesh_core::audit::Outcome;
use mesh_core::Principal;
use mesh_protocol::{codes, modern, sse, Kind, Message};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a parked call waits for its client's retry (as long as the Python SDK keeps its own
/// request state valid); the upstream's own timeout usually ends it sooner.
const PARK_FOR: Duration = Duration::from_secs(600);
/// Calls waiting for input at once, across all keys: a client that never retries costs an entry
/// until it expires, so their number is bounded like every other per-client table.
const MAX_PARKED: usize = 10_000;
/// Calls one API key may have waiting for input: no key can take the table from the others.
/// Counted per organisation and key: every anonymous caller has the same key id.
const MAX_PARKED_PER_KEY: usize = 256;
/// Calls one organisation may have waiting for input (organisations are self-service).
const MAX_PARKED_PER_ORG: usize = 2_000;
/// The request bytes parked calls may keep alive (each keeps its request, up to the body limit,
/// to match its retry and to name its tool), across all keys and per organisation.
const MAX_PARKED_BYTES: usize = 512 << 20;
const MAX_PARKED_BYTES_PER_ORG: usize = 128 << 20;
/// Questions one input-required result may carry.
const MAX_QUESTIONS: usize = 16;
/// What a parked call keeps of what its upstream says meanwhile (questions and the reply; the
/// notifications of a call nobody is listening to are dropped).
const MAX_KEPT: usize = 64;

/// A request on its pooled session, as far as the stateless ingress follows it. What the request
/// itself was stays in the box it came to the driver in: the follower's future holds this, and
/// moves it, on every call.
pub(in crate::ingress) struct Pending {
    session: Arc<Session>,
    stream: u64,
    rx: mpsc::Receiver<Event>,
    /// Events read ahead while gathering the questions of one round, read again first.
    stash: std::collections::VecDeque<Event>,
    /// The call has its reply (or its session ended): dropping it now cancels nothing.
    done: bool,
    log_level: Option<u8>,
    /// The request: its id is that of the client's latest attempt (the reply goes out under
    /// it); its principal is who asked (a retry must come from the same key with the same
    /// rights); its original is what identifies it across retries, computed only if it ever
    /// waits for input (most calls never do).
    a: Box<super::Answering>,
}

impl Pending {
    /// Follows `stream` of `session`, which carries the request `a` describes.
    pub(super) fn new(
        session: Arc<Session>,
        (stream, rx): (u64, mpsc::Receiver<Event>),
        a: Box<super::Answering>,
    ) -> Pending {
        let log_level = a.ask.log_level.as_deref().and_then(level);
        Pending { session, stream, rx, stash: Default::default(), done: false, log_level, a }
    }

    fn id(&self) -> &str {
        &self.a.ask.id
    }

    fn method(&self) -> &str {
        &self.a.ask.method
    }
}

impl Drop for Pending {
    /// A call given up before its reply — the client left, a parked call expired or was withdrawn
    /// — is cancelled upstream: in this revision, closing the stream is cancelling.
    fn drop(&mut self) {
        if !self.done {
            let (session, stream) = (self.session.clone(), self.stream);
            tokio::spawn(async move { session.cancel_stream(stream).await });
        }
    }
}

/// A call waiting for its client's answers. While it waits, a task keeps reading its stream (a
/// stream nobody reads would be detached from the call once its queue filled up).
pub(in crate::ingress) struct Parked {
    reader: Reader,
    key_id: String,
    /// What a retry must match, taken from the call (which the reader holds).
    principal: Principal,
    endpoint: String,
    method: Arc<str>,
    digest: [u8; 32],
    /// What was asked: (key, the session's id for the upstream's request, the input request).
    asked: Vec<(String, String, serde_json::Value)>,
    since: Instant,
    /// The request bytes it keeps alive.
    weight: usize,
}

impl Parked {
    /// Whether a retry by `principal` at `endpoint` of `method` with params `digest` may resume
    /// this call: the same key with the same rights (a role changed since: refused), the same
    /// request.
    fn fits(&self, principal: &Principal, endpoint: &str, method: &str, digest: &[u8; 32]) -> bool {
        self.principal.same_rights(principal)
            && self.endpoint == endpoint
            && &*self.method == method
            && &self.digest == digest
    }
}

/// The task reading a parked call's stream; stopping it gives the call back.
struct Reader {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Pending>,
}

impl Reader {
    fn start(mut p: Pending) -> Reader {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return p,
                    ev = p.rx.recv() => match ev {
                        Some(ev) => {
                            // The reply always: a call that notified a lot while it waited must
                            // not lose its outcome. Questions up to a bound; the rest is noise.
                            let question = || Message::parse(ev.data.clone()).is_ok_and(|m| m.kind() == Kind::Request);
                            if ev.last || (p.stash.len() < MAX_KEPT && question()) {
                                p.stash.push_back(ev);
                            }
                        }
                        // The session ended; `next` will say so.
                        None => {
                            let _ = stopped.await;
                            return p;
                        }
                    },
                }
            }
        });
        Reader { stop, task }
    }

    /// Stops reading and gives the call back (`None` if the reading task failed).
    async fn resume(self) -> Option<Pending> {
        let _ = self.stop.send(());
        self.task.await.ok()
    }
}

/// The parked calls of the relay, by `requestState`.
#[derive(Default)]
pub(in crate::ingress) struct Parking {
    map: Mutex<HashMap<String, Parked>>,
}

impl Parking {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends calls whose client never came back: their upstream requests are answered with an
    /// error, so the upstream stops waiting too.
    pub(in crate::ingress) fn expire(&self) {
        let gone: Vec<Parked> = {
            let mut map = self.lock();
            let old: Vec<String> =
                map.iter().filter(|(_, p)| p.since.elapsed() > PARK_FOR).map(|(k, _)| k.clone()).collect();
            old.iter().filter_map(|k| map.remove(k)).collect()
        };
        for p in gone {
            tokio::spawn(async move {
                if let Some(pending) = p.reader.resume().await {
                    withdraw(&pending, &p.asked).await;
                }
            });
        }
    }
}

/// What one event of the call means to a stateless client.
enum Step {
    /// Goes to the client now (progress, a log line it asked for).
    Note(Bytes),
    /// The upstream's reply, in the stateless form; for a rate-limit refusal, how long until a
    /// call would be accepted (the session's mark on the reply).
    Reply(StatusCode, Bytes, Option<Duration>),
    /// The upstream asks the client something (one or more questions sent together).
    Asks(Vec<Message>),
    /// The call ended without a reply (the session closed).
    Gone,
}

/// Answers the client: one JSON body when the call ends (or asks) before anything else happens,
/// else an SSE stream of its notifications ending with that.
pub(super) async fn drive(relay: &Arc<Relay>, mut p: Pending) -> Response {
    match next(&mut p).await {
        Step::Note(first) => {
            let (tx, rx) = mpsc::channel::<Bytes>(64);
            let relay = relay.clone();
            tokio::spawn(async move {
                let _ = tx.try_send(frame(&first));
                loop {
                    let step = tokio::select! {
                        step = next(&mut p) => step,
                        // The client left: dropping the call cancels it upstream.
                        () = tx.closed() => return,
                    };
                    if let Step::Note(b) = &step {
                        // Never waits for a slow client: a note it cannot take now is dropped
                        // (the reply is not). One that left still has its call finished and audited.
                        let _ = tx.try_send(frame(b));
                        continue;
                    }
                    if tx.is_closed() {
                        if let Step::Asks(reqs) = &step {
                            // Nobody will retry: the upstream is told now, not in ten minutes.
                            let asked: Vec<_> = reqs
                                .iter()
                                .map(|r| (String::new(), r.id().unwrap_or("null").to_string(), serde_json::Value::Null))
                                .collect();
                            withdraw(&p, &asked).await;
                            continue;
                        }
                    }
                    let (_, body) = end(&relay, p, step);
                    let _ = tx.send(frame(&body)).await;
                    return;
                }
            });
            super::sse_response(rx)
        }
        step => {
            let retry_after = match &step {
                Step::Reply(_, _, wait) => *wait,
                _ => None,
            };
            let (status, body) = end(relay, p, step);
            match retry_after {
                // A rate-limit refusal: a 429 with Retry-After.
                Some(_) => crate::ingress::respond::reply(body, retry_after),
                None => json(status, body),
            }
        }
    }
}

fn frame(data: &[u8]) -> Bytes {
    sse::encode(None, None, std::str::from_utf8(data).unwrap_or(""), None)
}

/// The last thing the client hears of this exchange.
fn end(relay: &Relay, p: Pending, step: Step) -> (StatusCode, Bytes) {
    match step {
        Step::Reply(status, body, _) => {
            let mut p = p;
            p.done = true;
            p.session.forget_stream(p.stream);
            (status, body)
        }
        Step::Asks(reqs) => park(relay, p, reqs),
        Step::Gone | Step::Note(_) => {
            let mut p = p;
            // A stream that fell too far behind is detached while its call still runs upstream:
            // dropping `p` then cancels it there, rather than leaving it to its timeout.
            let ended = p.session.has_ended() || p.session.is_dead();
            p.done = ended;
            let why = match ended {
                true => "the upstream session ended before it answered",
                false => "the call fell too far behind and was cancelled",
            };
            let e = crate::RelayError::UpstreamUnavailable(why.into());
            (StatusCode::OK, e.to_message(Some(p.id())).bytes().clone())
        }
    }
}

/// The next event of the call that the client should hear of. Requests the client cannot be
/// asked (an undeclared capability, a method no input request may carry) are answered here.
async fn next(p: &mut Pending) -> Step {
    loop {
        let ev = match p.stash.pop_front() {
            Some(ev) => ev,
            None => match p.rx.recv().await {
                Some(ev) => ev,
                None => return Step::Gone,
            },
        };
        if ev.last && p.a.learn.is_none() && matches!(p.a.tasked, super::Tasked::No) {
            // A result is completed without a parse, and given the client's id in the same copy:
            // a pooled session leaves its upstream's id on the replies it relays (`on_reply`).
            let cacheable = modern::CACHEABLE.contains(&p.method());
            if let Some(body) = modern::completed_as(&ev.data, p.id().as_bytes(), cacheable) {
                return Step::Reply(StatusCode::OK, body, ev.retry_after);
            }
        }
        let Ok(msg) = Message::parse(ev.data.clone()) else { continue };
        if ev.last {
            if let Some(learn) = &p.a.learn {
                learn_params(learn, &msg);
            }
            let msg = task_named(p, msg);
            let (status, body) = finished(&msg.with_id(p.id()), p.method());
            return Step::Reply(status, body, ev.retry_after);
        }
        match (msg.kind(), msg.method()) {
            (Kind::Notification, Some("notifications/progress")) => {
                if let Some(note) = own_progress(p, &msg) {
                    return Step::Note(note);
                }
            }
            (Kind::Notification, Some("notifications/message")) => {
                #[derive(serde::Deserialize)]
                struct Log<'a> {
                    #[serde(borrow)]
                    level: std::borrow::Cow<'a, str>,
                }
                let loud = msg.params::<Log<'_>>().and_then(|l| level(&l.level));
                // Per request, and only when asked for (2026-07-28 server/utilities/logging).
                if p.log_level.is_some_and(|min| loud.is_some_and(|l| l >= min)) {
                    return Step::Note(ev.data);
                }
            }
            (Kind::Request, Some(method)) => {
                let Some(down) = msg.id().map(str::to_string) else { continue };
                let answer = match method {
                    "ping" => Message::response(&down, &serde_json::json!({})),
                    // Only a request its client can retry with answers may ask it anything: asked
                    // during another, it could never answer (and the question would wait for
                    // nothing until the call's deadline).
                    _ if !modern::MAY_NEED_INPUT.contains(&p.method()) => Message::error(
                        Some(&down),
                        codes::METHOD_NOT_FOUND,
                        "a stateless client cannot be asked during this request",
                        None,
                    ),
                    _ => match capability_of(method) {
                        Some(cap) if declared(&p.a.ask.capabilities, cap) => return Step::Asks(together(p, msg)),
                        Some(_) => Message::error(
                            Some(&down),
                            codes::METHOD_NOT_FOUND,
                            "the client did not declare this capability",
                            None,
                        ),
                        None => Message::error(
                            Some(&down),
                            codes::METHOD_NOT_FOUND,
                            "a stateless client cannot be asked this",
                            None,
                        ),
                    },
                };
                let _ = p.session.reply(&answer).await;
            }
            _ => {}
        }
    }
}

/// The reply as the client sees it where tasks are concerned: a task the call created is
/// recorded and named by the mesh's handle; a reply about a task names the handle it was asked by.
fn task_named(p: &Pending, msg: Message) -> Message {
    use super::tasks;
    match &p.a.tasked {
        super::Tasked::No => msg,
        super::Tasked::MayCreate(table, holder) => {
            let Some((task, ttl)) = tasks::created(msg.bytes()) else { return msg };
            let tool = called_tool(&p.a.original);
            let tool = tool.as_deref().unwrap_or("");
            let handle = table.record(&p.a.principal, &p.a.ask.endpoint, holder.clone(), tool, &task, ttl);
            mesh_protocol::modern::with_task_id(&msg, "result", &handle).unwrap_or(msg)
        }
        super::Tasked::Addressed { handle, upstream, .. } => match msg.kind() {
            // An upstream's error may name its own id ("Unknown task: …", `data.taskId`).
            mesh_protocol::Kind::Error => mesh_protocol::modern::task_error_renamed(&msg, upstream, handle),
            _ => mesh_protocol::modern::with_task_id(&msg, "result", handle).unwrap_or(msg),
        },
    }
}

/// The tool a `tools/call` calls: its `name`, or, through a smart virtual MCP's `call_tool`, the
/// tool that one names (the session unwrapped it; a task it creates belongs to that tool).
fn called_tool(request: &Message) -> Option<String> {
    // The arguments are read only for the name `call_tool` gives, and as raw JSON: whatever
    // else they hold (a number beyond f64, nesting deeper than a parse allows) passed the
    // message's own reading, and must not make the call name nothing the policy can check.
    #[derive(serde::Deserialize)]
    struct Call<'a> {
        name: Option<String>,
        #[serde(borrow)]
        arguments: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Named {
        name: Option<String>,
    }
    let call = request.params::<Call<'_>>()?;
    match call.name.as_deref() {
        Some(mesh_core::search::meta::CALL) => {
            call.arguments.and_then(|a| serde_json::from_str::<Named>(a.get()).ok()).and_then(|n| n.name)
        }
        _ => call.name,
    }
}

/// Records, from a `tools/list` reply, which arguments of each tool travel in `Mcp-Param-*`
/// headers (`inputSchema.properties.<argument>["x-mcp-header"]`).
fn learn_params(into: &super::pool::ParamHeaders, reply: &Message) {
    #[derive(serde::Deserialize)]
    struct Listed {
        #[serde(default)]
        tools: Vec<serde_json::Value>,
    }
    let Some(listed) = reply.result::<Listed>() else { return };
    let mut known = into.lock().unwrap_or_else(|p| p.into_inner());
    for tool in listed.tools {
        let Some(name) = tool.get("name").and_then(serde_json::Value::as_str) else { continue };
        let props = tool.pointer("/inputSchema/properties").and_then(serde_json::Value::as_object);
        let annotated: Vec<(String, String)> = props
            .into_iter()
            .flatten()
            .filter_map(|(arg, schema)| Some((arg.clone(), schema.get("x-mcp-header")?.as_str()?.to_string())))
            .collect();
        // Only annotated tools are kept (the check of a call is skipped while there are none);
        // bounded like the lists it comes from; a fresh list replaces what was known of a tool.
        if annotated.is_empty() {
            known.remove(name);
        } else if known.len() < 10_000 || known.contains_key(name) {
            known.insert(name.to_string(), annotated);
        }
    }
}

/// Whether the capabilities `caps` (raw JSON) declare `cap`.
fn declared(caps: &str, cap: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(caps).is_ok_and(|c| c.contains_key(cap))
}

/// The client capability an input request needs.
fn capability_of(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// `first` and the other questions the upstream has already sent with it: an upstream that asks
/// several things at once gets them asked in one input-required result. Only what has arrived is
/// taken (nothing is waited for); everything else read on the way is kept for `next`.
fn together(p: &mut Pending, first: Message) -> Vec<Message> {
    let mut asks = vec![first];
    while asks.len() < MAX_QUESTIONS {
        let Ok(ev) = p.rx.try_recv() else { break };
        let question = (!ev.last).then(|| Message::parse(ev.data.clone()).ok()).flatten().filter(|m| {
            m.kind() == Kind::Request
                && m.method().and_then(capability_of).is_some_and(|c| declared(&p.a.ask.capabilities, c))
        });
        match question {
            Some(m) => asks.push(m),
            None => p.stash.push_back(ev),
        }
    }
    asks
}

/// Parks the call and answers with the input-required result asking `reqs`.
fn park(relay: &Relay, p: Pending, reqs: Vec<Message>) -> (StatusCode, Bytes) {
    let mut asked = Vec::with_capacity(reqs.len());
    for req in reqs {
        let method = req.method().unwrap_or_default().to_string();
        let down = req.id().unwrap_or("null").to_string();
        let mut params: serde_json::Value = req.params().unwrap_or(serde_json::Value::Null);
        let mut key = None;
        if let Some(o) = params.as_object_mut() {
            // URL elicitations lost their id in 2026-07-28; the upstream's stays with the mesh.
            o.remove("elicitationId");
            key = take_input_key(o);
        }
        let mut input = serde_json::json!({"method": method});
        if !params.is_null() {
            input["params"] = params;
        }
        let key = key
            .filter(|k| !asked.iter().any(|(a, ..): &(String, String, serde_json::Value)| a == k))
            .unwrap_or_else(|| format!("{}-{down}", capability_of(&method).unwrap_or("input")));
        asked.push((key, down, input));
    }
    ask_again(relay, p, asked)
}

/// The key an upstream chose for its question (`_meta["mcp-mesh/inputKey"]`, set by the mesh's
/// own link to a stateless upstream, and by servers that want stable keys), taken out of `_meta`.
fn take_input_key(params: &mut serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let meta = params.get_mut("_meta")?.as_object_mut()?;
    let key = meta.remove(crate::upstream::modern::INPUT_KEY)?;
    if meta.is_empty() {
        params.remove("_meta");
    }
    key.as_str().filter(|k| !k.is_empty() && k.len() <= 256).map(str::to_string)
}

/// Whether a call of (`org`, `key`) keeping `weight` request bytes alive may be parked beside
/// those `parked` already, as (organisation, key, weight).
fn room<'a>(parked: impl Iterator<Item = (&'a str, &'a str, usize)>, (org, key): (&str, &str), weight: usize) -> bool {
    let (mut all, mut theirs, mut mine, mut org_bytes, mut bytes) = (0, 0, 0, weight, weight);
    for (o, k, w) in parked {
        all += 1;
        bytes += w;
        if o == org {
            theirs += 1;
            org_bytes += w;
            mine += usize::from(k == key);
        }
    }
    all < MAX_PARKED
        && bytes <= MAX_PARKED_BYTES
        && theirs < MAX_PARKED_PER_ORG
        && org_bytes <= MAX_PARKED_BYTES_PER_ORG
        && mine < MAX_PARKED_PER_KEY
}

/// Parks `p` under a fresh state and answers with an input-required result for `asked`.
fn ask_again(relay: &Relay, p: Pending, asked: Vec<(String, String, serde_json::Value)>) -> (StatusCode, Bytes) {
    let id = p.a.ask.id.clone();
    let mut map = relay.modern.parked.lock();
    let weight = p.a.original.bytes().len();
    let parked = map.values().map(|w| (w.principal.org_id.as_str(), w.key_id.as_str(), w.weight));
    if !room(parked, (&p.a.principal.org_id, &p.a.principal.key_id), weight) {
        drop(map);
        tokio::spawn(async move { withdraw(&p, &asked).await });
        let msg = "too many calls are waiting for input; answer or abandon some, then try again";
        return (StatusCode::OK, Message::error(Some(&*id), codes::INTERNAL_ERROR, msg, None).bytes().clone());
    }
    let state = mesh_core::id::random_base62(43);
    let requests: serde_json::Map<String, serde_json::Value> =
        asked.iter().map(|(k, _, r)| (k.clone(), r.clone())).collect();
    let result = serde_json::json!({"resultType": "input_required", "inputRequests": requests, "requestState": state});
    let parked = Parked {
        key_id: p.a.principal.key_id.clone(),
        principal: p.a.principal.clone(),
        endpoint: p.a.ask.endpoint.clone(),
        method: p.a.ask.method.clone(),
        digest: digest(&p.a.original),
        reader: Reader::start(p),
        asked,
        since: Instant::now(),
        weight,
    };
    map.insert(state, parked);
    (StatusCode::OK, Message::response(&id, &result).bytes().clone())
}

/// Tells the upstream that its questions will not be answered.
async fn withdraw(p: &Pending, asked: &[(String, String, serde_json::Value)]) {
    for (_, down, _) in asked {
        let no = Message::error(Some(down), codes::INTERNAL_ERROR, "the client did not answer", None);
        let _ = p.session.reply(&no).await;
    }
}

/// A progress notification with the client's own token in place of the one the mesh sent;
/// `None` when the client's latest attempt asked for no progress (a retry without a token).
fn own_progress(p: &Pending, msg: &Message) -> Option<Bytes> {
    let Some((_, own)) = &p.a.progress else { return Some(msg.bytes().clone()) };
    let own = own.as_deref()?;
    let mut params: serde_json::Value = msg.params().unwrap_or_else(|| serde_json::json!({}));
    params["progressToken"] = serde_json::from_str(own).unwrap_or(serde_json::Value::Null);
    Some(Message::notification("notifications/progress", Some(&params)).bytes().clone())
}

/// The progress token a retry's `_meta` carries, raw JSON.
fn progress_token(retry: &Message) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "progressToken")]
        token: Option<Box<RawValue>>,
    }
    Some(retry.params::<Params>()?.meta?.token?.get().to_string())
}

/// A retry carrying answers: delivered to the parked call, which then goes on.
#[allow(clippy::too_many_arguments)]
pub(super) async fn retry(
    relay: &Arc<Relay>,
    principal: &Principal,
    ask: &Ask,
    msg: &Message,
    state: &str,
    responses: Option<String>,
) -> Response {
    let bad_state = || {
        refuse(
            &ask.id,
            codes::INVALID_PARAMS,
            "requestState is not valid for this request: altered, expired, already used, or from another request",
            None,
        )
    };
    let answers: HashMap<String, Box<RawValue>> = match responses.as_deref().map(serde_json::from_str) {
        None => HashMap::new(),
        Some(Ok(a)) => a,
        Some(Err(_)) => return refuse(&ask.id, codes::INVALID_PARAMS, "inputResponses must be an object", None),
    };
    let digest = digest(msg);
    let endpoint = &ask.endpoint;
    let parked = {
        let mut map = relay.modern.parked.lock();
        let fits = map
            .get(state)
            .is_some_and(|p| p.key_id == principal.key_id && p.fits(principal, endpoint, &ask.method, &digest));
        if !fits {
            return bad_state();
        }
        // Structurally invalid answers are refused before any is delivered; the call stays parked.
        let parked = map.get(state).expect("checked above");
        if parked.asked.iter().any(|(k, ..)| answers.get(k).is_some_and(|a| !a.get().trim_start().starts_with('{'))) {
            return refuse(&ask.id, codes::INVALID_PARAMS, "each input response must be an object", None);
        }
        map.remove(state).expect("checked above")
    };
    let Parked { reader, asked, .. } = parked;
    let Some(mut pending) = reader.resume().await else { return bad_state() };
    // Policy may have changed while the call waited for its client: its tool, prompt or
    // resource must still be allowed (as a task's tool is for its requests), else the call is
    // given up before any answer reaches the upstream, and the client is told what an unknown
    // one gets.
    // A call that names nothing the mesh can read cannot be checked again: it is given up
    // (fail closed), though the session admitted it.
    let refusal = match named(&ask.method, &pending.a.original) {
        Some((what, name)) => match pending.session.may_still(&ask.method, &name).await {
            Use::Allowed => None,
            refused => Some((refused.outcome(), format!("Unknown {what}: {name}"))),
        },
        None => {
            Some((Outcome::Denied, format!("the {} it retries cannot be checked against the rules again", ask.method)))
        }
    };
    if let Some((outcome, why)) = refusal {
        // Ended by the session, so that its one audit row says why (dropped, it would say
        // cancelled).
        pending.done = true;
        pending.session.refuse_stream(pending.stream, outcome, &why);
        return refuse(&ask.id, codes::INVALID_PARAMS, &why, None);
    }
    // A copy: the call may be parked again, and a slice would keep this retry's whole body.
    pending.a.ask.id = ask.id.copied();
    // A retry is a new request: what it says of progress and logging now holds (the upstream
    // keeps the mesh's token, the client gets its own under it, or none).
    pending.log_level = ask.log_level.as_deref().and_then(level);
    if let Some((_, own)) = &mut pending.a.progress {
        *own = progress_token(msg);
    }
    let mut missing = Vec::new();
    for (key, down, request) in asked {
        match answers.get(&key) {
            Some(answer) => {
                let reply = format!(r#"{{"jsonrpc":"2.0","id":{down},"result":{}}}"#, answer.get());
                match Message::parse(Bytes::from(reply)) {
                    Ok(m) => {
                        let _ = pending.session.reply(&m).await;
                    }
                    Err(_) => missing.push((key, down, request)),
                }
            }
            None => missing.push((key, down, request)),
        }
    }
    if !missing.is_empty() {
        // Asked again rather than refused (2026-07-28 basic/patterns/mrtr).
        let (status, body) = ask_again(relay, pending, missing);
        return json(status, body);
    }
    drive(relay, pending).await
}

/// What a request that may wait for input names, as its kind of item is called in errors: the
/// tool a `tools/call` calls, the prompt a `prompts/get` gets, the resource a `resources/read`
/// reads. `None` when it names nothing readable.
fn named(method: &str, request: &Message) -> Option<(&'static str, String)> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: Option<String>,
        uri: Option<String>,
    }
    match method {
        "tools/call" => called_tool(request).map(|t| ("tool", t)),
        "prompts/get" => request.params::<Named>()?.name.map(|n| ("prompt", n)),
        "resources/read" => request.params::<Named>()?.uri.map(|u| ("resource", u)),
        _ => None,
    }
}

/// What identifies a request across its retries: method and params, without the envelope and
/// the answers.
fn digest(msg: &Message) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(msg.method().unwrap_or_default().as_bytes());
    h.update([0]);
    match msg.params::<serde_json::Value>() {
        Some(mut params) => {
            if let Some(o) = params.as_object_mut() {
                // `retain`, not `remove`: an order-preserving map's `remove` swaps the last member in.
                o.retain(|k, _| !matches!(k.as_str(), "_meta" | "inputResponses" | "requestState"));
            }
            h.update(serde_json::to_vec(&params).unwrap_or_default());
        }
        // Params a value cannot hold (a number beyond f64, nesting past the parser's limit, which
        // the message's own reading lets through): their members as sent, in key order, less the
        // same three; params that are not even an object, whole. Never nothing: that would let
        // such a request fit every retry.
        None => {
            h.update([0xff]);
            type Members<'a> = std::collections::BTreeMap<std::borrow::Cow<'a, str>, &'a RawValue>;
            match msg.params::<Members<'_>>() {
                Some(members) => {
                    let kept =
                        members.iter().filter(|(k, _)| !matches!(&***k, "_meta" | "inputResponses" | "requestState"));
                    for (k, v) in kept {
                        for part in [k.as_bytes(), v.get().as_bytes()] {
                            h.update((part.len() as u64).to_le_bytes());
                            h.update(part);
                        }
                    }
                }
                None => h.update(msg.params::<&RawValue>().map_or("", |r| r.get()).as_bytes()),
            }
        }
    }
    h.finalize().into()
}

/// A log level's rank (RFC 5424 order, as MCP names them).
fn level(name: &str) -> Option<u8> {
    const LEVELS: [&str; 8] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
    LEVELS.iter().position(|l| *l == name).map(|i| i as u8)
}

#[cfg(test)]
mod tests;
