//! `mcp-mesh org …`: organisations, each with its own connections, gateways, keys and audit trail.
//!
//! An API key belongs to one organisation, so these commands act on the caller's organisation;
//! `org create` prints the owner key of the new one, the way to act inside it.

use crate::api::{self, Target};
use crate::output;
use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

/// Organisation sub-commands.
#[derive(Subcommand)]
pub enum OrgCmd {
    /// Create an organisation; prints its owner key, once.
    Create(CreateArgs),
    /// List the organisations you belong to, with your role in each.
    #[command(visible_alias = "ls")]
    List(Target),
    /// Show an organisation (default: the one of your API key).
    #[command(visible_alias = "get")]
    Show(ShowArgs),
    /// Rename an organisation or change its slug (owners and admins).
    Update(UpdateArgs),
    /// Delete an organisation and everything in it (owners; asks for its slug as confirmation).
    #[command(visible_alias = "delete")]
    Rm(RmArgs),
}

/// `org create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Slug: a short lowercase identifier.
    slug: String,
    /// Display name (default: the slug).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// `org show`.
#[derive(Args)]
pub struct ShowArgs {
    /// Organisation id or slug (default: the one of your API key).
    org: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// `org update`.
#[derive(Args)]
pub struct UpdateArgs {
    /// Organisation id or slug (default: the one of your API key).
    org: Option<String>,
    /// New display name.
    #[arg(long)]
    name: Option<String>,
    /// New slug.
    #[arg(long)]
    slug: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// `org rm`.
#[derive(Args)]
pub struct RmArgs {
    /// Organisation id or slug.
    org: String,
    /// The organisation's slug, typed again: deletion cannot be undone.
    #[arg(long, value_name = "SLUG")]
    confirm: String,
    #[command(flatten)]
    target: Target,
}

/// Runs an organisation sub-command.
pub async fn run(cmd: OrgCmd) -> anyhow::Result<()> {
    match cmd {
        OrgCmd::Create(a) => create(a).await,
        OrgCmd::List(t) => list(t).await,
        OrgCmd::Show(a) => {
            let mut args = Map::new();
            if let Some(org) = a.org {
                args.insert("id".into(), json!(org));
            }
            let out = api::manage(&a.target, "ORGANIZATION_GET", Value::Object(args)).await?;
            print_item(&a.target, &out["item"])
        }
        OrgCmd::Update(a) => update(a).await,
        OrgCmd::Rm(a) => {
            let out = api::manage(&a.target, "ORGANIZATION_DELETE", json!({"id": a.org, "confirm": a.confirm})).await?;
            if a.target.json {
                return output::json(&out);
            }
            println!("organisation \"{}\" deleted", a.org);
            Ok(())
        }
    }
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let mut args = json!({"slug": a.slug});
    if let Some(n) = a.name {
        args["name"] = json!(n);
    }
    let out = api::manage(&a.target, "ORGANIZATION_CREATE", args).await?;
    if a.target.json {
        return output::json(&out);
    }
    let item = &out["item"];
    println!(
        "organisation \"{}\" created ({}). Its owner key, shown only now:",
        item["slug"].as_str().unwrap_or("?"),
        item["id"].as_str().unwrap_or("?")
    );
    let key = out["key"].as_str().unwrap_or("");
    println!("  {key}");
    println!("Act in it with: MESH_API_KEY={key} mcp-mesh org show");
    Ok(())
}

async fn list(t: Target) -> anyhow::Result<()> {
    let out = api::manage(&t, "ORGANIZATION_LIST", json!({})).await?;
    if t.json {
        return output::json(&out["items"]);
    }
    output::items(&out["items"], &[("SLUG", "slug"), ("NAME", "name"), ("ROLE", "role"), ("ID", "id")], "");
    Ok(())
}

async fn update(a: UpdateArgs) -> anyhow::Result<()> {
    let mut args = Map::new();
    for (k, v) in [("name", a.name), ("slug", a.slug)] {
        if let Some(v) = v {
            args.insert(k.into(), json!(v));
        }
    }
    if args.is_empty() {
        bail!("nothing to change: give --name or --slug");
    }
    if let Some(org) = a.org {
        args.insert("id".into(), json!(org));
    }
    let out = api::manage(&a.target, "ORGANIZATION_UPDATE", Value::Object(args)).await?;
    if a.target.json {
        return output::json(&out["item"]);
    }
    println!("organisation \"{}\" updated", out["item"]["slug"].as_str().unwrap_or("?"));
    Ok(())
}

fn print_item(t: &Target, item: &Value) -> anyhow::Result<()> {
    if t.json {
        return output::json(item);
    }
    output::fields(item, &["slug", "id", "name", "role", "createdAt"]);
    Ok(())
}
