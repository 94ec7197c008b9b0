//! Upstream transports: one file per transport, all behind [`Transport`].
//!
//! A link is a message pipe. `send` hands one message to the upstream; everything the upstream
//! says comes back through the [`InboundSink`] the link was built with, synchronously and in order
//! per underlying stream. The session layer above does all id remapping; links only carry bytes
//! and report when the upstream goes down or comes back.

pub mod balance;
pub mod clients;
mod h1;
pub mod http;
pub mod local;
mod mesh_keys;
pub mod modern;
mod modern_stdio;
mod pool;
pub mod reach;
pub mod sse;
pub mod stdio;
mod wire;

pub use clients::UpstreamClients;

use crate::{RelayError, TransportSpec, UpstreamSpec};
use mesh_protocol::Message;
use std::sync::Arc;

/// Something the upstream side reports.
#[derive(Debug)]
pub enum Inbound {
    /// A message from the upstream. `related` is the raw id of the upstream request whose
    /// response stream carried it, when the transport knows (Streamable HTTP POST streams).
    Message {
        /// The message.
        msg: Message,
        /// The request it belongs to, if known.
        related: Option<Box<str>>,
    },
    /// The stream that should have carried the reply to upstream request `request` ended first.
    StreamLost {
        /// The raw upstream request id.
        request: Box<str>,
        /// Why, for the error the client sees.
        reason: String,
    },
    /// The upstream refused request `request` before answering it (an HTTP status, an
    /// authorization challenge), from a link whose `send` returned before the request went out
    /// (the link to a stateless upstream): the typed error, which the session acts on as on a
    /// failed `send` (credentials refused, step-up).
    Refused {
        /// The raw upstream request id.
        request: Box<str>,
        /// What the upstream said, as the mesh names it.
        error: RelayError,
        /// The request as the link was given it, for a session that may send it again once the
        /// user has authorized (an insufficient scope asked in-band).
        again: Option<Message>,
    },
    /// The upstream as a whole went away: every pending request fails.
    Down {
        /// Why, for the error the client sees.
        reason: String,
    },
    /// A supervised upstream is back and re-initialised.
    Up,
}

/// Receives what a link reads from its upstream. Implementations must not block.
pub trait InboundSink: Send + Sync + 'static {
    /// Takes one report.
    fn deliver(&self, inbound: Inbound);
}

/// One live upstream MCP session over one transport.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Hands one message to the upstream. Replies arrive through the sink.
    async fn send(&self, msg: Message) -> Result<(), RelayError>;
    /// [`Transport::send`] for a traced request: an HTTP link also sends `traceparent` as a
    /// header (the message carries it in `params._meta` already).
    async fn send_traced(&self, msg: Message, _traceparent: &str) -> Result<(), RelayError> {
        self.send(msg).await
    }
    /// Whether the link reads the mesh's own keys in `params._meta` ([`modern::without_mesh_keys`]):
    /// a link to a stateless upstream does; any other link's upstream is sent requests without them.
    fn reads_mesh_keys(&self) -> bool {
        false
    }
    /// `network.transport` of the semantic conventions: `tcp`, or `pipe` for a child's stdio.
    fn transport_kind(&self) -> &'static str {
        "tcp"
    }
    /// Ends the upstream session gracefully; later sends fail.
    async fn close(&self);
    /// A short note for error messages about what the link has seen go wrong, if anything.
    fn diagnostics(&self) -> Option<String> {
        None
    }
}

/// A shared handle to a link.
pub type Link = Arc<dyn Transport>;

/// Opens a link to `spec`. Stdio spawns the process; HTTP and SSE connect lazily or at once as
/// their protocol needs. `clients` are the process-wide pooled clients; the spec's `reach` picks
/// one (and the fast path's pool), so no caller can hand a `Public` link the wrong one.
pub async fn connect(
    spec: &UpstreamSpec,
    clients: &UpstreamClients,
    sink: Arc<dyn InboundSink>,
) -> Result<Link, RelayError> {
    let http = clients.for_reach(spec.reach);
    Ok(match &spec.transport {
        TransportSpec::Http { url, headers } => {
            reach::check_url(&spec.name, url, spec.reach)?;
            let credential = spec.credential.clone();
            Arc::new(http::HttpLink::new(&spec.name, http.clone(), url.clone(), spec.reach, headers, credential, sink)?)
        }
        TransportSpec::Sse { url, headers } => {
            reach::check_url(&spec.name, url, spec.reach)?;
            Arc::new(sse::SseLink::connect(&spec.name, http.clone(), url.clone(), headers, sink).await?)
        }
        TransportSpec::Stdio { .. } => stdio::StdioLink::spawn(spec, sink)?,
        TransportSpec::Balanced { selector, providers } => {
            balance::BalancedLink::new(&spec.name, selector, providers.clone(), clients.clone(), sink)
        }
    })
}

/// Opens a link for stateless (2026-07-28) clients: to an upstream that speaks that revision
/// too (over Streamable HTTP or stdio), a [`modern::ModernLink`] — the same revision on both
/// sides; to any other, what [`connect`] opens.
pub async fn connect_stateless(
    spec: &UpstreamSpec,
    clients: &UpstreamClients,
    sink: Arc<dyn InboundSink>,
) -> Result<Link, RelayError> {
    let same_revision = match &spec.transport {
        TransportSpec::Stdio { .. } => modern_stdio::link(spec, clients, sink.clone(), true).await,
        _ => stateless_link(spec, clients, sink.clone(), true).await,
    };
    match same_revision {
        Some(link) => link,
        None => connect(spec, clients, sink).await,
    }
}

/// A [`modern::ModernLink`] to `spec` when it is an HTTP upstream of the stateless revision;
/// `None` otherwise. What each URL speaks is asked once and remembered for a while
/// ([`UpstreamClients::era`]), so a session-based upstream is not probed on every open.
/// `stateless_clients` says the link serves a pooled session of stateless clients.
pub async fn stateless_link(
    spec: &UpstreamSpec,
    clients: &UpstreamClients,
    sink: Arc<dyn InboundSink>,
    stateless_clients: bool,
) -> Option<Result<Link, RelayError>> {
    let TransportSpec::Http { url, headers } = &spec.transport else { return None };
    if let Err(e) = reach::check_url(&spec.name, url, spec.reach) {
        return Some(Err(e));
    }
    let http = clients.for_reach(spec.reach);
    let probe_for = spec.timeout.min(std::time::Duration::from_secs(3));
    // A live credential (a user's OAuth token) is asked with too: such a server answers nobody
    // without one. Its answer is remembered per token, like any credential's.
    let mut asked_with = headers.clone();
    if let Some(token) = spec.credential.as_ref().and_then(|c| c.bearer()) {
        asked_with.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        asked_with.push(("authorization".into(), mesh_core::Secret::new(format!("Bearer {token}"))));
    }
    let discover =
        clients.era(spec.reach, url, &asked_with, || modern::probe(http, url, &asked_with, probe_for)).await?;
    let link = modern::ModernLink::new(spec, http.clone(), sink, discover, stateless_clients);
    Some(link.map(modern::ModernLink::owned))
}

/// A link that bridges session-based clients to `spec` when it speaks only the stateless
/// revision, over Streamable HTTP or stdio; `None` when it does not (or is an SSE upstream, which
/// predates the revision). Asked after a session-based handshake failed, so the answer for a
/// command or URL is the one remembered for stateless clients too.
pub async fn bridge_link(
    spec: &UpstreamSpec,
    clients: &UpstreamClients,
    sink: Arc<dyn InboundSink>,
) -> Option<Result<Link, RelayError>> {
    match &spec.transport {
        TransportSpec::Stdio { .. } => modern_stdio::link(spec, clients, sink, false).await,
        TransportSpec::Http { .. } => stateless_link(spec, clients, sink, false).await,
        // Each provider is asked on its own link, which is what `connect` opens.
        TransportSpec::Sse { .. } | TransportSpec::Balanced { .. } => None,
    }
}

/// Turns configured header pairs into a `HeaderMap`, marking every value sensitive so that
/// hyper never logs or compresses it (HPACK "never index").
pub(crate) fn header_map(
    name: &str,
    headers: &[(String, mesh_core::Secret<String>)],
) -> Result<reqwest::header::HeaderMap, RelayError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        let key = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| RelayError::Internal(format!("connection {name}: invalid header name '{k}'")))?;
        let mut val = reqwest::header::HeaderValue::from_str(v.expose())
            .map_err(|_| RelayError::Internal(format!("connection {name}: invalid value for header '{k}'")))?;
        val.set_sensitive(true);
        map.append(key, val);
    }
    Ok(map)
}

/// The `WWW-Authenticate` value of a 403 that asks for more scope (RFC 6750 §3.1
/// `insufficient_scope`), bounded: the control plane parses it (`mesh_oauth::challenge`).
pub(crate) fn insufficient_scope(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.len() <= 4096 && v.contains("insufficient_scope"))
        .map(str::to_string)
}
