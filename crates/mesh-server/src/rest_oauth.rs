//! REST for the authorization server's management under `/api/v1`, over the same services as
//! the `OAUTH_*` and `USER_PASSWORD_SET` management tools (so authorization and validation are
//! identical):
//!
//! - `GET|POST /api/v1/oauth/clients`, `DELETE /api/v1/oauth/clients/{id}` — pre-registered
//!   clients (creating and deleting: installation operators; listing: owners and admins). The
//!   body of `POST` is `OAUTH_CLIENT_CREATE`'s arguments; a confidential client's secret is in
//!   the answer's `clientSecret`, once.
//! - `GET /api/v1/oauth/grants?user=`, `DELETE /api/v1/oauth/grants/{id}` — grants: members see
//!   and revoke their own, owners and admins everyone's in the organisation.
//! - `PUT /api/v1/users/me/password` with `{"password"}` — the caller's login password.
//!
//! Answers: `{items}` for lists, `{item}` otherwise. Bodies are recorded in the audit trail
//! redacted (the password and anything named like a secret).

use crate::rest::{run, Call};
use crate::rest_config::{body, written};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use mesh_admin::{Admin, AdminError};
use serde::Deserialize;
use serde_json::{json, Value};

pub(crate) fn router(admin: Admin) -> Router {
    Router::new()
        .route("/api/v1/oauth/clients", get(list_clients).post(create_client))
        .route("/api/v1/oauth/clients/{id}", delete(delete_client))
        .route("/api/v1/oauth/grants", get(list_grants))
        .route("/api/v1/oauth/grants/{id}", delete(revoke_grant))
        .route("/api/v1/users/me/password", put(set_password))
        .with_state(admin)
}

async fn list_clients(State(a): State<Admin>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move { a.list_oauth_clients(&p).await.map(|v| json!({"items": v})) }).await
}

async fn create_client(State(a): State<Admin>, call: Call, b: Result<Json<Value>, JsonRejection>) -> Response {
    let seen = written(&b);
    run(&a.clone(), &call, seen.as_ref(), |p| async move {
        let (item, secret) = a.create_oauth_client(&p, body(b)?).await?;
        Ok(match secret {
            Some(s) => json!({"item": item, "clientSecret": s}),
            None => json!({"item": item}),
        })
    })
    .await
}

async fn delete_client(State(a): State<Admin>, Path(id): Path<String>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move {
        a.delete_oauth_client(&p, &id).await.map(|()| json!({"deleted": true, "clientId": id}))
    })
    .await
}

/// `GET /api/v1/oauth/grants`'s query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantFilter {
    /// Only this member's grants, by user id or e-mail.
    user: Option<String>,
}

async fn list_grants(State(a): State<Admin>, call: Call, q: Result<Query<GrantFilter>, QueryRejection>) -> Response {
    run(&a.clone(), &call, None, |p| async move {
        let Query(q) = q.map_err(|e| AdminError::Invalid(e.body_text()))?;
        a.list_oauth_grants(&p, q.user.as_deref()).await.map(|v| json!({"items": v}))
    })
    .await
}

async fn revoke_grant(State(a): State<Admin>, Path(id): Path<String>, call: Call) -> Response {
    run(&a.clone(), &call, None, |p| async move { a.revoke_oauth_grant(&p, &id).await.map(|v| json!({"item": v})) })
        .await
}

/// `PUT /api/v1/users/me/password`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

async fn set_password(State(a): State<Admin>, call: Call, b: Result<Json<Value>, JsonRejection>) -> Response {
    let seen = written(&b);
    run(&a.clone(), &call, seen.as_ref(), |p| async move {
        let NewPassword { password } = body(b)?;
        a.set_password(&p, None, &password).await.map(|()| json!({"passwordSet": true}))
    })
    .await
}
