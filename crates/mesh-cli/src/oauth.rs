//! `mcp-mesh oauth client add|list|rm` and `mcp-mesh oauth grant list|rm`: the clients the mesh's
//! authorization server knows (operators pre-register them), and the consents users gave them.

use crate::api::{self, Target};
use crate::output;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// OAuth sub-commands.
#[derive(Subcommand)]
pub enum OauthCmd {
    /// OAuth clients: pre-register one (operators), list them, remove one.
    #[command(subcommand, visible_alias = "clients")]
    Client(ClientCmd),
    /// Grants: the consents users gave clients; list them, revoke one.
    #[command(subcommand, visible_alias = "grants")]
    Grant(GrantCmd),
}

/// `oauth client …`.
#[derive(Subcommand)]
pub enum ClientCmd {
    /// Pre-register a client (operators only); a confidential client's secret is printed once.
    Add(AddArgs),
    /// List clients, pre-registered and dynamically registered (owners and admins; never a secret).
    #[command(visible_alias = "ls")]
    List(Target),
    /// Remove a client (operators only): its grants end and its tokens stop working.
    #[command(visible_alias = "delete", visible_alias = "remove")]
    Rm(IdArg),
}

/// `oauth grant …`.
#[derive(Subcommand)]
pub enum GrantCmd {
    /// List grants: your own, or the organisation's for owners and admins.
    #[command(visible_alias = "ls")]
    List(GrantListArgs),
    /// Revoke a grant: its tokens fail from the next request on (members: only their own).
    #[command(visible_alias = "revoke", visible_alias = "delete")]
    Rm(IdArg),
}

/// `oauth client add`.
#[derive(Args)]
pub struct AddArgs {
    /// Shown to users on the consent page.
    name: String,
    /// Where codes may be sent: https, or http on loopback (any port then matches); repeatable.
    #[arg(long = "redirect-uri", value_name = "URI", required = true)]
    redirect_uris: Vec<String>,
    /// Give the client a secret (printed once); default: a public client, PKCE only.
    #[arg(long)]
    confidential: bool,
    /// The client's home page.
    #[arg(long, value_name = "URL")]
    client_uri: Option<String>,
    /// A chosen client id (default: generated).
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// `oauth grant list`.
#[derive(Args)]
pub struct GrantListArgs {
    /// Only this member's grants, by email or user id.
    #[arg(long, value_name = "EMAIL|USER_ID")]
    user: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// A client or grant named on the command line.
#[derive(Args)]
pub struct IdArg {
    /// The id (see `list`).
    id: String,
    #[command(flatten)]
    target: Target,
}

/// Runs an OAuth sub-command.
pub async fn run(cmd: OauthCmd) -> anyhow::Result<()> {
    match cmd {
        OauthCmd::Client(ClientCmd::Add(a)) => add(a).await,
        OauthCmd::Client(ClientCmd::List(t)) => {
            let out = api::manage(&t, "OAUTH_CLIENT_LIST", json!({})).await?;
            if t.json {
                return output::json(&out["items"]);
            }
            let rows: Vec<Vec<String>> = out["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    vec![
                        output::cell(&c["clientId"]),
                        output::cell(&c["name"]),
                        output::cell(&c["kind"]),
                        client_type(c).into(),
                        list(&c["redirectUris"]),
                        output::time_ms(&c["createdAt"]),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("No OAuth clients. An operator registers one with: mcp-mesh oauth client add NAME --redirect-uri URI");
                return Ok(());
            }
            output::table(&["CLIENT-ID", "NAME", "KIND", "TYPE", "REDIRECT-URIS", "CREATED"], &rows);
            Ok(())
        }
        OauthCmd::Client(ClientCmd::Rm(a)) => {
            let out = api::manage(&a.target, "OAUTH_CLIENT_DELETE", json!({"clientId": a.id})).await?;
            if a.target.json {
                return output::json(&out);
            }
            println!("OAuth client {} removed; its grants and tokens ended", a.id);
            Ok(())
        }
        OauthCmd::Grant(GrantCmd::List(a)) => {
            let mut args = json!({});
            if let Some(u) = a.user {
                args["user"] = json!(u);
            }
            let out = api::manage(&a.target, "OAUTH_GRANT_LIST", args).await?;
            if a.target.json {
                return output::json(&out["items"]);
            }
            let rows: Vec<Vec<String>> = out["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| {
                    vec![
                        output::cell(&g["id"]),
                        output::cell(&g["userId"]),
                        format!("{} ({})", output::cell(&g["clientName"]), output::cell(&g["clientId"])),
                        output::cell(&g["resource"]),
                        output::cell(&g["scope"]),
                        output::time_ms(&g["createdAt"]),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("No OAuth grants.");
                return Ok(());
            }
            output::table(&["ID", "USER-ID", "CLIENT", "RESOURCE", "SCOPE", "CREATED"], &rows);
            Ok(())
        }
        OauthCmd::Grant(GrantCmd::Rm(a)) => {
            let out = api::manage(&a.target, "OAUTH_GRANT_REVOKE", json!({"id": a.id})).await?;
            if a.target.json {
                return output::json(&out["item"]);
            }
            println!(
                "grant {} revoked; {} must ask for consent again",
                a.id,
                out["item"]["clientName"].as_str().unwrap_or("the client")
            );
            Ok(())
        }
    }
}

async fn add(a: AddArgs) -> anyhow::Result<()> {
    let mut args = json!({"name": a.name, "redirectUris": a.redirect_uris, "confidential": a.confidential});
    if let Some(u) = a.client_uri {
        args["clientUri"] = json!(u);
    }
    if let Some(id) = a.client_id {
        args["clientId"] = json!(id);
    }
    let out = api::manage(&a.target, "OAUTH_CLIENT_CREATE", args).await?;
    if a.target.json {
        return output::json(&out);
    }
    let item = &out["item"];
    println!("OAuth client \"{}\" registered ({}).", output::cell(&item["name"]), client_type(item));
    println!("  client id:     {}", output::cell(&item["clientId"]));
    println!("  redirect URIs: {}", list(&item["redirectUris"]));
    match out["clientSecret"].as_str() {
        Some(secret) => {
            println!("Client secret (shown only now; it cannot be shown again, so store it safely):");
            println!("  {secret}");
        }
        None => println!("No secret: a public client proves itself with PKCE."),
    }
    Ok(())
}

fn client_type(c: &Value) -> &'static str {
    if c["confidential"] == true {
        "confidential"
    } else {
        "public"
    }
}

fn list(v: &Value) -> String {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")).unwrap_or_default()
}
