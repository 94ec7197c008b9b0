//! `mcp-mesh gateway …`: virtual MCPs, several connections behind `/mcp/gateway/{name}`.

use crate::api::{self, Target};
use crate::output;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

/// Gateway sub-commands.
#[derive(Subcommand)]
pub enum GatewayCmd {
    /// Create a gateway over some connections.
    Create(Box<CreateArgs>),
    /// List gateways.
    #[command(visible_alias = "ls")]
    List(Target),
    /// Show one gateway and its members.
    #[command(visible_alias = "get")]
    Show(NameArg),
    /// Delete a gateway (its connections stay).
    #[command(visible_alias = "delete", visible_alias = "remove")]
    Rm(NameArg),
    /// Change a gateway: mode, status, title, or (with --connection) its whole member list.
    Set(Box<SetArgs>),
}

/// A gateway named by slug or id.
#[derive(Args)]
pub struct NameArg {
    /// Gateway slug or id.
    name: String,
    #[command(flatten)]
    target: Target,
}

/// Who is behind a gateway, as flags.
#[derive(Args)]
struct MemberArgs {
    /// A member: a connection slug, optionally with the only tools to expose,
    /// `SLUG[:tool1,tool2]` (repeatable; members list in this order).
    #[arg(long = "connection", short = 'c', value_name = "SLUG[:TOOL,…]")]
    connections: Vec<String>,
    /// A member's prefix, `SLUG=PREFIX` (repeatable; default: the slug; `SLUG=` for none).
    #[arg(long = "prefix", value_name = "SLUG=PREFIX")]
    prefixes: Vec<String>,
    /// No prefix for members without a --prefix (names must then not collide).
    #[arg(long)]
    no_prefix: bool,
    /// Serve every active connection, as connections come and go (instead of --connection).
    #[arg(long, conflicts_with_all = ["connections", "prefixes", "no_prefix"])]
    all_connections: bool,
}

/// `gateway create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Slug: the gateway is served at /mcp/gateway/{name}.
    name: String,
    #[command(flatten)]
    members: MemberArgs,
    #[command(flatten)]
    fields: FieldArgs,
    #[command(flatten)]
    target: Target,
}

/// `gateway set`.
#[derive(Args)]
pub struct SetArgs {
    /// Gateway slug or id.
    name: String,
    #[command(flatten)]
    members: MemberArgs,
    #[command(flatten)]
    fields: FieldArgs,
    /// `active`, or `disabled` (the endpoint then answers 404).
    #[arg(long)]
    status: Option<String>,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
struct FieldArgs {
    /// When a member fails: `degrade` (serve the others; default) or `strict` (fail).
    #[arg(long)]
    mode: Option<String>,
    /// Display name.
    #[arg(long)]
    title: Option<String>,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    /// Items per page of merged lists (1–1000, default 100).
    #[arg(long)]
    page_size: Option<u32>,
    /// What clients see of the tools: `passthrough` (all listed; default), `smart` (search,
    /// describe and call meta-tools instead) or `code` (one `run_code` tool: scripts that call
    /// the tools in a sandbox).
    #[arg(long)]
    strategy: Option<String>,
}

impl FieldArgs {
    fn into_input(self, input: &mut Map<String, Value>) {
        let fields = [
            ("mode", self.mode),
            ("title", self.title),
            ("description", self.description),
            ("strategy", self.strategy),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                input.insert(k.into(), json!(v));
            }
        }
        if let Some(n) = self.page_size {
            input.insert("pageSize".into(), json!(n));
        }
    }
}

/// Builds the `members` argument from the flags.
fn members(m: &MemberArgs) -> anyhow::Result<Vec<Value>> {
    let mut out: Vec<Map<String, Value>> = Vec::new();
    for spec in &m.connections {
        let mut member = Map::new();
        let (slug, tools) = match spec.split_once(':') {
            Some((slug, tools)) => (slug, Some(tools)),
            None => (spec.as_str(), None),
        };
        if slug.is_empty() {
            bail!("--connection '{spec}' names no connection (SLUG or SLUG:tool1,tool2)");
        }
        member.insert("connection".into(), json!(slug));
        if let Some(tools) = tools {
            let names: Vec<&str> = tools.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
            member.insert("tools".into(), json!(names));
        }
        if m.no_prefix {
            member.insert("prefix".into(), json!(""));
        }
        out.push(member);
    }
    for p in &m.prefixes {
        let (slug, prefix) = p.split_once('=').with_context(|| format!("--prefix '{p}' is not SLUG=PREFIX"))?;
        let member = out
            .iter_mut()
            .find(|x| x["connection"] == slug)
            .with_context(|| format!("--prefix '{p}': '{slug}' is not one of the --connection members"))?;
        member.insert("prefix".into(), json!(prefix));
    }
    Ok(out.into_iter().map(Value::Object).collect())
}

/// Runs a gateway sub-command.
pub async fn run(cmd: GatewayCmd) -> anyhow::Result<()> {
    match cmd {
        GatewayCmd::Create(a) => create(*a).await,
        GatewayCmd::List(t) => list(t).await,
        GatewayCmd::Show(n) => {
            let out = api::manage(&n.target, "COLLECTION_GATEWAYS_GET", json!({"id": n.name})).await?;
            print_item(&n.target, &out["item"])
        }
        GatewayCmd::Rm(n) => {
            api::manage(&n.target, "COLLECTION_GATEWAYS_DELETE", json!({"id": n.name})).await?;
            println!("gateway \"{}\" deleted", n.name);
            Ok(())
        }
        GatewayCmd::Set(a) => set(*a).await,
    }
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let mut input = Map::new();
    input.insert("slug".into(), json!(a.name));
    if a.members.all_connections {
        input.insert("allConnections".into(), json!(true));
    } else {
        input.insert("members".into(), json!(members(&a.members)?));
    }
    a.fields.into_input(&mut input);
    let out = api::manage(&a.target, "COLLECTION_GATEWAYS_CREATE", Value::Object(input)).await?;
    saved(&a.target, &out, "created")
}

async fn set(a: SetArgs) -> anyhow::Result<()> {
    let mut input = Map::new();
    input.insert("id".into(), json!(a.name));
    if a.members.all_connections {
        input.insert("allConnections".into(), json!(true));
    } else if !a.members.connections.is_empty() {
        input.insert("allConnections".into(), json!(false));
        input.insert("members".into(), json!(members(&a.members)?));
    } else if a.members.no_prefix || !a.members.prefixes.is_empty() {
        bail!("--prefix and --no-prefix go with --connection (which replaces the member list)");
    }
    if let Some(s) = a.status {
        input.insert("status".into(), json!(s));
    }
    a.fields.into_input(&mut input);
    if input.len() == 1 {
        bail!("nothing to change: give --mode, --status, --title, --description, --page-size or --connection");
    }
    let out = api::manage(&a.target, "COLLECTION_GATEWAYS_UPDATE", Value::Object(input)).await?;
    saved(&a.target, &out, "updated")
}

/// Prints a create/update result: the endpoint for people (warnings on stderr), all for scripts.
fn saved(t: &Target, out: &Value, verb: &str) -> anyhow::Result<()> {
    if t.json {
        println!("{}", serde_json::to_string_pretty(out)?);
        return Ok(());
    }
    for w in out["warnings"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        eprintln!("warning: {w}");
    }
    let item = &out["item"];
    println!(
        "gateway \"{}\" {verb}: {}{}",
        item["slug"].as_str().unwrap_or("?"),
        t.mesh_url.as_str().trim_end_matches('/'),
        item["endpoint"].as_str().unwrap_or("")
    );
    Ok(())
}

async fn list(t: Target) -> anyhow::Result<()> {
    let out = api::manage(&t, "COLLECTION_GATEWAYS_LIST", json!({})).await?;
    if t.json {
        println!("{}", serde_json::to_string_pretty(&out["items"])?);
        return Ok(());
    }
    let items = out["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("No gateways. Create one with: mcp-mesh gateway create NAME --connection SLUG …");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|g| {
            let s = |k: &str| g[k].as_str().unwrap_or("").to_string();
            let members = if g["allConnections"] == true {
                "(all connections)".to_string()
            } else {
                let m = g["members"].as_array().cloned().unwrap_or_default();
                m.iter().map(member_summary).collect::<Vec<_>>().join(", ")
            };
            vec![s("slug"), s("status"), s("mode"), members]
        })
        .collect();
    output::table(&["NAME", "STATUS", "MODE", "MEMBERS"], &rows);
    Ok(())
}

/// `fs` or `fs[2 tools]`.
fn member_summary(m: &Value) -> String {
    let slug = m["connection"].as_str().unwrap_or("?");
    match m["tools"].as_array() {
        Some(t) => format!("{slug}[{} tool{}]", t.len(), if t.len() == 1 { "" } else { "s" }),
        None => slug.to_string(),
    }
}

fn selection(v: &Value) -> String {
    match v {
        Value::Array(a) if a.is_empty() => "(none)".into(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        Value::String(s) => s.clone(),
        _ => "all".into(),
    }
}

fn print_item(t: &Target, item: &Value) -> anyhow::Result<()> {
    if t.json {
        println!("{}", serde_json::to_string_pretty(item)?);
        return Ok(());
    }
    for key in ["slug", "id", "title", "description", "mode", "strategy", "status", "pageSize", "endpoint"] {
        match &item[key] {
            Value::Null => {}
            Value::String(s) => println!("{:<12} {s}", format!("{key}:")),
            other => println!("{:<12} {other}", format!("{key}:")),
        }
    }
    if item["allConnections"] == true {
        println!("{:<12} every active connection", "members:");
    }
    let members = item["members"].as_array().cloned().unwrap_or_default();
    if !members.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = members
            .iter()
            .map(|m| {
                let prefix = m["prefix"].as_str().unwrap_or("");
                vec![
                    m["connection"].as_str().unwrap_or("?").to_string(),
                    if prefix.is_empty() { "(none)".into() } else { prefix.to_string() },
                    selection(&m["tools"]),
                    selection(&m["resources"]),
                    selection(&m["prompts"]),
                ]
            })
            .collect();
        output::table(&["CONNECTION", "PREFIX", "TOOLS", "RESOURCES", "PROMPTS"], &rows);
    }
    for s in item["skipped"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        println!("skipped: {s}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(connections: &[&str], prefixes: &[&str], no_prefix: bool) -> MemberArgs {
        MemberArgs {
            connections: connections.iter().map(|s| s.to_string()).collect(),
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
            no_prefix,
            all_connections: false,
        }
    }

    #[test]
    fn connection_flags_become_members() {
        let m = members(&flags(&["github", "fs:read_text_file, list_directory", "time"], &["time=clock"], false));
        assert_eq!(
            json!(m.unwrap()),
            json!([
                {"connection": "github"},
                {"connection": "fs", "tools": ["read_text_file", "list_directory"]},
                {"connection": "time", "prefix": "clock"}
            ])
        );
        let m = members(&flags(&["a", "b:"], &["a=x"], true)).unwrap();
        assert_eq!(
            json!(m),
            json!([{"connection": "a", "prefix": "x"}, {"connection": "b", "tools": [], "prefix": ""}])
        );
        assert!(members(&flags(&["a"], &["b=x"], false)).unwrap_err().to_string().contains("'b' is not one of"));
        assert!(members(&flags(&["a"], &["a"], false)).is_err());
        assert!(members(&flags(&[":x"], &[], false)).is_err());
    }
}
