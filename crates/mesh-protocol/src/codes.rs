//! JSON-RPC error codes: the standard ones and those the mesh itself answers with.

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

// The mesh's own codes live in the implementation-defined server range (-32000..-32099).
/// The upstream MCP server could not be reached, or its process is down.
pub const UPSTREAM_UNAVAILABLE: i64 = -32010;
/// The upstream did not answer within the connection's timeout; the request was cancelled upstream.
pub const UPSTREAM_TIMEOUT: i64 = -32011;
/// The upstream answered with something that is not MCP.
pub const UPSTREAM_PROTOCOL: i64 = -32012;
/// Authentication or authorization refused the call.
pub const UNAUTHORIZED: i64 = -32020;
/// The MCP session is unknown, ended, or belongs to someone else.
pub const SESSION_NOT_FOUND: i64 = -32021;
/// The route (connection or gateway) does not exist for this caller.
pub const ROUTE_NOT_FOUND: i64 = -32022;
/// A rate limit refused the call; `data.retryAfterMs` says when to try again.
pub const RATE_LIMITED: i64 = -32029;
/// A cap on open sessions (per API key, per organisation, or the mesh's total) refused a new one.
pub const SESSION_LIMIT: i64 = -32030;
