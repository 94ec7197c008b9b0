//! An in-process "upstream": the mesh's own management MCP server behind the same session code.

use super::{Inbound, InboundSink, Transport};
use crate::RelayError;
use mesh_core::Principal;
use mesh_protocol::{Kind, Message};
use std::sync::Arc;

/// An MCP server implemented inside the mesh (the management server at `/mcp`).
#[async_trait::async_trait]
pub trait LocalService: Send + Sync + 'static {
    /// Answers one request on behalf of `principal`. The reply must carry the request's id.
    async fn handle(&self, principal: &Principal, request: &Message) -> Message;
}

/// A link whose upstream is a [`LocalService`] called in-process.
pub struct LocalLink {
    service: Arc<dyn LocalService>,
    principal: Principal,
    sink: Arc<dyn InboundSink>,
}

impl LocalLink {
    /// A link that answers as `principal`.
    pub fn new(service: Arc<dyn LocalService>, principal: Principal, sink: Arc<dyn InboundSink>) -> Self {
        LocalLink { service, principal, sink }
    }
}

#[async_trait::async_trait]
impl Transport for LocalLink {
    fn transport_kind(&self) -> &'static str {
        "inproc"
    }

    async fn send(&self, msg: Message) -> Result<(), RelayError> {
        if msg.kind() != Kind::Request {
            // The management server sends no requests, so notifications and responses end here.
            return Ok(());
        }
        let (service, principal, sink) = (self.service.clone(), self.principal.clone(), self.sink.clone());
        tokio::spawn(async move {
            let reply = service.handle(&principal, &msg).await;
            let related = msg.id().map(Into::into);
            sink.deliver(Inbound::Message { msg: reply, related });
        });
        Ok(())
    }

    async fn close(&self) {}
}
