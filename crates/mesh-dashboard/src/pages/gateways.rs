//! Virtual MCPs: the list, the editor (pick connections, then tools by search; prefix and
//! renames; collisions checked before saving, live with the script), and each one's endpoint
//! with ready-to-paste client configurations.

use crate::layout::{button, csrf, failed, page, text};
use crate::pages::login::forbidden_form;
use crate::web::{Flash, Form, Viewer};
use crate::Dashboard;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Tools listed per member in the editor (the search narrows the rest).
const TOOLS_SHOWN: usize = 200;

/// GET /gateways.
pub(crate) async fn list(State(d): State<Arc<Dashboard>>, v: Viewer) -> Response {
    let r = d.run(&v, "COLLECTION_GATEWAYS_LIST", json!({}), false).await;
    let body = html! {
        @if v.manages() { div.bar { a.button #add-gateway href="/gateways/new" { "Create a virtual MCP" } } }
        @match &r {
            Ok(list) => table #gateways {
                thead { tr { th scope="col" { "Virtual MCP" } th scope="col" { "Endpoint" } th scope="col" { "Members" } th scope="col" { "Mode" } th scope="col" { "Status" } } }
                tbody {
                    @for g in list["items"].as_array().into_iter().flatten() {
                        tr {
                            td { a href=(format!("/gateways/{}", text(&g["slug"]))) { (text(&g["title"])) } }
                            td { code { "/mcp/gateway/" (text(&g["slug"])) } }
                            td { @if g["allConnections"] == true { "every connection" } @else { (g["members"].as_array().map_or(0, Vec::len)) } }
                            td { (text(&g["mode"])) }
                            td { span.status.(text(&g["status"])) { (text(&g["status"])) } }
                        }
                    }
                }
            },
            Err(e) => (failed(e)),
        }
    };
    page(&d, &v, "/gateways", "Virtual MCPs", body)
}

/// One member as the editor holds it. `stored` is the member's whole configuration as saved
/// (resources, prompts, descriptions and all), carried through the forms in a hidden field, so
/// that editing what the page shows never drops what it does not.
#[derive(Clone)]
struct MemberDraft {
    slug: String,
    stored: Map<String, Value>,
    /// None: the connection's slug.
    prefix: Option<String>,
    /// None: every tool; Some (possibly empty): only these.
    tools: Option<Vec<String>>,
    renames: BTreeMap<String, String>,
}

impl MemberDraft {
    /// From a stored member (or `{"connection": slug}` for a new one).
    fn from_stored(m: &Value) -> MemberDraft {
        let stored = m.as_object().cloned().unwrap_or_default();
        MemberDraft {
            slug: text(&m["connection"]),
            prefix: m["prefix"].as_str().map(str::to_string),
            tools: m["tools"].as_array().map(|t| t.iter().map(text).collect()),
            renames: m["renames"]
                .as_object()
                .map(|r| r.iter().map(|(k, v)| (k.clone(), text(v))).collect())
                .unwrap_or_default(),
            stored,
        }
    }

    /// The member as the management tool takes it.
    fn args(&self) -> Value {
        let mut m = self.stored.clone();
        m.insert("connection".into(), json!(self.slug));
        match &self.prefix {
            Some(p) => m.insert("prefix".into(), json!(p)),
            None => m.remove("prefix"),
        };
        m.insert("tools".into(), self.tools.as_ref().map_or(json!("all"), |t| json!(t)));
        if self.renames.is_empty() {
            m.remove("renames");
        } else {
            m.insert("renames".into(), json!(self.renames));
        }
        Value::Object(m)
    }
}

/// A virtual MCP as the editor holds it.
#[derive(Default, Clone)]
struct Draft {
    slug: String,
    title: String,
    mode: String,
    /// What clients are shown of the tools (`passthrough`, `smart`, `code`).
    strategy: String,
    /// Chosen connections, in order.
    members: Vec<MemberDraft>,
    query: String,
}

impl Draft {
    /// From the editor's fields (the POST body).
    fn from_fields(f: &Form) -> Draft {
        let mut members: Vec<MemberDraft> = Vec::new();
        for slug in f.all("member") {
            if members.iter().any(|m| m.slug == slug) {
                continue;
            }
            let stored: Value = serde_json::from_str(f.get(&format!("config:{slug}"))).unwrap_or(json!({}));
            let mut m = MemberDraft::from_stored(&stored);
            m.slug = slug.clone();
            if let Some((_, p)) = f.0.iter().find(|(k, _)| *k == format!("prefix:{slug}")) {
                // The slug shown as the default stays the default (it follows a renamed slug).
                let stored = m.stored.get("prefix").is_some();
                m.prefix = (stored || p.trim() != slug).then(|| p.trim().to_string());
            }
            if f.0.iter().any(|(k, _)| *k == format!("tools-mode:{slug}")) {
                let mut tools = f.all(&format!("tool:{slug}"));
                let typed = f.get(&format!("more:{slug}"));
                tools.extend(typed.split([',', '\n']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_string));
                let mut seen = std::collections::HashSet::new();
                tools.retain(|t| seen.insert(t.clone()));
                // Ticking or naming tools means "only these"; "only" with none exposes none.
                let only = f.get(&format!("tools-mode:{slug}")) == "only" || !tools.is_empty();
                m.tools = only.then_some(tools);
            }
            if f.0.iter().any(|(k, _)| *k == format!("renames:{slug}")) {
                m.renames = f
                    .get(&format!("renames:{slug}"))
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                    .collect();
            }
            members.push(m);
        }
        Draft {
            slug: f.get("slug").to_string(),
            title: f.get("title").to_string(),
            mode: f.opt("mode").unwrap_or_else(|| "degrade".into()),
            strategy: f.opt("strategy").unwrap_or_else(|| "passthrough".into()),
            members,
            query: f.get("q").to_string(),
        }
    }

    /// From a stored gateway (to edit it).
    fn from_gateway(g: &Value) -> Draft {
        Draft {
            slug: text(&g["slug"]),
            title: text(&g["title"]),
            mode: text(&g["mode"]),
            strategy: text(&g["strategy"]),
            members: g["members"].as_array().into_iter().flatten().map(MemberDraft::from_stored).collect(),
            query: String::new(),
        }
    }

    /// The management tool's arguments.
    fn args(&self) -> Value {
        let members: Vec<Value> = self.members.iter().map(MemberDraft::args).collect();
        let mut a = json!({"slug": self.slug, "mode": self.mode, "members": members});
        if !self.strategy.is_empty() {
            a["strategy"] = json!(self.strategy);
        }
        if !self.title.is_empty() {
            a["title"] = json!(self.title);
        }
        a
    }
}

/// The strategies the editor offers, with what each shows a client.
const STRATEGIES: [(&str, &str); 3] = [
    ("passthrough", "Passthrough: every tool, as listed"),
    ("smart", "Smart: search, describe and call meta-tools"),
    ("code", "Code: one run_code tool, the catalogue as a typed API"),
];

/// GET /gateways/new: `?edit=slug` edits one; `member=` (repeated) and `q=` come from the
/// connection picker, which keeps what is stored for members already there.
pub(crate) async fn editor(State(d): State<Arc<Dashboard>>, v: Viewer, RawQuery(q): RawQuery) -> Response {
    let f = Form::parse(q.unwrap_or_default().as_bytes());
    let editing = f.opt("edit");
    let mut draft = match &editing {
        Some(slug) => match d.run(&v, "COLLECTION_GATEWAYS_GET", json!({"id": slug}), false).await {
            Ok(g) => Draft::from_gateway(&g["item"]),
            Err(e) => return page(&d, &v, "/gateways", "Edit a virtual MCP", failed(&e)),
        },
        None => Draft { mode: "degrade".into(), ..Draft::default() },
    };
    let picked = f.all("member");
    if !picked.is_empty() || f.opt("slug").is_some() {
        let before = std::mem::take(&mut draft.members);
        draft.members = picked
            .iter()
            .map(|slug| {
                before
                    .iter()
                    .find(|m| &m.slug == slug)
                    .cloned()
                    .unwrap_or_else(|| MemberDraft::from_stored(&json!({"connection": slug})))
            })
            .collect();
    }
    if let Some(s) = f.opt("slug") {
        draft.slug = s;
    }
    if let Some(t) = f.opt("title") {
        draft.title = t;
    }
    if let Some(m) = f.opt("mode") {
        draft.mode = m;
    }
    if let Some(st) = f.opt("strategy") {
        draft.strategy = st;
    }
    draft.query = f.get("q").to_string();
    let body = editor_body(&d, &v, &draft, editing.as_deref(), None).await;
    page(&d, &v, "/gateways", if editing.is_some() { "Edit a virtual MCP" } else { "Create a virtual MCP" }, body)
}

/// The check report: collisions (an error naming both members) or fine, with warnings.
fn report(r: &Result<Value, mesh_admin::AdminError>) -> Markup {
    html! {
        div #check aria-live="polite" {
            @match r {
                Ok(v) => {
                    p.flash.ok { "No name collisions." }
                    @for w in v["warnings"].as_array().into_iter().flatten() { p.flash.warn { (text(w)) } }
                }
                Err(e) => p.flash.err #collision { (e.public_message()) },
            }
        }
    }
}

async fn editor_body(d: &Dashboard, v: &Viewer, draft: &Draft, editing: Option<&str>, check: Option<Markup>) -> Markup {
    let connections = d.run(v, "COLLECTION_CONNECTIONS_LIST", json!({}), false).await;
    let all: Vec<Value> = connections.as_ref().ok().and_then(|c| c["items"].as_array().cloned()).unwrap_or_default();
    let mut tool_lists = Vec::new();
    for m in &draft.members {
        let r = d
            .run(v, "CONNECTION_TOOLS", json!({"id": m.slug, "query": draft.query, "limit": TOOLS_SHOWN}), false)
            .await;
        tool_lists.push(r);
    }
    let chosen = |slug: &str| draft.members.iter().any(|m| m.slug == slug);
    html! {
        @if let Err(e) = &connections { (failed(e)) }
        form #pick.stack method="get" action="/gateways/new" {
            @if let Some(e) = editing { input type="hidden" name="edit" value=(e); }
            // What the editor below holds, carried across a new pick (the script copies the
            // fields' current values in when this form is sent).
            input type="hidden" name="slug" value=(draft.slug) data-mirror="gw-slug";
            input type="hidden" name="title" value=(draft.title) data-mirror="gw-title";
            input type="hidden" name="mode" value=(draft.mode) data-mirror="gw-mode";
            input type="hidden" name="strategy" value=(draft.strategy) data-mirror="gw-strategy";
            fieldset {
                legend { "1. Connections" }
                @for c in &all {
                    @let slug = text(&c["slug"]);
                    label.check { input type="checkbox" name="member" value=(slug) checked[chosen(&slug)]; " " (text(&c["title"])) " " span.muted { "(" (slug) ")" } }
                }
            }
            label for="tool-search" { "Search tools by name or description" }
            input #tool-search type="search" name="q" value=(draft.query);
            button.small.secondary #pick-tools type="submit" { "Show tools" }
        }
        form #gateway-editor.stack method="post" action="/gateways" data-check="/gateways/check" {
            (csrf(v))
            @if let Some(e) = editing { input type="hidden" name="edit" value=(e); }
            input type="hidden" name="q" value=(draft.query);
            fieldset {
                legend { "2. The virtual MCP" }
                label for="gw-slug" { "Name (slug)" }
                input #gw-slug name="slug" value=(draft.slug) required pattern=r"[a-z0-9][a-z0-9_\-]*";
                label for="gw-title" { "Title" }
                input #gw-title name="title" value=(draft.title);
                label for="gw-mode" { "When a member fails" }
                select #gw-mode name="mode" {
                    option value="degrade" selected[draft.mode != "strict"] { "Degrade: serve the others" }
                    option value="strict" selected[draft.mode == "strict"] { "Strict: fail the session" }
                }
                label for="gw-strategy" { "What clients are shown of the tools" }
                select #gw-strategy name="strategy" aria-describedby="gw-strategy-help" {
                    @for (value, label) in STRATEGIES {
                        option value=(value) selected[draft.strategy == value || (draft.strategy.is_empty() && value == "passthrough")] { (label) }
                    }
                }
                p #gw-strategy-help.muted { "Smart and code suit catalogues of a hundred tools or more; see docs/STRATEGIES.md." }
            }
            @for (m, list) in draft.members.iter().zip(&tool_lists) {
                @let slug = &m.slug;
                @let only = m.tools.clone().unwrap_or_default();
                fieldset.member {
                    legend { "Member " (slug) }
                    input type="hidden" name="member" value=(slug);
                    input type="hidden" name=(format!("config:{slug}")) value=(Value::Object(m.stored.clone()).to_string());
                    label for=(format!("prefix-{slug}")) { "Prefix (empty for none)" }
                    input id=(format!("prefix-{slug}")) name=(format!("prefix:{slug}")) value=(m.prefix.as_deref().unwrap_or(slug));
                    label for=(format!("tools-mode-{slug}")) { "Tools" }
                    select id=(format!("tools-mode-{slug}")) name=(format!("tools-mode:{slug}")) {
                        option value="all" selected[m.tools.is_none()] { "All of them, as they come and go (unless some are ticked or named)" }
                        option value="only" selected[m.tools.is_some()] { "Only the ones ticked or named below (none: no tools)" }
                    }
                    @match list {
                        Ok(t) => {
                            ul.picker {
                                @for tool in t["items"].as_array().into_iter().flatten() {
                                    @let name = text(&tool["name"]);
                                    li { label.check {
                                        input type="checkbox" name=(format!("tool:{slug}")) value=(name) checked[only.contains(&name)];
                                        " " code { (name) } " " span.muted { (text(&tool["description"]).chars().take(100).collect::<String>()) }
                                    } }
                                }
                            }
                            @let total = t["total"].as_u64().unwrap_or(0) as usize;
                            @if total > TOOLS_SHOWN { p.muted { "Showing " (TOOLS_SHOWN) " of " (total) "; search to narrow, or type names below." } }
                        }
                        Err(e) => (failed(e)),
                    }
                    @let shown: Vec<String> = list.as_ref().ok().and_then(|t| t["items"].as_array()).map(|a| a.iter().map(|t| text(&t["name"])).collect()).unwrap_or_default();
                    @let hidden: Vec<&String> = only.iter().filter(|t| !shown.contains(t)).collect();
                    label for=(format!("more-{slug}")) { "More tool names (comma-separated)" }
                    input id=(format!("more-{slug}")) name=(format!("more:{slug}")) value=(hidden.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "));
                    label for=(format!("renames-{slug}")) { "Renames, one per line (original=new)" }
                    textarea id=(format!("renames-{slug}")) name=(format!("renames:{slug}")) rows="2" {
                        (m.renames.iter().map(|(a, b)| format!("{a}={b}")).collect::<Vec<_>>().join("\n"))
                    }
                }
            }
            @if draft.members.is_empty() { p.muted { "Choose connections above first." } }
            (check.unwrap_or_else(|| html! { div #check aria-live="polite" {} }))
            div.actions {
                button.secondary #check-names type="submit" formaction="/gateways/check" { "Check names" }
                button #save-gateway type="submit" { "Save" }
            }
        }
    }
}

/// POST /gateways/check: the editor again with the check report; with `X-Fragment: 1` (the
/// script's live check) only the report.
pub(crate) async fn check(State(d): State<Arc<Dashboard>>, v: Viewer, headers: HeaderMap, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if !Dashboard::csrf_ok(&v, &f) {
        return forbidden_form();
    }
    let draft = Draft::from_fields(&f);
    let r = d.run(&v, "GATEWAY_CHECK", draft.args(), false).await;
    if headers.get("x-fragment").is_some() {
        return (StatusCode::OK, report(&r)).into_response();
    }
    let body = editor_body(&d, &v, &draft, f.opt("edit").as_deref(), Some(report(&r))).await;
    page(&d, &v, "/gateways", "Create a virtual MCP", body)
}

/// POST /gateways: saves the editor (create, or update with `edit`).
pub(crate) async fn save(State(d): State<Arc<Dashboard>>, v: Viewer, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if !Dashboard::csrf_ok(&v, &f) {
        return forbidden_form();
    }
    let draft = Draft::from_fields(&f);
    let r = match f.opt("edit") {
        Some(id) => {
            let mut args = draft.args();
            args["id"] = json!(id);
            d.run(&v, "COLLECTION_GATEWAYS_UPDATE", args, true).await
        }
        None => d.run(&v, "COLLECTION_GATEWAYS_CREATE", draft.args(), true).await,
    };
    match r {
        Ok(saved) => {
            let slug = text(&saved["item"]["slug"]);
            let warnings: Vec<String> = saved["warnings"].as_array().into_iter().flatten().map(text).collect();
            let msg = if warnings.is_empty() {
                format!("Virtual MCP '{slug}' saved.")
            } else {
                format!("Virtual MCP '{slug}' saved. Warnings: {}", warnings.join("; "))
            };
            d.after(&format!("/gateways/{slug}"), Flash::Ok(msg))
        }
        Err(e) => {
            let body = editor_body(&d, &v, &draft, f.opt("edit").as_deref(), Some(report(&Err(e)))).await;
            page(&d, &v, "/gateways", "Create a virtual MCP", body)
        }
    }
}

/// Ready-to-paste client configurations for an endpoint.
fn configs(slug: &str, url: &str) -> Vec<(&'static str, String)> {
    let name = format!("mesh-{slug}");
    let pretty = |v: Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    vec![
        (
            "Claude Code",
            format!("claude mcp add --transport http {name} {url} --header \"Authorization: Bearer $MESH_API_KEY\""),
        ),
        (
            "Claude Desktop (claude_desktop_config.json)",
            pretty(
                json!({"mcpServers": {name.clone(): {"command": "npx", "args": ["-y", "mcp-remote", url, "--header", "Authorization: Bearer ${MESH_API_KEY}"], "env": {"MESH_API_KEY": "<your API key>"}}}}),
            ),
        ),
        (
            "Cursor (.cursor/mcp.json)",
            pretty(
                json!({"mcpServers": {name.clone(): {"url": url, "headers": {"Authorization": "Bearer ${env:MESH_API_KEY}"}}}}),
            ),
        ),
        (
            "VS Code (.vscode/mcp.json)",
            pretty(
                json!({"inputs": [{"type": "promptString", "id": "mesh-api-key", "description": "MCP Mesh API key", "password": true}],
                          "servers": {name: {"type": "http", "url": url, "headers": {"Authorization": "Bearer ${input:mesh-api-key}"}}}}),
            ),
        ),
    ]
}

/// GET /gateways/{id}.
pub(crate) async fn detail(State(d): State<Arc<Dashboard>>, v: Viewer, Path(id): Path<String>) -> Response {
    let g = match d.run(&v, "COLLECTION_GATEWAYS_GET", json!({"id": id}), false).await {
        Ok(g) => g["item"].clone(),
        Err(e) => return page(&d, &v, "/gateways", "Virtual MCP", failed(&e)),
    };
    let slug = text(&g["slug"]);
    let here = format!("/gateways/{slug}");
    let url = format!("{}/mcp/gateway/{slug}", v.base);
    let active = g["status"] == "active";
    let body = html! {
        dl.facts {
            dt { "Endpoint" } dd { code #endpoint { (url) } " " button.small.secondary.copy type="button" data-copy=(url) { "Copy" } }
            dt { "Status" } dd { span.status.(text(&g["status"])) { (text(&g["status"])) } }
            dt { "When a member fails" } dd { (text(&g["mode"])) }
            dt { "Tools shown as" } dd #strategy { (text(&g["strategy"])) }
            dt { "Open sessions" } dd { (text(&g["live"]["openSessions"])) }
        }
        @if v.manages() {
            div.actions {
                @if g["allConnections"] != true { a.button.secondary href=(format!("/gateways/new?edit={slug}")) { "Edit" } }
                @if active { (button(&v, &here, "disable", "Disable", &[], false)) } @else { (button(&v, &here, "enable", "Enable", &[], false)) }
                (button(&v, &here, "delete", "Delete", &[], true))
            }
        }
        h2 { "Members" }
        table #members {
            thead { tr { th scope="col" { "Connection" } th scope="col" { "Prefix" } th scope="col" { "Tools" } th scope="col" { "Renames" } } }
            tbody {
                @for m in g["members"].as_array().into_iter().flatten() {
                    tr {
                        td { (text(&m["connection"])) }
                        td { code { (m["prefix"].as_str().or(m["connection"].as_str()).unwrap_or("")) } }
                        td.wrap { @match m["tools"].as_array() { Some(t) => (t.iter().map(text).collect::<Vec<_>>().join(", ")), None => "all" } }
                        td.wrap { (m["renames"].as_object().map(|r| r.iter().map(|(k, v)| format!("{k} → {}", text(v))).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                    }
                }
            }
        }
        h2 { "Connect a client" }
        p.muted { "Create an API key under " a href="/keys" { "API keys" } " and put it where the configuration says." }
        @for (client, config) in configs(&slug, &url) {
            details.config {
                summary { (client) }
                pre { (config) }
                button.small.secondary.copy type="button" data-copy=(config) { "Copy" }
            }
        }
    };
    page(&d, &v, "/gateways", &text(&g["title"]), body)
}

/// POST /gateways/{id}: enable, disable, delete.
pub(crate) async fn act(State(d): State<Arc<Dashboard>>, v: Viewer, Path(id): Path<String>, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if !Dashboard::csrf_ok(&v, &f) {
        return forbidden_form();
    }
    let here = format!("/gateways/{id}");
    match f.get("action") {
        "enable" | "disable" => {
            let status = if f.get("action") == "enable" { "active" } else { "disabled" };
            match d.run(&v, "COLLECTION_GATEWAYS_UPDATE", json!({"id": id, "status": status}), true).await {
                Ok(_) => d.after(&here, Flash::Ok(format!("Virtual MCP {status}."))),
                Err(e) => d.after(&here, Flash::Err(e.public_message())),
            }
        }
        "delete" => match d.run(&v, "COLLECTION_GATEWAYS_DELETE", json!({"id": id}), true).await {
            Ok(_) => d.after("/gateways", Flash::Ok(format!("Virtual MCP '{id}' deleted."))),
            Err(e) => d.after(&here, Flash::Err(e.public_message())),
        },
        _ => d.after(&here, Flash::Err("unknown action".into())),
    }
}
