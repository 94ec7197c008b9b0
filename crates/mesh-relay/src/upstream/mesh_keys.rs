//! The mesh's own keys in `_meta`: what the stateless ingress, the sessions and the link to a
//! stateless upstream (`modern.rs`) tell each other inside messages. They are the mesh's business:
//! only that link reads them, and no other upstream is sent them ([`without_mesh_keys`]).

use mesh_protocol::Message;
use serde_json::Value;

/// The `_meta` key naming the input key of a server request that came from an input-required
/// result (see `modern.rs`'s module docs).
pub const INPUT_KEY: &str = "mcp-mesh/inputKey";
/// The `_meta` key under which the stateless ingress hands a client's `Mcp-Param-*` headers to
/// the link to a stateless upstream (taken out before the request leaves).
pub const PARAM_HEADERS: &str = "mcp-mesh/paramHeaders";
/// The `_meta` key of a pooled session's `initialize` carrying the stateless client's
/// `capabilities.extensions`, which the session-based handshake has no place for.
pub const EXTENSIONS: &str = "mcp-mesh/extensions";
/// The `_meta` key marking the `initialize` result of a link that serves stateless clients in
/// their own revision: only from such a session may the tasks extension be offered (a
/// session-based upstream advertising it speaks the other revision's wire).
pub const SERVES_STATELESS: &str = "mcp-mesh/servesStateless";
/// `msg` without the mesh's own keys in `params._meta` ([`EXTENSIONS`] on a pooled session's
/// `initialize`, [`PARAM_HEADERS`] on a stateless client's calls) and without a `_meta` they
/// leave empty: what an upstream not spoken to in the stateless revision receives, since only
/// the link to a stateless upstream reads them. `None` when the message carries neither.
pub fn without_mesh_keys(msg: &Message) -> Option<Message> {
    // Asked of every request on a pooled session: the bytes are searched before anything is
    // parsed, and the keys are there only when the ingress put them there.
    static MESH_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new("\"mcp-mesh/"));
    MESH_KEY.find(msg.bytes())?;
    let mut params: Value = msg.params()?;
    let meta = params.get_mut("_meta")?.as_object_mut()?;
    let before = meta.len();
    // `shift_remove`: the other members keep their order.
    meta.shift_remove(EXTENSIONS);
    meta.shift_remove(PARAM_HEADERS);
    if meta.len() == before {
        return None;
    }
    if meta.is_empty() {
        params.as_object_mut()?.shift_remove("_meta");
    }
    Some(Message::request(msg.id()?, msg.method()?, Some(&params)))
}
