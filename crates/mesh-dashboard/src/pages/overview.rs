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

/// Usage summed over some of its group's fields.
struct Totals {
    key: Vec<String>,
    calls: f64,
    errors: f64,
    /// Sum of mean latency × calls, so that means combine weighted.
    latency_ms: f64,
}

impl Totals {
    fn mean_ms(&self) -> f64 {
        if self.calls > 0.0 {
            self.latency_ms / self.calls
        } else {
            0.0
        }
    }
}

/// USAGE_QUERY items summed per value of `fields`, in order of first appearance (time buckets
/// come oldest first).
fn sum_by(items: &[Value], fields: &[&str]) -> Vec<Totals> {
    let mut out: Vec<Totals> = Vec::new();
    let mut at: std::collections::HashMap<Vec<String>, usize> = std::collections::HashMap::new();
    for i in items {
        let key: Vec<String> = fields.iter().map(|f| text(&i[*f])).collect();
        let n = *at.entry(key.clone()).or_insert_with(|| {
            out.push(Totals { key, calls: 0.0, errors: 0.0, latency_ms: 0.0 });
            out.len() - 1
        });
        let t = &mut out[n];
        t.calls += num(i, "calls");
        t.errors += num(i, "errors");
        t.latency_ms += num(i, "latencyMsAvg") * num(i, "calls");
    }
    out
}

async fn render(d: &Dashboard, v: &Viewer) -> Response {
    // Two reads of the usage buckets, each grouped by route and time: the charts sum the routes,
    // the table sums the times (one scan per range, not one per figure).
    let minutes = d.run(v, "USAGE_QUERY", json!({"from": "1h", "by": "route,time", "bucket": "minute"}), false).await;
    let hourly = d.run(v, "USAGE_QUERY", json!({"from": "24h", "by": "route,time", "bucket": "hour"}), false).await;
    let connections = d.run(v, "COLLECTION_CONNECTIONS_LIST", json!({}), false).await;
    let refusals = d.run(v, "AUDIT_QUERY", json!({"outcome": "denied", "limit": 10}), false).await;
    let (sessions, streams, up, down) = (d.live)(&v.who.principal.org_id);
    let items = |r: &Result<Value, mesh_admin::AdminError>| -> Vec<Value> {
        r.as_ref().ok().and_then(|v| v["items"].as_array().cloned()).unwrap_or_default()
    };
    let (minute_items, hour_items) = (items(&minutes), items(&hourly));
    let (by_minute, hour_rows) = (sum_by(&minute_items, &["time"]), sum_by(&minute_items, &["routeKind", "route"]));
    let (mut by_hour, mut day_rows) = (sum_by(&hour_items, &["time"]), sum_by(&hour_items, &["routeKind", "route"]));
    let mut by_minute = by_minute;
    // RFC 3339 times in one zone sort as text; the busiest routes first.
    by_minute.sort_by(|a, b| a.key.cmp(&b.key));
    by_hour.sort_by(|a, b| a.key.cmp(&b.key));
    day_rows.sort_by(|a, b| b.calls.total_cmp(&a.calls));
    let series = |rows: &[Totals], k: fn(&Totals) -> f64| -> Vec<(String, f64)> {
        rows.iter().map(|t| (t.key[0].clone(), k(t))).collect()
    };
    let body = html! {
        section.cards #now aria-label="Now" data-live {
            div.card { span.big #open-sessions { (sessions) } span { "open sessions" } }
            div.card { span.big { (streams) } span { "open streams" } }
            div.card { span.big { (up) } span { "upstream links up" } }
            div.card { span.big.bad[down > 0] { (down) } span { "upstream links down" } }
        }
        h2 { "Last hour" }
        div.charts #last-hour data-live {
            (bars("Calls per minute", &series(&by_minute, |t| t.calls), "calls"))
            (bars("Errors per minute", &series(&by_minute, |t| t.errors), "errors"))
            (bars("Mean latency per minute", &series(&by_minute, Totals::mean_ms), "ms"))
        }
        h2 { "Last day" }
        div.charts #last-day data-live {
            (bars("Calls per hour", &series(&by_hour, |t| t.calls), "calls"))
            (bars("Errors per hour", &series(&by_hour, |t| t.errors), "errors"))
            (bars("Mean latency per hour", &series(&by_hour, Totals::mean_ms), "ms"))
        }
        @if let Err(e) = &minutes { (failed(e)) }
        h2 { "Per connection and virtual MCP" }
        table {
            thead { tr { th scope="col" { "Route" } th scope="col" { "Calls (1 h)" } th scope="col" { "Errors (1 h)" } th scope="col" { "Mean ms (1 h)" } th scope="col" { "Calls (24 h)" } th scope="col" { "Errors (24 h)" } th scope="col" { "Mean ms (24 h)" } } }
            tbody {
                @for r in &day_rows {
                    @let h = hour_rows.iter().find(|x| x.key == r.key);
                    tr {
                        td { span.muted { (r.key[0]) } " " (r.key[1]) }
                        td { (h.map_or(0.0, |h| h.calls)) }
                        td { (h.map_or(0.0, |h| h.errors)) }
                        td { (format!("{:.2}", h.map_or(0.0, Totals::mean_ms))) }
                        td { (r.calls) }
                        td { (r.errors) }
                        td { (format!("{:.2}", r.mean_ms())) }
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
