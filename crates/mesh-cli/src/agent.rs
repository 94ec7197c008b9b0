//! `mcp-mesh agent …`: the agents registered by heartbeat (#22), with their health,
//! capabilities and resolved dependencies — what `meshctl list` and `meshctl status` show.

use crate::api::{self, Target};
use crate::output;
use clap::{Args, Subcommand};
use serde_json::Value;

/// Agent sub-commands.
#[derive(Subcommand)]
pub enum AgentCmd {
    /// List the organisation's registered agents (healthy and recently departed).
    #[command(visible_alias = "ls")]
    List(Target),
    /// Show one agent: its capabilities and how each of its dependencies resolved.
    #[command(visible_alias = "get", visible_alias = "status")]
    Show(IdArg),
}

/// An agent named on the command line.
#[derive(Args)]
pub struct IdArg {
    /// The agent's id (as `agent list` shows it).
    id: String,
    #[command(flatten)]
    target: Target,
}

fn s(v: &Value, key: &str) -> String {
    output::cell(&v[key])
}

/// The capabilities an agent offers, without the SDK's own framework tools.
fn capabilities(a: &Value) -> Vec<&Value> {
    a["capabilities"]
        .as_array()
        .map(|c| c.iter().filter(|c| !c["function_name"].as_str().unwrap_or("").starts_with("__mesh_")).collect())
        .unwrap_or_default()
}

/// Runs an agent sub-command.
pub async fn run(cmd: AgentCmd) -> anyhow::Result<()> {
    match cmd {
        AgentCmd::List(t) => {
            let out = api::rest(&t, reqwest::Method::GET, "/api/v1/agents").await?;
            if t.json {
                return output::json(&out["agents"]);
            }
            let rows: Vec<Vec<String>> = out["agents"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|a| {
                            let caps: Vec<String> = capabilities(a).iter().map(|c| s(c, "name")).collect();
                            vec![
                                s(a, "id"),
                                s(a, "status"),
                                format!("{}/{}", s(a, "dependencies_resolved"), s(a, "total_dependencies")),
                                caps.join(","),
                                s(a, "endpoint"),
                                s(a, "connection"),
                                s(a, "last_seen"),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            if rows.is_empty() {
                println!(
                    "No agents. An mcp-mesh agent joins with MCP_MESH_REGISTRY_URL={}registry/<api key>",
                    t.mesh_url
                );
                return Ok(());
            }
            output::table(&["ID", "STATUS", "DEPS", "CAPABILITIES", "ENDPOINT", "CONNECTION", "LAST SEEN"], &rows);
            Ok(())
        }
        AgentCmd::Show(a) => {
            let path = format!("/api/v1/agents/{}", urlencoding(&a.id));
            let agent = api::rest(&a.target, reqwest::Method::GET, &path).await?;
            if a.target.json {
                return output::json(&agent);
            }
            output::fields(
                &agent,
                &["id", "name", "status", "version", "runtime", "endpoint", "connection", "created_at", "last_seen"],
            );
            println!("\nCapabilities:");
            let rows: Vec<Vec<String>> = capabilities(&agent)
                .iter()
                .map(|c| vec![s(c, "function_name"), s(c, "name"), s(c, "version"), output::cell(&c["tags"])])
                .collect();
            output::table(&["TOOL", "CAPABILITY", "VERSION", "TAGS"], &rows);
            if let Some(deps) = agent["dependency_resolutions"].as_array() {
                println!("\nDependencies:");
                let rows: Vec<Vec<String>> = deps
                    .iter()
                    .map(|d| {
                        vec![
                            s(d, "function_name"),
                            s(d, "capability"),
                            output::cell(&d["tags"]),
                            s(d, "status"),
                            s(d, "provider_agent_id"),
                            s(d, "mcp_tool"),
                        ]
                    })
                    .collect();
                output::table(&["TOOL", "NEEDS", "TAGS", "STATUS", "PROVIDER", "PROVIDER TOOL"], &rows);
            }
            Ok(())
        }
    }
}

/// Agent ids are letters, digits, '-' and '_'; anything else is escaped rather than trusted.
fn urlencoding(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
