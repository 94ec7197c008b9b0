//! The stateless revision (MCP 2026-07-28) on the same routes as the session-based one.
//!
//! A stateless request names its revision in `MCP-Protocol-Version` and again in
//! `params._meta`; it has no session, so everything a session held travels with each request.
//! The mesh serves it with the same machinery as a session's request: each principal gets a
//! *pooled* session per route, set of client capabilities and client (`pool.rs`), opened on its
//! first request with the upstream's own handshake and reused by every later one — never one
//! upstream handshake per call. What the upstream speaks behind that session is the mesh's
//! business: each upstream is spoken to in its own revision (`upstream::modern` for one that
//! speaks only this one), and replies are made stateless here (`resultType`, caching hints,
//! errors with their HTTP statuses).
//!
//! A stateless request runs through the same driver as a session's (`driver.rs`): Origin/Host
//! and authentication, then transport shape; this module's step is the envelope and the
//! mirrored headers (a header that disagrees with the body is refused: the body is what the mesh
//! governs), then the pooled session — whose route, access and rate limits apply exactly as to a
//! session's request — and its answer in the stateless form.

mod headers;
mod held;
mod input;
mod listen;
mod pool;
mod tasks;

pub(super) use pool::Pool;

use super::driver::{Answer, Flow, Forward};
use super::respond;
use super::streamable_http::Target;
use super::Relay;
use crate::session::{Audited, Use};
use crate::RelayError;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use headers::{params_mirrored, Mirrors};
use held::Held;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};

use mesh_protocol::{codes, modern, version, Kind, Message};
use std::sync::Arc;

/// What a stateless request asked for, once its envelope checked out.
pub(super) struct Ask {
    /// The request's raw id.
    pub id: Held,
    /// Its method (the message's own, shared).
    pub method: Arc<str>,
    /// `clientCapabilities`, raw JSON.
    pub capabilities: Held,
    /// `clientInfo`, raw JSON, when sent.
    pub client_info: Option<Held>,
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
    // Read in a block of its own: what reading needed (the scan of `params`, the headers) is
    // gone before the first await, so the future does not carry it (every request's future is
    // copied as it moves).
    let (ask, meta_at, retry, audited, task_id, task_method) = {
        let id = Held::of(&msg, msg.id().unwrap_or("null"));
        let method = msg.method_shared().unwrap_or_else(|| "".into());
        let params = match modern::Request::read(msg.bytes()) {
            Some(p) => p,
            None => {
                return refused(&id, codes::INVALID_PARAMS, "params._meta is required in this protocol revision", None)
            }
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
        let mirrors = Mirrors::of(headers);
        if let Err(why) = mirrors.method.agrees(Some(&*method)) {
            return refused(&id, codes::HEADER_MISMATCH, &format!("Mcp-Method {why}"), None);
        }
        if modern::needs_name(&method) {
            if let Err(why) = mirrors.name.agrees(params.routed_name(&method)) {
                return refused(&id, codes::HEADER_MISMATCH, &format!("Mcp-Name {why}"), None);
            }
        }
        if let Some(header) = &mirrors.repeated_param {
            return refused(&id, codes::HEADER_MISMATCH, &format!("{header} is given more than once"), None);
        }
        if capabilities.len() > pool::MAX_CAPABILITIES {
            return refused(&id, codes::INVALID_PARAMS, "clientCapabilities is too large", None);
        }
        if meta.client_info.is_some_and(|c| c.len() > pool::MAX_CLIENT_INFO) {
            return refused(&id, codes::INVALID_PARAMS, "clientInfo is too large", None);
        }
        if !capabilities.trim_start().starts_with('{') {
            return refused(&id, codes::INVALID_PARAMS, "clientCapabilities must be an object", None);
        }
        let ask = Ask {
            id,
            method,
            capabilities: Held::of(&msg, capabilities),
            client_info: meta.client_info.map(|c| Held::of(&msg, c)),
            log_level: meta.log_level.map(|l| l.into_owned()),
            param_headers: mirrors.params,
            endpoint: target.path(),
        };
        let task_method = tasks::METHODS.contains(&&*ask.method);
        if modern::REMOVED.contains(&&*ask.method) || (ask.method.starts_with("tasks/") && !task_method) {
            return refused(&ask.id, codes::METHOD_NOT_FOUND, &format!("Method not found: {}", ask.method), None);
        }
        // Where `_meta` sits in the body, from the borrowed value itself: the rewrite on the way to
        // the pooled session then scans nothing again.
        let meta_at = params.meta.and_then(|m| modern::span_within(msg.bytes(), m.as_bytes()));
        let meta_at = meta_at.map(|span| MetaAt { span, members: params.meta_members() });
        // A retry carrying answers goes to its parked call; any other requestState means nothing.
        let retry = params.request_state.as_deref().filter(|_| modern::MAY_NEED_INPUT.contains(&&*ask.method));
        let retry = retry.map(|state| (state.to_string(), params.input_responses.map(str::to_string)));
        // Only for a request that goes on to a session (not a retry, a task's request, or what the
        // mesh answers itself): the arguments are copied for it.
        let answered_here = matches!(&*ask.method, "server/discover" | "subscriptions/listen");
        let audited =
            (retry.is_none() && !task_method && !answered_here).then(|| audited_by(&params, &ask.method)).flatten();
        let task_id = params.task_id.as_deref().map(str::to_string);
        (ask, meta_at, retry, audited, task_id, task_method)
    };
    if let Some((state, responses)) = retry {
        // Boxed, like every path a request rarely takes: a future is as large as its largest
        // await, and the whole of it is copied each time it moves (docs/PERFORMANCE.md).
        return respond_with(Box::pin(input::retry(relay, &principal, &ask, &msg, &state, responses)).await);
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
    let holder =
        task.as_ref().and_then(|t| pool::holding(relay, (&t.holder.id, t.holder.slot), &principal, &ask.endpoint));
    let session = match (holder, &task) {
        (Some(s), _) => s,
        // Its session has ended, and the task with it: another would cost a handshake (a child)
        // to ask for what is gone, and might know another task by a reused id.
        (None, Some(t)) if t.holder.bound => return refused(&ask.id, codes::INVALID_PARAMS, "Unknown task", None),
        (None, _) => match pool::session(relay, target, &principal, (&ask, &msg, audited.as_ref())).await {
            Ok(s) => s,
            Err(e) => return respond_with(refusal(&ask.id, &e)),
        },
    };
    let mut msg = msg;
    if let (Some(owned), Some(handle)) = (task, task_id) {
        // Policy may have changed since the task was created: its tool must still be callable
        // (a virtual MCP's merged list, dropped while it is rebuilt, is built again to say so).
        let usable = match session.tasks {
            true => session.session.may_still("tools/call", &owned.tool).await,
            false => Use::Unknown,
        };
        if usable != Use::Allowed {
            if session.tasks {
                // Refused for its tool, not for want of the task: the audit trail says why.
                let why = match usable {
                    Use::Denied => format!("the rules no longer allow the task's tool {}", owned.tool),
                    _ => format!("the task's tool {} is no longer served here", owned.tool),
                };
                session.session.audit_refused(&msg, Some(&owned.tool), usable.outcome(), &why);
            }
            return refused(&ask.id, codes::INVALID_PARAMS, "Unknown task", None);
        }
        // The upstream knows the task by its own id; the client, by the mesh's handle.
        match modern::with_task_id(&msg, "params", &owned.upstream) {
            Some(m) => msg = m,
            None => return refused(&ask.id, codes::INVALID_PARAMS, "params.taskId is required", None),
        }
        let tasked = Tasked::Addressed { handle, upstream: owned.upstream, tool: owned.tool };
        return Ok(forward(session.session, principal, ask, (msg, None, None), None, tasked));
    }
    Ok(match &*ask.method {
        "server/discover" => Flow::Respond(discover(&ask, &session)),
        "subscriptions/listen" => Flow::Respond(listen::open(relay, &session, &ask, &msg)),
        _ => {
            if &*ask.method == "tools/call" {
                if let Err(why) = params_mirrored(headers, &session.params, &msg) {
                    return refused(&ask.id, codes::HEADER_MISMATCH, &why, None);
                }
            }
            let learn = (&*ask.method == "tools/list").then(|| session.params.clone());
            let tasked = match &*ask.method == "tools/call" && session.tasks {
                true => {
                    let bound = session.session.holds_its_tasks();
                    let holder = tasks::Holder { id: session.session.id.clone(), slot: session.slot, bound };
                    Tasked::MayCreate(relay.modern.tasks.clone(), holder)
                }
                false => Tasked::No,
            };
            forward(session.session, principal, ask, (msg, meta_at, audited), learn, tasked)
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
    /// Pooled sessions, by key, endpoint, capabilities and client info.
    pub(super) pool: Pool,
    /// Calls waiting for their client's answers, by request state.
    pub(super) parked: input::Parking,
    /// Whose each task is (the tasks extension).
    pub(super) tasks: Arc<tasks::Tasks>,
    /// The resources listeners had each pooled session subscribe to.
    watches: listen::Watches,
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
        self.watches.prune(relay);
        self.parked.expire();
        self.tasks.expire();
    }
}

/// Where `params._meta` sits in a request, and where its members sit in it when the scan that
/// found it could say.
struct MetaAt {
    span: std::ops::Range<usize>,
    members: Option<modern::MetaMembers>,
}

/// A request as it goes to its pooled session, and what its answer needs. `meta_at` is where
/// `params._meta` sits in `msg`, and `audited` what its audit row names, when the caller knows.
fn forward(
    session: Arc<crate::session::Session>,
    principal: mesh_core::Principal,
    ask: Ask,
    (msg, meta_at, audited): (Message, Option<MetaAt>, Option<Audited>),
    learn: Option<Arc<pool::ParamHeaders>>,
    tasked: Tasked,
) -> Flow {
    let (forwarded, progress, audited) = for_session(&msg, meta_at, &ask.param_headers, audited);
    let item = match &tasked {
        Tasked::Addressed { tool, .. } => Some(tool.clone()),
        _ => None,
    };
    let answer = Answer::Stateless(Box::new(Answering {
        principal,
        ask,
        original: msg,
        progress: progress.map(|(mesh, own)| (mesh, Some(own))),
        learn,
        tasked,
    }));
    Flow::Forward(Forward { session, msg: forwarded, item, audited, answer })
}

/// What the audit row of a request to `method` names, read by the scan that read its envelope:
/// the session need not read `params` again.
fn audited_by(params: &modern::Request<'_>, method: &str) -> Option<Audited> {
    params.audited(method).map(|(name, arguments)| Audited {
        name: name.map(str::to_string),
        arguments: arguments.map(str::to_string),
        progress: None,
    })
}

/// `msg` as its pooled session receives it ([`without_envelope`]: the envelope is the mesh's
/// business, the upstream behind a pooled session learnt it at the handshake, and a dual-era
/// upstream seeing it would answer in the stateless form on a session), the progress tokens, and
/// what its audit row names (`audited`, read from `msg`) as the session would read it.
fn for_session(
    msg: &Message,
    meta_at: Option<MetaAt>,
    param_headers: &[(String, String)],
    audited: Option<Audited>,
) -> (Message, Option<(String, String)>, Option<Audited>) {
    match without_envelope(msg, meta_at, param_headers) {
        // Only `_meta` changed: the rest reads as it did, and the progress token the session
        // sees is the mesh's own, if any.
        Some((out, progress)) => {
            let own = progress.as_ref().map(|(own, _)| own.clone());
            (out, progress, audited.map(|a| Audited { progress: own, ..a }))
        }
        None => (msg.clone(), None, None),
    }
}

/// What the answer to a stateless request needs besides the session's events.
pub(super) struct Answering {
    principal: mesh_core::Principal,
    ask: Ask,
    /// The request as the client sent it (a retry must match it).
    original: Message,
    /// The mesh's progress token and the client's, when it sent one (a retry may take the
    /// client's back: `None`, and progress is no longer relayed).
    progress: Option<(String, Option<String>)>,
    learn: Option<Arc<pool::ParamHeaders>>,
    tasked: Tasked,
}

/// Step 5 of the driver for a stateless request: its events in the stateless form, the upstream's
/// questions as input-required results. The follower's own future, not one wrapping it: the
/// driver's future would carry (and copy) both.
pub(super) fn answer<'a>(
    relay: &'a Arc<Relay>,
    session: &Arc<crate::session::Session>,
    (stream, rx): (u64, tokio::sync::mpsc::Receiver<crate::session::streams::Event>),
    a: Box<Answering>,
) -> impl std::future::Future<Output = Response> + 'a {
    input::drive(relay, input::Pending::new(session.clone(), (stream, rx), a))
}

/// `msg` as it goes on a pooled session: without the revision's per-request keys in
/// `params._meta` (the upstream learnt them at the handshake; a dual-era upstream seeing them
/// would answer in the stateless form on a session), except the log level, which a stateless
/// upstream takes per request; with a progress token of the mesh's own (other callers share the
/// session and may pick the same token), returned with the client's, both raw JSON; and with the
/// client's `Mcp-Param-*` headers in `_meta[PARAM_HEADERS]`, which the link to a stateless
/// upstream turns back into headers (an intermediary forwards them untouched). Answers a first
/// call carries stay: a stateless upstream may use them, a session-based one ignores them. A
/// `_meta` left empty goes altogether: the upstream reads what a session's client would send.
/// `None` when the request goes as it is: it has no `_meta`, or one that does not read as an
/// object, or the rewritten request would not parse.
fn without_envelope(
    msg: &Message,
    meta_at: Option<MetaAt>,
    param_headers: &[(String, String)],
) -> Option<(Message, Option<(String, String)>)> {
    use crate::upstream::modern::PARAM_HEADERS;
    // Only `_meta` is read and rewritten; the rest of the request (its arguments may be large)
    // is spliced around it byte for byte.
    let raw = msg.bytes();
    let (meta_at, members) = match meta_at.filter(|m| m.span.end <= raw.len()) {
        Some(at) => (at.span, at.members),
        None => {
            let params = modern::member_span(raw, "params")?;
            let at = modern::member_span(&raw[params.clone()], "_meta")?;
            (params.start + at.start..params.start + at.end, None)
        }
    };
    let meta_bytes = &raw[meta_at.clone()];
    if param_headers.is_empty() {
        // The common case: members dropped by copying the others, nothing parsed again — by the
        // spans the scan found, else by a walk. A progress token is rewritten by value, below.
        const PROGRESS: &[u8] = b"progressToken";
        let kept: Option<std::borrow::Cow<'_, [u8]>> = match members {
            Some(m) if !m.names(meta_bytes).any(|n| n == PROGRESS) => match m.names(meta_bytes).any(goes_upstream) {
                // The usual envelope: none of it goes on, and nothing is built to say so.
                false => Some(b"{}".as_slice().into()),
                true => m.kept(meta_bytes, goes_upstream).map(Into::into),
            },
            // A name written with escapes may spell `progressToken`: only serde, below, reads it.
            None if !modern::has_member(meta_bytes, "progressToken") && memchr::memchr(b'\\', meta_bytes).is_none() => {
                modern::keep_members(meta_bytes, goes_upstream).map(Into::into)
            }
            _ => None,
        };
        if let Some(k) = kept {
            let gone = (*k == *b"{}").then(|| modern::member_cut(raw, "_meta", meta_at.clone())).flatten();
            let out = match gone {
                Some(member) => msg.splice(member, b""),
                None => msg.splice(meta_at.clone(), &k),
            };
            if let Some(out) = out {
                return Some((out, None));
            }
        }
    }
    let mut meta = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&raw[meta_at.clone()]).ok()?;
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
    Message::parse(out.into()).ok().map(|m| (m, progress))
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
    MayCreate(Arc<tasks::Tasks>, tasks::Holder),
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
        // The earlier revision's experimental tasks are another wire. Of the extensions, the
        // mesh relays only tasks: an extension it does not know might carry what its policy
        // cannot see. `resources.subscribe` stays where the upstream offers it: a listen's
        // `resourceSubscriptions` carry it (`listen.rs`).
        caps.remove("tasks");
        let tasks = caps.get("extensions").and_then(|e| e.get(tasks::EXTENSION)).cloned();
        let tasks = tasks.filter(|_| session.tasks);
        caps.remove("extensions");
        if let Some(t) = tasks {
            caps.insert("extensions".into(), serde_json::json!({ tasks::EXTENSION: t }));
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
        let (out, progress) = without_envelope(&msg, None, &[]).expect("rewritten");
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
            let (out, _) = without_envelope(&msg, Some(MetaAt { span, members: Some(members) }), &[]).expect("cut");
            let walked = without_envelope(&msg, None, &[]).expect("cut").0;
            assert_eq!(out.as_str(), walked.as_str(), "{sent}");
        }
        // A progress token is the mesh's to rewrite: not copied as it is.
        let sent =
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":1},"name":"t"}}"#;
        let msg = Message::parse(Bytes::from_static(sent.as_bytes())).expect("message");
        let read = modern::Request::read(msg.bytes()).expect("read");
        let span = modern::span_within(msg.bytes(), read.meta.expect("meta").as_bytes()).expect("span");
        let at = Some(MetaAt { span, members: Some(read.meta_members().expect("members")) });
        assert!(without_envelope(&msg, at, &[]).expect("rewritten").1.is_some());
    }

    /// `msg` on its way to its pooled session as `resolve` sends it, with the audit row's reading.
    fn as_resolved(sent: &str) -> (Message, Message, Option<Audited>) {
        let msg = Message::parse(Bytes::from(sent.to_string())).expect("message");
        let read = modern::Request::read(msg.bytes()).expect("read");
        let span = read.meta.and_then(|m| modern::span_within(msg.bytes(), m.as_bytes()));
        let at = span.map(|span| MetaAt { span, members: read.meta_members() });
        let audited = audited_by(&read, msg.method().unwrap_or_default());
        drop(read);
        let (out, _, audited) = for_session(&msg, at, &[], audited);
        (msg, out, audited)
    }

    #[test]
    fn an_envelope_alone_leaves_no_meta_behind() {
        let envelope =
            r#""io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}"#;
        for (sent, expected) in [
            (
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"_meta":{{{envelope}}},"name":"echo","arguments":{{}}}}}}"#
                ),
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
            ),
            (
                format!(
                    r#"{{"params":{{"name":"echo","_meta":{{{envelope}}}}},"jsonrpc":"2.0","id":"x","method":"tools/call"}}"#
                ),
                r#"{"params":{"name":"echo"},"jsonrpc":"2.0","id":"x","method":"tools/call"}"#,
            ),
            (
                format!(r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{{"_meta":{{{envelope}}}}}}}"#),
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#,
            ),
        ] {
            let (sent, out, _) = as_resolved(&sent);
            assert_eq!(out.as_str(), expected);
            assert_eq!((out.id(), out.method()), (sent.id(), sent.method()));
        }
    }

    #[test]
    fn what_the_ingress_read_for_the_audit_row_is_what_the_session_would_read() {
        let envelope =
            r#""io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}"#;
        let cases = [
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"_meta":{{{envelope}}},"name":"echo","arguments":{{"text":"a \"b\""}}}}}}"#
            ),
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"_meta":{{{envelope},"progressToken":"p"}},"name":"echo"}}}}"#
            ),
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"_meta":{{{envelope},"traceparent":"t"}},"arguments":[1],"name":"echo"}}}}"#
            ),
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{{"_meta":{{{envelope}}},"name":"n","uri":"file:///a"}}}}"#
            ),
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"_meta":{{{envelope}}}}}}}"#),
        ];
        for sent in &cases {
            let (_, out, audited) = as_resolved(sent);
            assert_eq!(audited.expect("read by the scan"), Audited::read(&out), "{sent}");
        }
        // Read by serde (a name with escapes): the session reads `params` itself.
        let escaped = cases[0].replace(r#""name":"echo""#, r#""name":"ec\u0068o""#);
        assert_eq!(as_resolved(&escaped).2, None);
    }

    #[test]
    fn a_progress_token_spelt_with_escapes_is_still_the_meshs_to_rewrite() {
        let sent = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"progress\u0054oken":7},"name":"t"}}"#;
        let msg = Message::parse(Bytes::from_static(sent.as_bytes())).expect("message");
        let read = modern::Request::read(msg.bytes()).expect("read");
        let span = modern::span_within(msg.bytes(), read.meta.expect("meta").as_bytes()).expect("span");
        let at = Some(MetaAt { span, members: read.meta_members() });
        let (out, progress) = without_envelope(&msg, at, &[]).expect("rewritten");
        let (mesh_token, own) = progress.expect("the client's token is replaced");
        assert_eq!(own, "7");
        let v: serde_json::Value = serde_json::from_str(out.as_str()).expect("json");
        assert_eq!(v["params"]["_meta"]["progressToken"].to_string(), mesh_token);
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
        let (out, progress) = without_envelope(&msg, at, &headers).expect("rewritten");
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
