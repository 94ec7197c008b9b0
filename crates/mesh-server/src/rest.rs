//! REST for scripts and the dashboard, under `/api/v1`. Handlers authenticate the bearer API key
//! and call the same `mesh-admin` services as the management tools, so authorization cannot
//! differ between the two; every authenticated request is itself recorded in the audit trail
//! (route kind `rest`).
//!
//! - `GET /api/v1/audit?from=&to=&user=&key=&route=&routeKind=&method=&name=&outcome=&limit=&cursor=&order=`
//!   → `{items, nextCursor}` (the fields and rules of `AUDIT_QUERY`);
//! - `GET /api/v1/audit/export?…` → the same filters, every matching row as JSON Lines, oldest
//!   first unless `order=desc` (`limit` is the page size of the underlying walk);
//! - `GET /api/v1/audit/verify` → the `AUDIT_VERIFY` report (200 whether or not the chain is intact;
//!   read `ok`);
//! - `GET /api/v1/usage?from=&to=&by=&bucket=&user=&key=&route=&tool=&limit=` → the `USAGE_QUERY`
//!   answer `{from, to, bucket, by, items}` (`by` comma-separated: user, key, route, tool,
//!   method, time).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::FromRequestParts;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mesh_admin::audit::AuditQuery;
use mesh_admin::trust::Trust;
use mesh_admin::{Admin, AdminError};
use mesh_core::audit::{AuditSink, CallRecord, Origin, Outcome};
use mesh_core::{Fault, Principal};
use mesh_relay::ports::Authenticator;
use mesh_store::AuditOrder;
use serde_json::{json, Value};

pub(crate) fn router(admin: Admin) -> Router {
    Router::new()
        .route("/api/v1/audit", get(query))
        .route("/api/v1/audit/export", get(export))
        .route("/api/v1/audit/verify", get(verify))
        .route("/api/v1/usage", get(usage))
        .with_state(admin)
}

async fn usage(
    State(admin): State<Admin>,
    call: Call,
    q: Result<Query<mesh_admin::usage::UsageRequest>, QueryRejection>,
) -> Response {
    run(&admin.clone(), &call, None, |p| async move {
        match q {
            Ok(Query(q)) => admin.query_usage(&p, q).await,
            Err(e) => Err(AdminError::Invalid(e.body_text())),
        }
    })
    .await
}

async fn query(State(admin): State<Admin>, call: Call, q: Result<Query<AuditQuery>, QueryRejection>) -> Response {
    run(&admin.clone(), &call, None, |p| async move {
        match q {
            Ok(Query(q)) => admin.query_audit(&p, q).await,
            Err(e) => Err(AdminError::Invalid(e.body_text())),
        }
    })
    .await
}

async fn export(State(admin): State<Admin>, call: Call, q: Result<Query<AuditQuery>, QueryRejection>) -> Response {
    let started = Instant::now();
    let p = match authenticate(&admin, &call.headers) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if let Err(e) = Trust::check_management(&p) {
        let resp = reply::<Json<Value>>(Err(e));
        record(&admin, &p, &call, None, started, &resp);
        return resp;
    }
    let mut q = match q {
        Ok(Query(q)) => q,
        Err(e) => {
            let resp = reply::<Json<Value>>(Err(AdminError::Invalid(e.body_text())));
            record(&admin, &p, &call, None, started, &resp);
            return resp;
        }
    };
    q.order = Some(q.order.unwrap_or(AuditOrder::Asc));
    q.limit = Some(q.limit.unwrap_or(mesh_admin::audit::MAX_LIMIT));
    // Check the request (and the caller's right to it) before committing to a 200.
    if let Err(e) = admin.audit_filter(&p, q.clone()) {
        let resp = reply::<Json<Value>>(Err(e));
        record(&admin, &p, &call, None, started, &resp);
        return resp;
    }
    let resp = (
        [(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"))],
        Body::from_stream(pages(admin.clone(), p.clone(), q)),
    )
        .into_response();
    record(&admin, &p, &call, None, started, &resp);
    resp
}

/// The export body: one page at a time, each row a line.
fn pages(
    admin: Admin,
    p: Principal,
    q: AuditQuery,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::unfold(Some(q), move |state| {
        let (admin, p) = (admin.clone(), p.clone());
        async move {
            let q = state?;
            match admin.query_audit(&p, q.clone()).await {
                Ok(page) => {
                    let mut out = String::new();
                    for item in page["items"].as_array().into_iter().flatten() {
                        out.push_str(&item.to_string());
                        out.push('\n');
                    }
                    let next = page["nextCursor"].as_str().map(|c| AuditQuery { cursor: Some(c.to_string()), ..q });
                    Some((Ok(out), next))
                }
                Err(e) => {
                    // Headers are gone: end the body with an error so the client sees a broken
                    // transfer rather than a short, seemingly complete file.
                    tracing::error!(error = %e, "audit export failed mid-way");
                    Some((Err(std::io::Error::other("audit export failed")), None))
                }
            }
        }
    })
}

async fn verify(State(admin): State<Admin>, call: Call) -> Response {
    run(&admin.clone(), &call, None, |p| async move { admin.verify_audit(&p).await }).await
}

/// What a REST handler needs of its request besides the body: who asks, and what was asked.
pub(crate) struct Call {
    headers: HeaderMap,
    uri: Uri,
    method: Method,
}

impl Call {
    /// The request's headers.
    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Call, Self::Rejection> {
        Ok(Call { headers: parts.headers.clone(), uri: parts.uri.clone(), method: parts.method.clone() })
    }
}

/// Authenticates, runs `op` as the caller, answers, and records the request in the audit trail
/// with its method and `body` (redacted by the audit writer like a management tool's arguments).
pub(crate) async fn run<F, Fut, T>(admin: &Admin, call: &Call, body: Option<&Value>, op: F) -> Response
where
    F: FnOnce(Principal) -> Fut,
    Fut: Future<Output = Result<T, AdminError>>,
    T: serde::Serialize,
{
    let started = Instant::now();
    let p = match authenticate(admin, &call.headers) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let resp = match Trust::check_management(&p) {
        Ok(()) => reply(op(p.clone()).await.map(Json)),
        Err(e) => reply::<Json<Value>>(Err(e)),
    };
    record(admin, &p, call, body, started, &resp);
    resp
}

/// The caller's principal, or the 401 to answer.
pub(crate) fn authenticate(admin: &Admin, headers: &HeaderMap) -> Result<Principal, Box<Response>> {
    // The one bearer parser, shared with the MCP routes (scheme case-insensitive, RFC 9110).
    // An OAuth access token is for the one MCP endpoint it was issued for (RFC 8707; MCP: a
    // server accepts only tokens issued for it), never for the REST API.
    match mesh_relay::ingress::bearer(headers).and_then(|t| admin.keys.authenticate(t)).filter(|p| p.audience.is_none())
    {
        Some(p) => Ok(p),
        None => {
            let mut resp = error(StatusCode::UNAUTHORIZED, "a valid API key is required (Authorization: Bearer …)");
            resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"mcp-mesh\""));
            Err(Box::new(resp))
        }
    }
}

pub(crate) fn reply<T: IntoResponse>(r: Result<T, AdminError>) -> Response {
    match r {
        Ok(v) => v.into_response(),
        Err(e) => {
            let status = match (&e, e.fault()) {
                (AdminError::NotFound(_), _) => StatusCode::NOT_FOUND,
                (AdminError::Conflict(_), _) => StatusCode::CONFLICT,
                (AdminError::UpstreamAuth(_), _) => StatusCode::BAD_GATEWAY,
                (_, Fault::Policy) => StatusCode::FORBIDDEN,
                (_, Fault::Internal) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            error(status, &e.public_message())
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// The audit record of a REST request: its method and path, and as arguments the query
/// string's parameters and the body's fields (a write must show what it changed).
pub(crate) fn record(
    admin: &Admin,
    p: &Principal,
    call: &Call,
    body: Option<&Value>,
    started: Instant,
    resp: &Response,
) {
    let uri = &call.uri;
    let mut args: serde_json::Map<String, Value> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), Value::String(v.to_string()))
        })
        .collect();
    match body {
        Some(Value::Object(fields)) => args.extend(fields.clone()),
        Some(other) => {
            args.insert("body".into(), other.clone());
        }
        None => {}
    }
    let status = resp.status();
    let outcome = match status {
        s if s.is_success() => Outcome::Ok,
        StatusCode::FORBIDDEN => Outcome::Denied,
        _ => Outcome::ProtocolError,
    };
    admin.audit.record(CallRecord {
        time_ms: mesh_core::id::now_ms() - started.elapsed().as_millis() as i64,
        origin: Arc::new(Origin {
            principal: p.clone(),
            session_id: String::new(),
            client: None,
            route_kind: "rest",
            route: uri.path().to_string(),
        }),
        method: format!("{} {}", call.method, uri.path()).into(),
        name: None,
        arguments: (!args.is_empty()).then(|| Value::Object(args).to_string()),
        outcome,
        error: (!status.is_success()).then(|| status.to_string()),
        latency_us: started.elapsed().as_micros() as u64,
        bytes_in: 0,
        bytes_out: 0,
        request_id: "null".into(),
    });
}
