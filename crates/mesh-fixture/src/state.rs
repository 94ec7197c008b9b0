//! Sealed `requestState` for the multi-round tools (SEP-2322, spec `basic/patterns/mrtr.mdx`).
//!
//! The client echoes `requestState` back verbatim, so the fixture treats it as attacker-controlled:
//! it is sealed with rmcp's `RequestStateCodec` (HMAC-SHA256 under a key drawn once per process),
//! bound to the request it belongs to (method, name, arguments) and to a 10-minute expiry, as the
//! spec suggests. A value that does not open — tampered, replayed onto another tool or other
//! arguments, expired, or sealed by another process — is the client's fault: `-32602`.
//!
//! The payload is readable JSON (the codec signs, it does not encrypt): the fixture keeps nothing
//! secret in it, only which round the request is in and what was answered so far.

use rand::RngCore;
use rmcp::model::{JsonObject, RequestStateCodec, SealOptions};
use rmcp::ErrorData as McpError;
use serde_json::{json, Value};
use std::time::Duration;

/// How long a sealed state stays valid (py's SDK uses the same default).
const TTL: Duration = Duration::from_secs(600);

pub(crate) struct Sealer {
    codec: RequestStateCodec,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Default for Sealer {
    fn default() -> Self {
        let mut key = [0u8; RequestStateCodec::MIN_KEY_LENGTH];
        rand::thread_rng().fill_bytes(&mut key);
        // Cannot fail: the key has exactly the minimum length.
        let codec = RequestStateCodec::try_new(key.to_vec()).expect("a minimum-length key is accepted");
        Self { codec }
    }
}

impl Sealer {
    /// Seals `payload` for the request `method` + `name` with these `arguments`.
    pub(crate) fn seal(&self, method: &str, name: &str, arguments: &JsonObject, payload: &Value) -> String {
        let bound = binding(method, name, arguments);
        let options = SealOptions::new().associated_data(&bound).ttl(TTL);
        self.codec.seal_with(payload.to_string().as_bytes(), &options)
    }

    /// Opens a state the client echoed for the request `method` + `name` with these `arguments`.
    pub(crate) fn open(
        &self,
        method: &str,
        name: &str,
        arguments: &JsonObject,
        sealed: &str,
    ) -> Result<Value, McpError> {
        let bound = binding(method, name, arguments);
        let bytes = self.codec.open_with(sealed, &bound).map_err(|e| {
            // The client's fault, and nothing in the reason is secret.
            McpError::invalid_params(format!("requestState rejected: {e}"), Some(json!({"requestState": "invalid"})))
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|_| McpError::invalid_params("requestState rejected: not a fixture state", None))
    }
}

/// The request a state belongs to: a retry must repeat the same method, name and arguments.
fn binding(method: &str, name: &str, arguments: &JsonObject) -> Vec<u8> {
    format!("{method}\n{name}\n{}", Value::Object(arguments.clone())).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_sealed_state_opens_for_its_own_request_only() {
        let sealer = Sealer::default();
        let a = args(json!({"x": 1}));
        let sealed = sealer.seal("tools/call", "t", &a, &json!({"round": 2}));
        assert_eq!(sealer.open("tools/call", "t", &a, &sealed).unwrap(), json!({"round": 2}));
        for (method, name, arguments) in [
            ("tools/call", "other", a.clone()),
            ("prompts/get", "t", a.clone()),
            ("tools/call", "t", args(json!({"x": 2}))),
        ] {
            assert_eq!(sealer.open(method, name, &arguments, &sealed).unwrap_err().code.0, -32602);
        }
    }

    #[test]
    fn tampered_or_foreign_states_are_invalid_params() {
        let sealer = Sealer::default();
        let a = JsonObject::new();
        let sealed = sealer.seal("tools/call", "t", &a, &json!({}));
        let tampered = format!("{sealed}-TAMPERED");
        assert_eq!(sealer.open("tools/call", "t", &a, &tampered).unwrap_err().code.0, -32602);
        let other_process = Sealer::default();
        assert_eq!(other_process.open("tools/call", "t", &a, &sealed).unwrap_err().code.0, -32602);
        assert_eq!(sealer.open("tools/call", "t", &a, "garbage").unwrap_err().code.0, -32602);
    }
}
