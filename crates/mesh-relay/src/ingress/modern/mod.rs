//! The stateless revision (MCP 2026-07-28) on the same routes as the session-based one.
//!
//! A stateless request names its revision in `MCP-Protocol-Version` and again in
//! `params._meta`; it has no session, so everything a session held travels with each request.
//! The mesh serves it with the same machinery as a session's request: each principal gets a
//! *pooled* session per route and set of client capabilities (`pool.rs`), opened on its first
//! request with the upstream's own handshake and reused by every later one — never one upstream
//! handshake per call. What the upstream speaks behind that session is the mesh's business:
//! today every upstream is spoken to in the session-based revision, which every upstream in the
//! ecosystem accepts, and its replies are made stateless here (`resultType`, caching hints,
//! errors with their HTTP statuses).
//!
//! A stateless request runs through the same driver as a session's (`driver.rs`): Origin/Host
//! and authentication, then transport shape; this module's step is the envelope and the
//! mirrored headers (a header that disagrees with the body is refused: the body is what the mesh
//! governs), then the pooled session — whose route, access and rate limits apply exactly as to a
//! session's request — and its answer in the stateless form.

mod input;
mod listen;
mod pool;
mod tasks;

pub(super) use pool::Pool;

use super::driver::{Answer, Flow, Forward};
use super::respond;
use super::streamable_http::Target;
use super::Relay;
use crate::RelayError;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, StatusCode};
use mesh_protocol::{codes, modern, version, Kind, Message};
use std::sync::Arc;

/// The header mirroring the body's `method`.
const METHOD_HEADER: HeaderName = HeaderName::from_static("mcp-method");
/// The header mirroring the body's `params.name` or `params.uri`.
const NAME_HEADER: HeaderName = HeaderName::from_static("mcp-name");

/// What a stateless request asked for, once its envelope checked out.
pub(super) struct Ask {
    /// The request's raw id.
    pub id: String,
    /// Its method.
    pub method: String,
    /// `clientCapabilities`, raw JSON (shared with the call that may ask the client things).
    pub capabilities: Arc<str>,
    /// The log level it opted into, if any.
    pub log_level: Option<String>,
    /// `Mcp-Param-*` headers (name, value as sent), which the mesh forwards to a stateless upstream.
    pub param_headers: Vec<(String, String)>,
    /// The endpoint's canonical path (what pooled sessions and parked calls are bound to).
    pub endpoint: String,
}

/// Step 3 of the driver (`driver.rs`) for a stateless request: the envelope and the mirrored
/// headers are checked, then the request goes to the pooled session of its principal at this
/// route — or the mesh answers it here (`server/discover`, a retry carrying answers, a refusal).
/// Refusals are JSON-RPC errors carrying the request id, with the revision's HTTP statuses.
pub(super) async fn resolve(
    relay: &Arc<Relay>,
    target: &Target,
    headers: &HeaderMap,
    principal: mesh_core::Principal,
    msg: Message,
    header_version: &str,
) -> Result<Flow, RelayError> {
    match msg.kind() {
        Kind::Request => {}
        // The revision defines no client notification over HTTP; one is acknowledged and dropped.
        Kind::Notification => return Ok(Flow::Respond(respond::accepted())),
        Kind::Response | Kind::Error => {
            return Err(RelayError::BadRequest(
                "the stateless revision has no replies to the server: answer input requests by retrying the request"
                    .into(),
            ))
        }
    }
    let id = msg.id().unwrap_or("null").to_string();
    let method = msg.method().unwrap_or_default().to_string();
    let params = match modern::Request::read(msg.bytes()) {
        Some(p) => p,
        None => return refused(&id, codes::INVALID_PARAMS, "params._meta is required in this protocol revision", None),
    };
    let meta = params.envelope();
    let (Some(body_version), Some(capabilities)) = (meta.version.as_deref(), meta.capabilities) else {
        return refused(
            &id,
            codes::INVALID_PARAMS,
            "params._meta must carry io.modelcontextprotocol/protocolVersion and io.modelcontextprotocol/clientCapabilities",
            None,
        );
    };
    if body_version != header_version {
        return refused(&id, codes::HEADER_MISMATCH, "MCP-Protocol-Version disagrees with params._meta", None);
    }
    if !version::is_modern(body_version) {
        let data = serde_json::json!({"supported": version::MODERN, "requested": body_version});
        return refused(&id, codes::UNSUPPORTED_PROTOCOL_VERSION, "unsupported protocol version", Some(data));
    }
    if let Err(why) = mirrored(headers, &METHOD_HEADER, Some(&method)) {
        return refused(&id, codes::HEADER_MISMATCH, &format!("Mcp-Method {why}"), None);
    }
    if modern::needs_name(&method) {
        if let Err(why) = mirrored(headers, &NAME_HEADER, params.routed_name(&method)) {
            return refused(&id, codes::HEADER_MISMATCH, &format!("Mcp-Name {why}"), None);
        }
    }
    if capabilities.len() > pool::MAX_CAPABILITIES {
        return refused(&id, codes::INVALID_PARAMS, "clientCapabilities is too large", None);
    }
    if !capabilities.trim_start().starts_with('{') {
        return refused(&id, codes::INVALID_PARAMS, "clientCapabilities must be an object", None);
    }
    let ask = Ask {
        id,
        method,
        capabilities: capabilities.into(),
        log_level: meta.log_level.map(|l| l.into_owned()),
        param_headers: headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("mcp-param-"))
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        endpoint: target.path(),
    };
    let task_method = tasks::METHODS.contains(&ask.method.as_str());
    if modern::REMOVED.contains(&ask.method.as_str()) || (ask.method.starts_with("tasks/") && !task_method) {
        return refused(&ask.id, codes::METHOD_NOT_FOUND, &format!("Method not found: {}", ask.method), None);
    }
    // Where `_meta` sits in the body, from the borrowed value itself: the rewrite on the way to
    // the pooled session then scans nothing again.
    let meta_at = params.meta.and_then(|m| modern::span_within(msg.bytes(), m.as_bytes()));
    let meta_at = meta_at.map(|span| MetaAt { span, members: params.meta_members() });
    let task_id = params.task_id.as_deref().map(str::to_string);
    let state = params.request_state.as_deref().map(str::to_string);
    let responses = params.input_responses.map(str::to_string);
    drop(params);
    if let Some(state) = state {
        if modern::MAY_NEED_INPUT.contains(&ask.method.as_str()) {
            return respond_with(input::retry(relay, &principal, &ask, &msg, &state, responses).await);
        }
    }
    // A task is checked before anything is opened for it: a handle alone must not cost a
    // handshake.
    let task = match task_method {
        true => match task_owner(relay, &principal, &ask, task_id.as_deref()) {
            Ok(owned) => Some(owned),
            Err(refused) => return respond_with(*refused),
        },
        false => None,
    };
    // A task's requests go to the pooled session that created it while it lives (a stdio child
    // or a virtual MCP's member sessions hold the task), whatever capabilities they carry now.
    let holder = task.as_ref().and_then(|t| pool::holding(relay, (&t.holder.0, t.holder.1), &principal, &ask.endpoint));
    let session = match holder {
        Some(s) => s,
        None => match pool::session(relay, target, &principal, &ask, &msg).await {
            Ok(s) => s,
            Err(e) => return respond_with(refusal(&ask.id, &e)),
        },
    };
    let mut msg = msg;
    if let (Some(owned), Some(handle)) = (task, task_id) {
        // Policy may have changed since the task was created: its tool must still be callable.
        if !session.tasks || !session.session.may_call_tool(&owned.tool) {
            return refused(&ask.id, codes::INVALID_PARAMS, "Unknown task", None);
        }
        // The upstream knows the task by its own id; the client, by the mesh's handle.
        match tasks::with_task_id(&msg, "params", &owned.upstream) {
            Some(m) => msg = m,
            None => return refused(&ask.id, codes::INVALID_PARAMS, "params.taskId is required", None),
        }
        let tasked = Tasked::Addressed { handle, upstream: owned.upstream, tool: owned.tool };
        return Ok(forward(session.session, principal, ask, (msg, None), None, tasked));
    }
    Ok(match ask.method.as_str() {
        "server/discover" => Flow::Respond(discover(&ask, &session)),
        "subscriptions/listen" => Flow::Respond(listen::open(&session, &ask, &msg)),
        _ => {
            if ask.method == "tools/call" {
                if let Err(why) = params_mirrored(headers, &session.params, &msg) {
                    return refused(&ask.id, codes::HEADER_MISMATCH, &why, None);
                }
            }
            let learn = (ask.method == "tools/list").then(|| session.params.clone());
            let tasked = match ask.method == "tools/call" && session.tasks {
                true => Tasked::MayCreate(relay.modern.tasks.clone(), (session.session.id.clone(), session.slot)),
                false => Tasked::No,
            };
            forward(session.session, principal, ask, (msg, meta_at), learn, tasked)
        }
    })
}

/// The response `r` as what step 3 decided.
fn respond_with(r: Response) -> Result<Flow, RelayError> {
    Ok(Flow::Respond(r))
}

/// [`refuse`] as what step 3 decided.
fn refused(id: &str, code: i64, message: &str, data: Option<serde_json::Value>) -> Result<Flow, RelayError> {
    respond_with(refuse(id, code, message, data))
}

/// The stateless ingress's own tables.
#[derive(Default)]
pub(super) struct State {
    /// Pooled sessions, by key, endpoint and capabilities.
    pub(super) pool: Pool,
    /// Calls waiting for their client's answers, by request state.
    pub(super) parked: input::Parking,
    /// Whose each task is (the tasks extension).
    pub(super) tasks: Arc<tasks::Tasks>,
}

impl State {
    /// Forgets ended sessions and expires abandoned calls (from the relay's reaper).
    pub(super) fn tidy(&self, relay: &Relay) {
        // Before the reap (`Relay::spawn_reaper`): a pooled session holding live tasks is not
        // idle, even when nobody has asked about them for a while.
        for id in self.tasks.holders() {
            if let Some(s) = relay.sessions.get(&id) {
                s.keep_alive();
            }
        }
        self.pool.prune(relay);
        self.parked.expire();
        self.tasks.expire();
    }
}

/// Checks one mirrored header against the body's value: present once, and equal once trimmed and
/// decoded (values compare case-sensitively).
fn mirrored(headers: &HeaderMap, name: &HeaderName, body: Option<&str>) -> Result<(), &'static str> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(name) { "is given more than once" } else { "is required" });
    };
    match (modern::header_value(value.as_bytes()), body) {
        (Some(v), Some(b)) if v == b => Ok(()),
        (None, _) => Err("is not a valid header value"),
        _ => Err("disagrees with the body"),
    }
}

/// Where `params._meta` sits in a request, and where its members sit in it when the scan that
/// found it could say.
struct MetaAt {
    span: std::ops::Range<usize>,
    members: Option<modern::MetaMembers>,
}

/// A request as it goes to its pooled session, and what its answer needs. `meta_at` is where
/// `params._meta` sits in `msg`, when the caller knows.
fn forward(
    session: Arc<crate::session::Session>,
    principal: mesh_core::Principal,
    ask: Ask,
    (msg, meta_at): (Message, Option<MetaAt>),
    learn: Option<Arc<pool::ParamHeaders>>,
    tasked: Tasked,
) -> Flow {
    // The envelope is the mesh's business: the upstream behind a pooled session learnt it at the
    // handshake (a dual-era upstream seeing it would answer in the stateless form on a session).
    let (forwarded, progress) = without_envelope(&msg, meta_at, &ask.param_headers);
    let item = match &tasked {
        Tasked::Addressed { tool, .. } => Some(tool.clone()),
        _ => None,
    };
    let answer = Answer::Stateless(Box::new(Answering { principal, ask, original: msg, progress, learn, tasked }));
    Flow::Forward(Forward { session, msg: forwarded, item, answer })
}

/// What the answer to a stateless request needs besides the session's events.
pub(super) struct Answering {
    principal: mesh_core::Principal,
    ask: Ask,
    /// The request as the client sent it (a retry must match it).
    original: Message,
    /// The mesh's progress token and the client's, when it sent one.
    progress: Option<(String, String)>,
    learn: Option<Arc<pool::ParamHeaders>>,
    tasked: Tasked,
}

/// Step 5 of the driver for a stateless request: its events in the stateless form, the upstream's
/// questions as input-required results.
pub(super) async fn answer(
    relay: &Arc<Relay>,
    session: &Arc<crate::session::Session>,
    (stream, rx): (u64, tokio::sync::mpsc::Receiver<crate::session::streams::Event>),
    a: Answering,
) -> Response {
    input::drive(relay, input::Pending::new(session.clone(), (stream, rx), a)).await
}

/// Checks a `tools/call`'s `Mcp-Param-*` headers against its arguments, for the tools whose
/// annotations this pooled session has seen listed (2026-07-28 streamable-http, "Custom Headers
/// from Tool Parameters"): an annotated argument with a value needs its header, equal once
/// decoded; a header without its argument, or one that does not decode, disagrees.
fn params_mirrored(headers: &HeaderMap, known: &pool::ParamHeaders, msg: &Message) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Call {
        #[serde(default)]
        arguments: Option<serde_json::Map<String, serde_json::Value>>,
    }
    let annotated = {
        let known = known.lock().unwrap_or_else(|p| p.into_inner());
        // The usual case: no tool of this session asked for headers, and the body is not read.
        if known.is_empty() {
            return Ok(());
        }
        let Some(name) = modern::Request::read(msg.bytes()).and_then(|p| p.name.map(|n| n.into_owned())) else {
            return Ok(());
        };
        match known.get(&name) {
            Some(a) if !a.is_empty() => a.clone(),
            _ => return Ok(()),
        }
    };
    let arguments = msg.params::<Call>().and_then(|c| c.arguments).unwrap_or_default();
    for (argument, token) in annotated {
        let header = format!("mcp-param-{}", token.to_ascii_lowercase());
        let body = arguments.get(&argument).filter(|v| !v.is_null());
        match (headers.get(header.as_str()), body) {
            (None, None) => {}
            (None, Some(_)) => return Err(format!("{header} is required for argument {argument}")),
            (Some(_), None) => return Err(format!("{header} is given without argument {argument}")),
            (Some(value), Some(v)) => {
                let expected = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => return Err(format!("argument {argument} cannot travel in a header")),
                };
                match modern::header_value(value.as_bytes()) {
                    Some(got) if got == expected => {}
                    Some(_) => return Err(format!("{header} disagrees with argument {argument}")),
                    None => return Err(format!("{header} is not a valid header value")),
                }
            }
        }
    }
    Ok(())
}

/// `msg` as it goes on a pooled session: without the revision's per-request keys in
/// `params._meta` (the upstream learnt them at the handshake; a dual-era upstream seeing them
/// would answer in the stateless form on a session), except the log level, which a stateless
/// upstream takes per request; with a progress token of the mesh's own (other callers share the
/// session and may pick the same token), returned with the client's, both raw JSON; and with the
/// client's `Mcp-Param-*` headers in `_meta[PARAM_HEADERS]`, which the link to a stateless
/// upstream turns back into headers (an intermediary forwards them untouched). Answers a first
/// call carries stay: a stateless upstream may use them, a session-based one ignores them.
fn without_envelope(
    msg: &Message,
    meta_at: Option<MetaAt>,
    param_headers: &[(String, String)],
) -> (Message, Option<(String, String)>) {
    use crate::upstream::modern::PARAM_HEADERS;
    // Only `_meta` is read and rewritten; the rest of the request (its arguments may be large)
    // is spliced around it byte for byte.
    let raw = msg.bytes();
    let (meta_at, members) = match meta_at.filter(|m| m.span.end <= raw.len()) {
        Some(at) => (at.span, at.members),
        None => {
            let Some(params) = modern::member_span(raw, "params") else { return (msg.clone(), None) };
            let Some(at) = modern::member_span(&raw[params.clone()], "_meta") else {
                return (msg.clone(), None);
            };
            (params.start + at.start..params.start + at.end, None)
        }
    };
    let meta_bytes = &raw[meta_at.clone()];
    if param_headers.is_empty() {
        // The common case: members dropped by copying the others, nothing parsed again — by the
        // spans the scan found, else by a walk. A progress token is rewritten by value, below.
        const PROGRESS: &[u8] = b"progressToken";
        let kept = match members {
            Some(m) if !m.names(meta_bytes).any(|n| n == PROGRESS) => m.kept(meta_bytes, goes_upstream),
            None if !modern::has_member(meta_bytes, "progressToken") => modern::keep_members(meta_bytes, goes_upstream),
            _ => None,
        };
        if let Some(out) = kept.and_then(|k| msg.splice(meta_at.clone(), &k)) {
            return (out, None);
        }
    }
    let Ok(mut meta) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&raw[meta_at.clone()])
    else {
        return (msg.clone(), None);
    };
    meta.retain(|k, _| {
        (!k.starts_with("io.modelcontextprotocol/") || k == modern::META_LOG_LEVEL) && k != PARAM_HEADERS
    });
    let mut progress = None;
    if let Some(own) = meta.get("progressToken").map(|t| t.to_string()) {
        let sent = format!("mesh-{}", mesh_core::id::random_base62(16));
        progress = Some((serde_json::Value::from(sent.clone()).to_string(), own));
        meta.insert("progressToken".into(), sent.into());
    }
    if !param_headers.is_empty() {
        let carried: serde_json::Map<String, serde_json::Value> =
            param_headers.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
        meta.insert(PARAM_HEADERS.into(), carried.into());
    }
    let new_meta = serde_json::to_vec(&meta).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..meta_at.start]);
    out.extend_from_slice(&new_meta);
    out.extend_from_slice(&raw[meta_at.end..]);
    match Message::parse(out.into()) {
        Ok(m) => (m, progress),
        Err(_) => (msg.clone(), None),
    }
}

/// Whether a member of a stateless request's `_meta` goes on to its pooled session (see
/// [`without_envelope`]): not the revision's per-request keys except the log level, and not the
/// mesh's own carrier of `Mcp-Param-*` headers, which only the mesh may fill.
fn goes_upstream(name: &[u8]) -> bool {
    use crate::upstream::modern::PARAM_HEADERS;
    (!name.starts_with(b"io.modelcontextprotocol/") || name == modern::META_LOG_LEVEL.as_bytes())
        && name != PARAM_HEADERS.as_bytes()
}

/// How a request relates to tasks (`tasks` module docs).
pub(super) enum Tasked {
    /// Not at all.
    No,
    /// A `tools/call` where the upstream offers tasks: a task it creates is recorded (with the
    /// pooled session's id), and the client gets the mesh's handle for it.
    MayCreate(Arc<tasks::Tasks>, (String, u64)),
    /// A request for the task with this handle: the reply names the handle, never the
    /// upstream's id; the audit row names the task's tool.
    Addressed {
        /// The mesh's handle, as the client sent it.
        handle: String,
        /// The upstream's id for the task.
        upstream: String,
        /// The tool whose call created it.
        tool: String,
    },
}

/// Checks a request addressing a task (`tasks/get`, `tasks/update`, `tasks/cancel`) before
/// anything is opened for it: the request declares the extension (-32021, SEP-2663), and the
/// handle names a task of the caller's at this endpoint (else unknown, -32602). The task, or the
/// refusal.
fn task_owner(
    relay: &Relay,
    principal: &mesh_core::Principal,
    ask: &Ask,
    task_id: Option<&str>,
) -> Result<tasks::Owned, Box<Response>> {
    if !tasks::declared(&ask.capabilities) {
        let why = format!("{} needs the client capability extensions[\"{}\"]", ask.method, tasks::EXTENSION);
        let data = serde_json::json!({"requiredCapabilities": {"extensions": {tasks::EXTENSION: {}}}});
        return Err(Box::new(refuse(&ask.id, codes::MISSING_CLIENT_CAPABILITY, &why, Some(data))));
    }
    let Some(task) = task_id else {
        return Err(Box::new(refuse(&ask.id, codes::INVALID_PARAMS, "params.taskId is required", None)));
    };
    relay
        .modern
        .tasks
        .owned(principal, &ask.endpoint, task)
        .ok_or_else(|| Box::new(refuse(&ask.id, codes::INVALID_PARAMS, "Unknown task", None)))
}

/// `server/discover`, answered from the pooled session's handshake with the upstream.
fn discover(ask: &Ask, session: &pool::Pooled) -> Response {
    let init = &session.init;
    let mut capabilities = init.get("capabilities").cloned().unwrap_or_else(|| serde_json::json!({}));
    if let Some(caps) = capabilities.as_object_mut() {
        // The earlier revision's experimental tasks are another wire; resource subscriptions
        // are not carried to `subscriptions/listen` yet. Of the extensions, the mesh relays only
        // tasks: an extension it does not know might carry what its policy cannot see.
        caps.remove("tasks");
        let tasks = caps.get("extensions").and_then(|e| e.get(tasks::EXTENSION)).cloned();
        let tasks = tasks.filter(|_| tasks::offered(init));
        caps.remove("extensions");
        if let Some(t) = tasks {
            caps.insert("extensions".into(), serde_json::json!({ tasks::EXTENSION: t }));
        }
        if let Some(r) = caps.get_mut("resources").and_then(|r| r.as_object_mut()) {
            r.remove("subscribe");
        }
    }
    let mut result = serde_json::json!({
        "resultType": "complete",
        "supportedVersions": version::MODERN,
        "capabilities": capabilities,
        "ttlMs": 0,
        "cacheScope": "private",
    });
    if let Some(i) = init.get("instructions").filter(|i| i.is_string()) {
        result["instructions"] = i.clone();
    }
    if let Some(info) = init.get("serverInfo") {
        result["_meta"] = serde_json::json!({ modern::META_SERVER_INFO: info });
    }
    json(StatusCode::OK, Message::response(&ask.id, &result).bytes().clone())
}

/// A JSON-RPC error of the revision's own, with its HTTP status.
fn refuse(id: &str, code: i64, message: &str, data: Option<serde_json::Value>) -> Response {
    let status = StatusCode::from_u16(modern::status_of(code)).unwrap_or(StatusCode::OK);
    json(status, Message::error(Some(id), code, message, data).bytes().clone())
}

/// A mesh error as the answer to a stateless request: transport-level refusals keep their
/// status (401, 404 for an unknown route, 429), the rest travel as JSON-RPC errors.
pub(super) fn refusal(id: &str, e: &RelayError) -> Response {
    match e.http_status() {
        StatusCode::OK => refuse(id, e.rpc_code(), &e.to_string(), None),
        _ => respond::error(e, Some(id)),
    }
}

/// An SSE response whose events (already framed) come from `rx`; it ends when `rx` does.
fn sse_response(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    let frames = tokio_stream::wrappers::ReceiverStream::new(rx);
    let body =
        axum::body::Body::from_stream(futures_util::StreamExt::map(frames, Ok::<Bytes, std::convert::Infallible>));
    axum::response::Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        // Proxies that buffer would hold progress and list changes back.
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// One JSON body.
fn json(status: StatusCode, body: Bytes) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// A reply from the upstream (already carrying the client's id) in the stateless form, with its
/// HTTP status: a result gains `resultType` (and caching hints where the method needs them); an
/// error keeps its code, except the earlier revisions' resource-not-found (-32002), which the
/// stateless revision folds into -32602.
pub(super) fn finished(reply: &Message, method: &str) -> (StatusCode, Bytes) {
    match reply.kind() {
        Kind::Error => {
            let Some(e) = reply.error_object() else { return (StatusCode::OK, reply.bytes().clone()) };
            let status = StatusCode::from_u16(modern::status_of(e.code)).unwrap_or(StatusCode::OK);
            if e.code == LEGACY_RESOURCE_NOT_FOUND {
                let out = Message::error(reply.id(), codes::INVALID_PARAMS, &e.message, e.data);
                return (StatusCode::BAD_REQUEST, out.bytes().clone());
            }
            (status, reply.bytes().clone())
        }
        _ => (StatusCode::OK, modern::complete_result(reply.bytes(), modern::CACHEABLE.contains(&method))),
    }
}

/// -32002, "resource not found" before 2026-07-28.
const LEGACY_RESOURCE_NOT_FOUND: i64 = -32002;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_progress_token_the_envelope_is_dropped_by_copying() {
        let sent = r#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"x":{}},"traceparent":"t"},"cursor":"c"}}"#;
        let msg = Message::parse(Bytes::from_static(sent.as_bytes())).expect("message");
        let (out, progress) = without_envelope(&msg, None, &[]);
        assert!(progress.is_none());
        assert_eq!(
            out.as_str(),
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{"_meta":{"traceparent":"t"},"cursor":"c"}}"#
        );
        assert_eq!(out.id(), Some(r#""a""#));
    }

    #[test]
    fn the_envelope_cut_by_the_scans_spans_is_the_walks_cut() {
        let cases = [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"}},"name":"echo","arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta" : { "traceparent" : "t" , "io.modelcontextprotocol/protocolVersion":"2026-07-28", "io.modelcontextprotocol/logLevel":"info", "mcp-mesh/paramHeaders":{"a":"b"}, "x":[1,{"y":"}"}] }}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{}}}"#,
        ];
        for sent in cases {
            let msg = Message::parse(Bytes::from_static(sent.as_bytes())).expect("message");
            let read = modern::Request::read(msg.bytes()).expect("read");
            let span = modern::span_within(msg.bytes(), read.meta.expect("meta").as_bytes()).expect("span");
            let members = read.meta_members().expect("members");
            // The spans are used, not walked around.
            let by_spans = members.kept(&msg.bytes()[span.clone()], goes_upstream).expect("kept");
            let by_walk = modern::keep_members(&msg.bytes()[span.clone()], goes_upstream).expect("kept");
            assert_eq!(String::from_utf8_lossy(&by_spans), String::from_utf8_lossy(&by_walk), "{sent}");
            let (out, _) = without_envelope(&msg, Some(MetaAt { span, members: Some(members) }), &[]);
            assert_eq!(out.as_str(), without_envelope(&msg, None, &[]).0.as_str(), "{sent}");
        }
        // A progress token is the mesh's to rewrite: not copied as it is.
        let sent =
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":1},"name":"t"}}"#;
        let msg = Message::parse(Bytes::from_static(sent.as_bytes())).expect("message");
        let read = modern::Request::read(msg.bytes()).expect("read");
        let span = modern::span_within(msg.bytes(), read.meta.expect("meta").as_bytes()).expect("span");
        let at = Some(MetaAt { span, members: Some(read.meta_members().expect("members")) });
        assert!(without_envelope(&msg, at, &[]).1.is_some());
    }

    #[test]
    fn only_the_envelope_is_rewritten_on_the_way_to_a_pooled_session() {
        let sent = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"t","arguments":{"x": [1, 2]},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":"info","progressToken":5,"mcp-mesh/paramHeaders":{"mcp-param-evil":"x"},"traceparent":"00-ab-cd-01"}}}"#;
        let msg = Message::parse(Bytes::from_static(sent.as_bytes())).expect("message");
        let headers = vec![("mcp-param-region".to_string(), "eu".to_string())];
        // Found by the ingress from the borrowed `_meta`, as `resolve` does.
        let read = modern::Request::read(msg.bytes()).expect("read");
        let span = modern::span_within(msg.bytes(), read.meta.expect("meta").as_bytes()).expect("span");
        let at = Some(MetaAt { span, members: read.meta_members() });
        let (out, progress) = without_envelope(&msg, at, &headers);
        let text = out.as_str();
        // The arguments are the client's bytes, untouched.
        assert!(text.contains(r#""arguments":{"x": [1, 2]}"#), "{text}");
        let v: serde_json::Value = serde_json::from_str(text).expect("json");
        let meta = &v["params"]["_meta"];
        assert!(meta.get("io.modelcontextprotocol/protocolVersion").is_none(), "{meta}");
        assert_eq!(meta["io.modelcontextprotocol/logLevel"], "info");
        assert_eq!(meta["traceparent"], "00-ab-cd-01");
        // The client's own paramHeaders are dropped; the real headers ride along.
        assert_eq!(meta["mcp-mesh/paramHeaders"], serde_json::json!({"mcp-param-region": "eu"}));
        let (mesh_token, own) = progress.expect("progress");
        assert_eq!(own, "5");
        assert_eq!(meta["progressToken"].to_string(), mesh_token);
        assert_eq!((v["id"].as_i64(), out.method()), (Some(7), Some("tools/call")));
    }
}
