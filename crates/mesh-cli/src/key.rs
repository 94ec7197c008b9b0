//! `mcp-mesh key create|list|revoke`.

use crate::api::{self, Target};
use crate::output;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

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
    /// The member it is for, by user id or email (owners and admins only).
    #[arg(long, value_name = "USER_ID|EMAIL")]
    user: Option<String>,
    #[command(flatten)]
    scope: ScopeArgs,
    #[command(flatten)]
    target: Target,
}

/// Narrowing flags: the key can do less than its user, never more.
#[derive(Args)]
struct ScopeArgs {
    /// Only these connections may be opened at /mcp/{connection} (glob; repeatable).
    #[arg(long = "connection", value_name = "GLOB")]
    connections: Vec<String>,
    /// Only these gateways may be opened at /mcp/gateway/{gateway} (glob; repeatable).
    #[arg(long = "gateway", value_name = "GLOB")]
    gateways: Vec<String>,
    /// Only tools with these names, on every endpoint (glob; repeatable).
    #[arg(long = "tool", value_name = "GLOB")]
    tools: Vec<String>,
}

impl ScopeArgs {
    /// The `scope` argument, with only the lists given; `None` when no flag was given, so an
    /// unscoped key stays unscoped (an empty list would mean "nothing").
    fn to_scope(&self) -> Option<Value> {
        let lists = [("connections", &self.connections), ("gateways", &self.gateways), ("tools", &self.tools)];
        let scope: Map<String, Value> =
            lists.into_iter().filter(|(_, l)| !l.is_empty()).map(|(k, l)| (k.to_string(), json!(l))).collect();
        (!scope.is_empty()).then_some(Value::Object(scope))
    }
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
            if let Some(scope) = a.scope.to_scope() {
                args["scope"] = scope;
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
                                scope_summary(&k["scope"]),
                                output::time_ms(&k["expiresAt"]),
                                output::time_ms(&k["lastUsedAt"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            output::table(&["ID", "NAME", "PREFIX", "STATE", "SCOPE", "EXPIRES", "LAST USED"], &rows);
            Ok(())
        }
        KeyCmd::Revoke(a) => {
            api::manage(&a.target, "API_KEY_REVOKE", json!({"id": a.id})).await?;
            println!("API key {} revoked", a.id);
            Ok(())
        }
    }
}

/// A key's scope in one cell: `conn:crm gw:dev tool:get_*`, or `-` when unscoped.
fn scope_summary(scope: &Value) -> String {
    let mut parts = Vec::new();
    for (field, label) in [("connections", "conn"), ("gateways", "gw"), ("tools", "tool")] {
        for g in scope[field].as_array().into_iter().flatten().filter_map(Value::as_str) {
            parts.push(format!("{label}:{g}"));
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(connections: &[&str], gateways: &[&str], tools: &[&str]) -> ScopeArgs {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        ScopeArgs { connections: v(connections), gateways: v(gateways), tools: v(tools) }
    }

    #[test]
    fn scope_flags_send_only_the_lists_given() {
        assert_eq!(flags(&[], &[], &[]).to_scope(), None);
        assert_eq!(
            flags(&["crm", "fs-*"], &[], &["get_*"]).to_scope(),
            Some(json!({"connections": ["crm", "fs-*"], "tools": ["get_*"]}))
        );
        assert_eq!(flags(&[], &["dev"], &[]).to_scope(), Some(json!({"gateways": ["dev"]})));
    }

    #[test]
    fn scope_reads_as_one_cell() {
        assert_eq!(scope_summary(&Value::Null), "-");
        assert_eq!(scope_summary(&json!({"connections": [], "gateways": null})), "-");
        assert_eq!(
            scope_summary(&json!({"connections": ["crm"], "gateways": ["dev"], "tools": ["get_*", "list_*"]})),
            "conn:crm gw:dev tool:get_* tool:list_*"
        );
    }
}
