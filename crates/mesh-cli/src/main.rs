//! `mcp-mesh`: the server (`serve`) and a kubectl-style client of a running server.
#![forbid(unsafe_code)]

/// mimalloc: per-request allocations are many and small; glibc malloc showed up at ~15% of the
/// mesh's CPU under load, with fragmentation (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod agent;
mod api;
mod audit;
mod connection;
mod gateway;
mod hub;
mod key;
mod limit;
mod member;
mod oauth;
mod org;
mod output;
mod password;
mod register;
mod role;
mod rule;
mod serve;
mod template;
mod usage;
mod user;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// MCP Mesh — one governed endpoint for all your MCP servers.
#[derive(Parser)]
#[command(name = "mcp-mesh", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mesh server (zero configuration: SQLite in ./data, listening on 127.0.0.1:3000).
    Serve(Box<serve::ServeArgs>),
    /// Manage connections to upstream MCP servers.
    #[command(subcommand, visible_alias = "connections", visible_alias = "conn")]
    Connection(connection::ConnectionCmd),
    /// The stdio command catalogue operators publish for organisations (list, add, show, rm).
    #[command(subcommand, visible_alias = "templates")]
    Template(template::TemplateCmd),
    /// Manage gateways: virtual MCPs over several connections, at /mcp/gateway/{name}.
    #[command(subcommand, visible_alias = "gateways", visible_alias = "gw")]
    Gateway(gateway::GatewayCmd),
    /// Register a plain MCP server with the mesh's agent registry and keep it there by heartbeat
    /// until stopped (a sidecar for servers without the mcp-mesh SDK).
    Register(Box<register::RegisterArgs>),
    /// Hub mode: join a hub mesh as a peer, advertising one virtual MCP, until stopped.
    #[command(subcommand)]
    Hub(hub::HubCmd),
    /// Agents registered by heartbeat (mcp-mesh SDK agents): list, show.
    #[command(subcommand, visible_alias = "agents")]
    Agent(agent::AgentCmd),
    /// Manage API keys (create, list, revoke), optionally narrowed to some connections, gateways, tools.
    #[command(subcommand, visible_alias = "keys")]
    Key(key::KeyCmd),
    /// Manage organisations: create one (prints its owner key), list yours, rename, delete.
    #[command(subcommand, visible_alias = "orgs")]
    Org(org::OrgCmd),
    /// Manage the members of your organisation and their roles.
    #[command(subcommand, visible_alias = "members")]
    Member(member::MemberCmd),
    /// Users' passwords for signing in through OAuth clients (`user passwd`).
    #[command(subcommand, visible_alias = "users")]
    User(user::UserCmd),
    /// The OAuth authorization server: pre-registered clients and the grants users gave them.
    #[command(subcommand)]
    Oauth(oauth::OauthCmd),
    /// Manage roles: custom roles over a built-in base, with allow/deny rules on traffic.
    #[command(subcommand, visible_alias = "roles")]
    Role(role::RoleCmd),
    /// Manage rate limits per API key, user, connection or tool.
    #[command(subcommand, visible_alias = "limits")]
    Limit(limit::LimitCmd),
    /// Import the servers of a Claude Desktop / Cursor / VS Code `mcpServers` JSON file.
    Import(connection::ImportArgs),
    /// Call a tool of a connection through the mesh and print its result.
    Call(connection::CallArgs),
    /// Vault operations.
    #[command(subcommand)]
    Vault(VaultCmd),
    /// The audit trail: recent calls, JSON Lines export, hash-chain verification.
    Audit(Box<audit::AuditArgs>),
    /// Usage over time: calls, errors, bytes and latency by user, key, connection, tool or time.
    Usage(Box<usage::UsageArgs>),
    /// Serve a mesh endpoint over stdio, for desktop clients that only speak stdio.
    Stdio(StdioArgs),
}

#[derive(Subcommand)]
enum VaultCmd {
    /// Generate a new vault key and re-encrypt every secret under it; the server keeps serving.
    Rotate(api::Target),
}

#[derive(clap::Args)]
struct StdioArgs {
    /// The mesh endpoint to expose, e.g. http://127.0.0.1:3000/mcp/github.
    #[arg(long)]
    url: url::Url,
    /// API key (else MESH_API_KEY, else the local owner key).
    #[arg(long, env = "MESH_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Data directory holding the local owner key.
    #[arg(long, env = "MESH_DATA_DIR", default_value = "./data")]
    data_dir: std::path::PathBuf,
}

fn init_logs(default: &str) {
    let filter =
        std::env::var("MESH_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| default.to_string());
    // Colour only on a terminal: escape codes in a log file or a pipe are noise (issue #16).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if std::env::var("MESH_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    // Transparent huge pages back the allocator's arena 2 MiB at a time: on a host with THP
    // "always" an idle mesh was 33 MiB resident instead of 19. A relay's heap is small and
    // churns; huge pages buy it nothing. mimalloc no longer asks for them (`no_thp`); this stops
    // the kernel giving or collapsing them anyway — first, before the runtime's threads touch
    // memory. Process-wide (the flag is the address space's, and children inherit it), best
    // effort: a kernel or sandbox that refuses leaves the host's setting, and so does an operator
    // who sets mimalloc's own MIMALLOC_ALLOW_THP (docs/config.md).
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command line, run.
async fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logs(if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" });
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Connection(cmd) => connection::run(cmd).await,
        Command::Template(c) => template::run(c).await,
        Command::Gateway(cmd) => gateway::run(cmd).await,
        Command::Key(cmd) => key::run(cmd).await,
        Command::Agent(cmd) => agent::run(cmd).await,
        Command::Register(args) => register::run(*args).await,
        Command::Hub(cmd) => hub::run(cmd).await,
        Command::Org(cmd) => org::run(cmd).await,
        Command::Member(cmd) => member::run(cmd).await,
        Command::User(cmd) => user::run(cmd).await,
        Command::Oauth(cmd) => oauth::run(cmd).await,
        Command::Role(cmd) => role::run(cmd).await,
        Command::Limit(cmd) => limit::run(cmd).await,
        Command::Import(args) => connection::import(args).await,
        Command::Call(args) => connection::call(args).await,
        Command::Vault(VaultCmd::Rotate(target)) => api::vault_rotate(target).await,
        Command::Audit(args) => audit::run(*args).await,
        Command::Usage(args) => usage::run(*args).await,
        Command::Stdio(args) => stdio(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Tampering detected is not the same failure as "could not check": scripts can tell.
        Err(e) if e.is::<audit::ChainBroken>() => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn stdio(args: StdioArgs) -> anyhow::Result<()> {
    let key = api::resolve_key(args.api_key, &args.data_dir)?;
    let http = mesh_relay::UpstreamClients::default().for_reach(mesh_relay::Reach::Any).clone();
    mesh_relay::front_stdio::run(args.url, key, http).await?;
    Ok(())
}
