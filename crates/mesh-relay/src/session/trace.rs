//! A request's spans (when a tracer is configured): the server span when it arrives, continuing
//! the client's context (`params._meta` first, then the HTTP headers), and a client span for its
//! upstream leg, whose context the upstream receives in `params._meta` (every transport) and, over
//! HTTP, in the `traceparent` header too (`Transport::send_traced`). Both end with the audit
//! record (`Session::audit_end`). Requests the mesh sends on its own while serving a traced one
//! (a virtual MCP fetching its members' lists) get client spans under it: the request's context
//! travels with the routing future in a task-local ([`under`]). Without a tracer none of this
//! runs.

use super::record::Call;
use super::Session;
use crate::upstream::Link;
use mesh_core::trace::{CallSpan, ClientStart, Parent, ServerStart, Tracer};
use mesh_protocol::Message;
use std::borrow::Cow;

/// The string at `path` (members of nested objects) in the JSON object `json`, found by scanning
/// (no parse of the rest: `params.arguments` may be large). Escaped strings are decoded.
fn string_at<'a>(json: &'a [u8], path: &[&str]) -> Option<Cow<'a, str>> {
    let mut range = 0..json.len();
    for key in path {
        let inner = mesh_protocol::modern::member_span(&json[range.clone()], key)?;
        range = range.start + inner.start..range.start + inner.end;
    }
    let raw = &json[range];
    if raw.len() < 2 || raw[0] != b'"' {
        return None;
    }
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(&raw[1..raw.len() - 1]).ok().map(Cow::Borrowed);
    }
    serde_json::from_slice::<String>(raw).ok().map(Cow::Owned)
}

tokio::task_local! {
    /// The `traceparent` of the request being served, while its routing runs.
    static SERVING: String;
}

/// Runs `f` with `parent` as the request being served (nothing when untraced).
pub(super) async fn under<F: std::future::Future>(parent: Option<String>, f: F) -> F::Output {
    match parent {
        Some(p) => SERVING.scope(p, f).await,
        None => f.await,
    }
}

impl Session {
    /// For a request of the mesh's own to `member`: when it is sent while serving a traced
    /// request, a client span under that request, and the message carrying the span's context.
    pub(super) fn internal_span(
        &self,
        member: usize,
        msg: Message,
    ) -> (Message, Option<Box<dyn CallSpan>>, Option<String>) {
        let Some(tracer) = self.audit.tracer() else { return (msg, None, None) };
        let Ok(parent) = SERVING.try_with(Clone::clone) else { return (msg, None, None) };
        let link = match self.link(member) {
            Ok(l) => l,
            Err(_) => return (msg, None, None),
        };
        let start = ClientStart {
            method: msg.method().unwrap_or(""),
            name: None,
            connection: &self.member_label(member),
            transport: link.transport_kind(),
        };
        let span = tracer.client_of(Parent { traceparent: &parent, tracestate: None }, &start);
        let traceparent = span.traceparent();
        let quoted = serde_json::to_string(&traceparent).unwrap_or_default();
        let msg = msg.with_meta(&[("traceparent", quoted.as_bytes())]).unwrap_or(msg);
        (msg, Some(span), Some(traceparent))
    }

    /// The connection a member of this session is (a direct session has one, itself).
    fn member_label(&self, member: usize) -> String {
        match &self.gateway {
            Some(gw) => gw.members().get(member).map(|m| m.slug.clone()).unwrap_or_default(),
            None => self.label.clone(),
        }
    }

    /// The server span of `msg`, arriving with `headers`' trace context.
    pub(super) fn server_span(
        &self,
        tracer: &dyn Tracer,
        msg: &Message,
        call: &Call,
        headers: Option<Parent<'_>>,
    ) -> Option<Box<dyn CallSpan>> {
        let raw = msg.bytes();
        let traceparent = string_at(raw, &["params", "_meta", "traceparent"]);
        let tracestate = string_at(raw, &["params", "_meta", "tracestate"]);
        let parent = match traceparent.as_deref() {
            Some(traceparent) => Some(Parent { traceparent, tracestate: tracestate.as_deref() }),
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
        let method = msg.method().unwrap_or("");
        let key = if method.starts_with("resources/") { "uri" } else { "name" };
        let name = string_at(msg.bytes(), &["params", key]);
        let name = name.as_deref();
        let connection = self.member_label(member);
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

#[cfg(test)]
mod tests {
    use super::string_at;

    #[test]
    fn strings_are_found_by_path_and_decoded_only_when_escaped() {
        let j = br#"{"params":{"name":"a\"b","_meta":{"traceparent":"00-x"},"arguments":{"big":[1,2]}}}"#;
        assert_eq!(string_at(j, &["params", "_meta", "traceparent"]).as_deref(), Some("00-x"));
        assert_eq!(string_at(j, &["params", "name"]).as_deref(), Some("a\"b"));
        assert!(string_at(j, &["params", "arguments"]).is_none(), "not a string");
        assert!(string_at(j, &["params", "uri"]).is_none());
    }
}
