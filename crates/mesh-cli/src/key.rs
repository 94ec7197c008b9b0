//! `mcp-mesh key create|list|revoke`.

use crate::api::{self, Target};
use crate::output;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// API key sub-commands.
#[derive(Subcommand)]
pub enum KeyCmd {
    /// Create a key; it is printed once.
    Create(CreateArgs),
    /// List keys (never the secret).
    #[command(visible_alias = "ls")]
    List(Target),
    /// Revoke a key by id; it fails from the next request on.
    #[command(visible_alias = "rm")]
    Revoke(RevokeArgs),
}

/// `key create`.
#[derive(Args)]
pub struct CreateArgs {
    /// A name to recognise it by.
    name: String,
    /// Days until it expires.
    #[arg(long)]
    expires_in_days: Option<i64>,
    /// The member it is for (owners and admins only).
    #[arg(long)]
    user: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// `key revoke`.
#[derive(Args)]
pub struct RevokeArgs {
    /// The key id (see `mcp-mesh key list`).
    id: String,
    #[command(flatten)]
    target: Target,
}

/// Runs a key sub-command.
pub async fn run(cmd: KeyCmd) -> anyhow::Result<()> {
    match cmd {
        KeyCmd::Create(a) => {
            let mut args = json!({"name": a.name});
            if let Some(d) = a.expires_in_days {
                args["expiresInDays"] = json!(d);
            }
            if let Some(u) = a.user {
                args["userId"] = json!(u);
            }
            let out = api::manage(&a.target, "API_KEY_CREATE", args).await?;
            if a.target.json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!(
                    "API key \"{}\" created ({}). Shown only now:",
                    out["item"]["name"].as_str().unwrap_or(""),
                    out["item"]["id"].as_str().unwrap_or("")
                );
                println!("  {}", out["key"].as_str().unwrap_or(""));
            }
            Ok(())
        }
        KeyCmd::List(t) => {
            let out = api::manage(&t, "API_KEY_LIST", json!({})).await?;
            if t.json {
                println!("{}", serde_json::to_string_pretty(&out["items"])?);
                return Ok(());
            }
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            let when = |v: &Value| v.as_i64().map(format_ms).unwrap_or_else(|| "-".into());
            let rows: Vec<Vec<String>> = out["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|k| {
                            let state = if !k["revokedAt"].is_null() { "revoked" } else { "active" };
                            vec![
                                s(&k["id"]),
                                s(&k["name"]),
                                s(&k["prefix"]),
                                state.into(),
                                when(&k["expiresAt"]),
                                when(&k["lastUsedAt"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            output::table(&["ID", "NAME", "PREFIX", "STATE", "EXPIRES", "LAST USED"], &rows);
            Ok(())
        }
        KeyCmd::Revoke(a) => {
            api::manage(&a.target, "API_KEY_REVOKE", json!({"id": a.id})).await?;
            println!("API key {} revoked", a.id);
            Ok(())
        }
    }
}

fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}
