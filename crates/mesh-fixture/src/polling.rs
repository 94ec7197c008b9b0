//! SEP-1699 polling, server side: the POST stream of a `test_reconnection` call is closed right
//! after its priming event, and the rest of that stream is held here until the client comes back
//! with `GET` + `Last-Event-ID` (the `server-sse-polling` scenario).
//!
//! Why here and not in rmcp: rmcp ends a request's stream and forgets it as soon as the response
//! is written, so a client that resumes *after* the tool finished (an SDK client honouring the
//! priming event's `retry`, or a relay in between) would find nothing to resume. Holding the
//! events in this layer makes resumption independent of timing: rmcp still sees an ordinary,
//! fully read stream; the client sees the stream end early and gets the rest on resume.
//!
//! Only the polling tool is cut; every other request streams straight through.

use crate::tools::RECONNECTION;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{header, HeaderMap, Method, StatusCode};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Largest POST body this layer buffers to look for the polling tool (rmcp's own limit is the
/// same order); larger bodies are refused with 413, which no conformance request comes near.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// How long a cut stream stays resumable after its last event.
const RETAIN: Duration = Duration::from_secs(60);

const SESSION_HEADER: &str = "mcp-session-id";
const LAST_EVENT_ID: &str = "last-event-id";

/// One SSE event as rmcp wrote it (terminator included), and its `id:` if it had one.
#[derive(Debug, Clone)]
struct Event {
    id: Option<String>,
    raw: Bytes,
}

/// Everything a cut stream has produced so far.
#[derive(Debug, Clone, Default)]
struct Held {
    events: Vec<Event>,
    /// rmcp ended the stream: after these events there is nothing more.
    done: bool,
}

/// Cut streams by MCP session; each is watched so a resumed GET also gets events still to come.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeldStreams(Arc<Mutex<HashMap<String, Vec<watch::Receiver<Held>>>>>);

impl HeldStreams {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<watch::Receiver<Held>>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The held stream of `session` that contains event `id`, and that event's position.
    fn find(&self, session: &str, id: &str) -> Option<(watch::Receiver<Held>, usize)> {
        let sessions = self.sessions();
        sessions.get(session)?.iter().find_map(|rx| {
            let position = rx.borrow().events.iter().position(|e| e.id.as_deref() == Some(id))?;
            Some((rx.clone(), position))
        })
    }

    fn forget_session(&self, session: &str) {
        self.sessions().remove(session);
    }

    /// Drops streams whose writer finished (they are kept for [`RETAIN`] by their writer task).
    fn forget_finished(&self, session: &str) {
        let mut sessions = self.sessions();
        if let Some(streams) = sessions.get_mut(session) {
            streams.retain(|rx| rx.has_changed().is_ok());
            if streams.is_empty() {
                sessions.remove(session);
            }
        }
    }
}

/// The middleware: cuts polling-tool POST streams, answers resumptions of cut streams, and passes
/// everything else to rmcp untouched.
pub(crate) async fn layer(State(held): State<HeldStreams>, request: Request, next: Next) -> Response {
    let session = header_str(request.headers(), SESSION_HEADER).map(str::to_owned);
    match (request.method().clone(), session) {
        (Method::POST, Some(session)) => post(held, session, request, next).await,
        (Method::GET, Some(session)) => {
            let resumed = header_str(request.headers(), LAST_EVENT_ID).and_then(|id| held.find(&session, id));
            match resumed {
                Some((rx, position)) => replay(rx, position + 1),
                None => next.run(request).await,
            }
        }
        (Method::DELETE, Some(session)) => {
            held.forget_session(&session);
            next.run(request).await
        }
        _ => next.run(request).await,
    }
}

async fn post(held: HeldStreams, session: String, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let polled = calls_polling_tool(&body);
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if polled && is_event_stream(response.headers()) {
        cut_after_priming(held, session, response).await
    } else {
        response
    }
}

/// Is this POST a `tools/call` of the polling tool? Anything unparsable is simply not.
fn calls_polling_tool(body: &[u8]) -> bool {
    let Ok(message) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    message["method"] == "tools/call" && message["params"]["name"] == RECONNECTION
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE.as_str()).is_some_and(|ct| ct.starts_with("text/event-stream"))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Sends the client only the priming event (the one that carries the resumption id), and keeps
/// reading rmcp's stream in the background into a held stream. Without a priming id there is
/// nothing to resume from, so the stream is passed through whole.
async fn cut_after_priming(held: HeldStreams, session: String, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let mut upstream = body.into_data_stream();
    let mut splitter = SseSplitter::default();
    let priming = loop {
        if let Some(event) = splitter.next_event() {
            break event;
        }
        match upstream.next().await {
            Some(Ok(chunk)) => splitter.push(&chunk),
            // Ended (or failed) before one whole event: hand over what there is.
            _ => return Response::from_parts(parts, Body::from(splitter.into_rest())),
        }
    };
    if priming.id.is_none() {
        let rest = futures_util::stream::iter([Ok::<_, axum::Error>(priming.raw), Ok(splitter.into_rest())]);
        return Response::from_parts(parts, Body::from_stream(rest.chain(upstream)));
    }

    // The priming event is held too: its id is what the client resumes from.
    let (tx, rx) = watch::channel(Held { events: vec![priming.clone()], done: false });
    held.sessions().entry(session.clone()).or_default().push(rx);
    tokio::spawn(async move {
        loop {
            while let Some(event) = splitter.next_event() {
                tx.send_modify(|h| h.events.push(event));
            }
            match upstream.next().await {
                Some(Ok(chunk)) => splitter.push(&chunk),
                _ => break,
            }
        }
        tx.send_modify(|h| h.done = true);
        tokio::time::sleep(RETAIN).await;
        drop(tx);
        held.forget_finished(&session);
    });
    Response::from_parts(parts, Body::from(priming.raw))
}

/// A GET answered from a held stream: every event after the client's `Last-Event-ID`, then the
/// ones still to come, then the end of the stream (the request it belonged to is answered).
fn replay(rx: watch::Receiver<Held>, from: usize) -> Response {
    let events = futures_util::stream::unfold((rx, from), |(mut rx, next)| async move {
        loop {
            let (event, done) = {
                let held = rx.borrow_and_update();
                (held.events.get(next).cloned(), held.done)
            };
            if let Some(event) = event {
                return Some((Ok::<_, Infallible>(event.raw), (rx, next + 1)));
            }
            if done || rx.changed().await.is_err() {
                // Nothing more will come: send what is left, if anything; the next turn ends.
                let last = rx.borrow().events.get(next).cloned();
                return last.map(|e| (Ok(e.raw), (rx, next + 1)));
            }
        }
    });
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], Body::from_stream(events))
        .into_response()
}

/// Splits an SSE byte stream into whole events. rmcp writes LF line endings, so an event ends at
/// the first blank line (`\n\n`).
#[derive(Debug, Default)]
struct SseSplitter {
    buffer: BytesMut,
}

impl SseSplitter {
    fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    fn next_event(&mut self) -> Option<Event> {
        let end = self.buffer.windows(2).position(|w| w == b"\n\n")? + 2;
        let raw = self.buffer.split_to(end).freeze();
        let id = std::str::from_utf8(&raw).ok().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("id:"))
                .map(|id| id.strip_prefix(' ').unwrap_or(id).to_owned())
        });
        Some(Event { id, raw })
    }

    fn into_rest(self) -> Bytes {
        self.buffer.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_finds_events_and_ids_across_chunks() {
        let mut s = SseSplitter::default();
        s.push(b"id: 0/3\nretry: 3000\nda");
        assert!(s.next_event().is_none());
        s.push(b"ta: \n\nid: 1/3\ndata: {}\n\n: ping\n\n");
        let priming = s.next_event().unwrap();
        assert_eq!(priming.id.as_deref(), Some("0/3"));
        assert_eq!(&priming.raw[..], b"id: 0/3\nretry: 3000\ndata: \n\n");
        assert_eq!(s.next_event().unwrap().id.as_deref(), Some("1/3"));
        assert_eq!(s.next_event().unwrap().id, None);
        assert!(s.next_event().is_none());
    }

    #[test]
    fn only_the_polling_tool_is_cut() {
        assert!(calls_polling_tool(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_reconnection","arguments":{}}}"#
        ));
        assert!(!calls_polling_tool(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_simple_text"}}"#
        ));
        assert!(!calls_polling_tool(b"not json"));
    }

    #[tokio::test]
    async fn a_resumed_stream_gets_held_and_later_events_then_ends() {
        let (tx, rx) = watch::channel(Held::default());
        let event = |id: &str| Event { id: Some(id.into()), raw: Bytes::from(format!("id: {id}\ndata: x\n\n")) };
        tx.send_modify(|h| h.events.extend([event("0/1"), event("1/1")]));
        let response = replay(rx, 1);
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send_modify(|h| {
                h.events.push(event("2/1"));
                h.done = true;
            });
        });
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        writer.await.unwrap();
        assert_eq!(&body[..], b"id: 1/1\ndata: x\n\nid: 2/1\ndata: x\n\n");
    }
}
