//! `mcp-mesh template …`: the stdio command catalogue that installation operators publish, from
//! which organisation admins add stdio servers (`connection add NAME --template T`).

use crate::api::{self, Target};
use crate::output;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// Template sub-commands.
#[derive(Subcommand)]
pub enum TemplateCmd {
    /// Publish a template (operators only): a program with fixed arguments.
    Add(AddArgs),
    /// List the catalogue.
    #[command(visible_alias = "ls")]
    List(Target),
    /// Show one template.
    #[command(visible_alias = "get")]
    Show(NameArg),
    /// Withdraw a template (operators only); connections made from it keep running.
    #[command(visible_alias = "delete", visible_alias = "remove")]
    Rm(NameArg),
}

/// `template add`.
#[derive(Args)]
pub struct AddArgs {
    /// The template's name.
    name: String,
    /// The program.
    #[arg(long)]
    command: String,
    /// A fixed argument (repeatable).
    #[arg(long = "arg", allow_hyphen_values = true)]
    args: Vec<String>,
    /// An environment variable organisations supply a value for (repeatable).
    #[arg(long = "env", value_name = "NAME")]
    env: Vec<String>,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// A template named on the command line.
#[derive(Args)]
pub struct NameArg {
    /// The template's name.
    name: String,
    #[command(flatten)]
    target: Target,
}

/// Runs a template sub-command.
pub async fn run(cmd: TemplateCmd) -> anyhow::Result<()> {
    match cmd {
        TemplateCmd::Add(a) => {
            let mut input = json!({"name": a.name, "command": a.command, "args": a.args, "env": a.env});
            if let Some(d) = a.description {
                input["description"] = json!(d);
            }
            let out = api::manage(&a.target, "COLLECTION_TEMPLATES_CREATE", input).await?;
            show(&a.target, &out["item"])
        }
        TemplateCmd::List(t) => {
            let out = api::manage(&t, "COLLECTION_TEMPLATES_LIST", json!({})).await?;
            if t.json {
                println!("{}", serde_json::to_string_pretty(&out["items"])?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = out["items"]
                .as_array()
                .map(|items| items.iter().map(|t| vec![s(t, "name"), command_line(t), list(t, "env")]).collect())
                .unwrap_or_default();
            if rows.is_empty() {
                println!(
                    "No templates. An operator publishes one with: mcp-mesh template add NAME --command CMD --arg …"
                );
                return Ok(());
            }
            output::table(&["NAME", "COMMAND", "ENV"], &rows);
            Ok(())
        }
        TemplateCmd::Show(n) => {
            let out = api::manage(&n.target, "COLLECTION_TEMPLATES_GET", json!({"name": n.name})).await?;
            show(&n.target, &out["item"])
        }
        TemplateCmd::Rm(n) => {
            api::manage(&n.target, "COLLECTION_TEMPLATES_DELETE", json!({"name": n.name})).await?;
            println!("template \"{}\" withdrawn", n.name);
            Ok(())
        }
    }
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

fn list(v: &Value, key: &str) -> String {
    v[key].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")).unwrap_or_default()
}

fn command_line(t: &Value) -> String {
    format!("{} {}", s(t, "command"), list(t, "args").replace(',', " ")).trim().to_string()
}

fn show(t: &Target, item: &Value) -> anyhow::Result<()> {
    if t.json {
        println!("{}", serde_json::to_string_pretty(item)?);
        return Ok(());
    }
    println!("name:        {}", s(item, "name"));
    println!("command:     {}", command_line(item));
    println!("env:         {}", list(item, "env"));
    if let Some(d) = item["description"].as_str() {
        println!("description: {d}");
    }
    Ok(())
}
