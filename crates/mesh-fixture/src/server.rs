//! [`Fixture`]: the MCP server itself, transport-agnostic; `main` puts it on stdio or HTTP.

// resources/subscribe and logging are legacy-only in rmcp (deprecated for 2026-07-28, SEP-2577);
// the 2025-11-25 wire this fixture targets still has both.
#![allow(deprecated)]

use crate::session::Session;
use crate::wire::decode;
use crate::{prompts, resources, tools};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::json;
use std::sync::Arc;

/// The fixture server. Cheap to create: HTTP makes one per MCP session, stdio exactly one.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    session: Arc<Session>,
}

impl Fixture {
    pub fn new() -> Self {
        Self::default()
    }
}

/// What `initialize` advertises: everything the scenarios use and nothing the fixture cannot do —
/// no `listChanged` (its lists never change); `subscribe` on resources; logging; completions.
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

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(capabilities())
            .with_server_info(Implementation::new("mesh-fixture", env!("CARGO_PKG_VERSION")))
            .with_instructions("Fixture server for the MCP conformance suite's server scenarios.")
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
        tools::call(&self.session, request, cx).await.map(CallToolResponse::from)
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
        _cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        resources::read(&request.uri).map(ReadResourceResponse::from)
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
        _cx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        prompts::get(&request.name, request.arguments.as_ref()).map(GetPromptResponse::from)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        prompts::complete(&request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_decode_with_subscribe() {
        let on_wire = serde_json::to_value(capabilities()).unwrap();
        assert_eq!(on_wire["resources"]["subscribe"], true);
        for key in ["tools", "prompts", "logging", "completions"] {
            assert!(on_wire.get(key).is_some(), "{key} missing");
        }
    }
}
