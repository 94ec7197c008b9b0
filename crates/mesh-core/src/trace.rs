//! The tracing port: what the relay tells a tracer about a request, without knowing how spans
//! are made or exported (`mesh-telemetry` implements it over OpenTelemetry).
//!
//! The relay asks [`Tracer::server`] for a span when a request arrives, [`CallSpan::client`] for
//! a child before it forwards the request upstream (whose `traceparent` it then passes on), and
//! ends both when the request ends. With no tracer configured none of this runs.

use crate::audit::Outcome;

/// W3C trace context a client sent: the `traceparent` and `tracestate` values.
#[derive(Debug, Clone, Copy)]
pub struct Parent<'a> {
    /// `traceparent` (`00-<trace id>-<span id>-<flags>`).
    pub traceparent: &'a str,
    /// `tracestate`, if any.
    pub tracestate: Option<&'a str>,
}

/// What a server span is about, known when the request arrives.
#[derive(Debug)]
pub struct ServerStart<'a> {
    /// The context to continue (from `params._meta`, else the HTTP headers).
    pub parent: Option<Parent<'a>>,
    /// The JSON-RPC method.
    pub method: &'a str,
    /// The tool, prompt or resource named.
    pub name: Option<&'a str>,
    /// The client's request id, as raw JSON.
    pub request_id: &'a str,
    /// The protocol revision of the session.
    pub protocol_version: &'a str,
    /// The downstream session id (`None` for pooled stateless sessions, which have none).
    pub session_id: Option<&'a str>,
    /// The caller's organisation, user and key.
    pub org_id: &'a str,
    /// See `org_id`.
    pub user_id: &'a str,
    /// See `org_id`.
    pub key_id: &'a str,
    /// `connection`, `gateway` or `management`, and its slug.
    pub route_kind: &'a str,
    /// See `route_kind`.
    pub route: &'a str,
}

/// What an upstream (client) span is about.
#[derive(Debug)]
pub struct ClientStart<'a> {
    /// The method as the upstream receives it.
    pub method: &'a str,
    /// The name as the upstream knows it (a virtual MCP renames).
    pub name: Option<&'a str>,
    /// The connection it goes to.
    pub connection: &'a str,
    /// `tcp` for HTTP upstreams, `pipe` for stdio ones.
    pub transport: &'static str,
}

/// How a request ended, for its spans.
#[derive(Debug, Clone, Copy)]
pub struct End<'a> {
    /// The outcome (`ToolError` is the `isError` result of a tool).
    pub outcome: Outcome,
    /// The error text, if any.
    pub error: Option<&'a str>,
    /// The JSON-RPC error code the client was answered with, when the reply was an error.
    pub code: Option<i64>,
}

/// A span in flight (dropped without `end`, it ends with what it has).
pub trait CallSpan: Send + Sync {
    /// Starts a child span for the request's upstream leg.
    fn client(&self, start: &ClientStart<'_>) -> Box<dyn CallSpan>;
    /// This span's context as a `traceparent` value, to pass on.
    fn traceparent(&self) -> String;
    /// `tracestate` to pass on with it, if any.
    fn tracestate(&self) -> Option<String>;
    /// Ends the span.
    fn end(self: Box<Self>, end: End<'_>);
}

/// Makes spans.
pub trait Tracer: Send + Sync {
    /// Starts the server span of a request (`None` when the sampler drops it).
    fn server(&self, start: &ServerStart<'_>) -> Option<Box<dyn CallSpan>>;
    /// Starts a client span under a span known only by its context (a request the mesh sends
    /// on its own while serving one: a virtual MCP fetching a member's list).
    fn client_of(&self, parent: Parent<'_>, start: &ClientStart<'_>) -> Box<dyn CallSpan>;
}
