//! Errors of the data plane, each knowing whose fault it is and how it reaches the client.
//!
//! One function per direction maps an error to the wire: [`RelayError::http_status`] for
//! transport-level refusals and [`RelayError::rpc_code`] for JSON-RPC error replies. Internal
//! details go to the log; the client sees a message safe to show.

use crate::session::caps::SessionCap;
use http::StatusCode;
use mesh_core::Fault;
use mesh_protocol::{codes, ParseError};
use std::time::Duration;

/// Everything that can go wrong between a client's POST and the upstream's answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayError {
    /// The body is not one valid JSON-RPC message.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The request is malformed at the HTTP level.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// `Accept` does not allow what the endpoint must answer with.
    #[error("not acceptable: {0}")]
    NotAcceptable(&'static str),
    /// `Content-Type` is not `application/json`.
    #[error("unsupported media type: POST bodies must be application/json")]
    UnsupportedMediaType,
    /// The body exceeds the configured limit.
    #[error("request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// No or unknown credentials.
    #[error("authentication required: send 'Authorization: Bearer <api key>'")]
    Unauthorized,
    /// `Origin` or `Host` failed the DNS-rebinding check.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A request other than initialize came without `Mcp-Session-Id`.
    #[error("bad request: the Mcp-Session-Id header is required after initialize")]
    SessionRequired,
    /// Unknown, ended, or someone else's session. Deliberately indistinguishable.
    #[error("session not found: it may have ended; initialize a new one")]
    SessionNotFound,
    /// `MCP-Protocol-Version` names a revision the mesh does not speak.
    #[error("unsupported MCP-Protocol-Version '{0}'")]
    BadProtocolVersion(String),
    /// No such connection (or gateway) for this caller. Same answer whether it exists elsewhere or not.
    #[error("no connection named '{0}'")]
    RouteNotFound(String),
    /// The upstream cannot be reached, its process is down, or it refused the mesh.
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    /// The mesh could not reach the upstream, and knows why (`cause`); `detail` is for the log
    /// and for the client of an open session, never for `CONNECTION_TEST` (see [`Cause`]).
    #[error("upstream unavailable: {detail}")]
    UpstreamFailed {
        /// Why, as a closed set.
        cause: Cause,
        /// The whole story, connection name first.
        detail: String,
    },
    /// The upstream did not answer in time; the request was cancelled upstream.
    #[error("upstream did not answer within {secs}s{note}", secs = .0.as_secs_f64(), note = .1)]
    UpstreamTimeout(Duration, String),
    /// The upstream answered with something that is not MCP.
    #[error("upstream protocol error: {0}")]
    UpstreamProtocol(String),
    /// The request's parameters name nothing the route serves (unknown tool, bad cursor).
    #[error("{0}")]
    InvalidParams(String),
    /// The route does not serve this method.
    #[error("Method not found: {0}")]
    MethodNotFound(String),
    /// The upstream(s) need the user's OAuth authorization first (a virtual MCP's members may
    /// need several at once): URL-mode elicitations the client shows (`-32042`, MCP 2025-11-25
    /// "URL Elicitation Required").
    #[error("{}", authorizations_message(.0))]
    AuthorizationRequired(Vec<AuthorizationLink>),
    /// The upstream refused one request for want of scope (HTTP 403 with an
    /// `insufficient_scope` challenge): the session's credentials still serve everything else,
    /// and the control plane may ask the user to widen their grant (`RouteResolver::step_up`).
    #[error("{connection}: the upstream needs a wider authorization for this request (HTTP 403 insufficient_scope)")]
    InsufficientScope {
        /// The connection's slug.
        connection: String,
        /// The upstream's `WWW-Authenticate` value (never shown to the client).
        challenge: String,
    },
    /// Policy hides what the request names; the message reads exactly like an unknown name's.
    #[error("{0}")]
    Hidden(String),
    /// A rate limit refused the call.
    #[error("rate limit exceeded ({limit}); retry after {secs:.1}s", secs = .retry_after.as_secs_f64())]
    RateLimited {
        /// Which limit.
        limit: String,
        /// When a call would next be accepted.
        retry_after: Duration,
    },
    /// A session cap refused a new session (the message names the cap and its value).
    #[error("{0}")]
    TooManySessions(crate::session::caps::SessionCap),
    /// A bug or resource problem in the mesh.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One authorization a user must give before an upstream can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationLink {
    /// The connection's slug.
    pub connection: String,
    /// The mesh's link that starts it (or, when only an admin can give it, what to do).
    pub url: String,
}

impl AuthorizationLink {
    /// Its elicitation id: the link is single-use and names the authorization, so its last
    /// query value identifies it too.
    pub fn elicitation_id(&self) -> &str {
        self.url.rsplit('=').next().unwrap_or_default()
    }

    /// What the client shows the user.
    pub fn message(&self) -> String {
        format!("Authorize MCP Mesh to use '{}' on your behalf", self.connection)
    }
}

fn authorizations_message(links: &[AuthorizationLink]) -> String {
    match links {
        [one] => format!("connection '{}' needs your authorization at its server: open {}", one.connection, one.url),
        many => {
            let names: Vec<String> = many.iter().map(|l| format!("'{}'", l.connection)).collect();
            format!(
                "connections {} need your authorization at their servers: open the links in data.elicitations",
                names.join(", ")
            )
        }
    }
}

/// Why an upstream could not be reached: a closed set, decided where the error is made (from the
/// typed error of the socket, resolver, TLS or HTTP layer), so nobody has to read it back out of
/// a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Nothing listens there (connection refused or reset while connecting).
    Refused,
    /// No answer in time while connecting.
    Timeout,
    /// The TLS handshake failed (untrusted certificate, wrong name, protocol mismatch).
    Tls,
    /// The name does not resolve.
    Dns,
    /// Every address the name resolves to (or the address in the URL) is internal, and the
    /// connection may only reach public ones (`Reach::Public`).
    NotPublic,
    /// The upstream answered with this HTTP status where MCP wants another.
    Status(u16),
    /// Anything else at the network level.
    Other,
}

impl RelayError {
    /// Whose fault this is.
    pub fn fault(&self) -> Fault {
        use RelayError::*;
        match self {
            Parse(_)
            | BadRequest(_)
            | NotAcceptable(_)
            | UnsupportedMediaType
            | PayloadTooLarge(_)
            | SessionRequired
            | SessionNotFound
            | BadProtocolVersion(_)
            | RouteNotFound(_)
            | InvalidParams(_)
            | MethodNotFound(_) => Fault::Downstream,
            Unauthorized
            | Forbidden(_)
            | Hidden(_)
            | RateLimited { .. }
            | AuthorizationRequired { .. }
            | InsufficientScope { .. } => Fault::Policy,
            // A key's or an organisation's own cap is a limit it hit; the mesh's total is the
            // mesh running out of room, which a retry later may get past.
            TooManySessions(SessionCap::Key(_) | SessionCap::Org(_)) => Fault::Policy,
            TooManySessions(SessionCap::Total(_)) => Fault::Internal,
            // Refused by the mesh's own rule on addresses, not by the upstream.
            UpstreamFailed { cause: Cause::NotPublic, .. } => Fault::Policy,
            UpstreamUnavailable(_) | UpstreamFailed { .. } | UpstreamTimeout(..) | UpstreamProtocol(_) => {
                Fault::Upstream
            }
            Internal(_) => Fault::Internal,
        }
    }

    /// The HTTP status when the error ends the exchange at the transport level.
    pub fn http_status(&self) -> StatusCode {
        use RelayError::*;
        match self {
            Parse(_)
            | BadRequest(_)
            | SessionRequired
            | BadProtocolVersion(_)
            | InvalidParams(_)
            | Hidden(_)
            | MethodNotFound(_) => StatusCode::BAD_REQUEST,
            RateLimited { .. } | TooManySessions(SessionCap::Key(_) | SessionCap::Org(_)) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            TooManySessions(SessionCap::Total(_)) => StatusCode::SERVICE_UNAVAILABLE,
            NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Unauthorized => StatusCode::UNAUTHORIZED,
            Forbidden(_) => StatusCode::FORBIDDEN,
            SessionNotFound | RouteNotFound(_) => StatusCode::NOT_FOUND,
            // A JSON-RPC error the client acts on (it shows the link), carried in a 200.
            AuthorizationRequired { .. } | InsufficientScope { .. } => StatusCode::OK,
            // Upstream failures of a request are JSON-RPC errors carried in a 200.
            UpstreamUnavailable(_) | UpstreamFailed { .. } | UpstreamTimeout(..) | UpstreamProtocol(_) => {
                StatusCode::OK
            }
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON-RPC error code for a reply carrying this error.
    pub fn rpc_code(&self) -> i64 {
        use RelayError::*;
        match self {
            Parse(ParseError::NotJson(_)) => codes::PARSE_ERROR,
            Parse(_)
            | BadRequest(_)
            | NotAcceptable(_)
            | UnsupportedMediaType
            | PayloadTooLarge(_)
            | SessionRequired
            | BadProtocolVersion(_) => codes::INVALID_REQUEST,
            Unauthorized | Forbidden(_) | InsufficientScope { .. } => codes::UNAUTHORIZED,
            SessionNotFound => codes::SESSION_NOT_FOUND,
            RouteNotFound(_) => codes::ROUTE_NOT_FOUND,
            InvalidParams(_) | Hidden(_) => codes::INVALID_PARAMS,
            RateLimited { .. } => codes::RATE_LIMITED,
            TooManySessions(_) => codes::SESSION_LIMIT,
            MethodNotFound(_) => codes::METHOD_NOT_FOUND,
            // A refused address too: to the caller the connection cannot be used; the message
            // says why and who may change it.
            UpstreamUnavailable(_) | UpstreamFailed { .. } => codes::UPSTREAM_UNAVAILABLE,
            UpstreamTimeout(..) => codes::UPSTREAM_TIMEOUT,
            UpstreamProtocol(_) => codes::UPSTREAM_PROTOCOL,
            Internal(_) => codes::INTERNAL_ERROR,
            AuthorizationRequired { .. } => codes::URL_ELICITATION_REQUIRED,
        }
    }

    /// For a rate-limit refusal: how long until a call would be accepted (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RelayError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// This error as a JSON-RPC error reply to the request with raw id `id`.
    pub fn to_message(&self, id: Option<&str>) -> mesh_protocol::Message {
        let data = match self {
            RelayError::AuthorizationRequired(links) => {
                let elicitations: Vec<serde_json::Value> = links
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "mode": "url",
                            "elicitationId": l.elicitation_id(),
                            "url": l.url,
                            "message": l.message(),
                        })
                    })
                    .collect();
                Some(serde_json::json!({ "elicitations": elicitations }))
            }
            _ => self.retry_after().map(|wait| serde_json::json!({"retryAfterMs": wait.as_millis() as u64})),
        };
        mesh_protocol::Message::error(id, self.rpc_code(), &self.to_string(), data)
    }
}
