//! `GET /v0.1/servers…`: the organisation's catalogue in the official MCP Registry's format
//! (`mesh_admin::catalogue`). Unlike the public registry it needs a key: the catalogue says which
//! servers an organisation uses, which is the organisation's business.

use crate::rest::{run, Call};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use mesh_admin::catalogue::Query as CatalogueQuery;
use mesh_admin::{Admin, AdminError};
use serde::Deserialize;

#[derive(Clone)]
struct Ctx {
    admin: Admin,
    /// `MESH_PUBLIC_URL`, else the request's own host.
    public_url: Option<String>,
}

/// The registry-format routes.
pub(crate) fn router(admin: Admin, public_url: Option<String>) -> Router {
    Router::new()
        .route("/v0.1/servers", get(list))
        .route("/v0.1/servers/{name}/versions", get(versions))
        .route("/v0.1/servers/{name}/versions/{version}", get(one))
        .with_state(Ctx { admin, public_url })
}

/// The official registry's query parameters (`updated_since` is RFC 3339).
#[derive(Deserialize)]
struct Params {
    cursor: Option<String>,
    limit: Option<usize>,
    search: Option<String>,
    updated_since: Option<String>,
    version: Option<String>,
}

/// Where the mesh's endpoints are, as the caller reaches them.
fn base(ctx: &Ctx, headers: &HeaderMap) -> String {
    match &ctx.public_url {
        Some(u) => u.clone(),
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            format!("http://{host}")
        }
    }
}

async fn list(
    State(ctx): State<Ctx>,
    call: Call,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let base = base(&ctx, call.headers());
    let admin = ctx.admin.clone();
    // Through the REST runner: a key narrowed to some routes (the key a hub holds, say) does
    // not read the organisation's whole catalogue, and the read is audited like any other.
    run(&ctx.admin, &call, None, |p| async move {
        let Ok(Query(params)) = params else {
            return Err(AdminError::Invalid(
                "query parameters: cursor, limit (a number), search, updated_since, version".into(),
            ));
        };
        let q = CatalogueQuery {
            cursor: params.cursor,
            limit: params.limit,
            search: params.search,
            updated_since: params.updated_since.as_deref().map(parse_time).transpose()?,
            version: params.version,
        };
        admin.registry_servers(&p, &base, &q).await
    })
    .await
}

fn parse_time(text: &str) -> Result<i64, AdminError> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| AdminError::Invalid(format!("updated_since must be an RFC 3339 time, not '{text}'")))?;
    Ok(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

async fn versions(State(ctx): State<Ctx>, call: Call, Path(name): Path<String>) -> Response {
    let base = base(&ctx, call.headers());
    let admin = ctx.admin.clone();
    run(&ctx.admin, &call, None, |p| async move { admin.registry_versions(&p, &base, &name).await }).await
}

async fn one(State(ctx): State<Ctx>, call: Call, Path((name, version)): Path<(String, String)>) -> Response {
    let base = base(&ctx, call.headers());
    let admin = ctx.admin.clone();
    run(&ctx.admin, &call, None, |p| async move { admin.registry_server(&p, &base, &name, &version).await }).await
}
