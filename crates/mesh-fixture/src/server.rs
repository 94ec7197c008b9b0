//! [`Fixture`]: the MCP server itself, transport-agnostic; `main` puts it on stdio or HTTP.
//!
//! One handler serves both eras; rmcp tells them apart per request (`initialize` sessions vs the
//! 2026-07-28 `_meta` envelope), validates the envelope and the HTTP headers, answers removed
//! methods with `-32601`, adds caching hints, and strips `resultType` for legacy peers. What is
//! era-specific in the fixture itself: the capabilities each era is told about, input from the
//! client ([`crate::input`]), per-request logging ([`crate::session`]), listen streams
//! ([`crate::listen`]) and tasks ([`crate::tasks`], 2026-07-28 only).

// resources/subscribe and logging are legacy-only in rmcp (deprecated for 2026-07-28, SEP-2577);
// the 2025-11-25 wire this fixture targets still has both.
#![allow(deprecated)]

use crate::era::Era;
use crate::input::{self, Dialogue, Exchange, Reply};
use crate::listen::{self, Hub};
use crate::session::Session;
use crate::state::Sealer;
use crate::tasks::TaskStore;
use crate::tools::input_required::{summary, USER_NAME};
use crate::wire::decode;
use crate::{prompts, resources, tools};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, GetTaskParams, GetTaskResult, Implementation, InitializeRequestParams,
    InitializeResult, InputResponses, JsonObject, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ResultType, ServerCapabilities, ServerConfig, SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter,
    Tool, UnsubscribeRequestParams, UpdateTaskParams, TASKS_EXTENSION_ID,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::json;
use std::borrow::Cow;
use std::sync::Arc;

/// What every handler of one process shares: the era served, the `requestState` key, the
/// change feed of the listen streams and the tasks (over HTTP each modern request gets its own
/// handler).
#[derive(Debug, Default)]
pub struct Shared {
    pub(crate) era: Era,
    pub(crate) sealer: Sealer,
    pub(crate) hub: Hub,
    pub(crate) tasks: TaskStore,
}

impl Shared {
    pub fn new(era: Era) -> Arc<Self> {
        Arc::new(Self { era, ..Self::default() })
    }

    /// Ends the open listen streams gracefully (each gets its final result) and stops every task.
    pub fn shut_down(&self) {
        self.hub.shut_down();
        self.tasks.shut_down();
    }
}

/// The fixture server. Cheap to create: HTTP makes one per MCP session (and per modern request),
/// stdio exactly one.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    session: Arc<Session>,
    shared: Arc<Shared>,
}

impl Fixture {
    /// A dual-era fixture with its own shared state (tests).
    pub fn new() -> Self {
        Self::default()
    }

    /// A fixture sharing `shared` with the other handlers of the process.
    pub fn with(shared: Arc<Shared>) -> Self {
        Self { session: Arc::default(), shared }
    }

    /// The user's name, asked before `method` of `name` answers (2026-07-28: an input-required
    /// result, answered by the retry; 2025-11-25: an elicitation mid-request).
    async fn ask_name(
        &self,
        cx: &RequestContext<RoleServer>,
        (method, name): (&'static str, &str),
        arguments: &JsonObject,
        (responses, state): (Option<&InputResponses>, Option<&str>),
    ) -> Result<Reply, McpError> {
        let dialogue = Dialogue::ephemeral(vec![(USER_NAME, input::Ask::text_field("What is your name?", "name"))]);
        let x = Exchange { cx, sealer: &self.shared.sealer, method, name, arguments, responses, state };
        input::require_capabilities(cx, &dialogue)?;
        input::run(&dialogue, &x).await
    }
}

/// What `initialize` advertises (2025-11-25, unchanged): everything the scenarios use and nothing
/// the fixture cannot do — no `listChanged` (legacy sessions are never told of changes);
/// `subscribe` on resources; logging; completions.
fn capabilities() -> ServerCapabilities {
    decode(json!({
        "tools": {},
        "resources": {"subscribe": true},
        "prompts": {},
        "logging": {},
        "completions": {}
    }))
    .unwrap_or_default()
}

/// What `server/discover` advertises (2026-07-28): the same, plus `listChanged` on tools and
/// prompts, which listen streams deliver (the trigger tools announce them), and the tasks
/// extension (SEP-2663: under `extensions`, never a `tasks` slot). `subscribe` on resources means
/// `resourceSubscriptions` on a listen stream now.
fn modern_capabilities() -> ServerCapabilities {
    decode(json!({
        "tools": {"listChanged": true},
        "resources": {"subscribe": true},
        "prompts": {"listChanged": true},
        "logging": {},
        "completions": {},
        "extensions": {TASKS_EXTENSION_ID: {}}
    }))
    .unwrap_or_default()
}

/// Results of the 2026-07-28 wire must say `resultType` (rmcp removes it again for legacy peers).
macro_rules! completed {
    ($result:expr) => {{
        let mut result = $result;
        result.result_type = Some(ResultType::COMPLETE);
        result
    }};
}

impl ServerHandler for Fixture {
    /// rmcp also gates `tasks/*` on what this advertises: a 2025-11-25 session was never offered
    /// the extension, so there they stay unknown methods (`-32601`), as before it existed.
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = modern_capabilities();
        if self.session.is_legacy() {
            capabilities.extensions = None;
        }
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("mesh-fixture", env!("CARGO_PKG_VERSION")))
            .with_instructions("Fixture server for the MCP conformance suite's server scenarios.")
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.shared.era.supported_versions()
    }

    /// rmcp's own `initialize`, with the legacy capabilities.
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        cx.peer.set_peer_info(request.clone());
        self.session.mark_legacy();
        let mut result = self.negotiate_initialize(&request)?;
        result.capabilities = capabilities();
        Ok(result)
    }

    /// Every stream gets what it asked for, as far as `server/discover` advertised it (rmcp
    /// intersects the two).
    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, subscription: SubscriptionContext) -> Result<(), McpError> {
        listen::listen(&self.shared.hub, subscription).await
    }

    /// rmcp checks `Mcp-Param-*` headers against the called tool's schema (SEP-2243).
    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::list().ok()?.into_iter().find(|t| t.name == name)
    }

    async fn set_level(&self, request: SetLevelRequestParams, _cx: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.session.set_log_level(request.level);
        Ok(())
    }

    // Lists are short and fixed, so every list is one page (no `nextCursor`).
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools::list()?))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        match tools::call(&self.shared, &self.session, request, cx).await? {
            CallToolResponse::Complete(result) => Ok(CallToolResponse::Complete(completed!(result))),
            other => Ok(other),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(resources::list()?))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(resources::templates()?))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if request.uri != resources::ASKS {
            return resources::read(&request.uri).map(|r| ReadResourceResponse::from(completed!(r)));
        }
        let (responses, state) = (request.input_responses.as_ref(), request.request_state.as_deref());
        match self.ask_name(&cx, ("resources/read", &request.uri), &JsonObject::default(), (responses, state)).await? {
            Reply::InputRequired(irr) => Ok(ReadResourceResponse::InputRequired(irr)),
            Reply::Done(answers) => resources::read_after_input(&summary(&answers)).map(|r| completed!(r).into()),
        }
    }

    async fn subscribe(&self, request: SubscribeRequestParams, cx: RequestContext<RoleServer>) -> Result<(), McpError> {
        resources::subscribe(&self.session, &cx.peer, &request.uri)
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        resources::unsubscribe(&self.session, &request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(prompts::list()?))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if request.name != prompts::INPUT_REQUIRED {
            return prompts::get(&request.name, request.arguments.as_ref()).map(|r| completed!(r).into());
        }
        // `input-required-result-non-tool-request`: the name question, on prompts/get.
        let arguments = request.arguments.clone().unwrap_or_default();
        let (responses, state) = (request.input_responses.as_ref(), request.request_state.as_deref());
        match self.ask_name(&cx, ("prompts/get", &request.name), &arguments, (responses, state)).await? {
            Reply::InputRequired(irr) => Ok(GetPromptResponse::InputRequired(irr)),
            Reply::Done(answers) => prompts::input_required(&summary(&answers)).map(|r| completed!(r).into()),
        }
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        prompts::complete(&request).map(|r| completed!(r))
    }

    // rmcp answers these only for a request that declared the tasks extension (else -32021).
    async fn get_task(
        &self,
        request: GetTaskParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        self.shared.tasks.get(&request.task_id).map(GetTaskResult::new)
    }

    async fn update_task(&self, request: UpdateTaskParams, _cx: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.shared.tasks.update(&request.task_id, &request.input_responses)
    }

    async fn cancel_task(&self, request: CancelTaskParams, _cx: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.shared.tasks.cancel(&request.task_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_modern_capabilities_offer_the_tasks_extension() {
        let modern = serde_json::to_value(modern_capabilities()).unwrap();
        assert_eq!(modern["extensions"][TASKS_EXTENSION_ID], json!({}));
        assert!(modern.get("tasks").is_none(), "no v1 tasks slot");
        assert!(serde_json::to_value(capabilities()).unwrap().get("extensions").is_none());
        let legacy_session = Fixture::new();
        legacy_session.session.mark_legacy();
        assert!(!legacy_session.get_info().capabilities.supports_tasks());
        assert!(Fixture::new().get_info().capabilities.supports_tasks());
    }

    #[test]
    fn capabilities_decode_with_subscribe() {
        let on_wire = serde_json::to_value(capabilities()).unwrap();
        assert_eq!(on_wire["resources"]["subscribe"], true);
        for key in ["tools", "prompts", "logging", "completions"] {
            assert!(on_wire.get(key).is_some(), "{key} missing");
        }
    }
}
