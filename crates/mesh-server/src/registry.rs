//! The agent registry's routes (#22): the mcp-mesh SDK's registry protocol under
//! `/registry/{key}/`, so that an unmodified agent started with
//! `MCP_MESH_REGISTRY_URL=http://<mesh>/registry/<key>` and `meshctl --registry-url` the same
//! work against the mesh.
//!
//! The SDK's agents and `meshctl` send no credentials of their own, but both keep a path
//! prefix, so the API key travels in the path. It decides the organisation the agent joins
//! and what it may do there (`mesh_admin::registry`); a wrong or revoked key is a 401 on every
//! route. The key is never logged (the request log names the route's template, not the path).
//! `POST …/proxy/{host:port}/mcp` (`meshctl call`) is not forwarded raw as the SDK's own
//! registry does: it goes through the agent's connection at `/mcp/{slug}`, with the same key,
//! so a call made this way is authorised, rate-limited and audited like any other.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use axum::{Json, Router};
use mesh_admin::registry::{timestamp, BeatAnswer, Heartbeat, Registry};
use mesh_admin::AdminError;
use mesh_core::{Fault, Principal};
use mesh_relay::ports::Authenticator as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// A heartbeat is a few kilobytes; an agent with hundreds of tools and schemas stays far below.
const MAX_BODY: usize = 1 << 20;

#[derive(Clone)]
struct Ctx {
    registry: Registry,
    /// The MCP routes, for proxied calls.
    mcp: Router,
    started: std::time::Instant,
}

/// The registry's routes; `mcp` is the relay's router (proxied calls go through it).
pub(crate) fn router(registry: Registry, mcp: Router) -> Router {
    let ctx = Ctx { registry, mcp, started: std::time::Instant::now() };
    Router::new()
        .route("/registry/{key}", get(index))
        .route("/registry/{key}/", get(index))
        .route("/registry/{key}/health", get(health))
        .route("/registry/{key}/heartbeat", post(heartbeat))
        .route("/registry/{key}/heartbeat/{agent}", head(beat))
        .route("/registry/{key}/agents", get(agents))
        .route("/registry/{key}/agents/{agent}", axum::routing::delete(leave))
        .route("/registry/{key}/proxy/{target}/{*path}", post(proxy).get(proxy))
        .route("/api/v1/agents", get(rest_agents))
        .route("/api/v1/agents/{agent}", get(rest_agent))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx)
}

/// The SDK registry's error shape.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message, "timestamp": timestamp()}))).into_response()
}

fn refused(e: &AdminError) -> Response {
    let status = match (e, e.fault()) {
        (AdminError::NotFound(_), _) => StatusCode::NOT_FOUND,
        (AdminError::Conflict(_), _) => StatusCode::CONFLICT,
        (_, Fault::Policy) => StatusCode::FORBIDDEN,
        (_, Fault::Internal) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "registry request failed");
    }
    error(status, &e.public_message())
}

/// The key's principal, or the 401. OAuth access tokens are for one MCP endpoint, not this.
fn principal(ctx: &Ctx, key: &str) -> Result<Principal, Box<Response>> {
    ctx.registry.admin.keys.authenticate(key).filter(|p| p.audience.is_none()).ok_or_else(|| {
        Box::new(error(
            StatusCode::UNAUTHORIZED,
            "the registry URL must carry a valid API key: http://<mesh>/registry/<key>",
        ))
    })
}

async fn index(State(ctx): State<Ctx>, Path(key): Path<String>) -> Response {
    if let Err(r) = principal(&ctx, &key) {
        return *r;
    }
    Json(json!({
        "service": "mcp-mesh-registry", "status": "running", "version": env!("CARGO_PKG_VERSION"),
        "endpoints": ["/health", "/heartbeat", "/agents"],
    }))
    .into_response()
}

async fn health(State(ctx): State<Ctx>, Path(key): Path<String>) -> Response {
    if let Err(r) = principal(&ctx, &key) {
        return *r;
    }
    Json(json!({
        "service": "mcp-mesh-registry", "status": "healthy", "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": ctx.started.elapsed().as_secs(), "timestamp": timestamp(),
    }))
    .into_response()
}

async fn heartbeat(State(ctx): State<Ctx>, Path(key): Path<String>, body: Bytes) -> Response {
    let p = match principal(&ctx, &key) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let hb: Heartbeat = match serde_json::from_slice(&body) {
        Ok(hb) => hb,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("Invalid JSON payload: {e}")),
    };
    match ctx.registry.heartbeat(&p, hb).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            tracing::warn!(org = %p.org_id, error = %e, "agent registration refused");
            refused(&e)
        }
    }
}

async fn beat(State(ctx): State<Ctx>, Path((key, agent)): Path<(String, String)>) -> Response {
    let p = match principal(&ctx, &key) {
        Ok(p) => p,
        Err(r) => return r.status().into_response(),
    };
    // A heartbeat keeps an agent in resolution: a write, for the keys that may register.
    if mesh_admin::registry::writer(&p).is_err() {
        return StatusCode::FORBIDDEN.into_response();
    }
    // A HEAD answer has no body: the status is the whole message.
    match ctx.registry.beat(&p, &agent).await {
        Ok(BeatAnswer::Fine) => StatusCode::OK.into_response(),
        Ok(BeatAnswer::Changed) => StatusCode::ACCEPTED.into_response(),
        Ok(BeatAnswer::Gone) => StatusCode::GONE.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "heartbeat failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn agents(State(ctx): State<Ctx>, Path(key): Path<String>) -> Response {
    let p = match principal(&ctx, &key) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    // A key narrowed to some routes (a hub's key to a peer, say) reads no addresses.
    if let Err(e) = mesh_admin::trust::Trust::check_management(&p) {
        return refused(&e);
    }
    match ctx.registry.agents(&p).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => refused(&e),
    }
}

/// `GET /api/v1/agents`: the same view for scripts and the CLI, with the usual bearer key (not
/// a narrowed one: agents' addresses are the organisation's business).
async fn rest_agents(State(ctx): State<Ctx>, call: crate::rest::Call) -> Response {
    let registry = ctx.registry.clone();
    crate::rest::run(&ctx.registry.admin, &call, None, |p| async move { registry.agents(&p).await }).await
}

/// `GET /api/v1/agents/{id}`: one agent.
async fn rest_agent(State(ctx): State<Ctx>, Path(agent): Path<String>, call: crate::rest::Call) -> Response {
    let registry = ctx.registry.clone();
    crate::rest::run(&ctx.registry.admin, &call, None, |p| async move {
        let all = registry.agents(&p).await?;
        all["agents"]
            .as_array()
            .and_then(|list| list.iter().find(|a| a["id"] == agent.as_str()).cloned())
            .ok_or_else(|| AdminError::NotFound(format!("agent '{agent}'")))
    })
    .await
}

async fn leave(State(ctx): State<Ctx>, Path((key, agent)): Path<(String, String)>) -> Response {
    let p = match principal(&ctx, &key) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if let Err(e) = mesh_admin::registry::writer(&p) {
        return refused(&e);
    }
    match ctx.registry.leave(&p, &agent).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(&e),
    }
}

/// `meshctl call`: a JSON-RPC request for the agent at `target`, made through its connection.
/// meshctl speaks without a session, so the request goes in as the stateless revision; the
/// answer goes back as the one SSE message meshctl reads.
async fn proxy(
    State(ctx): State<Ctx>,
    Path((key, target, path)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match principal(&ctx, &key) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if path != "mcp" && !path.starts_with("mcp/") {
        return error(StatusCode::BAD_REQUEST, "Only /mcp/* paths are allowed for proxying");
    }
    if method != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "only POST is proxied");
    }
    let slug = match ctx.registry.agent_at(&p, &target).await {
        Ok((_, slug)) => slug,
        Err(AdminError::NotFound(_)) => {
            return error(StatusCode::FORBIDDEN, &format!("Target host '{target}' is not a registered agent"))
        }
        Err(e) => return refused(&e),
    };
    let Ok(mut msg) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body must be a JSON-RPC request");
    };
    let Some(rpc_method) = msg.get("method").and_then(Value::as_str).map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "the body must be a JSON-RPC request");
    };
    let version = mesh_protocol::version::MODERN[0];
    let params = msg.as_object_mut().map(|m| m.entry("params").or_insert_with(|| json!({})));
    let Some(params) = params.and_then(Value::as_object_mut) else {
        return error(StatusCode::BAD_REQUEST, "params must be an object");
    };
    let name = params.get("name").and_then(Value::as_str).map(str::to_string);
    if let Some(meta) = params.entry("_meta").or_insert_with(|| json!({})).as_object_mut() {
        meta.insert(mesh_protocol::modern::META_VERSION.into(), json!(version));
        meta.entry(mesh_protocol::modern::META_CAPABILITIES).or_insert_with(|| json!({}));
        meta.entry(mesh_protocol::modern::META_CLIENT_INFO)
            .or_insert_with(|| json!({"name": "meshctl", "version": "proxy"}));
    }
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("/mcp/{slug}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header("mcp-protocol-version", version)
        .header("mcp-method", &rpc_method);
    if let (Some(name), true) = (&name, mesh_protocol::modern::needs_name(&rpc_method)) {
        req = req.header("mcp-name", name);
    }
    if let Some(host) = headers.get(header::HOST) {
        req = req.header(header::HOST, host);
    }
    let Ok(req) = req.body(Body::from(msg.to_string())) else {
        return error(StatusCode::BAD_REQUEST, "the request cannot be forwarded");
    };
    let resp = match ctx.mcp.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = resp.into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY * 16).await else {
        return error(StatusCode::BAD_GATEWAY, "the agent's answer was too large");
    };
    let mut out = Vec::with_capacity(bytes.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(&bytes);
    out.extend_from_slice(b"\n\n");
    let mut resp = (parts.status, Body::from(out)).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp
}
