//! Fixture data is written as the JSON the conformance suite reads, then decoded into rmcp types.
//!
//! Why JSON first: the wire shape *is* the fixture's contract (a relay in front of it must pass it
//! through unchanged), so it should be readable in the source exactly as it appears on the wire,
//! rather than reconstructed from builder calls. Every literal is decoded in a unit test, so a
//! decode failure at run time means rmcp changed under us, not bad input.

use rmcp::ErrorData as McpError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes a fixture literal into the rmcp type that carries it.
pub(crate) fn decode<T: DeserializeOwned>(value: Value) -> Result<T, McpError> {
    serde_json::from_value(value).map_err(|e| {
        // Internal fault: the literal no longer matches rmcp's model. Details go to the log.
        tracing::error!(error = %e, type_name = std::any::type_name::<T>(), "fixture literal does not decode");
        McpError::internal_error("fixture data does not decode", None)
    })
}
