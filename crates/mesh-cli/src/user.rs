//! `mcp-mesh user passwd`: the password a person logs in with when an OAuth client asks the mesh
//! for consent (API keys need none).

use crate::api::{self, Target};
use crate::output;
use clap::{Args, Subcommand};
use serde_json::json;

/// User sub-commands.
#[derive(Subcommand)]
pub enum UserCmd {
    /// Set your password for the mesh's login page (operators: anyone's, with --user).
    Passwd(PasswdArgs),
}

/// `user passwd`.
#[derive(Args)]
pub struct PasswdArgs {
    /// Whose password, by email or user id (installation operators only; default: yours).
    #[arg(long, value_name = "EMAIL|USER_ID")]
    user: Option<String>,
    /// Read the password from the first line of stdin instead of asking twice at the terminal.
    /// There is no password flag on purpose: command lines end up in shell history and `ps`.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    target: Target,
}

/// Runs a user sub-command.
pub async fn run(cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Passwd(a) => {
            // Read before connecting: nothing is sent until there is a password to send.
            let password = if a.password_stdin {
                crate::password::from_stdin().await?
            } else {
                crate::password::prompt_twice().await?
            };
            let mut args = json!({"password": password.expose()});
            if let Some(u) = &a.user {
                args["user"] = json!(u);
            }
            let out = api::manage(&a.target, "USER_PASSWORD_SET", args).await?;
            if a.target.json {
                return output::json(&out);
            }
            match &a.user {
                Some(u) => println!("password set for {u}"),
                None => println!("password set; use it with your email on the mesh's login page"),
            }
            Ok(())
        }
    }
}
