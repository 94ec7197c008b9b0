//! The page shell (navigation, organisation switcher, logout, flash message) and the small
//! pieces pages share.

use crate::web::{Flash, Viewer};
use crate::Dashboard;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

/// The navigation: (path, label, shown to non-managers too).
const NAV: &[(&str, &str, bool)] = &[
    ("/", "Overview", true),
    ("/connections", "Connections", true),
    ("/gateways", "Virtual MCPs", true),
    ("/playground", "Playground", true),
    ("/members", "Members", true),
    ("/roles", "Roles", true),
    ("/keys", "API keys", true),
    ("/oauth", "OAuth", true),
    ("/limits", "Rate limits", true),
    ("/audit", "Audit", true),
    ("/settings", "Settings", true),
];

/// The `<head>` of every page; `script` adds the progressive-enhancement script.
pub(crate) fn head(title: &str, script: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · MCP Mesh" }
            link rel="icon" href="data:,";
            link rel="stylesheet" href="/assets/app.css";
            @if script { script src="/assets/app.js" defer {} }
        }
    }
}

/// A whole page for `v`, with `active` the navigation entry it belongs to.
pub(crate) fn page(d: &Dashboard, v: &Viewer, active: &str, title: &str, body: Markup) -> Response {
    let org = v.org();
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, true))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "MCP Mesh" }
                    form.org method="post" action="/org" {
                        input type="hidden" name="csrf" value=(v.session.csrf);
                        label for="org-switch" { "Organisation" }
                        select #org-switch name="org" data-autosubmit {
                            @for (o, role) in &v.who.orgs {
                                option value=(o.id) selected[o.id == org.id] { (o.name) " (" (role) ")" }
                            }
                        }
                        button.small type="submit" { "Switch" }
                    }
                    span.who { (v.who.user.email) " · " (v.who.principal.role_name()) }
                    form method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(v.session.csrf);
                        button.small.secondary #logout type="submit" { "Log out" }
                    }
                }
                nav aria-label="Main" {
                    ul {
                        @for (href, label, _) in NAV {
                            li { a href=(href) aria-current=[(*href == active).then_some("page")] { (label) } }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    @if let Some(f) = &v.flash {
                        @match f {
                            Flash::Ok(m) => p.flash.ok role="status" { (m) },
                            Flash::Err(m) => p.flash.err role="alert" { (m) },
                        }
                    }
                    (body)
                }
            }
        }
    };
    let mut resp = (StatusCode::OK, markup).into_response();
    d.shown(&mut resp, v);
    resp
}

/// The hidden fields every changing form carries: the session's anti-CSRF value and the
/// organisation the form was made in.
pub(crate) fn csrf(v: &Viewer) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(v.session.csrf);
        input type="hidden" name="_org" value=(v.who.principal.org_id);
    }
}

/// A one-button form posting `action` (with `fields`) to `to`.
pub(crate) fn button(v: &Viewer, to: &str, action: &str, label: &str, fields: &[(&str, &str)], danger: bool) -> Markup {
    html! {
        form.inline method="post" action=(to) {
            (csrf(v))
            input type="hidden" name="action" value=(action);
            @for (n, val) in fields { input type="hidden" name=(n) value=(val); }
            button.small.danger[danger].secondary[!danger] type="submit" data-confirm=[danger.then_some("Are you sure?")] { (label) }
        }
    }
}

/// An error box for a failed read.
pub(crate) fn failed(e: &mesh_admin::AdminError) -> Markup {
    html! { p.flash.err role="alert" { (e.public_message()) } }
}

/// A JSON value as text for a table cell.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Pretty JSON in a `<pre>`.
pub(crate) fn json_block(v: &Value) -> Markup {
    html! { pre.json { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn when(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => {
            let t = mesh_audit::view::format_time(ms);
            t.get(..19).unwrap_or(&t).replace('T', " ")
        }
        None => "—".into(),
    }
}

/// Links to the previous and next pages of a list of `total` items shown `per` at a time from
/// `offset`, keeping the other query parameters `keep`.
pub(crate) fn pager(path: &str, keep: &[(&str, &str)], offset: usize, per: usize, total: usize) -> Markup {
    let link = |off: usize| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in keep.iter().filter(|(_, v)| !v.is_empty()) {
            q.append_pair(k, v);
        }
        q.append_pair("offset", &off.to_string());
        format!("{path}?{}", q.finish())
    };
    html! {
        nav.pager aria-label="Pages" {
            @if offset > 0 { a href=(link(offset.saturating_sub(per))) rel="prev" { "← Previous" } }
            span { (offset.min(total) + usize::from(total > 0)) "–" (offset.saturating_add(per).min(total)) " of " (total) }
            @if offset.saturating_add(per) < total { a href=(link(offset + per)) rel="next" { "Next →" } }
        }
    }
}

/// A bar chart of `points` (label, value) as inline SVG (no script; styled by the stylesheet).
pub(crate) fn bars(title: &str, points: &[(String, f64)], unit: &str) -> Markup {
    let max = points.iter().map(|(_, v)| *v).fold(0.0f64, f64::max).max(1.0);
    let (w, h) = (600.0, 120.0);
    let bw = if points.is_empty() { w } else { w / points.len() as f64 };
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox=(format!("0 0 {w} {}", h + 2.0)) role="img" aria-label=(title) {
                title { (title) }
                @for (i, (label, v)) in points.iter().enumerate() {
                    @let bh = (v / max) * h;
                    rect x=(format!("{:.1}", i as f64 * bw + 1.0)) y=(format!("{:.1}", h - bh)) width=(format!("{:.1}", (bw - 2.0).max(1.0))) height=(format!("{:.1}", bh.max(0.5))) {
                        title { (label) ": " (v) " " (unit) }
                    }
                }
            }
            @if points.is_empty() { p.muted { "No data yet." } }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_print_as_utc_calendar_dates() {
        assert_eq!(super::when(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(super::when(Some(1_709_210_096_000)), "2024-02-29 12:34:56");
        assert_eq!(super::when(None), "—");
    }
}
