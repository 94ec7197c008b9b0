//! The audit trail: filter by time, user, route, tool, method and outcome; each row opens to
//! its detail (redacted arguments, error); export as JSON Lines; verify the hash chain.

use crate::layout::{failed, page, text, when};
use crate::pages::login::forbidden_form;
use crate::web::{Flash, Form, Viewer};
use crate::Dashboard;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Rows per page.
const PER: i64 = 50;
/// The filters, as (field, label, AUDIT_QUERY argument).
const FILTERS: [(&str, &str, &str); 7] = [
    ("from", "From (RFC 3339 or an age: 1h, 7d)", "from"),
    ("to", "To", "to"),
    ("user", "User id", "user"),
    ("route", "Route (connection or virtual MCP)", "route"),
    ("name", "Tool", "name"),
    ("method", "Method", "method"),
    ("outcome", "Outcome", "outcome"),
];
use mesh_admin::audit::OUTCOMES;

/// The AUDIT_QUERY arguments from the filter form.
fn filters(f: &Form) -> Map<String, Value> {
    let mut m = Map::new();
    for (field, _, arg) in FILTERS {
        if let Some(v) = f.opt(field) {
            m.insert(arg.into(), json!(v));
        }
    }
    m
}

async fn render(d: &Dashboard, v: &Viewer, f: &Form) -> Response {
    let mut args = filters(f);
    args.insert("limit".into(), json!(PER));
    if let Some(c) = f.opt("cursor") {
        args.insert("cursor".into(), json!(c));
    }
    let r = d.run(v, "AUDIT_QUERY", Value::Object(args), false).await;
    let query_of = |extra: Option<(&str, &str)>| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (field, ..) in FILTERS {
            if let Some(v) = f.opt(field) {
                q.append_pair(field, &v);
            }
        }
        if let Some((k, v)) = extra {
            q.append_pair(k, v);
        }
        q.finish()
    };
    let body = html! {
        form #audit-filter.filters method="get" action="/audit" {
            @for (field, label, _) in FILTERS {
                div {
                    label for=(format!("f-{field}")) { (label) }
                    @if field == "outcome" {
                        select id=(format!("f-{field}")) name=(field) {
                            option value="" { "any" }
                            @for o in OUTCOMES { option value=(o) selected[f.get("outcome") == *o] { (o) } }
                        }
                    } @else {
                        input id=(format!("f-{field}")) name=(field) value=(f.get(field));
                    }
                }
            }
            div.actions {
                button.small type="submit" { "Filter" }
                a.button.small.secondary #export href=(format!("/audit/export?{}", query_of(None))) download="audit.jsonl" { "Export (JSON Lines)" }
            }
        }
        @if v.manages() {
            form.inline method="post" action="/audit/verify" {
                (crate::layout::csrf(v))
                button.small.secondary #verify type="submit" { "Verify the chain" }
            }
        }
        @match &r {
            Ok(page) => {
                table #audit-rows {
                    thead { tr { th scope="col" { "Time" } th scope="col" { "User" } th scope="col" { "Route" } th scope="col" { "Method" } th scope="col" { "Name" } th scope="col" { "Outcome" } th scope="col" { "Latency" } } }
                    tbody {
                        @for row in page["items"].as_array().into_iter().flatten() {
                            tr.row {
                                td { (when(row["timeMs"].as_i64())) }
                                td { (text(&row["userId"])) }
                                td { (text(&row["routeKind"])) " " (text(&row["route"])) }
                                td { (text(&row["method"])) }
                                td { (text(&row["name"])) }
                                td { span.outcome.(text(&row["outcome"])) { (text(&row["outcome"])) } }
                                td { (row["latencyUs"].as_f64().map(|u| format!("{:.1} ms", u / 1000.0)).unwrap_or_default()) }
                            }
                            tr.detail {
                                td colspan="7" {
                                    details {
                                        summary { "Detail of #" (text(&row["seq"])) }
                                        dl.facts {
                                            dt { "Key" } dd { (text(&row["keyId"])) }
                                            dt { "Session" } dd { (text(&row["sessionId"])) }
                                            dt { "Client" } dd { (text(&row["clientName"])) " " (text(&row["clientVersion"])) }
                                            dt { "Request id" } dd { (text(&row["requestId"])) }
                                            dt { "Arguments (redacted)" } dd { pre.json { (text(&row["arguments"])) } }
                                            dt { "Error" } dd { (text(&row["error"])) }
                                            dt { "Bytes in / out" } dd { (text(&row["bytesIn"])) " / " (text(&row["bytesOut"])) }
                                            dt { "Hash" } dd.wrap { code { (text(&row["hash"])) } }
                                        }
                                    }
                                }
                            }
                        }
                        @if page["items"].as_array().is_none_or(|a| a.is_empty()) { tr { td colspan="7" { "No matching rows." } } }
                    }
                }
                @if let Some(c) = page["nextCursor"].as_str() {
                    nav.pager aria-label="Pages" { a rel="next" href=(format!("/audit?{}", query_of(Some(("cursor", c))))) { "Older →" } }
                }
            }
            Err(e) => (failed(e)),
        }
    };
    page(d, v, "/audit", "Audit", body)
}

/// GET /audit.
pub(crate) async fn show(State(d): State<Arc<Dashboard>>, v: Viewer, RawQuery(q): RawQuery) -> Response {
    render(&d, &v, &Form::parse(q.unwrap_or_default().as_bytes())).await
}

/// POST /audit/verify.
pub(crate) async fn verify(State(d): State<Arc<Dashboard>>, v: Viewer, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if !Dashboard::csrf_ok(&v, &f) {
        return forbidden_form();
    }
    let flash = match d.run(&v, "AUDIT_VERIFY", json!({}), true).await {
        Ok(r) if r["ok"] == true => {
            Flash::Ok(format!("The audit chain is intact: {} rows checked.", text(&r["rowsChecked"])))
        }
        Ok(r) => Flash::Err(format!(
            "The audit chain is BROKEN at row {}: {}",
            text(&r["problem"]["seq"]),
            text(&r["problem"]["detail"])
        )),
        Err(e) => Flash::Err(e.public_message()),
    };
    d.after("/audit", flash)
}

/// GET /audit/export: every matching row, oldest first, one JSON object per line, streamed a
/// page at a time.
pub(crate) async fn export(State(d): State<Arc<Dashboard>>, v: Viewer, RawQuery(q): RawQuery) -> Response {
    let f = Form::parse(q.unwrap_or_default().as_bytes());
    let mut args = filters(&f);
    args.insert("order".into(), json!("asc"));
    args.insert("limit".into(), json!(1000));
    // Check the request (and the viewer's right to it) before committing to a 200.
    let first = match d.run(&v, "AUDIT_QUERY", Value::Object(args.clone()), false).await {
        Ok(p) => p,
        Err(e) => return d.after("/audit", Flash::Err(e.public_message())),
    };
    let principal = v.who.principal.clone();
    let stream = futures_util::stream::unfold(Some(first), move |page| {
        let (d, p, args) = (d.clone(), principal.clone(), args.clone());
        async move {
            let page = page?;
            let mut out = String::new();
            for item in page["items"].as_array().into_iter().flatten() {
                out.push_str(&item.to_string());
                out.push('\n');
            }
            let next = match page["nextCursor"].as_str() {
                Some(c) => {
                    let mut a = args;
                    a.insert("cursor".into(), json!(c));
                    match d.tools.invoke(&p, "AUDIT_QUERY", a).await {
                        Some(Ok(p)) => Some(p),
                        _ => {
                            tracing::error!("audit export failed mid-way");
                            return Some((Err(std::io::Error::other("audit export failed")), None));
                        }
                    }
                }
                None => None,
            };
            Some((Ok::<_, std::io::Error>(out), next))
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    resp.headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"audit.jsonl\""));
    resp
}
