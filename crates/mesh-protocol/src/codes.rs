//! JSON-RPC error codes: the standard ones, those MCP defines, and those the mesh itself answers with.

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object (also: batches, which MCP removed).
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters (also: a bad pagination cursor).
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i64 = -32603;

// MCP 2026-07-28 reserves -32020..-32099 for the specification (basic/index §Error Codes).
/// A mirrored header (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`) is missing
/// or disagrees with the body (2026-07-28).
pub const HEADER_MISMATCH: i64 = -32020;
/// The request needs a client capability it did not declare; `data.requiredCapabilities`.
pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
/// The request names a protocol revision the server does not speak; `data.supported`,
/// `data.requested`.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// The request needs the user to complete URL-mode elicitations first (MCP 2025-11-25,
/// "URL Elicitation Required Error"); `data.elicitations` lists them.
pub const URL_ELICITATION_REQUIRED: i64 = -32042;

// The mesh's own codes lie outside -32768..-32000: JSON-RPC reserves that range, MCP 2026-07-28
// claims -32020..-32099 of it and asks new implementations to leave -32000..-32019 alone. Clients
// key their revision negotiation on -32022, so a mesh code there would be read as a version answer.
/// The upstream MCP server could not be reached, or its process is down.
pub const UPSTREAM_UNAVAILABLE: i64 = -31010;
/// The upstream did not answer within the connection's timeout; the request was cancelled upstream.
pub const UPSTREAM_TIMEOUT: i64 = -31011;
/// The upstream answered with something that is not MCP.
pub const UPSTREAM_PROTOCOL: i64 = -31012;
/// Authentication or authorization refused the call.
pub const UNAUTHORIZED: i64 = -31020;
/// The MCP session is unknown, ended, or belongs to someone else.
pub const SESSION_NOT_FOUND: i64 = -31021;
/// The route (connection or gateway) does not exist for this caller.
pub const ROUTE_NOT_FOUND: i64 = -31022;
/// A rate limit refused the call; `data.retryAfterMs` says when to try again.
pub const RATE_LIMITED: i64 = -31029;
/// A cap on open sessions (per API key, per organisation, or the mesh's total) refused a new one.
pub const SESSION_LIMIT: i64 = -31030;
