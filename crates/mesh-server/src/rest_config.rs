//! REST for connections and gateways under `/api/v1`, over the same services as the management
//! tools (so authorization and validation are identical):
//!
//! - `GET|POST /api/v1/connections`, `GET|PATCH|DELETE /api/v1/connections/{id}`,
//!   `POST /api/v1/connections/{id}/test`
//! - upstream OAuth (#19): `POST /api/v1/connections/{id}/login` (a link for the caller),
//!   `GET /api/v1/connections/{id}/login/{login}` (`{done}`), `DELETE /api/v1/connections/{id}/grant`,
//!   `GET /api/v1/grants` (the caller's grants; an admin's include the shared ones)
//! - `GET|POST /api/v1/gateways`, `GET|PATCH|DELETE /api/v1/gateways/{id}`
//!
//! Bodies are the tools' arguments (`ConnectionInput`, `GatewayInput`); `{id}` is an id or slug.
//! Answers: `{items}` for lists, `{item}` (plus `warnings` for gateways) otherwise.

use crate::rest::{run, Call};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_admin::{Admin, AdminError};
use serde_json::{json, Value};

pub(crate) fn router(admin: Admin) -> Router {
    Router::new()
        .route("/api/v1/connections", get(list_connections).post(create_connection))
        .route("/api/v1/connections/{id}", get(get_connection).patch(update_connection).delete(delete_connection))
        .route("/api/v1/connections/{id}/test", post(test_connection))
        .route("/api/v1/connections/{id}/login", post(upstream_login))
        .route("/api/v1/connections/{id}/login/{login}", get(upstream_login_done))
        .route("/api/v1/connections/{id}/grant", axum::routing::delete(revoke_grant))
        .route("/api/v1/grants", get(list_grants))
        .route("/api/v1/gateways", get(list_gateways).post(create_gateway))
        .route("/api/v1/gateways/{id}", get(get_gateway).patch(update_gateway).delete(delete_gateway))
        .with_state(admin)
}

/// The body as the audit trail records it (the writer redacts it like a management call's).
pub(crate) fn written(b: &Result<Json<Value>, JsonRejection>) -> Option<Value> {
    b.as_ref().ok().map(|Json(v)| v.clone())
}

pub(crate) fn body<T: serde::de::DeserializeOwned>(b: Result<Json<Value>, JsonRejection>) -> Result<T, AdminError> {
    let Json(v) = b.map_err(|e| AdminError::Invalid(e.body_text()))?;
    serde_json::from_value(v).map_err(|e| AdminError::Invalid(format!("invalid body: {e}")))
}

async fn list_connections(State(a): State<Admin>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move { a.list_connections(&p).await.map(|v| json!({"items": v})) }).await
}

async fn create_connection(State(a): State<Admin>, call: Call, b: Result<Json<Value>, JsonRejection>) -> Response {
    let seen = written(&b);
    run(&a.clone(), &call, seen.as_ref(), |p| async move {
        a.create_connection(&p, body(b)?).await.map(|v| json!({"item": v}))
    })
    .await
}

async fn get_connection(State(a): State<Admin>, Path(id): Path<String>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move { a.get_connection(&p, &id).await.map(|v| json!({"item": v})) }).await
}

async fn update_connection(
    State(a): State<Admin>,
    Path(id): Path<String>,
    call: Call,
    b: Result<Json<Value>, JsonRejection>,
) -> Response {
    let seen = written(&b);
    run(&a.clone(), &call, seen.as_ref(), |p| async move {
        a.update_connection(&p, &id, body(b)?).await.map(|v| json!({"item": v}))
    })
    .await
}

async fn delete_connection(State(a): State<Admin>, Path(id): Path<String>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move {
        a.delete_connection(&p, &id).await.map(|id| json!({"deleted": true, "id": id}))
    })
    .await
}

async fn test_connection(State(a): State<Admin>, Path(id): Path<String>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move { a.test_connection(&p, &id).await }).await
}

async fn upstream_login(State(a): State<Admin>, Path(id): Path<String>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move { a.upstream_login(&p, &id).await.map(|v| json!({"item": v})) }).await
}

async fn upstream_login_done(State(a): State<Admin>, Path((_, login)): Path<(String, String)>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move { a.upstream_login_done(&p, &login).await.map(|d| json!({"done": d})) })
        .await
}

async fn revoke_grant(State(a): State<Admin>, Path(id): Path<String>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move {
        a.revoke_upstream_grant(&p, &id).await.map(|gone| json!({"revoked": gone}))
    })
    .await
}

async fn list_grants(State(a): State<Admin>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move { a.upstream_grants(&p).await.map(|v| json!({"items": v})) }).await
}

async fn list_gateways(State(a): State<Admin>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move { a.list_gateways(&p).await.map(|v| json!({"items": v})) }).await
}

async fn create_gateway(State(a): State<Admin>, call: Call, b: Result<Json<Value>, JsonRejection>) -> Response {
    let seen = written(&b);
    run(&a.clone(), &call, seen.as_ref(), |p| async move { a.create_gateway(&p, body(b)?).await }).await
}

async fn get_gateway(State(a): State<Admin>, Path(id): Path<String>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move { a.get_gateway(&p, &id).await.map(|v| json!({"item": v})) }).await
}

async fn update_gateway(
    State(a): State<Admin>,
    Path(id): Path<String>,
    call: Call,
    b: Result<Json<Value>, JsonRejection>,
) -> Response {
    let seen = written(&b);
    run(&a.clone(), &call, seen.as_ref(), |p| async move { a.update_gateway(&p, &id, body(b)?).await }).await
}

async fn delete_gateway(State(a): State<Admin>, Path(id): Path<String>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move {
        a.delete_gateway(&p, &id).await.map(|id| json!({"deleted": true, "id": id}))
    })
    .await
}
