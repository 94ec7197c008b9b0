//! `mcp-mesh member …`: the people of the caller's organisation and their roles.

use crate::api::{self, Target};
use crate::output;
use clap::{Args, Subcommand};
use serde_json::json;

/// Member sub-commands.
#[derive(Subcommand)]
pub enum MemberCmd {
    /// Add a person to the organisation (a local user is created for a new email).
    Add(AddArgs),
    /// List the organisation's members and their roles.
    #[command(visible_alias = "ls")]
    List(Target),
    /// Give a member another role (only owners touch owners; the last owner stays one).
    SetRole(SetRoleArgs),
    /// Remove a member from the organisation (the user and other memberships stay).
    #[command(visible_alias = "remove")]
    Rm(UserArg),
}

/// `member add`.
#[derive(Args)]
pub struct AddArgs {
    /// Email address: the user's identity.
    email: String,
    /// Role: owner, admin, member, viewer, or a custom role (see `mcp-mesh role list`).
    #[arg(long)]
    role: String,
    /// Display name (for a new user).
    #[arg(long)]
    name: Option<String>,
    /// Read a password for a new local user from the first line of stdin. There is no password
    /// flag on purpose: command lines end up in shell history and process lists.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    target: Target,
}

/// `member set-role`.
#[derive(Args)]
pub struct SetRoleArgs {
    /// The member's user id or email.
    user: String,
    /// The new role.
    role: String,
    #[command(flatten)]
    target: Target,
}

/// A member named by user id or email.
#[derive(Args)]
pub struct UserArg {
    /// The member's user id or email.
    user: String,
    #[command(flatten)]
    target: Target,
}

/// Runs a member sub-command.
pub async fn run(cmd: MemberCmd) -> anyhow::Result<()> {
    match cmd {
        MemberCmd::Add(a) => add(a).await,
        MemberCmd::List(t) => list(t).await,
        MemberCmd::SetRole(a) => {
            let out =
                api::manage(&a.target, "ORGANIZATION_MEMBER_UPDATE_ROLE", json!({"user": a.user, "role": a.role}))
                    .await?;
            if a.target.json {
                return output::json(&out["item"]);
            }
            println!("member \"{}\" is now {}", a.user, out["item"]["role"].as_str().unwrap_or(&a.role));
            Ok(())
        }
        MemberCmd::Rm(a) => {
            let out = api::manage(&a.target, "ORGANIZATION_MEMBER_REMOVE", json!({"user": a.user})).await?;
            if a.target.json {
                return output::json(&out);
            }
            println!("member \"{}\" removed", a.user);
            Ok(())
        }
    }
}

async fn add(a: AddArgs) -> anyhow::Result<()> {
    // Read before connecting: a missing password fails without touching the mesh.
    let password = if a.password_stdin { Some(crate::password::from_stdin().await?) } else { None };
    let mut args = json!({"email": a.email, "role": a.role});
    if let Some(n) = a.name {
        args["name"] = json!(n);
    }
    if let Some(p) = &password {
        args["password"] = json!(p.expose());
    }
    let out = api::manage(&a.target, "ORGANIZATION_MEMBER_ADD", args).await?;
    if a.target.json {
        return output::json(&out["item"]);
    }
    let item = &out["item"];
    println!(
        "member \"{}\" added as {} (user {})",
        item["email"].as_str().unwrap_or(&a.email),
        item["role"].as_str().unwrap_or(&a.role),
        item["userId"].as_str().unwrap_or("?")
    );
    Ok(())
}

async fn list(t: Target) -> anyhow::Result<()> {
    let out = api::manage(&t, "ORGANIZATION_MEMBER_LIST", json!({})).await?;
    if t.json {
        return output::json(&out["items"]);
    }
    output::items(&out["items"], &[("EMAIL", "email"), ("NAME", "name"), ("ROLE", "role"), ("USER-ID", "userId")], "");
    Ok(())
}
