//! Building HTTP responses: single JSON replies, SSE streams, and transport-level errors.

use crate::session::streams::{priming_id, Event};
use crate::RelayError;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use mesh_protocol::{sse, Message};
use std::time::Duration;
use tokio::sync::mpsc;

pub(super) use crate::{SESSION_HEADER, VERSION_HEADER};

/// One JSON-RPC message as an `application/json` 200.
pub(super) fn json(msg: &Message, session: Option<&str>) -> Response {
    let mut resp = (StatusCode::OK, [(CONTENT_TYPE, "application/json")], msg.bytes().clone()).into_response();
    if let Some(id) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        resp.headers_mut().insert(SESSION_HEADER, id);
    }
    resp
}

/// A request's reply (one JSON-RPC message the session built) as one JSON body: a 200, except a
/// rate-limit refusal — which the session marked with its `retry_after` — as a 429 with
/// `Retry-After`, so that HTTP-level clients and proxies see it too (the body is the same
/// JSON-RPC error, carrying `retryAfterMs`).
pub(super) fn reply(data: Bytes, retry_after: Option<Duration>) -> Response {
    let Some(wait) = retry_after else {
        return (StatusCode::OK, [(CONTENT_TYPE, "application/json")], data).into_response();
    };
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, [(CONTENT_TYPE, "application/json")], data).into_response();
    resp.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
    resp
}

/// A wait as `Retry-After`: whole seconds (RFC 9110 §10.2.3), rounded up, at least one.
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

/// 202 Accepted with no body: the answer to notifications and responses.
pub(super) fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// A transport-level refusal: the right status, and a JSON-RPC error body saying why.
pub(super) fn error(e: &RelayError, id: Option<&str>) -> Response {
    let status = match e.http_status() {
        // Upstream failures of notifications/replies cannot ride in a JSON-RPC reply.
        StatusCode::OK if id.is_none() => StatusCode::BAD_GATEWAY,
        s => s,
    };
    let body = e.to_message(id);
    let mut resp = (status, [(CONTENT_TYPE, "application/json")], body.bytes().clone()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"mcp-mesh\""));
    }
    let retry_after = match e {
        // The mesh is full: sessions end as clients leave or idle out; a client that waits a few
        // seconds, rather than at once, is what lets it recover (RFC 9110 §10.2.3).
        RelayError::TooManySessions(crate::session::caps::SessionCap::Total(_)) => Some(FULL_RETRY_SECS),
        _ => e.retry_after().map(retry_after_secs),
    };
    if let Some(secs) = retry_after {
        resp.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Makes a 401 an OAuth challenge (RFC 6750 §3, RFC 9728 §5.1, MCP authorization): where the
/// protected-resource metadata of `path` is, the scope to ask for, and — when credentials were
/// sent — that they are not valid here. Without an authorization server, a plain realm.
pub(super) fn challenge(resp: &mut Response, metadata_base: Option<&str>, path: &str, headers: &http::HeaderMap) {
    let Some(base) = metadata_base else { return };
    let error = if headers.contains_key(http::header::AUTHORIZATION) { ", error=\"invalid_token\"" } else { "" };
    let value = format!("Bearer resource_metadata=\"{base}{path}\", scope=\"mcp\"{error}");
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
}

/// `Retry-After` of a 503 for a mesh at its total session cap, in seconds.
const FULL_RETRY_SECS: u64 = 5;

/// An SSE response: optional priming event, the events given, then live events until the last.
pub(super) fn sse(stream: u64, prime: bool, first: Vec<Event>, live: Option<mpsc::Receiver<Event>>) -> Response {
    let ended = first.iter().any(|e| e.last);
    let priming = prime.then(|| sse::encode(Some(&priming_id(stream)), None, "", None));
    let head = stream::iter(priming.into_iter().chain(first.into_iter().map(|e| frame(&e))));
    let tail = match live.filter(|_| !ended) {
        Some(rx) => stream::unfold((rx, false), |(mut rx, done)| async move {
            if done {
                return None;
            }
            let ev = rx.recv().await?;
            Some((frame(&ev), (rx, ev.last)))
        })
        .boxed(),
        None => stream::empty().boxed(),
    };
    let body = Body::from_stream(head.chain(tail).map(Ok::<Bytes, std::convert::Infallible>));
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn frame(e: &Event) -> Bytes {
    sse::encode(Some(&e.id()), None, std::str::from_utf8(&e.data).unwrap_or(""), None)
}
