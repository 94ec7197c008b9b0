//! Where a session sends a client request: the decision a gateway's router makes for each
//! request (`gateway.rs`), and a direct session makes trivially — everything to its one upstream.

use crate::RelayError;
use futures_util::future::BoxFuture;
use mesh_protocol::Message;
use serde_json::Value;

/// What a session does with a client request.
pub(super) enum Routing {
    /// Send `request` to `member`.
    Forward {
        /// The member: a gateway's, or 0, a direct session's one upstream.
        member: usize,
        /// What the member gets: the client's request, or a gateway's rewrite of it.
        request: Message,
        /// The name or URI the request has at the member, where routing restored one (policy
        /// is written against the member's names, not the gateway's).
        original: Option<String>,
    },
    /// The session answers itself with this result (a gateway's merged lists, ping).
    Local(BoxFuture<'static, Result<Value, RelayError>>),
}

impl Routing {
    /// A direct session's decision: the client's request, as it is, to the one upstream.
    pub(super) fn direct(msg: &Message) -> Routing {
        Routing::Forward { member: 0, request: msg.clone(), original: None }
    }
}
