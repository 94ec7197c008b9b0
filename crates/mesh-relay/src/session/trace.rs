//! A request's spans (when a tracer is configured): the server span when it arrives, continuing
//! the client's context (`params._meta` first, then the HTTP headers), and a client span for its
//! upstream leg, whose context the upstream receives in `params._meta` (every transport) and, over
//! HTTP, in the `traceparent` header too (`Transport::send_traced`). Both end with the audit
//! record (`Session::audit_end`). Without a tracer none of this runs.

use super::record::Call;
use super::Session;
use crate::upstream::Link;
use mesh_core::trace::{CallSpan, ClientStart, Parent, ServerStart, Tracer};
use mesh_protocol::Message;
use std::borrow::Cow;

#[derive(serde::Deserialize)]
struct Context<'a> {
    #[serde(borrow)]
    traceparent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tracestate: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct Params<'a> {
    #[serde(borrow, rename = "_meta")]
    meta: Option<Context<'a>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    uri: Option<Cow<'a, str>>,
}

impl Session {
    /// The server span of `msg`, arriving with `headers`' trace context.
    pub(super) fn server_span(
        &self,
        tracer: &dyn Tracer,
        msg: &Message,
        call: &Call,
        headers: Option<Parent<'_>>,
    ) -> Option<Box<dyn CallSpan>> {
        let params: Option<Params<'_>> = msg.params();
        let meta = params.as_ref().and_then(|p| p.meta.as_ref());
        let parent = match meta.and_then(|m| m.traceparent.as_deref()) {
            Some(traceparent) => Some(Parent { traceparent, tracestate: meta.and_then(|m| m.tracestate.as_deref()) }),
            None => headers,
        };
        let version = self.version();
        let p = &self.principal;
        tracer.server(&ServerStart {
            parent,
            method: &call.method,
            name: call.name.as_deref(),
            request_id: msg.id().unwrap_or("null"),
            protocol_version: &version,
            session_id: (!self.is_pooled()).then_some(self.id.as_str()),
            org_id: &p.org_id,
            user_id: &p.user_id,
            key_id: &p.key_id,
            route_kind: self.route_kind.as_str(),
            route: &self.label,
        })
    }

    /// Starts the upstream leg's span under `call`'s and returns the request carrying its context
    /// in `params._meta`, with the `traceparent` value for the transport's header.
    pub(super) fn client_span<'m>(
        &self,
        call: &mut Call,
        member: usize,
        link: &Link,
        msg: &'m Message,
    ) -> (Cow<'m, Message>, Option<String>) {
        let Some(server) = call.span.as_ref() else { return (Cow::Borrowed(msg), None) };
        let params: Option<Params<'_>> = msg.params();
        let method = msg.method().unwrap_or("");
        let name = params.as_ref().and_then(|p| {
            if method.starts_with("resources/") {
                p.uri.as_deref()
            } else {
                p.name.as_deref()
            }
        });
        let connection = match &self.gateway {
            Some(gw) => gw.members().get(member).map(|m| m.slug.clone()).unwrap_or_default(),
            None => self.label.clone(),
        };
        let up =
            server.client(&ClientStart { method, name, connection: &connection, transport: link.transport_kind() });
        let traceparent = up.traceparent();
        let quoted = |v: &str| serde_json::to_string(v).unwrap_or_default();
        let mut members = vec![("traceparent", quoted(&traceparent))];
        if let Some(state) = up.tracestate() {
            members.push(("tracestate", quoted(&state)));
        }
        let members: Vec<(&str, &[u8])> = members.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        call.up_span = Some(up);
        match msg.with_meta(&members) {
            Some(traced) => (Cow::Owned(traced), Some(traceparent)),
            // Params that are not an object: the header alone carries the context.
            None => (Cow::Borrowed(msg), Some(traceparent)),
        }
    }
}
