//! A real MCP client for end-to-end tests, built on the `rmcp` crate (the downstream side).
//!
//! End-to-end tests must not talk to the mesh through our own protocol code, or a bug shared by
//! both sides would pass unnoticed. [`TestClient`] is an independent implementation: rmcp's
//! Streamable HTTP client, answering the server-to-client requests (sampling, elicitation, roots)
//! the way [`ClientBehaviour`] says, and counting what it was asked so tests can assert on it.
//!
//! Decisions worth knowing before changing this file:
//! - **Counting on the wire.** Progress and logging notifications are counted by a thin tap around
//!   the transport, not in the `ClientHandler` callbacks. rmcp runs notification callbacks on
//!   spawned tasks, so a callback may still be pending when the response it preceded has already
//!   been returned; the tap sees messages in arrival order, so once a call returns, every
//!   notification the server sent before its response has been counted.
//! - **No client-side masking.** rmcp 3.9 caches list/read responses (and may serve a stale entry
//!   when a re-fetch fails) and silently re-initializes an expired session. Both would hide exactly
//!   the gateway failures tests look for, so both are turned off.
//! - **Protocol version.** rmcp 3.9 defaults to `2026-07-28`, which has no `initialize` handshake;
//!   we offer the newest revision that still has one, and the server may answer with an older one.
//! - **Bounded waits.** Every await is bounded by [`CALL_TIMEOUT`], so a broken gateway fails a
//!   test instead of hanging it.

use std::{
    borrow::Cow,
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use anyhow::{anyhow, bail, Context as _};
use rmcp::{
    model::{
        CallToolRequest, CallToolRequestParams, ClientCapabilities, ClientConfig, ClientRequest, ElicitRequestParams,
        ElicitResult, ElicitationAction, ElicitationCapability, FormElicitationCapability, GetPromptRequestParams,
        Implementation, JsonObject, JsonRpcMessage, ProgressToken, ProtocolVersion, ReadResourceRequestParams,
        RootsCapabilities, ServerNotification, ServerResult, UrlElicitationCapability,
    },
    service::{
        ClientCacheConfig, PeerRequestOptions, RequestContext, RoleClient, RunningService, RxJsonRpcMessage,
        TxJsonRpcMessage,
    },
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport, Transport,
    },
    ClientHandler, ErrorData, Peer, ServiceExt,
};
use serde_json::Value;

/// Upper bound for every wait in this module: connecting, each request, closing, polling.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How often [`TestClient::wait_until`] re-checks its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The `model` name the client reports in its sampling replies.
pub const SAMPLING_MODEL: &str = "mesh-testkit";

/// What the test client answers when the server asks it something.
///
/// Each field also decides whether the matching capability is declared at `initialize`:
/// a `None` (or an empty root list) leaves it out, as a client without that feature would.
#[derive(Debug, Clone, Default)]
pub struct ClientBehaviour {
    /// Text of the assistant message returned to `sampling/createMessage`.
    /// `None`: sampling is not declared, and a request for it is refused as "method not found".
    pub sampling_reply: Option<String>,
    /// Content returned with `accept` to a form `elicitation/create` (a URL elicitation is
    /// accepted without content). `None`: elicitation is not declared and requests are declined.
    pub elicitation_accept: Option<Value>,
    /// `file://` URIs returned to `roots/list`. Empty: roots are not declared.
    pub roots: Vec<String>,
    /// Where the URL of a URL-mode `elicitation/create` goes (the test plays the user who opens
    /// it); the request is accepted. `None`: URL mode is not declared.
    pub url_elicitations: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

/// A connected MCP client session; see the module docs for why it is shaped this way.
pub struct TestClient {
    service: RunningService<RoleClient, Answerer>,
    seen: Arc<Seen>,
}

impl TestClient {
    /// Connects over Streamable HTTP to `url` sending `Authorization: Bearer {key}` on every
    /// request (no header at all when `key` is empty, to test anonymous callers), declares
    /// sampling/elicitation/roots per `behaviour`, and completes `initialize`.
    pub async fn connect_http(url: &str, key: &str, behaviour: ClientBehaviour) -> anyhow::Result<TestClient> {
        let seen = Arc::new(Seen::default());
        let mut config = StreamableHttpClientTransportConfig::with_uri(url).reinit_on_expired_session(false);
        if !key.is_empty() {
            // rmcp adds the `Bearer ` prefix itself (reqwest's `bearer_auth`).
            config = config.auth_header(key);
        }
        let transport = Tap { inner: StreamableHttpClientTransport::from_config(config), seen: Arc::clone(&seen) };
        let answerer = Answerer { behaviour, seen: Arc::clone(&seen) };
        let service = bounded("initialize", answerer.serve(transport))
            .await?
            .with_context(|| format!("initialize with {url} failed"))?;
        bounded("disabling the response cache", service.set_response_cache_config(ClientCacheConfig::disabled()))
            .await?;
        Ok(TestClient { service, seen })
    }

    /// What the server said about itself at `initialize`: `protocolVersion`, `capabilities`,
    /// `serverInfo` and `instructions`, as JSON (`null` only if no handshake happened).
    pub fn server_info(&self) -> Value {
        match self.service.peer_info() {
            Some(info) => serde_json::to_value(&*info).expect("rmcp's ServerPeerInfo serialises"),
            None => Value::Null,
        }
    }

    /// Names of all tools, following pagination cursors.
    pub async fn list_tool_names(&self) -> anyhow::Result<Vec<String>> {
        let tools = bounded("tools/list", self.service.list_all_tools()).await?.context("tools/list failed")?;
        Ok(tools.into_iter().map(|tool| tool.name.into_owned()).collect())
    }

    /// Calls a tool; `args` must be a JSON object or `null`. A result with `isError: true` is
    /// still `Ok`: it is the tool's answer, not a protocol failure.
    pub async fn call_tool(&self, name: &str, args: Value) -> anyhow::Result<Value> {
        let params = tool_params(name, args)?;
        let result = bounded("tools/call", self.service.call_tool(params))
            .await?
            .with_context(|| format!("tools/call {name} failed"))?;
        to_json(&result)
    }

    /// Calls a tool and also reports how many `notifications/progress` carried this call's
    /// progress token before the result arrived.
    pub async fn call_tool_with_progress(&self, name: &str, args: Value) -> anyhow::Result<(Value, usize)> {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(tool_params(name, args)?));
        // rmcp puts a fresh progress token on every request; the handle tells us which one.
        // Its own timeout (rather than `bounded`) also sends `notifications/cancelled` on expiry.
        let options = PeerRequestOptions::with_timeout(CALL_TIMEOUT);
        let handle = bounded("sending tools/call", self.service.send_request_with_option(request, options))
            .await?
            .with_context(|| format!("sending tools/call {name} failed"))?;
        let token = handle.progress_token.clone();
        let answer = handle.await_response().await.with_context(|| format!("tools/call {name} failed"));
        let progress = self.seen.take_progress(&token);
        match answer? {
            ServerResult::CallToolResult(result) => Ok((to_json(&result)?, progress)),
            other => bail!("tools/call {name} got an unexpected result: {other:?}"),
        }
    }

    /// Reads one resource; returns the `ReadResourceResult` as JSON.
    pub async fn read_resource(&self, uri: &str) -> anyhow::Result<Value> {
        let params = ReadResourceRequestParams::new(uri);
        let result = bounded("resources/read", self.service.read_resource(params))
            .await?
            .with_context(|| format!("resources/read {uri} failed"))?;
        to_json(&result)
    }

    /// Gets one prompt; `args` must be a JSON object (of strings, per the spec) or `null`.
    pub async fn get_prompt(&self, name: &str, args: Value) -> anyhow::Result<Value> {
        let mut params = GetPromptRequestParams::new(name);
        if let Some(args) = object_or_none(args)? {
            params = params.with_arguments(args);
        }
        let result = bounded("prompts/get", self.service.get_prompt(params))
            .await?
            .with_context(|| format!("prompts/get {name} failed"))?;
        to_json(&result)
    }

    /// `sampling/createMessage` requests received, answered or refused.
    pub fn sampling_requests_seen(&self) -> usize {
        self.seen.sampling.load(Ordering::SeqCst)
    }

    /// `elicitation/create` requests received, accepted or declined.
    pub fn elicitations_seen(&self) -> usize {
        self.seen.elicitations.load(Ordering::SeqCst)
    }

    /// `roots/list` requests received.
    pub fn roots_requests_seen(&self) -> usize {
        self.seen.roots.load(Ordering::SeqCst)
    }

    /// Notifications received with `method` (e.g. `notifications/resources/updated`).
    pub fn notifications_seen(&self, method: &str) -> usize {
        self.seen.by_method.lock().unwrap_or_else(PoisonError::into_inner).get(method).copied().unwrap_or(0)
    }

    /// `notifications/message` (log) notifications received.
    pub fn log_messages_seen(&self) -> usize {
        self.seen.logs.load(Ordering::SeqCst)
    }

    /// Waits until `done` holds, for things the server does on its own time (for example, asking
    /// for roots after `initialize`). Polls; fails after [`CALL_TIMEOUT`] naming `what`.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&TestClient) -> bool) -> anyhow::Result<()> {
        let poll = async {
            while !done(self) {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        };
        bounded(what, poll).await
    }

    /// The underlying rmcp peer, for the rare test that needs a request this wrapper lacks.
    pub fn peer(&self) -> &Peer<RoleClient> {
        self.service.peer()
    }

    /// Ends the session (rmcp sends `DELETE` for the session) and waits for the client to stop.
    pub async fn close(mut self) -> anyhow::Result<()> {
        match self.service.close_with_timeout(CALL_TIMEOUT).await {
            Ok(Some(_reason)) => Ok(()),
            Ok(None) => bail!("the client did not shut down within {CALL_TIMEOUT:?}"),
            Err(join) => Err(anyhow!(join).context("the client task failed while closing")),
        }
    }
}

/// What the client has been asked so far; shared by the handler and the transport tap.
#[derive(Default)]
struct Seen {
    sampling: AtomicUsize,
    elicitations: AtomicUsize,
    roots: AtomicUsize,
    logs: AtomicUsize,
    /// Progress notifications per token, until [`Seen::take_progress`] claims them.
    progress: Mutex<HashMap<ProgressToken, usize>>,
    /// Every notification received, counted by method.
    by_method: Mutex<HashMap<String, usize>>,
}

impl Seen {
    fn observe(&self, message: &RxJsonRpcMessage<RoleClient>) {
        let JsonRpcMessage::Notification(notification) = message else {
            return;
        };
        if let Ok(v) = serde_json::to_value(&notification.notification) {
            let method = v["method"].as_str().unwrap_or("").to_string();
            *self.by_method.lock().unwrap_or_else(PoisonError::into_inner).entry(method).or_default() += 1;
        }
        match &notification.notification {
            ServerNotification::ProgressNotification(progress) => {
                let mut counts = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
                *counts.entry(progress.params.progress_token.clone()).or_default() += 1;
            }
            #[allow(deprecated)] // logging is deprecated by SEP-2577, but 2025 servers still log
            ServerNotification::LoggingMessageNotification(_) => {
                self.logs.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }

    fn take_progress(&self, token: &ProgressToken) -> usize {
        let mut counts = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        counts.remove(token).unwrap_or(0)
    }
}

/// Passes every message through unchanged, counting notifications on the way in
/// (see "Counting on the wire" in the module docs).
struct Tap<T> {
    inner: T,
    seen: Arc<Seen>,
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Tap<T> {
    type Error = T::Error;

    /// The inner transport's name, so errors read "…StreamableHttpClientWorker…", not "Tap<…>".
    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    // Spelled out to match the trait's `impl Future + Send` signature exactly.
    #[allow(clippy::manual_async_fn)]
    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        async move {
            let message = self.inner.receive().await?;
            self.seen.observe(&message);
            Some(message)
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

/// The `ClientHandler`: answers server-to-client requests per [`ClientBehaviour`].
struct Answerer {
    behaviour: ClientBehaviour,
    seen: Arc<Seen>,
}

// Sampling and roots are deprecated by SEP-2577 in rmcp 3.x, yet they are exactly what a gateway
// must relay for servers speaking the 2025 revisions, so this impl uses them on purpose.
#[allow(deprecated)]
impl ClientHandler for Answerer {
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        if self.behaviour.sampling_reply.is_some() {
            capabilities.sampling = Some(Default::default());
        }
        if self.behaviour.elicitation_accept.is_some() || self.behaviour.url_elicitations.is_some() {
            let mut e = ElicitationCapability::new();
            if self.behaviour.elicitation_accept.is_some() {
                e = e.with_form(FormElicitationCapability::new());
            }
            if self.behaviour.url_elicitations.is_some() {
                e = e.with_url(UrlElicitationCapability::new());
            }
            capabilities.elicitation = Some(e);
        }
        if !self.behaviour.roots.is_empty() {
            capabilities.roots = Some(RootsCapabilities::default());
        }
        ClientConfig::new(capabilities, Implementation::new("mesh-testkit", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn create_message(
        &self,
        _params: rmcp::model::CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, ErrorData> {
        use rmcp::model::{CreateMessageRequestMethod, CreateMessageResult, SamplingMessage};

        self.seen.sampling.fetch_add(1, Ordering::SeqCst);
        let Some(reply) = &self.behaviour.sampling_reply else {
            // Same answer as a client that never implemented sampling.
            return Err(ErrorData::method_not_found::<CreateMessageRequestMethod>());
        };
        Ok(CreateMessageResult::new(SamplingMessage::assistant_text(reply.clone()), SAMPLING_MODEL.to_owned())
            .with_stop_reason(CreateMessageResult::STOP_REASON_END_TURN))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.seen.elicitations.fetch_add(1, Ordering::SeqCst);
        if let (Some(to), ElicitRequestParams::UrlElicitationParams { url, .. }) =
            (&self.behaviour.url_elicitations, &request)
        {
            let _ = to.send(url.clone());
            return Ok(ElicitResult::new(ElicitationAction::Accept));
        }
        let Some(content) = &self.behaviour.elicitation_accept else {
            return Ok(ElicitResult::new(ElicitationAction::Decline));
        };
        Ok(match request {
            ElicitRequestParams::FormElicitationParams { .. } => {
                ElicitResult::new(ElicitationAction::Accept).with_content(content.clone())
            }
            // URL mode: the user "visited" the page; the spec allows no content here.
            _ => ElicitResult::new(ElicitationAction::Accept),
        })
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ListRootsResult, ErrorData> {
        use rmcp::model::{ListRootsResult, Root};

        self.seen.roots.fetch_add(1, Ordering::SeqCst);
        Ok(ListRootsResult::new(self.behaviour.roots.iter().map(Root::new).collect()))
    }
}

/// Builds `tools/call` params from a name and a JSON object (or `null`) of arguments.
fn tool_params(name: &str, args: Value) -> anyhow::Result<CallToolRequestParams> {
    let mut params = CallToolRequestParams::new(name.to_owned());
    if let Some(args) = object_or_none(args)? {
        params = params.with_arguments(args);
    }
    Ok(params)
}

fn object_or_none(args: Value) -> anyhow::Result<Option<JsonObject>> {
    match args {
        Value::Null => Ok(None),
        Value::Object(map) => Ok(Some(map)),
        other => bail!("arguments must be a JSON object or null, got {other}"),
    }
}

fn to_json(value: &impl serde::Serialize) -> anyhow::Result<Value> {
    serde_json::to_value(value).context("serialising an rmcp result to JSON")
}

/// Awaits `future` for at most [`CALL_TIMEOUT`]; `what` names it in the timeout error.
async fn bounded<F: Future>(what: &str, future: F) -> anyhow::Result<F::Output> {
    tokio::time::timeout(CALL_TIMEOUT, future)
        .await
        .map_err(|_elapsed| anyhow!("{what}: no answer within {CALL_TIMEOUT:?}"))
}
