//! Who may do what: members and roles (with a preview of what a role sees), API keys (shown
//! once), OAuth clients and grants, and rate limits.

use crate::layout::{button, csrf, failed, json_block, page, text, when};
use crate::pages::login::forbidden_form;
use crate::web::{Flash, Form, Viewer};
use crate::Dashboard;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::{html, Markup};
use mesh_core::policy::{Item, ItemKind, Layer, Rule};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

const ROLES: [&str; 4] = ["owner", "admin", "member", "viewer"];

/// Runs a form's change and goes back to `to` with its outcome.
async fn change(d: &Dashboard, v: &Viewer, to: &str, tool: &str, args: Value, ok: String) -> Response {
    match d.run(v, tool, args, true).await {
        Ok(_) => d.after(to, Flash::Ok(ok)),
        Err(e) => d.after(to, Flash::Err(e.public_message())),
    }
}

/// The form, when its anti-CSRF field is right.
fn checked(v: &Viewer, body: &Bytes) -> Option<Form> {
    let f = Form::parse(body);
    Dashboard::csrf_ok(v, &f).then_some(f)
}

/// GET /members.
pub(crate) async fn members(State(d): State<Arc<Dashboard>>, v: Viewer) -> Response {
    let r = d.run(&v, "ORGANIZATION_MEMBER_LIST", json!({}), false).await;
    let roles = d.run(&v, "ROLE_LIST", json!({}), false).await;
    let role_names: Vec<String> = roles
        .as_ref()
        .ok()
        .and_then(|r| r["items"].as_array().map(|a| a.iter().map(|r| text(&r["name"])).collect()))
        .unwrap_or_else(|| ROLES.iter().map(|s| s.to_string()).collect());
    let body = html! {
        @match &r {
            Ok(m) => table #member-list {
                thead { tr { th scope="col" { "E-mail" } th scope="col" { "Name" } th scope="col" { "Role" } @if v.manages() { th scope="col" { "Actions" } } } }
                tbody {
                    @for m in m["items"].as_array().into_iter().flatten() {
                        @let user = text(&m["userId"]);
                        tr {
                            td { (text(&m["email"])) }
                            td { (text(&m["name"])) }
                            td { (text(&m["role"])) }
                            @if v.manages() {
                                td {
                                    form.inline method="post" action="/members" {
                                        (csrf(&v))
                                        input type="hidden" name="action" value="role";
                                        input type="hidden" name="user" value=(user);
                                        label.sr for=(format!("role-{user}")) { "Role of " (text(&m["email"])) }
                                        select id=(format!("role-{user}")) name="role" {
                                            @for r in &role_names { option value=(r) selected[m["role"] == r.as_str()] { (r) } }
                                        }
                                        button.small.secondary type="submit" { "Change role" }
                                    }
                                    (button(&v, "/members", "remove", "Remove", &[("user", &user)], true))
                                }
                            }
                        }
                    }
                }
            },
            Err(e) => (failed(e)),
        }
        @if v.manages() {
            h2 { "Invite a member" }
            form #invite.stack method="post" action="/members" {
                (csrf(&v))
                input type="hidden" name="action" value="add";
                label for="m-email" { "E-mail" }
                input #m-email type="email" name="email" required;
                label for="m-name" { "Name" }
                input #m-name name="name";
                label for="m-role" { "Role" }
                select #m-role name="role" { @for r in &role_names { option value=(r) selected[r == "member"] { (r) } } }
                label for="m-password" { "Password for a new account (at least 12 characters; optional with single sign-on)" }
                input #m-password type="password" name="password" autocomplete="new-password";
                button type="submit" { "Add member" }
            }
        }
    };
    page(&d, &v, "/members", "Members", body)
}

/// POST /members.
pub(crate) async fn members_act(State(d): State<Arc<Dashboard>>, v: Viewer, body: Bytes) -> Response {
    let Some(f) = checked(&v, &body) else { return forbidden_form() };
    match f.get("action") {
        "add" => {
            let mut args = json!({"email": f.get("email"), "role": f.get("role")});
            if let Some(n) = f.opt("name") {
                args["name"] = json!(n);
            }
            if let Some(p) = f.opt("password") {
                args["password"] = json!(p);
            }
            change(&d, &v, "/members", "ORGANIZATION_MEMBER_ADD", args, format!("{} added.", f.get("email"))).await
        }
        "role" => {
            let args = json!({"user": f.get("user"), "role": f.get("role")});
            change(&d, &v, "/members", "ORGANIZATION_MEMBER_UPDATE_ROLE", args, "Role changed.".into()).await
        }
        "remove" => {
            change(
                &d,
                &v,
                "/members",
                "ORGANIZATION_MEMBER_REMOVE",
                json!({"user": f.get("user")}),
                "Member removed.".into(),
            )
            .await
        }
        _ => d.after("/members", Flash::Err("unknown action".into())),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct RoleQuery {
    preview: Option<String>,
    edit: Option<String>,
}

/// What `rules` let a holder see of the organisation's connections: per connection, the tools
/// allowed and refused (the first 200 tools of each).
async fn preview(d: &Dashboard, v: &Viewer, rules: Vec<Rule>) -> Markup {
    let layer = Layer::new(rules);
    let connections = d.run(v, "COLLECTION_CONNECTIONS_LIST", json!({}), false).await;
    let mut rows = Vec::new();
    for c in connections.as_ref().ok().and_then(|c| c["items"].as_array()).into_iter().flatten() {
        let slug = text(&c["slug"]);
        let tools = d.run(v, "CONNECTION_TOOLS", json!({"id": slug, "limit": 200}), false).await;
        let names: Vec<String> = tools
            .as_ref()
            .ok()
            .and_then(|t| t["items"].as_array())
            .into_iter()
            .flatten()
            .map(|t| text(&t["name"]))
            .collect();
        let (allowed, denied): (Vec<String>, Vec<String>) = names
            .into_iter()
            .partition(|n| layer.allows(&Item { connection: &slug, gateway: None, kind: ItemKind::Tool, name: n }));
        rows.push((slug, allowed, denied, tools.err()));
    }
    html! {
        table #preview {
            thead { tr { th scope="col" { "Connection" } th scope="col" { "Tools it sees" } th scope="col" { "Tools hidden" } } }
            tbody {
                @for (slug, allowed, denied, err) in &rows {
                    tr {
                        td { (slug) }
                        td.wrap { @if let Some(e) = err { (e.public_message()) } @else { (allowed.join(", ")) } }
                        td.wrap { (denied.join(", ")) }
                    }
                }
            }
        }
    }
}

/// GET /roles (`?preview=role`).
pub(crate) async fn roles(State(d): State<Arc<Dashboard>>, v: Viewer, Query(q): Query<RoleQuery>) -> Response {
    let r = d.run(&v, "ROLE_LIST", json!({}), false).await;
    let items: Vec<Value> = r.as_ref().ok().and_then(|r| r["items"].as_array().cloned()).unwrap_or_default();
    let shown = match &q.preview {
        Some(name) if v.manages() => {
            let rules: Vec<Rule> = items
                .iter()
                .find(|r| r["name"] == name.as_str())
                .and_then(|r| serde_json::from_value(r["rules"].clone()).ok())
                .unwrap_or_default();
            Some((name.clone(), preview(&d, &v, rules).await))
        }
        _ => None,
    };
    let editing = q.edit.as_ref().and_then(|n| items.iter().find(|r| r["name"] == n.as_str()));
    let (e_name, e_base, e_desc, e_rules, e_builtin) = match editing {
        Some(r) => (
            text(&r["name"]),
            text(&r["base"]),
            text(&r["description"]),
            serde_json::to_string_pretty(&r["rules"]).unwrap_or_else(|_| "[]".into()),
            r["builtin"] == true,
        ),
        None => (String::new(), "member".into(), String::new(), "[]".into(), false),
    };
    let body = html! {
        @if let Err(e) = &r { (failed(e)) }
        table #role-list {
            thead { tr { th scope="col" { "Role" } th scope="col" { "Base" } th scope="col" { "Members" } th scope="col" { "Rules" } @if v.manages() { th scope="col" { "Actions" } } } }
            tbody {
                @for role in &items {
                    @let name = text(&role["name"]);
                    tr {
                        td { (name) @if role["builtin"] == true { " " span.muted { "(built-in)" } } }
                        td { (text(&role["base"])) }
                        td { (text(&role["members"])) }
                        td { @if role["rules"].as_array().is_some_and(|r| !r.is_empty()) { (json_block(&role["rules"])) } @else { "none" } }
                        @if v.manages() {
                            td {
                                a.button.small.secondary href=(format!("/roles?preview={name}")) { "Preview" }
                                " "
                                a.button.small.secondary href=(format!("/roles?edit={name}#role-form")) { "Edit" }
                                @if role["builtin"] != true { (button(&v, "/roles", "delete", "Delete", &[("name", &name)], true)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some((name, table)) = shown {
            h2 { "What " (name) " sees" }
            (table)
        }
        @if v.manages() {
            h2 { "Create or change a custom role" }
            form #role-form.stack method="post" action="/roles" {
                (csrf(&v))
                input type="hidden" name="action" value="save";
                label for="r-name" { "Name" }
                input #r-name name="name" value=(e_name) required;
                @if !e_builtin {
                    label for="r-base" { "Management rights of" }
                    select #r-base name="base" {
                        @for b in ["member", "viewer", "admin"] { option value=(b) selected[e_base == b] { (b) } }
                    }
                    label for="r-description" { "Description" }
                    input #r-description name="description" value=(e_desc);
                }
                label for="r-rules" { "Rules (JSON array), e.g. [{\"effect\": \"allow\", \"connection\": \"github\", \"name\": \"get_*\"}]" }
                textarea #r-rules name="rules" rows="6" { (e_rules) }
                button type="submit" { "Save role" }
            }
        }
    };
    page(&d, &v, "/roles", "Roles", body)
}

/// POST /roles.
pub(crate) async fn roles_act(State(d): State<Arc<Dashboard>>, v: Viewer, body: Bytes) -> Response {
    let Some(f) = checked(&v, &body) else { return forbidden_form() };
    match f.get("action") {
        "save" => {
            let rules: Value = match serde_json::from_str(if f.get("rules").is_empty() { "[]" } else { f.get("rules") })
            {
                Ok(r) => r,
                Err(e) => return d.after("/roles", Flash::Err(format!("rules: not JSON ({e})"))),
            };
            let mut args = json!({"name": f.get("name"), "rules": rules});
            // A built-in role takes rules only; its base and description are fixed.
            if let Some(base) = f.opt("base") {
                args["base"] = json!(base);
            }
            if let Some(desc) = f.opt("description") {
                args["description"] = json!(desc);
            }
            let exists = d.run(&v, "ROLE_GET", json!({"name": f.get("name")}), false).await.is_ok();
            let tool = if exists { "ROLE_UPDATE" } else { "ROLE_CREATE" };
            change(&d, &v, "/roles", tool, args, format!("Role '{}' saved.", f.get("name"))).await
        }
        "delete" => {
            change(&d, &v, "/roles", "ROLE_DELETE", json!({"name": f.get("name")}), "Role deleted.".into()).await
        }
        _ => d.after("/roles", Flash::Err("unknown action".into())),
    }
}

/// GET /keys.
pub(crate) async fn keys(State(d): State<Arc<Dashboard>>, v: Viewer) -> Response {
    keys_page(&d, &v, None).await
}

async fn keys_page(d: &Dashboard, v: &Viewer, created: Option<(String, String)>) -> Response {
    let r = d.run(v, "API_KEY_LIST", json!({}), false).await;
    let body = html! {
        @if let Some((name, key)) = &created {
            div.flash.ok #new-key role="status" {
                p { "Key " b { (name) } " created. Copy it now: it is shown only once." }
                code #new-key-value { (key) }
                " " button.small.secondary.copy type="button" data-copy=(key) { "Copy" }
            }
        }
        @match &r {
            Ok(k) => table #key-list {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Prefix" } th scope="col" { "Owner" } th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "Last used" } th scope="col" { "Status" } th scope="col" { "Actions" } } }
                tbody {
                    @for k in k["items"].as_array().into_iter().flatten() {
                        @let revoked = !k["revokedAt"].is_null();
                        tr {
                            td { (text(&k["name"])) }
                            td { code { (text(&k["prefix"])) "…" } }
                            td { (text(&k["userId"])) }
                            td { (when(k["createdAt"].as_i64())) }
                            td { (when(k["expiresAt"].as_i64())) }
                            td { (when(k["lastUsedAt"].as_i64())) }
                            td { @if revoked { "revoked" } @else { "active" } }
                            td { @if !revoked { (button(v, "/keys", "revoke", "Revoke", &[("id", &text(&k["id"]))], true)) } }
                        }
                    }
                }
            },
            Err(e) => (failed(e)),
        }
        h2 { "Create a key" }
        form #key-form.stack method="post" action="/keys" {
            (csrf(v))
            input type="hidden" name="action" value="create";
            label for="k-name" { "Name" }
            input #k-name name="name" required;
            label for="k-days" { "Expires in days (empty: never)" }
            input #k-days type="number" min="1" name="expiresInDays";
            fieldset {
                legend { "Narrow it (optional)" }
                label for="k-connections" { "Only these connections (comma-separated slugs)" }
                input #k-connections name="connections";
                label for="k-gateways" { "Only these virtual MCPs (comma-separated slugs)" }
                input #k-gateways name="gateways";
                label for="k-tools" { "Only these tools (comma-separated, connection/tool globs)" }
                input #k-tools name="tools";
            }
            button #create-key type="submit" { "Create key" }
        }
    };
    page(d, v, "/keys", "API keys", body)
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()
}

/// POST /keys: create (the page shows the key once, never in a redirect) or revoke.
pub(crate) async fn keys_act(State(d): State<Arc<Dashboard>>, v: Viewer, body: Bytes) -> Response {
    let Some(f) = checked(&v, &body) else { return forbidden_form() };
    match f.get("action") {
        "create" => {
            let mut args = json!({"name": f.get("name")});
            if let Some(days) = f.opt("expiresInDays") {
                match days.parse::<u64>() {
                    Ok(n) => args["expiresInDays"] = json!(n),
                    Err(_) => return d.after("/keys", Flash::Err("expiry: a whole number of days".into())),
                }
            }
            let (c, g, t) = (list(f.get("connections")), list(f.get("gateways")), list(f.get("tools")));
            if !(c.is_empty() && g.is_empty() && t.is_empty()) {
                let mut scope = json!({});
                for (k, l) in [("connections", c), ("gateways", g), ("tools", t)] {
                    if !l.is_empty() {
                        scope[k] = json!(l);
                    }
                }
                args["scope"] = scope;
            }
            match d.run(&v, "API_KEY_CREATE", args, true).await {
                Ok(k) => {
                    let key = k["key"].as_str().or(k["item"]["key"].as_str()).unwrap_or_default().to_string();
                    keys_page(&d, &v, Some((f.get("name").to_string(), key))).await
                }
                Err(e) => d.after("/keys", Flash::Err(e.public_message())),
            }
        }
        "revoke" => change(&d, &v, "/keys", "API_KEY_REVOKE", json!({"id": f.get("id")}), "Key revoked.".into()).await,
        _ => d.after("/keys", Flash::Err("unknown action".into())),
    }
}

/// GET /oauth: registered clients and the grants users gave them.
pub(crate) async fn oauth(State(d): State<Arc<Dashboard>>, v: Viewer) -> Response {
    oauth_page(&d, &v, None).await
}

/// The OAuth page; `created` (client id, secret) is shown once, on the answer to the form.
async fn oauth_page(d: &Dashboard, v: &Viewer, created: Option<(String, String)>) -> Response {
    let clients = d.run(v, "OAUTH_CLIENT_LIST", json!({}), false).await;
    let grants = d.run(v, "OAUTH_GRANT_LIST", json!({}), false).await;
    let body = html! {
        @if let Some((id, secret)) = &created {
            div.flash.ok #new-client role="status" {
                p { "Client " code { (id) } " registered. Its secret is shown only once:" }
                code #new-client-secret { (secret) }
            }
        }
        h2 { "Clients" }
        @match &clients {
            Ok(c) => table #client-list {
                thead { tr { th scope="col" { "Client" } th scope="col" { "Id" } th scope="col" { "Kind" } th scope="col" { "Redirects" } @if v.manages() { th scope="col" { "Actions" } } } }
                tbody {
                    @for c in c["items"].as_array().into_iter().flatten() {
                        tr {
                            td { (text(&c["name"])) }
                            td.wrap { code { (text(&c["clientId"])) } }
                            td { (text(&c["kind"])) }
                            td.wrap { (c["redirectUris"].as_array().map(|r| r.iter().map(text).collect::<Vec<_>>().join(" ")).unwrap_or_default()) }
                            @if v.manages() { td { (button(v, "/oauth", "delete-client", "Delete", &[("clientId", &text(&c["clientId"]))], true)) } }
                        }
                    }
                }
            },
            Err(e) => (failed(e)),
        }
        @if v.manages() {
            form #client-form.stack method="post" action="/oauth" {
                (csrf(v))
                input type="hidden" name="action" value="create-client";
                label for="c-name" { "Client name" }
                input #c-name name="name" required;
                label for="c-redirects" { "Redirect URIs, one per line" }
                textarea #c-redirects name="redirectUris" rows="2" required {}
                label.check { input type="checkbox" name="confidential" value="true"; " Confidential (gets a secret)" }
                button type="submit" { "Register client" }
            }
        }
        h2 { "Grants" }
        @match &grants {
            Ok(g) => table #grant-list {
                thead { tr { th scope="col" { "User" } th scope="col" { "Client" } th scope="col" { "Endpoint" } th scope="col" { "Scope" } th scope="col" { "Actions" } } }
                tbody {
                    @for g in g["items"].as_array().into_iter().flatten() {
                        tr {
                            td { (text(&g["userId"])) }
                            td { (text(&g["clientName"])) " " span.muted { (text(&g["clientId"])) } }
                            td.wrap { (text(&g["resource"])) }
                            td { (text(&g["scope"])) }
                            td { (button(v, "/oauth", "revoke-grant", "Revoke", &[("id", &text(&g["id"]))], true)) }
                        }
                    }
                }
            },
            Err(e) => (failed(e)),
        }
    };
    page(d, v, "/oauth", "OAuth clients and grants", body)
}

/// POST /oauth.
pub(crate) async fn oauth_act(State(d): State<Arc<Dashboard>>, v: Viewer, body: Bytes) -> Response {
    let Some(f) = checked(&v, &body) else { return forbidden_form() };
    match f.get("action") {
        "create-client" => {
            let redirects: Vec<&str> = f.get("redirectUris").lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let args = json!({"name": f.get("name"), "redirectUris": redirects, "confidential": f.get("confidential") == "true"});
            match d.run(&v, "OAUTH_CLIENT_CREATE", args, true).await {
                Ok(c) => {
                    let secret = c["clientSecret"].as_str().or(c["item"]["clientSecret"].as_str());
                    let id = c["clientId"].as_str().or(c["item"]["clientId"].as_str()).unwrap_or_default();
                    match secret {
                        // On this answer only: never in a redirect or a cookie.
                        Some(s) => oauth_page(&d, &v, Some((id.to_string(), s.to_string()))).await,
                        None => d.after("/oauth", Flash::Ok(format!("Client registered: id {id}."))),
                    }
                }
                Err(e) => d.after("/oauth", Flash::Err(e.public_message())),
            }
        }
        "delete-client" => {
            change(
                &d,
                &v,
                "/oauth",
                "OAUTH_CLIENT_DELETE",
                json!({"clientId": f.get("clientId")}),
                "Client deleted.".into(),
            )
            .await
        }
        "revoke-grant" => {
            change(&d, &v, "/oauth", "OAUTH_GRANT_REVOKE", json!({"id": f.get("id")}), "Grant revoked.".into()).await
        }
        _ => d.after("/oauth", Flash::Err("unknown action".into())),
    }
}

/// GET /limits.
pub(crate) async fn limits(State(d): State<Arc<Dashboard>>, v: Viewer) -> Response {
    let r = d.run(&v, "RATE_LIMIT_LIST", json!({}), false).await;
    let body = html! {
        @match &r {
            Ok(l) => table #limit-list {
                thead { tr { th scope="col" { "Scope" } th scope="col" { "Target" } th scope="col" { "Per minute" } th scope="col" { "Burst" } @if v.manages() { th scope="col" { "Actions" } } } }
                tbody {
                    @for l in l["items"].as_array().into_iter().flatten() {
                        tr {
                            td { (text(&l["scope"])) }
                            td { code { (text(&l["target"])) } }
                            td { (text(&l["perMinute"])) }
                            td { (text(&l["burst"])) }
                            @if v.manages() { td { (button(&v, "/limits", "delete", "Delete", &[("id", &text(&l["id"]))], true)) } }
                        }
                    }
                }
            },
            Err(e) => (failed(e)),
        }
        @if v.manages() {
            h2 { "Set a limit" }
            form #limit-form.stack method="post" action="/limits" {
                (csrf(&v))
                input type="hidden" name="action" value="set";
                label for="l-scope" { "Per" }
                select #l-scope name="scope" { option value="key" { "API key" } option value="user" { "user" } option value="connection" { "connection" } option value="tool" { "tool (connection/tool)" } }
                label for="l-target" { "Target ('*' for each one)" }
                input #l-target name="target" value="*" required;
                label for="l-per" { "Calls per minute" }
                input #l-per type="number" min="1" name="perMinute" required;
                label for="l-burst" { "Burst (optional)" }
                input #l-burst type="number" min="1" name="burst";
                button type="submit" { "Set limit" }
            }
        }
    };
    page(&d, &v, "/limits", "Rate limits", body)
}

/// POST /limits.
pub(crate) async fn limits_act(State(d): State<Arc<Dashboard>>, v: Viewer, body: Bytes) -> Response {
    let Some(f) = checked(&v, &body) else { return forbidden_form() };
    match f.get("action") {
        "set" => {
            let per: u64 = f.get("perMinute").parse().unwrap_or(0);
            let mut args = json!({"scope": f.get("scope"), "target": f.get("target"), "perMinute": per});
            if let Some(b) = f.opt("burst").and_then(|b| b.parse::<u64>().ok()) {
                args["burst"] = json!(b);
            }
            change(&d, &v, "/limits", "RATE_LIMIT_SET", args, "Limit set.".into()).await
        }
        "delete" => {
            change(&d, &v, "/limits", "RATE_LIMIT_DELETE", json!({"id": f.get("id")}), "Limit deleted.".into()).await
        }
        _ => d.after("/limits", Flash::Err("unknown action".into())),
    }
}
