//! `mcp-mesh limit …`: rate limits per key, user, connection or tool.

use crate::api::{self, Target};
use crate::output;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

/// Rate limit sub-commands.
#[derive(Subcommand)]
pub enum LimitCmd {
    /// Set a limit; setting the same SCOPE and TARGET again replaces it.
    Set(SetArgs),
    /// List the organisation's limits.
    #[command(visible_alias = "ls")]
    List(Target),
    /// Delete a limit by id.
    #[command(visible_alias = "delete", visible_alias = "remove")]
    Rm(RmArgs),
}

/// What a limit counts calls of.
#[derive(Clone, Copy, ValueEnum)]
pub enum Scope {
    /// Each API key (TARGET: a key id).
    Key,
    /// Each user, over all their keys (TARGET: a user id).
    User,
    /// Each connection (TARGET: a connection slug).
    Connection,
    /// Each tool (TARGET: `connection/tool`).
    Tool,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::User => "user",
            Scope::Connection => "connection",
            Scope::Tool => "tool",
        }
    }
}

/// `limit set`.
#[derive(Args)]
pub struct SetArgs {
    /// What is counted.
    #[arg(value_enum)]
    scope: Scope,
    /// Which one: key id, user id, connection slug or `connection/tool`; globs allowed, and `*`
    /// limits each one separately.
    #[arg(value_name = "TARGET")]
    target_id: String,
    /// Calls allowed per minute.
    #[arg(value_name = "PER_MINUTE")]
    per_minute: u32,
    /// Calls allowed at once above the steady rate (default: the server's).
    #[arg(long)]
    burst: Option<u32>,
    #[command(flatten)]
    target: Target,
}

/// `limit rm`.
#[derive(Args)]
pub struct RmArgs {
    /// The limit id (see `mcp-mesh limit list`).
    id: String,
    #[command(flatten)]
    target: Target,
}

/// Runs a rate limit sub-command.
pub async fn run(cmd: LimitCmd) -> anyhow::Result<()> {
    match cmd {
        LimitCmd::Set(a) => set(a).await,
        LimitCmd::List(t) => list(t).await,
        LimitCmd::Rm(a) => {
            let out = api::manage(&a.target, "RATE_LIMIT_DELETE", json!({"id": a.id})).await?;
            if a.target.json {
                return output::json(&out);
            }
            println!("rate limit {} deleted", a.id);
            Ok(())
        }
    }
}

async fn set(a: SetArgs) -> anyhow::Result<()> {
    let mut args = json!({"scope": a.scope.as_str(), "target": a.target_id, "perMinute": a.per_minute});
    if let Some(b) = a.burst {
        args["burst"] = json!(b);
    }
    let out = api::manage(&a.target, "RATE_LIMIT_SET", args).await?;
    let item = &out["item"];
    if a.target.json {
        return output::json(item);
    }
    println!(
        "rate limit set: {} {} at {}/min, burst {} ({})",
        a.scope.as_str(),
        a.target_id,
        output::cell(&item["perMinute"]),
        output::cell(&item["burst"]),
        output::cell(&item["id"])
    );
    Ok(())
}

async fn list(t: Target) -> anyhow::Result<()> {
    let out = api::manage(&t, "RATE_LIMIT_LIST", json!({})).await?;
    if t.json {
        return output::json(&out["items"]);
    }
    let columns =
        [("ID", "id"), ("SCOPE", "scope"), ("TARGET", "target"), ("PER-MINUTE", "perMinute"), ("BURST", "burst")];
    output::items(&out["items"], &columns, "No rate limits. Set one with: mcp-mesh limit set SCOPE TARGET PER_MINUTE");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // What people type is what is sent: the clap names must stay the spec's wire names.
    #[test]
    fn scope_names_are_the_wire_names() {
        for s in Scope::value_variants() {
            let name = s.to_possible_value().map(|p| p.get_name().to_string());
            assert_eq!(name.as_deref(), Some(s.as_str()));
        }
    }
}
