//! Connections: the list with health, adding one (HTTP, SSE, stdio from the operator's
//! catalogue or a command, OAuth), testing, enabling and disabling, write-only headers, and each
//! tool with its schema.

use crate::layout::{button, csrf, failed, json_block, page, pager, text};
use crate::pages::login::forbidden_form;
use crate::web::{Flash, Form, Viewer};
use crate::Dashboard;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Rows per page.
const PER: usize = 50;

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    q: Option<String>,
    offset: Option<usize>,
}

/// GET /connections.
pub(crate) async fn list(State(d): State<Arc<Dashboard>>, v: Viewer, Query(q): Query<ListQuery>) -> Response {
    let r = d.run(&v, "COLLECTION_CONNECTIONS_LIST", json!({}), false).await;
    let search = q.q.clone().unwrap_or_default().to_lowercase();
    let offset = q.offset.unwrap_or(0);
    let body = html! {
        div.bar {
            form.search method="get" action="/connections" role="search" {
                label for="q" { "Search connections" }
                input #q type="search" name="q" value=(q.q.as_deref().unwrap_or(""));
                button.small type="submit" { "Search" }
            }
            @if v.manages() { a.button #add-connection href="/connections/new" { "Add connection" } }
        }
        @match &r {
            Ok(list) => {
                @let all: Vec<&Value> = list["items"].as_array().into_iter().flatten()
                    .filter(|c| search.is_empty() || ["slug", "title", "url", "command"].iter().any(|k| text(&c[*k]).to_lowercase().contains(&search)))
                    .collect();
                table #connections {
                    thead { tr { th scope="col" { "Connection" } th scope="col" { "Transport" } th scope="col" { "Endpoint" } th scope="col" { "Upstream" } th scope="col" { "Status" } } }
                    tbody {
                        @for c in all.iter().skip(offset).take(PER) {
                            tr {
                                td { a href=(format!("/connections/{}", text(&c["slug"]))) { (text(&c["title"])) } br; span.muted { (text(&c["slug"])) } }
                                td { (text(&c["transport"])) }
                                td { code { "/mcp/" (text(&c["slug"])) } }
                                td.wrap { (c["url"].as_str().or(c["template"].as_str()).or(c["command"].as_str()).unwrap_or("")) }
                                td { span.status.(text(&c["status"])) { (text(&c["status"])) } }
                            }
                        }
                        @if all.is_empty() { tr { td colspan="5" { "No connections." } } }
                    }
                }
                (pager("/connections", &[("q", q.q.as_deref().unwrap_or(""))], offset, PER, all.len()))
            }
            Err(e) => (failed(e)),
        }
    };
    page(&d, &v, "/connections", "Connections", body)
}

/// GET /connections/new: the form.
pub(crate) async fn new(State(d): State<Arc<Dashboard>>, v: Viewer) -> Response {
    let templates = d.run(&v, "COLLECTION_TEMPLATES_LIST", json!({}), false).await;
    let body = html! {
        form #new-connection.stack method="post" action="/connections" {
            (csrf(&v))
            fieldset {
                legend { "Upstream" }
                label for="kind" { "Kind" }
                select #kind name="kind" {
                    option value="http" { "Streamable HTTP (URL)" }
                    option value="sse" { "HTTP+SSE, legacy (URL)" }
                    option value="template" { "stdio, from the catalogue" }
                    @if v.operator() { option value="command" { "stdio, a command (operators)" } }
                }
                label for="slug" { "Name (slug)" }
                input #slug name="slug" required pattern=r"[a-z0-9][a-z0-9_\-]*" aria-describedby="slug-help";
                small #slug-help { "Lowercase letters, digits, - and _. The endpoint is /mcp/{name}." }
                label for="title" { "Title" }
                input #title name="title";
                label for="url" { "URL (HTTP, SSE)" }
                input #url name="url" type="url" placeholder="https://example.com/mcp";
                label for="template" { "Catalogue entry (stdio)" }
                select #template name="template" {
                    option value="" { "—" }
                    @if let Ok(t) = &templates {
                        @for t in t["items"].as_array().into_iter().flatten() {
                            option value=(text(&t["name"])) { (text(&t["name"])) " — " (text(&t["description"])) }
                        }
                    }
                }
                @if v.operator() {
                    label for="command" { "Command (stdio)" }
                    input #command name="command";
                    label for="args" { "Arguments, one per line" }
                    textarea #args name="args" rows="3" {}
                }
            }
            fieldset {
                legend { "Credentials (stored encrypted, never shown again)" }
                label for="headers" { "Request headers, one per line (Name: value)" }
                textarea #headers name="headers" rows="3" autocomplete="off" {}
                label for="env" { "Environment, one per line (NAME=value; stdio)" }
                textarea #env name="env" rows="3" autocomplete="off" {}
                label for="auth" { "Upstream authentication" }
                select #auth name="auth" {
                    option value="" { "Headers (default)" }
                    option value="none" { "None" }
                    option value="oauth" { "OAuth (each user authorizes)" }
                }
            }
            button #create-connection type="submit" { "Add connection" }
        }
        @if let Err(e) = &templates { (failed(e)) }
    };
    page(&d, &v, "/connections", "Add a connection", body)
}

/// `Name: value` lines → a map (blank lines skipped).
fn headers(raw: &str) -> Result<BTreeMap<String, String>, String> {
    raw.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| "each header line is Name: value".to_string())
        })
        .collect()
}

/// `NAME=value` lines → a map.
fn env(raw: &str) -> Result<BTreeMap<String, String>, String> {
    raw.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| "each environment line is NAME=value".to_string())
        })
        .collect()
}

/// The management tool's arguments from the add form.
fn input(f: &Form) -> Result<Value, String> {
    let mut a = Map::new();
    let mut put = |k: &str, v: Value| {
        a.insert(k.to_string(), v);
    };
    put("slug", json!(f.get("slug")));
    if let Some(t) = f.opt("title") {
        put("title", json!(t));
    }
    match f.get("kind") {
        "http" | "sse" => {
            put("transport", json!(f.get("kind")));
            put("url", json!(f.get("url")));
        }
        "template" => put("template", json!(f.get("template"))),
        "command" => {
            put("transport", json!("stdio"));
            put("command", json!(f.get("command")));
            let args: Vec<&str> = f.get("args").lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            put("args", json!(args));
        }
        other => return Err(format!("unknown kind '{other}'")),
    }
    let h = headers(f.get("headers"))?;
    if !h.is_empty() {
        put("headers", json!(h));
    }
    let e = env(f.get("env"))?;
    if !e.is_empty() {
        put("env", json!(e));
    }
    if let Some(auth) = f.opt("auth") {
        put("auth", json!(auth));
    }
    Ok(Value::Object(a))
}

/// POST /connections: adds one.
pub(crate) async fn create(State(d): State<Arc<Dashboard>>, v: Viewer, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if !Dashboard::csrf_ok(&v, &f) {
        return forbidden_form();
    }
    let args = match input(&f) {
        Ok(a) => a,
        Err(e) => return d.after("/connections/new", Flash::Err(e)),
    };
    match d.run(&v, "COLLECTION_CONNECTIONS_CREATE", args, true).await {
        Ok(c) => {
            let slug = text(&c["item"]["slug"]);
            d.after(&format!("/connections/{slug}"), Flash::Ok(format!("Connection '{slug}' added.")))
        }
        Err(e) => d.after("/connections/new", Flash::Err(e.public_message())),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct ToolQuery {
    q: Option<String>,
    offset: Option<usize>,
}

/// GET /connections/{id}: the connection, its actions, and its tools (managers).
pub(crate) async fn detail(
    State(d): State<Arc<Dashboard>>,
    v: Viewer,
    Path(id): Path<String>,
    Query(q): Query<ToolQuery>,
) -> Response {
    let c = match d.run(&v, "COLLECTION_CONNECTIONS_GET", json!({"id": id}), false).await {
        Ok(c) => c["item"].clone(),
        Err(e) => return page(&d, &v, "/connections", "Connection", failed(&e)),
    };
    let slug = text(&c["slug"]);
    let here = format!("/connections/{slug}");
    let offset = q.offset.unwrap_or(0);
    let tools = if v.manages() {
        Some(
            d.run(
                &v,
                "CONNECTION_TOOLS",
                json!({"id": slug, "query": q.q.clone().unwrap_or_default(), "offset": offset, "limit": PER}),
                false,
            )
            .await,
        )
    } else {
        None
    };
    let active = c["status"] == "active";
    let secret_names: Vec<String> = c["headers"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let body = html! {
        dl.facts {
            dt { "Endpoint" } dd { code #endpoint { (v.base) "/mcp/" (slug) } }
            dt { "Transport" } dd { (text(&c["transport"])) }
            dt { "Upstream" } dd.wrap { (c["url"].as_str().or(c["template"].as_str()).or(c["command"].as_str()).unwrap_or("")) }
            dt { "Status" } dd { span.status.(text(&c["status"])) #status { (text(&c["status"])) } }
            dt { "Authentication" } dd { (text(&c["auth"])) }
            dt { "Headers" } dd { @if secret_names.is_empty() { "none" } @else { (secret_names.join(", ")) " (values hidden)" } }
        }
        // Members authorize their own grant; a shared grant (a service account) is an admin's.
        @if c["auth"] == "oauth" && (v.manages() || c["oauthShared"] != true) {
            form.inline method="post" action=(here) {
                (csrf(&v))
                input type="hidden" name="action" value="authorize";
                button.small #authorize type="submit" { "Authorize at the server" }
            }
            span.muted {
                @if c["oauthShared"] == true { " One grant for the whole connection; the mesh keeps and refreshes it." }
                @else { " Each user authorizes once; the mesh keeps and refreshes their token." }
            }
        }
        @if v.manages() {
            div.actions {
                (button(&v, &here, "test", "Test", &[], false))
                @if active { (button(&v, &here, "disable", "Disable", &[], false)) } @else { (button(&v, &here, "enable", "Enable", &[], false)) }
                (button(&v, &here, "delete", "Delete", &[], true))
            }
            details {
                summary { "Edit" }
                form #edit-connection.stack method="post" action=(here) {
                    (csrf(&v))
                    input type="hidden" name="action" value="edit";
                    label for="e-title" { "Title" }
                    input #e-title name="title" value=(text(&c["title"])) required;
                    label for="e-description" { "Description" }
                    input #e-description name="description" value=(text(&c["description"]));
                    @if c["url"].is_string() {
                        label for="e-url" { "URL" }
                        input #e-url type="url" name="url" value=(text(&c["url"]));
                    }
                    label for="e-timeout" { "Request timeout (ms)" }
                    input #e-timeout type="number" min="1000" max="3600000" name="timeoutMs" value=(text(&c["timeoutMs"]));
                    button.small type="submit" { "Save" }
                }
            }
            details {
                summary { "Replace request headers" }
                form.stack method="post" action=(here) {
                    (csrf(&v))
                    input type="hidden" name="action" value="headers";
                    label for="new-headers" { "Headers, one per line (Name: value); they replace the stored ones, which are never shown" }
                    textarea #new-headers name="headers" rows="3" autocomplete="off" {}
                    button.small type="submit" { "Save headers" }
                }
            }
            h2 { "Tools" }
            form.search method="get" action=(here) role="search" {
                label for="tq" { "Search tools" }
                input #tq type="search" name="q" value=(q.q.as_deref().unwrap_or(""));
                button.small type="submit" { "Search" }
            }
            @match tools.as_ref() {
                Some(Ok(t)) => {
                    @let total = t["total"].as_u64().unwrap_or(0) as usize;
                    ul.tools #tools {
                        @for tool in t["items"].as_array().into_iter().flatten() {
                            li {
                                details {
                                    summary { code { (text(&tool["name"])) } " " span.muted { (text(&tool["description"]).chars().take(160).collect::<String>()) } }
                                    (json_block(&tool["inputSchema"]))
                                }
                            }
                        }
                    }
                    (pager(&here, &[("q", q.q.as_deref().unwrap_or(""))], offset, PER, total))
                }
                Some(Err(e)) => (failed(e)),
                None => {}
            }
        }
    };
    page(&d, &v, "/connections", &text(&c["title"]), body)
}

/// POST /connections/{id}: test, enable, disable, delete, or replace headers.
pub(crate) async fn act(State(d): State<Arc<Dashboard>>, v: Viewer, Path(id): Path<String>, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if !Dashboard::csrf_ok(&v, &f) {
        return forbidden_form();
    }
    let here = format!("/connections/{id}");
    let r = match f.get("action") {
        "test" => d.run(&v, "CONNECTION_TEST", json!({"id": id}), true).await.map(|t| {
            if t["ok"] == true {
                Flash::Ok(format!(
                    "Test passed: {} {} answered with {} tools in {} ms.",
                    text(&t["serverInfo"]["name"]),
                    text(&t["serverInfo"]["version"]),
                    text(&t["toolCount"]),
                    text(&t["latencyMs"])
                ))
            } else {
                Flash::Err(format!("Test failed: {}", text(&t["error"]["message"])))
            }
        }),
        "enable" | "disable" => {
            let status = if f.get("action") == "enable" { "active" } else { "disabled" };
            d.run(&v, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": id, "status": status}), true)
                .await
                .map(|_| Flash::Ok(format!("Connection {status}.")))
        }
        "headers" => match headers(f.get("headers")) {
            // An empty set would silently delete every stored header.
            Ok(h) if h.is_empty() => Ok(Flash::Err("give at least one header (Name: value)".into())),
            Ok(h) => d
                .run(&v, "COLLECTION_CONNECTIONS_UPDATE", json!({"id": id, "headers": h}), true)
                .await
                .map(|_| Flash::Ok("Headers replaced.".into())),
            Err(e) => Ok(Flash::Err(e)),
        },
        "edit" => {
            let mut args = json!({"id": id, "description": f.get("description")});
            if let Some(t) = f.opt("title") {
                args["title"] = json!(t);
            }
            if let Some(u) = f.opt("url") {
                args["url"] = json!(u);
            }
            match f.opt("timeoutMs").map(|t| t.parse::<i64>()) {
                Some(Ok(t)) => args["timeoutMs"] = json!(t),
                Some(Err(_)) => return d.after(&here, Flash::Err("timeout: a whole number of milliseconds".into())),
                None => {}
            }
            d.run(&v, "COLLECTION_CONNECTIONS_UPDATE", args, true).await.map(|_| Flash::Ok("Connection saved.".into()))
        }
        "authorize" => {
            // The same service as `POST /api/v1/connections/{id}/login`: a link for this user, to
            // open in this browser (logged in to the mesh as them).
            let started = std::time::Instant::now();
            let r = d.admin.upstream_login(&v.who.principal, &id).await;
            d.record(&v, "CONNECTION_LOGIN", json!({"id": id}).to_string(), r.as_ref().err(), started);
            return match r {
                Ok(link) => crate::web::see_other(&link.url),
                Err(e) => d.after(&here, Flash::Err(e.public_message())),
            };
        }
        "delete" => {
            return match d.run(&v, "COLLECTION_CONNECTIONS_DELETE", json!({"id": id}), true).await {
                Ok(_) => d.after("/connections", Flash::Ok(format!("Connection '{id}' deleted."))),
                Err(e) => d.after(&here, Flash::Err(e.public_message())),
            };
        }
        _ => Ok(Flash::Err("unknown action".into())),
    };
    d.after(&here, r.unwrap_or_else(|e| Flash::Err(e.public_message())))
}
