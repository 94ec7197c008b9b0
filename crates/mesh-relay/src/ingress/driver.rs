//! The one driver of a client's POST, whichever revision it speaks (`../shared/STYLE.md`,
//! "Pipeline"). The order is part of the security model:
//! 1. Origin/Host, then authentication (`admit`): nothing below runs for a page of another site
//!    or for an anonymous caller where the route is not open to them;
//! 2. transport shape and the JSON-RPC envelope, before the body is trusted for anything;
//! 3. resolve: which session serves the request — the client's own, bound to this principal and
//!    route, or for the stateless revision a pooled one — after checking that the route exists
//!    for this principal (a route its key may not reach is not found); or the mesh answers here
//!    what reaches no upstream (an `initialize`, `server/discover`, a retry carrying answers);
//! 4. authorize, rate-limit, forward, audit on every exit: [`Session::request_traced`], the same
//!    for both revisions, because a stateless request runs on a pooled session;
//! 5. answer in the revision the client speaks.
//!
//! Each revision writes only its own step 3 and step 5 (`streamable_http::resolve`,
//! `modern::resolve`, [`Answer`]).

use super::streamable_http::{admit, read_body, Target};
use super::{guard, modern, respond, Relay};
use crate::session::Session;
use crate::RelayError;
use axum::body::Body;
use axum::response::Response;
use http::HeaderMap;
use mesh_protocol::Message;
use std::sync::Arc;

/// The revision a request speaks, told from its headers (`streamable_http::dispatch`).
pub(super) enum Revision<'a> {
    /// 2025-11-25 and earlier: `initialize`, then requests on a session.
    Session,
    /// 2026-07-28: every request stands alone; the version its header names.
    Stateless(&'a str),
}

/// What step 3 decided.
pub(super) enum Flow {
    /// The mesh answers this itself; nothing goes to a session.
    Respond(Response),
    /// Goes to a session's driver.
    Forward(Forward),
}

/// A request on its way to a session.
pub(super) struct Forward {
    /// The session that serves it.
    pub session: Arc<Session>,
    /// The request as the session receives it.
    pub msg: Message,
    /// For a request about an item it does not name itself (a task's requests carry only the
    /// task's id): the item its audit row and policy name.
    pub item: Option<String>,
    /// What step 3 already read of the request's `params` for its audit row, if it did.
    pub audited: Option<crate::session::Audited>,
    /// How the reply reaches the client.
    pub answer: Answer,
}

/// Step 5: how the session's events become the client's answer.
pub(super) enum Answer {
    /// On the client's session: one JSON body, or an SSE stream whose events it may resume.
    Session,
    /// To a stateless client: the stateless form, asking the client for input by
    /// input-required results.
    Stateless(Box<modern::Answering>),
}

/// Serves one POST.
pub(super) async fn post(
    relay: &Arc<Relay>,
    target: &Target,
    headers: &HeaderMap,
    body: Body,
    revision: Revision<'_>,
) -> Result<Response, RelayError> {
    // 1.
    let principal = admit(relay, headers, target)?;
    // 2.
    guard::accepts_json_and_sse(headers)?;
    guard::content_type_json(headers)?;
    let msg = Message::parse(read_body(body, headers, relay.cfg.max_body_bytes).await?)?;
    // 3.
    let flow = match revision {
        Revision::Session => super::streamable_http::resolve(relay, target, headers, principal, msg).await?,
        Revision::Stateless(v) => modern::resolve(relay, target, headers, principal, msg, v).await?,
    };
    let fwd = match flow {
        Flow::Respond(r) => return Ok(r),
        Flow::Forward(f) => f,
    };
    // 4. `params._meta`'s trace context wins over the headers'.
    let trace = super::trace_parent(headers);
    match fwd.session.request_traced(&fwd.msg, (fwd.item.as_deref(), fwd.audited), trace).await {
        // 5.
        Ok((stream, rx)) => Ok(match fwd.answer {
            Answer::Session => super::streamable_http::reply_stream(&fwd.session, stream, rx).await,
            Answer::Stateless(a) => modern::answer(relay, &fwd.session, (stream, rx), a).await,
        }),
        Err(e) => {
            tracing::info!(session = %fwd.session.id, route = %fwd.session.label, error = %e, "request failed");
            Ok(match fwd.answer {
                Answer::Session => respond::json(&e.to_message(fwd.msg.id()), None),
                Answer::Stateless(_) => modern::refusal(fwd.msg.id().unwrap_or("null"), &e),
            })
        }
    }
}
