//! The playground: call any tool of a connection or virtual MCP from a form made from its input
//! schema, and see the result as a client would (text, images, structured content).
//!
//! Calls go through the relay itself, in process, with a token that the dashboard makes for the
//! one route and drops after the call: authentication, the viewer's role rules, rate limits,
//! audit and telemetry apply exactly as to any MCP client.

mod mcp;

pub use mcp::Warm;
pub(crate) use mcp::{end_session, spawn_reaper};

use crate::layout::{csrf, json_block, text};
use crate::pages::login::forbidden_form;
use crate::web::{Form, Viewer};
use crate::Dashboard;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use maud::{html, Markup};
use mcp::{Conversation, Failure};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The routes the viewer can pick: connections and virtual MCPs.
async fn routes(d: &Dashboard, v: &Viewer) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(c) = d.run(v, "COLLECTION_CONNECTIONS_LIST", json!({}), false).await {
        for c in c["items"].as_array().into_iter().flatten().filter(|c| c["status"] == "active") {
            out.push((text(&c["slug"]), format!("Connection {}", text(&c["title"]))));
        }
    }
    if let Ok(g) = d.run(v, "COLLECTION_GATEWAYS_LIST", json!({}), false).await {
        for g in g["items"].as_array().into_iter().flatten().filter(|g| g["status"] == "active") {
            out.push((format!("gateway/{}", text(&g["slug"])), format!("Virtual MCP {}", text(&g["title"]))));
        }
    }
    out
}

/// A form field for one property of an input schema.
fn field(name: &str, schema: &Value, required: bool, value: Option<&str>) -> Markup {
    let id = format!("arg-{name}");
    let kind = schema["type"].as_str().unwrap_or("");
    let desc = schema["description"].as_str();
    let field_name = format!("arg:{name}");
    html! {
        label for=(id) { code { (name) } @if required { " (required)" } }
        @if let Some(options) = schema["enum"].as_array() {
            select id=(id) name=(field_name) required[required] {
                @if !required { option value="" { "—" } }
                @for o in options { option value=(text(o)) selected[value == Some(text(o).as_str())] { (text(o)) } }
            }
        } @else {
            @match kind {
                "boolean" => select id=(id) name=(field_name) {
                    option value="" { "—" }
                    option value="true" selected[value == Some("true")] { "true" }
                    option value="false" selected[value == Some("false")] { "false" }
                },
                "integer" | "number" => input id=(id) type="number" step=(if kind == "integer" { "1" } else { "any" }) name=(field_name) value=[value] required[required];,
                "string" => input id=(id) name=(field_name) value=[value] required[required];,
                _ => textarea id=(id) name=(field_name) rows="3" placeholder="JSON" required[required] { (value.unwrap_or("")) },
            }
        }
        @if let Some(d) = desc { small.muted { (d) } }
    }
}

/// The arguments object from the form, typed by the schema.
fn arguments(schema: &Value, f: &Form) -> Result<Value, String> {
    let mut out = Map::new();
    for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
        let raw = f.get(&format!("arg:{name}"));
        if raw.is_empty() {
            continue;
        }
        let value = match prop["type"].as_str().unwrap_or("") {
            "string" => json!(raw),
            "boolean" => json!(raw == "true"),
            "integer" => json!(raw.parse::<i64>().map_err(|_| format!("{name}: not an integer"))?),
            "number" => json!(raw.parse::<f64>().map_err(|_| format!("{name}: not a number"))?),
            _ if prop.get("enum").is_some() => json!(raw),
            _ => serde_json::from_str(raw).map_err(|e| format!("{name}: not JSON ({e})"))?,
        };
        out.insert(name.clone(), value);
    }
    Ok(Value::Object(out))
}

/// A tool result as a client shows it.
fn result_view(r: &Value) -> Markup {
    html! {
        section #result aria-label="Result" {
            @if r["isError"] == true { p.flash.err { "The tool reported an error." } }
            @for c in r["content"].as_array().into_iter().flatten() {
                @match c["type"].as_str().unwrap_or("") {
                    "text" => pre.result-text { (text(&c["text"])) },
                    "image" => img src=(format!("data:{};base64,{}", text(&c["mimeType"]), text(&c["data"]))) alt="Image returned by the tool";,
                    "audio" => p.muted { "Audio (" (text(&c["mimeType"])) "), " (text(&c["data"]).len() * 3 / 4) " bytes" },
                    "resource_link" => p { "Resource link: " code { (text(&c["uri"])) } },
                    _ => (json_block(c)),
                }
            }
            @if let Some(s) = r.get("structuredContent") { h3 { "Structured content" } (json_block(s)) }
        }
    }
}

fn host_of(headers: &HeaderMap) -> String {
    headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_string()
}

/// GET /playground (`route=` and `tool=` choose).
pub(crate) async fn page(
    State(d): State<Arc<Dashboard>>,
    v: Viewer,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let f = Form::parse(q.unwrap_or_default().as_bytes());
    let routes = routes(&d, &v).await;
    let body = body(&d, &v, &host_of(&headers), &f, &routes, None).await;
    crate::layout::page(&d, &v, "/playground", "Playground", body)
}

/// The page's body; `routes` are the viewer's ([`routes`]).
async fn body(
    d: &Dashboard,
    v: &Viewer,
    host: &str,
    f: &Form,
    routes: &[(String, String)],
    outcome: Option<Markup>,
) -> Markup {
    let route = f.get("route").to_string();
    let tool = f.get("tool").to_string();
    let tools = if route.is_empty() || !routes.iter().any(|(r, _)| *r == route) {
        None
    } else {
        // A kept conversation may have ended meanwhile (reaped, the token expired): once more,
        // fresh. Listing is safe to repeat.
        match list(d, v, &route, host).await {
            Ok(t) => Some(Ok(t)),
            Err(_) => Some(list(d, v, &route, host).await),
        }
    };
    let list: Vec<Value> =
        tools.as_ref().and_then(|t| t.as_ref().ok()).and_then(|t| t["tools"].as_array().cloned()).unwrap_or_default();
    let chosen = list.iter().find(|t| t["name"] == tool.as_str());
    html! {
        form #choose.stack method="get" action="/playground" {
            label for="route" { "Connection or virtual MCP" }
            select #route name="route" data-autosubmit {
                option value="" { "—" }
                @for (r, label) in routes { option value=(r) selected[*r == route] { (label) } }
            }
            @if !list.is_empty() {
                label for="tool" { "Tool" }
                select #tool name="tool" data-autosubmit {
                    option value="" { "—" }
                    @for t in &list { option value=(text(&t["name"])) selected[t["name"] == tool.as_str()] { (text(&t["name"])) } }
                }
            }
            button.small.secondary #choose-go type="submit" { "Choose" }
        }
        @if let Some(Err(e)) = &tools { p.flash.err role="alert" { (e) } }
        @if let Some(t) = chosen {
            @let schema = &t["inputSchema"];
            @let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            p.muted { (text(&t["description"])) }
            form #call.stack method="post" action="/playground" {
                (csrf(v))
                input type="hidden" name="route" value=(route);
                input type="hidden" name="tool" value=(tool);
                @for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
                    (field(name, prop, required.contains(&name.as_str()), Some(f.get(&format!("arg:{name}"))).filter(|s| !s.is_empty())))
                }
                button #call-tool type="submit" { "Call " (tool) }
            }
        }
        @if let Some(o) = outcome { (o) }
    }
}

/// The route's tools, in a conversation kept for the next request.
async fn list(d: &Dashboard, v: &Viewer, route: &str, host: &str) -> Result<Value, Failure> {
    let mut c = Conversation::open(d, v, route, host).await?;
    let r = c.tools().await;
    if r.is_ok() {
        c.keep().await;
    } else {
        c.close().await;
    }
    r
}

/// POST /playground: calls the tool and shows the result under the form.
pub(crate) async fn call(
    State(d): State<Arc<Dashboard>>,
    v: Viewer,
    headers: HeaderMap,
    body_bytes: Bytes,
) -> Response {
    let f = Form::parse(&body_bytes);
    if !Dashboard::csrf_ok(&v, &f) {
        return forbidden_form();
    }
    let host = host_of(&headers);
    let (route, tool) = (f.get("route").to_string(), f.get("tool").to_string());
    let routes = routes(&d, &v).await;
    if !routes.iter().any(|(r, _)| *r == route) {
        return crate::layout::page(
            &d,
            &v,
            "/playground",
            "Playground",
            html! {
                p.flash.err role="alert" { "Choose one of your connections or virtual MCPs." }
            },
        );
    }
    let mut r = call_once(&d, &v, &route, &host, &tool, &f).await;
    if let Err(e) = &r {
        if e.before_session() {
            r = call_once(&d, &v, &route, &host, &tool, &f).await;
        }
    }
    let outcome = match r {
        Ok(r) => result_view(&r),
        Err(e) => html! { section #result { p.flash.err role="alert" { (e) } } },
    };
    let body = body(&d, &v, &host, &f, &routes, Some(outcome)).await;
    crate::layout::page(&d, &v, "/playground", "Playground", body)
}

/// Lists (for the input schema) and calls `tool` in one conversation.
async fn call_once(d: &Dashboard, v: &Viewer, route: &str, host: &str, tool: &str, f: &Form) -> Result<Value, Failure> {
    let mut c = Conversation::open(d, v, route, host).await?;
    let schema = match c.tools().await {
        Ok(l) => l["tools"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == tool))
            .map(|t| t["inputSchema"].clone())
            .unwrap_or(json!({})),
        Err(e) => {
            c.close().await;
            return Err(e);
        }
    };
    let r = match arguments(&schema, f) {
        Ok(args) => c.request("tools/call", json!({"name": tool, "arguments": args})).await,
        Err(e) => Err(Failure::Other(e)),
    };
    if r.as_ref().is_err_and(Failure::before_session) {
        c.close().await;
    } else {
        c.keep().await;
    }
    r
}
