//! `mcp-mesh role …`: custom roles (a built-in base plus allow/deny rules) and the rules of the
//! built-in ones.

use crate::api::{self, Target};
use crate::output;
use crate::rule;
use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

/// Role sub-commands.
#[derive(Subcommand)]
pub enum RoleCmd {
    /// Create a custom role.
    Create(CreateArgs),
    /// List the built-in and custom roles.
    #[command(visible_alias = "ls")]
    List(Target),
    /// Show a role and its rules.
    #[command(visible_alias = "get")]
    Show(NameArg),
    /// Change a role; --allow/--deny/--clear-rules replace its whole rule list.
    Update(UpdateArgs),
    /// Delete a custom role (refused while members hold it).
    #[command(visible_alias = "delete", visible_alias = "remove")]
    Rm(NameArg),
}

/// A role named by name.
#[derive(Args)]
pub struct NameArg {
    /// Role name.
    name: String,
    #[command(flatten)]
    target: Target,
}

/// `--allow` and `--deny`: the rules of a role.
#[derive(Args)]
struct RuleArgs {
    /// A rule letting matching traffic through, `key=value,…` with keys connection, gateway,
    /// kind (tool|prompt|resource), name; values are globs (`*`, `?`). Repeatable; once any
    /// allow rule exists, only what one matches is allowed.
    #[arg(long, value_name = "SPEC")]
    allow: Vec<String>,
    /// A rule stopping matching traffic, same SPEC as --allow; a matching deny always wins.
    /// Repeatable. Example: --deny connection=crm,name=delete_*
    #[arg(long, value_name = "SPEC")]
    deny: Vec<String>,
}

/// `role create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Name: lowercase letters, digits and dashes.
    name: String,
    /// Built-in role giving the management permissions and traffic baseline: admin, member
    /// (default) or viewer.
    #[arg(long)]
    base: Option<String>,
    /// What the role is for.
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    rules: RuleArgs,
    #[command(flatten)]
    target: Target,
}

/// `role update`.
#[derive(Args)]
pub struct UpdateArgs {
    /// Role name.
    name: String,
    /// New base: admin, member or viewer (custom roles only).
    #[arg(long)]
    base: Option<String>,
    /// New description (custom roles only).
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    rules: RuleArgs,
    /// Remove every rule of the role.
    #[arg(long, conflicts_with_all = ["allow", "deny"])]
    clear_rules: bool,
    #[command(flatten)]
    target: Target,
}

/// Runs a role sub-command.
pub async fn run(cmd: RoleCmd) -> anyhow::Result<()> {
    match cmd {
        RoleCmd::Create(a) => create(a).await,
        RoleCmd::List(t) => list(t).await,
        RoleCmd::Show(n) => {
            let out = api::manage(&n.target, "ROLE_GET", json!({"name": n.name})).await?;
            print_item(&n.target, &out["item"])
        }
        RoleCmd::Update(a) => update(a).await,
        RoleCmd::Rm(n) => {
            let out = api::manage(&n.target, "ROLE_DELETE", json!({"name": n.name})).await?;
            if n.target.json {
                return output::json(&out);
            }
            println!("role \"{}\" deleted", n.name);
            Ok(())
        }
    }
}

/// Inserts the optional text fields that were given.
fn insert_fields(args: &mut Map<String, Value>, base: Option<String>, description: Option<String>) {
    for (k, v) in [("base", base), ("description", description)] {
        if let Some(v) = v {
            args.insert(k.into(), json!(v));
        }
    }
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    // Parsed first: a bad SPEC fails before anything is sent.
    let rules = rule::from_flags(&a.rules.allow, &a.rules.deny)?;
    let mut args = Map::new();
    args.insert("name".into(), json!(a.name));
    insert_fields(&mut args, a.base, a.description);
    if !rules.is_empty() {
        args.insert("rules".into(), Value::Array(rules));
    }
    let out = api::manage(&a.target, "ROLE_CREATE", Value::Object(args)).await?;
    saved(&a.target, &out["item"], "created")
}

async fn update(a: UpdateArgs) -> anyhow::Result<()> {
    let rules = rule::from_flags(&a.rules.allow, &a.rules.deny)?;
    let mut args = Map::new();
    args.insert("name".into(), json!(a.name));
    insert_fields(&mut args, a.base, a.description);
    // `rules` replaces the list, so it is sent only when asked for: updating the description
    // must not wipe the rules.
    if a.clear_rules || !rules.is_empty() {
        args.insert("rules".into(), Value::Array(rules));
    }
    if args.len() == 1 {
        bail!("nothing to change: give --base, --description, --allow, --deny or --clear-rules");
    }
    let out = api::manage(&a.target, "ROLE_UPDATE", Value::Object(args)).await?;
    saved(&a.target, &out["item"], "updated")
}

fn saved(t: &Target, item: &Value, verb: &str) -> anyhow::Result<()> {
    if t.json {
        return output::json(item);
    }
    println!(
        "role \"{}\" {verb} (base {}, {} rule(s))",
        item["name"].as_str().unwrap_or("?"),
        item["base"].as_str().unwrap_or("?"),
        count(&item["rules"])
    );
    Ok(())
}

/// How many entries a list field holds; a number is taken as the count itself.
fn count(v: &Value) -> String {
    match v {
        Value::Array(a) => a.len().to_string(),
        Value::Number(n) => n.to_string(),
        _ => "0".into(),
    }
}

async fn list(t: Target) -> anyhow::Result<()> {
    let out = api::manage(&t, "ROLE_LIST", json!({})).await?;
    if t.json {
        return output::json(&out["items"]);
    }
    let rows: Vec<Vec<String>> = out["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let builtin = if r["builtin"] == true { "yes" } else { "no" };
            vec![
                output::cell(&r["name"]),
                output::cell(&r["base"]),
                builtin.into(),
                count(&r["members"]),
                count(&r["rules"]),
            ]
        })
        .collect();
    output::table(&["NAME", "BASE", "BUILTIN", "MEMBERS", "RULES"], &rows);
    Ok(())
}

fn print_item(t: &Target, item: &Value) -> anyhow::Result<()> {
    if t.json {
        return output::json(item);
    }
    output::fields(item, &["name", "base", "builtin", "description"]);
    if !item["members"].is_null() {
        println!("{:<12} {}", "members:", count(&item["members"]));
    }
    let rules = item["rules"].as_array().cloned().unwrap_or_default();
    if rules.is_empty() {
        println!("{:<12} (none: the base role decides)", "rules:");
        return Ok(());
    }
    println!("rules:");
    for r in &rules {
        println!("  {}", rule::describe(r));
    }
    Ok(())
}
