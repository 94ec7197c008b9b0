//! The Streamable HTTP endpoint (MCP 2025-11-25, basic/transports): POST, GET and DELETE.

use super::driver::{self, Answer, Flow, Forward, Revision};
use super::respond::{self, SESSION_HEADER, VERSION_HEADER};
use super::{guard, Relay};
use crate::session::{RouteKind as SessionKind, Session};
use crate::upstream::{self, local::LocalLink, Link};
use crate::RelayError;
use axum::body::Body;
use axum::extract::Request;
use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use mesh_core::policy::RouteKind;
use mesh_core::Principal;
use mesh_protocol::{version, Kind, Message};
use std::sync::Arc;

/// What a URL addresses.
pub(super) enum Target {
    /// `/mcp`: the mesh's own management server.
    Management,
    /// `/mcp/{route}`: a connection, by slug or id.
    Route(String),
    /// `/mcp/gateway/{gateway}`: a virtual MCP, by slug or id.
    Gateway(String),
}

pub(super) async fn management(State(relay): State<Arc<Relay>>, req: Request) -> Response {
    dispatch(relay, Target::Management, req).await
}

pub(super) async fn connection(State(relay): State<Arc<Relay>>, Path(route): Path<String>, req: Request) -> Response {
    dispatch(relay, Target::Route(route), req).await
}

pub(super) async fn gateway(State(relay): State<Arc<Relay>>, Path(gateway): Path<String>, req: Request) -> Response {
    dispatch(relay, Target::Gateway(gateway), req).await
}

/// Takes the request whole (not `Method` + `HeaderMap` + `Body` extractors): axum's `HeaderMap`
/// extractor clones the map, once per call.
pub(super) async fn dispatch(relay: Arc<Relay>, target: Target, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (method, headers) = (parts.method, parts.headers);
    // The revision is told from the headers (spec basic/versioning): a stateless request names
    // one that no earlier revision defined, and has no session; the body must then agree
    // (`modern::resolve`). A request on a session stays a session's, whatever version it names.
    let modern = headers
        .get(VERSION_HEADER)
        .filter(|_| !headers.contains_key(SESSION_HEADER))
        .and_then(|v| v.to_str().ok())
        .filter(|v| mesh_protocol::modern::is_modern_header(v));
    let result = match (method, modern) {
        (Method::POST, Some(v)) => driver::post(&relay, &target, &headers, body, Revision::Stateless(v)).await,
        // The stateless revision has no GET stream and no session to delete.
        (_, Some(_)) => {
            let mut r = axum::response::IntoResponse::into_response(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            return r;
        }
        (method, None) => match method {
            Method::POST => driver::post(&relay, &target, &headers, body, Revision::Session).await,
            Method::GET => get(&relay, &target, &headers),
            Method::DELETE => delete(&relay, &target, &headers),
            _ => return StatusCode::METHOD_NOT_ALLOWED.into_response_with_allow(),
        },
    };
    result.unwrap_or_else(|e| {
        tracing::debug!(error = %e, fault = ?e.fault(), "request refused");
        let mut resp = respond::error(&e, None);
        if resp.status() == StatusCode::UNAUTHORIZED {
            respond::challenge(&mut resp, relay.cfg.oauth_metadata.as_deref(), &target.path(), &headers);
        }
        resp
    })
}

impl Target {
    /// Whether `p` may be used here: any API key; an OAuth token only at the route it was
    /// issued for (`Principal::audience`). Compared without building the route's name: this
    /// runs on every request.
    fn admits(&self, p: &Principal) -> bool {
        match (p.audience.as_deref(), self) {
            (None, _) => true,
            (Some(a), Target::Management) => a.is_empty(),
            (Some(a), Target::Route(r)) => a == r,
            (Some(a), Target::Gateway(g)) => a.strip_prefix("gateway/") == Some(g.as_str()),
        }
    }

    /// The URL path of this endpoint, canonical (no trailing slash), escaped for a URL. Built in
    /// one allocation: a stateless request needs it on every call.
    pub(super) fn path(&self) -> String {
        let (prefix, name) = match self {
            Target::Management => return "/mcp".into(),
            Target::Route(r) => ("/mcp/", r),
            Target::Gateway(g) => ("/mcp/gateway/", g),
        };
        let mut out = String::with_capacity(prefix.len() + name.len());
        out.push_str(prefix);
        push_segment(&mut out, name);
        out
    }
}

/// Appends `s` percent-encoded as one path segment (RFC 3986 unreserved characters kept), so
/// that a route name a client sent can never break out of a URL or a quoted header parameter.
fn push_segment(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.extend(['%', HEX[usize::from(b >> 4)] as char, HEX[usize::from(b & 15)] as char]);
        }
    }
}

trait AllowHeader {
    fn into_response_with_allow(self) -> Response;
}

impl AllowHeader for StatusCode {
    fn into_response_with_allow(self) -> Response {
        let mut r = axum::response::IntoResponse::into_response(self);
        r.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static("GET, POST, DELETE"));
        r
    }
}

/// Steps 1 and 2 of the pipeline: rebinding defence, then authentication. A request without
/// credentials is admitted only to a connection opened to anonymous callers; a request with bad
/// credentials never falls back to anonymous, and management is never anonymous.
pub(super) fn admit(relay: &Relay, headers: &HeaderMap, target: &Target) -> Result<Principal, RelayError> {
    guard::origin_and_host(&relay.cfg, headers)?;
    match (guard::bearer(headers), target) {
        // An OAuth token is bound to the one resource it was issued for (RFC 8707): anywhere
        // else it is as good as no token, and the client is sent to discovery again.
        (Some(token), _) => match relay.auth.authenticate(token) {
            Some(p) if target.admits(&p) => Ok(p),
            _ => Err(RelayError::Unauthorized),
        },
        (None, Target::Route(route)) if headers.get(http::header::AUTHORIZATION).is_none() => {
            relay.auth.anonymous(route).ok_or(RelayError::Unauthorized)
        }
        (None, Target::Gateway(g)) if headers.get(http::header::AUTHORIZATION).is_none() => {
            relay.auth.anonymous(&format!("gateway/{g}")).ok_or(RelayError::Unauthorized)
        }
        _ => Err(RelayError::Unauthorized),
    }
}

/// Step 3 of the driver for a session's client: an `initialize` opens a session and is answered
/// here; anything else belongs to the session it names, which must be this principal's, at
/// this route.
pub(super) async fn resolve(
    relay: &Arc<Relay>,
    target: &Target,
    headers: &HeaderMap,
    principal: Principal,
    msg: Message,
) -> Result<Flow, RelayError> {
    if msg.kind() == Kind::Request && msg.method() == Some("initialize") {
        // Boxed: the handshake's future is large, and every request's future would carry it.
        return Ok(Flow::Respond(Box::pin(initialize(relay, target, principal, msg)).await));
    }
    let session = session_for(relay, headers, &principal, target)?;
    if let Some(v) = headers.get(VERSION_HEADER) {
        let v = v.to_str().unwrap_or("");
        if !version::is_supported(v) {
            return Err(RelayError::BadProtocolVersion(v.chars().take(40).collect()));
        }
    }
    Ok(match msg.kind() {
        Kind::Request => Flow::Forward(Forward { session, msg, item: None, audited: None, answer: Answer::Session }),
        Kind::Notification => Flow::Respond(session.notify(&msg).await.map(|_| respond::accepted())?),
        Kind::Response | Kind::Error => Flow::Respond(session.reply(&msg).await.map(|_| respond::accepted())?),
    })
}

/// Answers a request: one JSON body when the reply is the first thing the upstream says (the
/// fast, common case), else an SSE stream carrying everything related, ending with the reply.
pub(super) async fn reply_stream(
    session: &Session,
    stream: u64,
    mut rx: tokio::sync::mpsc::Receiver<crate::session::streams::Event>,
) -> Response {
    match rx.recv().await {
        Some(ev) if ev.last => {
            // Answered as a plain JSON body: no event id ever reached the client, so there is
            // nothing it could resume; keeping the stream would only hold memory.
            session.forget_stream(stream);
            respond::reply(ev.data, ev.retry_after)
        }
        Some(ev) => respond::sse(stream, version::primes_sse(&session.version()), vec![ev], Some(rx)),
        // Cancelled by the client before anything came back: nothing will be sent.
        None => respond::sse(stream, false, Vec::new(), None),
    }
}

async fn initialize(relay: &Arc<Relay>, target: &Target, principal: Principal, msg: Message) -> Response {
    let id = msg.id().map(str::to_string);
    match open_session(relay, target, principal, &msg, false).await {
        Ok(Opened::Session(session, reply)) => {
            tracing::info!(session = %session.id, route = %session.label, version = %session.version(), "session opened");
            respond::json(&reply, Some(&session.id))
        }
        Ok(Opened::Refused(reply)) => {
            tracing::info!(reply = %reply.as_str().chars().take(300).collect::<String>(), "initialize failed");
            respond::json(&reply, None)
        }
        Err(e) => {
            tracing::info!(error = %e, "initialize failed");
            match e {
                // Not-found routes are transport-level (404); upstream trouble is a JSON-RPC error.
                RelayError::RouteNotFound(_) => respond::error(&e, id.as_deref()),
                _ if e.http_status() == StatusCode::OK => respond::json(&e.to_message(id.as_deref()), None),
                _ => respond::error(&e, id.as_deref()),
            }
        }
    }
}

/// How an initialize ended when it reached the upstream.
pub(super) enum Opened {
    /// A live session and the (negotiated) InitializeResult.
    Session(Arc<Session>, Message),
    /// A JSON-RPC error reply and no session: the upstream's own refusal, or the mesh's error for
    /// an upstream that died or timed out during the handshake, each with its own code.
    Refused(Message),
}

pub(super) async fn open_session(
    relay: &Arc<Relay>,
    target: &Target,
    principal: Principal,
    msg: &Message,
    stateless: bool,
) -> Result<Opened, RelayError> {
    // Before anything that costs: resolving reads the database and the vault, connecting may
    // spawn a child. The rate first, so that a flood of initializes never reaches the table's lock.
    // Management sessions start no upstream and the CLI opens one per command: counted against
    // the caps, not the rate.
    let limits = relay.cfg.session_limits();
    if !matches!(target, Target::Management) {
        relay.opens.take(&principal, limits.opens_per_minute, std::time::Instant::now()).map_err(|retry_after| {
            let limit = format!("sessions opened per API key: {} a minute", limits.opens_per_minute);
            RelayError::RateLimited { limit, retry_after }
        })?;
    }
    let management = matches!(target, Target::Management);
    let slot = relay.sessions.reserve(&principal, &limits, management).map_err(RelayError::TooManySessions)?;
    let session = match target {
        Target::Management => {
            let s = Session::new(
                principal.clone(),
                "",
                "management",
                relay.cfg.management_timeout,
                SessionKind::Management,
                relay.audit.clone(),
            );
            let link: Link = Arc::new(LocalLink::new(relay.management.clone(), principal, s.sink()));
            s.set_link(link);
            s
        }
        Target::Gateway(g) => {
            let def = relay.routes.resolve_gateway(&principal, g).await?;
            // A key narrowed away from this gateway is told it does not exist, as for any other.
            if !relay.governor.access(&principal).allows_route(RouteKind::Gateway, &def.slug) {
                return Err(RelayError::RouteNotFound(g.chars().take(64).collect()));
            }
            let prepare = |s: &Session| {
                s.govern(relay.governor.clone());
                // A member's refused token: renewed for its next calls, the session goes on.
                let (routes, who) = (relay.routes.clone(), s.principal.clone());
                s.on_refused(move |connection| {
                    let (routes, who) = (routes.clone(), who.clone());
                    Box::pin(async move { routes.refused(&who, &connection).await })
                });
            };
            let (s, reply) = Session::open_gateway(
                principal,
                &def,
                relay.audit.clone(),
                prepare,
                &relay.http,
                msg,
                stateless,
                relay.cfg.code_limits,
            )
            .await?;
            relay.sessions.insert(slot, s.clone());
            return Ok(Opened::Session(s, reply));
        }
        Target::Route(route) => {
            let resolved = relay.routes.resolve(&principal, route).await?;
            if !relay.governor.access(&principal).allows_route(RouteKind::Connection, &resolved.slug) {
                return Err(RelayError::RouteNotFound(route.chars().take(64).collect()));
            }
            let s = Session::new(
                principal,
                &resolved.id,
                &resolved.slug,
                resolved.spec.timeout,
                SessionKind::Connection,
                relay.audit.clone(),
            );
            s.govern(relay.governor.clone());
            let (routes, who, id) = (relay.routes.clone(), s.principal.clone(), resolved.id.clone());
            s.on_refused({
                let (routes, who) = (routes.clone(), who.clone());
                move |connection| {
                    let (routes, who) = (routes.clone(), who.clone());
                    Box::pin(async move { routes.refused(&who, &connection).await })
                }
            });
            s.on_step_up({
                let (routes, who, id) = (routes.clone(), who.clone(), id.clone());
                move |challenge| {
                    let (routes, who, id) = (routes.clone(), who.clone(), id.clone());
                    Box::pin(async move { routes.step_up(&who, &id, &challenge).await })
                }
            });
            s.on_authorized(move |elicitation| {
                let (routes, who) = (routes.clone(), who.clone());
                Box::pin(async move { routes.authorized(&who, &elicitation).await })
            });
            let link = match stateless {
                true => upstream::connect_stateless(&resolved.spec, &relay.http, s.sink()).await?,
                false => upstream::connect(&resolved.spec, &relay.http, s.sink()).await?,
            };
            s.set_link(link);
            s
        }
    };
    let mut result = handshake(&session, msg).await;
    // A session-based client at an upstream that speaks only the stateless revision: the
    // handshake fails there, and the link is replaced by one that bridges the two.
    if !matches!(&result, Ok(r) if r.kind() == Kind::Response) {
        if let (Target::Route(route), false) = (target, stateless) {
            if let Some(link) = stateless_fallback(relay, &session, route).await {
                session.close().await;
                session.set_link(link);
                result = handshake(&session, msg).await;
            }
        }
    }
    match result {
        Ok(reply) if reply.kind() == Kind::Response => {
            relay.sessions.insert(slot, session.clone());
            Ok(Opened::Session(session, reply))
        }
        Ok(error_reply) => {
            session.close().await;
            Ok(Opened::Refused(error_reply))
        }
        Err(e) => {
            session.close().await;
            Err(e)
        }
    }
}

/// Forwards the client's `initialize` on `session` and returns the upstream's reply, negotiated.
async fn handshake(session: &Session, msg: &Message) -> Result<Message, RelayError> {
    let (_, mut rx) = session.request(msg).await?;
    // Nothing may precede an initialize result; anything that does is dropped.
    let reply = loop {
        match rx.recv().await {
            Some(ev) if ev.last => break Message::parse(ev.data)?,
            Some(_) => continue,
            None => return Err(RelayError::UpstreamUnavailable("the upstream went away during initialize".into())),
        }
    };
    if reply.kind() == Kind::Error {
        return Ok(reply);
    }
    negotiate(session, reply)
}

/// A link bridging to `route`'s upstream when it speaks only the stateless revision (over
/// Streamable HTTP or stdio).
async fn stateless_fallback(relay: &Arc<Relay>, session: &Arc<Session>, route: &str) -> Option<Link> {
    let resolved = relay.routes.resolve(&session.principal, route).await.ok()?;
    let link = upstream::bridge_link(&resolved.spec, &relay.http, session.sink()).await?.ok()?;
    tracing::info!(session = %session.id, route = %session.label, "the upstream speaks only the stateless revision; bridging");
    Some(link)
}

/// The downstream session speaks what the upstream negotiated when the mesh supports it too;
/// otherwise the mesh answers with its own latest revision and bridges the difference.
fn negotiate(session: &Session, reply: Message) -> Result<Message, RelayError> {
    let mut result: serde_json::Value =
        reply.result().ok_or_else(|| RelayError::UpstreamProtocol("initialize result is not an object".into()))?;
    let upstream = result.get("protocolVersion").and_then(|v| v.as_str()).unwrap_or("").to_string();
    if version::is_supported(&upstream) {
        session.set_version(&upstream);
        return Ok(reply);
    }
    result["protocolVersion"] = version::LATEST.into();
    session.set_version(version::LATEST);
    Ok(Message::response(reply.id().unwrap_or("null"), &result))
}

fn session_for(
    relay: &Relay,
    headers: &HeaderMap,
    principal: &Principal,
    target: &Target,
) -> Result<Arc<Session>, RelayError> {
    let id = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).ok_or(RelayError::SessionRequired)?;
    let session = relay.sessions.get(id).filter(|s| !s.is_pooled()).ok_or(RelayError::SessionNotFound)?;
    // Bound to the key that created it: another key, even of the same user, gets a plain 404.
    if session.principal.key_id != principal.key_id {
        return Err(RelayError::SessionNotFound);
    }
    // Same key, but its user's role changed since: the session was opened by someone with
    // other rights (a demoted admin's management session must not keep admin powers). It ends,
    // and the client starts a new one as who it is now.
    if !session.principal.same_rights(principal) {
        tracing::info!(session = %session.id, "the key's role changed; ending its session");
        relay.sessions.remove(&session.id);
        tokio::spawn(async move { session.close().await });
        return Err(RelayError::SessionNotFound);
    }
    let same_target = match target {
        Target::Management => session.route_kind == SessionKind::Management,
        Target::Route(r) => {
            session.route_kind == SessionKind::Connection && (session.route == *r || session.label == *r)
        }
        Target::Gateway(g) => {
            session.route_kind == SessionKind::Gateway && (session.route == *g || session.label == *g)
        }
    };
    if !same_target {
        return Err(RelayError::SessionNotFound);
    }
    if session.is_dead() {
        // A strict gateway that lost a member ended the session: the client must start over.
        relay.sessions.remove(&session.id);
        tokio::spawn(async move { session.close().await });
        return Err(RelayError::SessionNotFound);
    }
    Ok(session)
}

fn get(relay: &Arc<Relay>, target: &Target, headers: &HeaderMap) -> Result<Response, RelayError> {
    let principal = admit(relay, headers, target)?;
    guard::accepts_sse(headers)?;
    let session = session_for(relay, headers, &principal, target)?;
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let (events, live) = session
        .listen(last)
        .ok_or_else(|| RelayError::BadRequest("Last-Event-ID names no stream of this session".into()))?;
    let prime = last.is_none() && version::primes_sse(&session.version());
    Ok(respond::sse(crate::session::streams::STANDALONE, prime, events, live))
}

fn delete(relay: &Arc<Relay>, target: &Target, headers: &HeaderMap) -> Result<Response, RelayError> {
    let principal = admit(relay, headers, target)?;
    let session = session_for(relay, headers, &principal, target)?;
    relay.sessions.remove(&session.id);
    tracing::info!(session = %session.id, route = %session.label, "session ended by client");
    // Stopping a child process can take seconds; the client need not wait for it.
    tokio::spawn(async move { session.close().await });
    Ok(axum::response::IntoResponse::into_response(StatusCode::OK))
}

pub(super) async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<bytes::Bytes, RelayError> {
    let declared =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(RelayError::PayloadTooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| RelayError::PayloadTooLarge(limit))
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn an_endpoint_path_escapes_what_a_client_sent() {
        let cases = [
            (Target::Management, "/mcp"),
            (Target::Route("echo-1.a_b~".into()), "/mcp/echo-1.a_b~"),
            (Target::Route("a/b c\"é".into()), "/mcp/a%2Fb%20c%22%C3%A9"),
            (Target::Gateway("trio".into()), "/mcp/gateway/trio"),
            (Target::Gateway("..%".into()), "/mcp/gateway/..%25"),
        ];
        for (target, path) in cases {
            assert_eq!(target.path(), path);
        }
    }
}
