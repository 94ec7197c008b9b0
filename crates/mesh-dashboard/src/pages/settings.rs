//! Settings: the organisation's details; for the installation's operators, vault key rotation
//! and the catalogue of stdio commands organisations may start.

use crate::layout::{button, csrf, failed, page, text};
use crate::pages::login::forbidden_form;
use crate::web::{Flash, Form, Viewer};
use crate::Dashboard;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use serde_json::json;
use std::sync::Arc;

async fn render(d: &Dashboard, v: &Viewer) -> Response {
    let org = d.run(v, "ORGANIZATION_GET", json!({}), false).await;
    let templates = d.run(v, "COLLECTION_TEMPLATES_LIST", json!({}), false).await;
    let body = html! {
        h2 { "Organisation" }
        @match &org {
            Ok(o) => {
                dl.facts {
                    dt { "Id" } dd { code { (text(&o["item"]["id"])) } }
                    dt { "Slug" } dd { (text(&o["item"]["slug"])) }
                }
                @if v.manages() {
                    form #org-form.stack method="post" action="/settings" {
                        (csrf(v))
                        input type="hidden" name="action" value="org";
                        label for="o-name" { "Name" }
                        input #o-name name="name" value=(text(&o["item"]["name"])) required;
                        button type="submit" { "Save" }
                    }
                } @else {
                    p { (text(&o["item"]["name"])) }
                }
            }
            Err(e) => (failed(e)),
        }
        h2 { "Catalogue of stdio commands" }
        p.muted { "Organisation admins start stdio servers only from these entries; operators publish them." }
        @match &templates {
            Ok(t) => table #template-list {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Command" } th scope="col" { "Environment" } @if v.operator() { th scope="col" { "Actions" } } } }
                tbody {
                    @for t in t["items"].as_array().into_iter().flatten() {
                        tr {
                            td { (text(&t["name"])) br; span.muted { (text(&t["description"])) } }
                            td.wrap { code { (text(&t["command"])) " " (t["args"].as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join(" ")).unwrap_or_default()) } }
                            td { (t["env"].as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                            @if v.operator() { td { (button(v, "/settings", "delete-template", "Delete", &[("name", &text(&t["name"]))], true)) } }
                        }
                    }
                }
            },
            Err(e) => (failed(e)),
        }
        @if v.operator() {
            form #template-form.stack method="post" action="/settings" {
                (csrf(v))
                input type="hidden" name="action" value="template";
                label for="t-name" { "Name" }
                input #t-name name="name" required;
                label for="t-description" { "Description" }
                input #t-description name="description";
                label for="t-command" { "Command" }
                input #t-command name="command" required;
                label for="t-args" { "Arguments, one per line" }
                textarea #t-args name="args" rows="2" {}
                label for="t-env" { "Environment variables organisations supply (comma-separated names)" }
                input #t-env name="env";
                button type="submit" { "Publish" }
            }
            h2 { "Vault" }
            p.muted { "Re-seals every stored secret under a new key; the old key stays readable until removed from the configuration." }
            (button(v, "/settings", "rotate", "Rotate the vault key", &[], true))
        }
    };
    page(d, v, "/settings", "Settings", body)
}

/// GET /settings.
pub(crate) async fn show(State(d): State<Arc<Dashboard>>, v: Viewer) -> Response {
    render(&d, &v).await
}

/// POST /settings.
pub(crate) async fn act(State(d): State<Arc<Dashboard>>, v: Viewer, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if !Dashboard::csrf_ok(&v, &f) {
        return forbidden_form();
    }
    let (tool, args, ok) = match f.get("action") {
        "org" => ("ORGANIZATION_UPDATE", json!({"name": f.get("name")}), "Organisation saved."),
        "template" => {
            let args: Vec<&str> = f.get("args").lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let env: Vec<&str> = f.get("env").split(',').map(str::trim).filter(|l| !l.is_empty()).collect();
            let a = json!({"name": f.get("name"), "description": f.get("description"), "command": f.get("command"), "args": args, "env": env});
            ("COLLECTION_TEMPLATES_CREATE", a, "Catalogue entry published.")
        }
        "delete-template" => {
            ("COLLECTION_TEMPLATES_DELETE", json!({"name": f.get("name")}), "Catalogue entry deleted.")
        }
        "rotate" => ("VAULT_ROTATE", json!({}), "Vault key rotated."),
        _ => return d.after("/settings", Flash::Err("unknown action".into())),
    };
    match d.run(&v, tool, args, true).await {
        Ok(_) => d.after("/settings", Flash::Ok(ok.into())),
        Err(e) => d.after("/settings", Flash::Err(e.public_message())),
    }
}
