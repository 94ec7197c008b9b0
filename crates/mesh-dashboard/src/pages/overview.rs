//! The overview: calls, errors and latency over the last hour and day, per connection and in
//! time, upstream health, open sessions, and recent refusals.

use crate::layout::{bars, failed, page, text, when};
use crate::web::Viewer;
use crate::Dashboard;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use serde_json::{json, Value};
use std::sync::Arc;

fn num(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

async fn render(d: &Dashboard, v: &Viewer) -> Response {
    let hourly = d.run(v, "USAGE_QUERY", json!({"from": "24h", "by": "time", "bucket": "hour"}), false).await;
    let minutes = d.run(v, "USAGE_QUERY", json!({"from": "1h", "by": "time", "bucket": "minute"}), false).await;
    let hour = d.run(v, "USAGE_QUERY", json!({"from": "1h", "by": "route"}), false).await;
    let day = d.run(v, "USAGE_QUERY", json!({"from": "24h", "by": "route"}), false).await;
    let connections = d.run(v, "COLLECTION_CONNECTIONS_LIST", json!({}), false).await;
    let refusals = d.run(v, "AUDIT_QUERY", json!({"outcome": "denied", "limit": 10}), false).await;
    let (sessions, streams, up, down) = (d.live)();
    let series = |r: &Result<Value, mesh_admin::AdminError>, k: &str| -> Vec<(String, f64)> {
        r.as_ref()
            .ok()
            .and_then(|v| v["items"].as_array())
            .map(|items| items.iter().map(|i| (text(&i["time"]), num(i, k))).collect())
            .unwrap_or_default()
    };
    let per_route = |r: &Result<Value, mesh_admin::AdminError>| -> Vec<Value> {
        r.as_ref().ok().and_then(|v| v["items"].as_array().cloned()).unwrap_or_default()
    };
    let (hour_rows, day_rows) = (per_route(&hour), per_route(&day));
    let body = html! {
        section.cards aria-label="Now" {
            div.card { span.big #open-sessions { (sessions) } span { "open sessions" } }
            div.card { span.big { (streams) } span { "open streams" } }
            div.card { span.big { (up) } span { "upstream links up" } }
            div.card { span.big.bad[down > 0] { (down) } span { "upstream links down" } }
        }
        h2 { "Last hour" }
        div.charts {
            (bars("Calls per minute", &series(&minutes, "calls"), "calls"))
            (bars("Errors per minute", &series(&minutes, "errors"), "errors"))
            (bars("Mean latency per minute", &series(&minutes, "latencyMsAvg"), "ms"))
        }
        h2 { "Last day" }
        div.charts {
            (bars("Calls per hour", &series(&hourly, "calls"), "calls"))
            (bars("Errors per hour", &series(&hourly, "errors"), "errors"))
            (bars("Mean latency per hour", &series(&hourly, "latencyMsAvg"), "ms"))
        }
        @if let Err(e) = &hourly { (failed(e)) }
        h2 { "Per connection and virtual MCP" }
        table {
            thead { tr { th scope="col" { "Route" } th scope="col" { "Calls (1 h)" } th scope="col" { "Errors (1 h)" } th scope="col" { "Mean ms (1 h)" } th scope="col" { "Calls (24 h)" } th scope="col" { "Errors (24 h)" } th scope="col" { "Mean ms (24 h)" } } }
            tbody {
                @for r in &day_rows {
                    @let h = hour_rows.iter().find(|x| x["route"] == r["route"] && x["routeKind"] == r["routeKind"]);
                    tr {
                        td { span.muted { (text(&r["routeKind"])) } " " (text(&r["route"])) }
                        td { (h.map(|h| num(h, "calls")).unwrap_or(0.0)) }
                        td { (h.map(|h| num(h, "errors")).unwrap_or(0.0)) }
                        td { (h.map(|h| num(h, "latencyMsAvg")).unwrap_or(0.0)) }
                        td { (num(r, "calls")) }
                        td { (num(r, "errors")) }
                        td { (num(r, "latencyMsAvg")) }
                    }
                }
                @if day_rows.is_empty() { tr { td colspan="7" { "No calls in the last day." } } }
            }
        }
        h2 { "Connections" }
        @match &connections {
            Ok(c) => {
                table {
                    thead { tr { th scope="col" { "Connection" } th scope="col" { "Transport" } th scope="col" { "Status" } } }
                    tbody {
                        @for c in c["items"].as_array().into_iter().flatten() {
                            tr {
                                td { a href=(format!("/connections/{}", text(&c["slug"]))) { (text(&c["title"])) } }
                                td { (text(&c["transport"])) }
                                td { span.status.(text(&c["status"])) { (text(&c["status"])) } }
                            }
                        }
                    }
                }
            }
            Err(e) => (failed(e)),
        }
        h2 { "Recent refusals" }
        @match &refusals {
            Ok(r) => {
                table {
                    thead { tr { th scope="col" { "Time" } th scope="col" { "User" } th scope="col" { "Route" } th scope="col" { "Method" } th scope="col" { "Error" } } }
                    tbody {
                        @for row in r["items"].as_array().into_iter().flatten() {
                            tr {
                                td { (when(row["timeMs"].as_i64())) }
                                td { (text(&row["userId"])) }
                                td { (text(&row["route"])) }
                                td { (text(&row["method"])) " " (text(&row["name"])) }
                                td { (text(&row["error"])) }
                            }
                        }
                        @if r["items"].as_array().is_none_or(|a| a.is_empty()) { tr { td colspan="5" { "None." } } }
                    }
                }
            }
            Err(e) => (failed(e)),
        }
    };
    page(d, v, "/", "Overview", body)
}

/// GET /.
pub(crate) async fn show(State(d): State<Arc<Dashboard>>, v: Viewer) -> Response {
    render(&d, &v).await
}
