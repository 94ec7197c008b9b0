//! `mesh-bench`: the MCP Mesh benchmark (`run`), its echo upstream (`upstream`), and `compare`.
#![forbid(unsafe_code)]

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use mesh_bench::processes::MeshBin;
use mesh_bench::run::{self, RunConfig};
use std::path::PathBuf;
use std::process::ExitCode;

/// Benchmark of MCP Mesh: direct vs through the mesh, A/B interleaved (docs/PERFORMANCE.md).
#[derive(Parser)]
#[command(name = "mesh-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the benchmark and print a markdown report.
    Run(RunArgs),
    /// Steady load through /mcp/{connection} for a while, printing the mesh's RSS and CPU.
    Soak(SoakArgs),
    /// Serve the echo MCP upstream (Streamable HTTP on --port, or stdio with --stdio).
    Upstream(UpstreamArgs),
    /// Serve the bare relay (HTTP in, pooled HTTP out, no MCP logic) in front of --upstream.
    Relay(RelayArgs),
    /// Compare two JSON reports (old, new).
    Compare {
        /// The earlier report.
        old: PathBuf,
        /// The later report.
        new: PathBuf,
    },
    /// The mesh server from its library, like `mcp-mesh serve` (used by the smoke test).
    #[command(hide = true)]
    MeshServe(MeshServeArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// A shorter run with the same phases and rows (about a minute).
    #[arg(long)]
    quick: bool,
    /// Also write the report as JSON here (for `compare` between commits).
    #[arg(long)]
    json: Option<PathBuf>,
    /// The mcp-mesh binary to measure (default: build and use target/release/mcp-mesh).
    #[arg(long)]
    mesh_bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p mesh-cli` first.
    #[arg(long)]
    no_build: bool,
    /// Interleaved rounds (default 6; quick 2).
    #[arg(long)]
    rounds: Option<usize>,
    /// Milliseconds per slice (default 1500; quick 500).
    #[arg(long)]
    slice_ms: Option<u64>,
    /// Call budget per slice (default: none, time only).
    #[arg(long)]
    calls: Option<u64>,
    /// Sessions opened in the memory stage (default 1000).
    #[arg(long)]
    sessions: Option<usize>,
    /// Record a perf profile of the mesh under load into this file.
    #[arg(long)]
    perf: Option<PathBuf>,
    /// Seconds of load under perf.
    #[arg(long, default_value_t = 10)]
    perf_secs: u64,
    /// The load profiled: tools/call through /mcp/{connection}, or tools/list through the 50 × 20 virtual MCP.
    #[arg(long, value_enum, default_value = "call")]
    perf_load: run::PerfLoad,
    /// Concurrency of the profiled load (default: the load's own, 16 for calls, 1 for lists).
    #[arg(long)]
    perf_concurrency: Option<usize>,
}

#[derive(clap::Args)]
struct SoakArgs {
    /// Seconds of load (longer than the connection timeout, 60 s, to see per-call state expire).
    #[arg(long, default_value_t = 90)]
    secs: u64,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds between report lines.
    #[arg(long, default_value_t = 5)]
    every: u64,
    /// The mcp-mesh binary to measure (default: build and use target/release/mcp-mesh).
    #[arg(long)]
    mesh_bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p mesh-cli` first.
    #[arg(long)]
    no_build: bool,
    /// Speak the stateless revision (2026-07-28): no sessions, an envelope on every request.
    #[arg(long)]
    stateless: bool,
}

#[derive(clap::Args)]
struct UpstreamArgs {
    /// Port on 127.0.0.1 (0: any free one; the address is printed on stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Number of tools in tools/list.
    #[arg(long, default_value_t = 20)]
    tools: usize,
    /// Speak newline-delimited JSON-RPC on stdin/stdout instead.
    #[arg(long)]
    stdio: bool,
}

#[derive(clap::Args)]
struct RelayArgs {
    /// Port on 127.0.0.1 (0: any free one; the address is printed on stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The upstream's endpoint (an `http://` URL).
    #[arg(long)]
    upstream: url::Url,
}

#[derive(clap::Args)]
struct MeshServeArgs {
    #[arg(long)]
    listen: std::net::SocketAddr,
    #[arg(long)]
    data_dir: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // A stdio server needs no runtime: one blocking loop is the fastest echo there is.
        Command::Upstream(a) if a.stdio => mesh_bench::upstream::serve_stdio(a.tools).map_err(Into::into),
        command => tokio::runtime::Runtime::new().map_err(Into::into).and_then(|rt| rt.block_on(async_main(command))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn async_main(command: Command) -> anyhow::Result<()> {
    match command {
        // `run_cmd` listens for interrupts itself, once its build is done.
        Command::Run(a) => run_cmd(a).await,
        Command::Soak(a) => {
            until_interrupted(async {
                let exe = std::env::current_exe().context("cannot find this program's path")?;
                let mesh = match a.mesh_bin {
                    Some(p) => MeshBin::Cli(p),
                    None => MeshBin::Cli(release_mesh(&exe, a.no_build)?),
                };
                let cfg = RunConfig::full(exe, mesh);
                let every = std::time::Duration::from_secs(a.every.max(1));
                mesh_bench::soak::soak(&cfg, a.secs, a.concurrency, every, a.stateless).await?;
                Ok(())
            })
            .await
        }
        Command::Upstream(a) => {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", a.port)).await?;
            println!("{}{}", mesh_bench::upstream_banner(), listener.local_addr()?);
            mesh_bench::upstream::serve_http(listener, a.tools).await?;
            Ok(())
        }
        Command::Relay(a) => {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", a.port)).await?;
            println!("{}{}", mesh_bench::relay::BANNER, listener.local_addr()?);
            mesh_bench::relay::serve(listener, &a.upstream).await
        }
        Command::Compare { old, new } => {
            let read = |p: &PathBuf| -> anyhow::Result<mesh_bench::report::Report> {
                let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
                serde_json::from_str(&text).with_context(|| format!("{} is not a mesh-bench report", p.display()))
            };
            print!("{}", mesh_bench::compare::markdown(&read(&old)?, &read(&new)?));
            Ok(())
        }
        Command::MeshServe(a) => mesh_serve(a).await,
    }
}

async fn run_cmd(a: RunArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mesh = match a.mesh_bin {
        Some(p) => MeshBin::Cli(p),
        None => MeshBin::Cli(release_mesh(&exe, a.no_build)?),
    };
    let mut cfg = if a.quick { RunConfig::quick(exe, mesh) } else { RunConfig::full(exe, mesh) };
    if let Some(r) = a.rounds {
        cfg.rounds = r.max(1);
    }
    if let Some(ms) = a.slice_ms {
        cfg.slice = std::time::Duration::from_millis(ms.max(10));
    }
    if let Some(c) = a.calls {
        cfg.slice_calls = c.max(1);
    }
    if let Some(s) = a.sessions {
        cfg.sessions = s;
    }
    cfg.perf = a.perf;
    cfg.perf_secs = a.perf_secs.max(2);
    cfg.perf_load = a.perf_load;
    cfg.perf_concurrency = a.perf_concurrency;
    let report = until_interrupted(run::run(&cfg)).await?;
    println!("{}", report.markdown());
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("[mesh-bench] JSON written to {}", path.display());
    }
    Ok(())
}

/// `target/release/mcp-mesh`, next to this program, built first so it matches the work tree
/// (measuring a stale binary is the classic benchmark mistake).
fn release_mesh(exe: &std::path::Path, no_build: bool) -> anyhow::Result<PathBuf> {
    let dir = exe.parent().context("no directory")?;
    if !no_build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        eprintln!("[mesh-bench] cargo build --release -p mesh-cli");
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "-p", "mesh-cli"])
            .current_dir(workspace)
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            bail!("cargo build --release -p mesh-cli failed");
        }
    }
    let bin = dir.join("mcp-mesh");
    if !bin.exists() {
        bail!("{} not found: build it with `cargo build --release -p mesh-cli` or pass --mesh-bin", bin.display());
    }
    Ok(bin)
}

/// Runs a measurement (after any build, which a signal stops on its own) until it ends or
/// SIGINT/SIGTERM arrives. Returning early drops the
/// measurement with its child processes (mesh, upstreams, bare relay), whose handles kill them:
/// none outlives an interrupted benchmark to skew the next one.
async fn until_interrupted<T>(run: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = run => r,
        _ = term.recv() => bail!("interrupted (SIGTERM); child processes stopped"),
        _ = tokio::signal::ctrl_c() => bail!("interrupted; child processes stopped"),
    }
}

/// The mesh as `mcp-mesh serve --listen --data-dir` runs it, with its default log level.
async fn mesh_serve(a: MeshServeArgs) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let mut cfg = mesh_server::Config::with_data_dir(a.data_dir);
    cfg.listen = a.listen;
    // As `mcp-mesh serve` with processes::BENCH_SESSION_LIMITS: no cap the bench could reach.
    (cfg.max_sessions, cfg.max_sessions_per_org, cfg.max_sessions_per_key) = (1_000_000, 1_000_000, 1_000_000);
    cfg.session_open_per_minute = 0;
    cfg.registry.unhealthy_after = std::time::Duration::from_secs(86_400);
    // The observed mesh's telemetry (`observed.rs`), from the same variables `mcp-mesh serve` reads.
    cfg.tracing = mesh_telemetry::TraceSettings::from_env().map_err(anyhow::Error::msg)?;
    cfg.metrics_token = std::env::var("MESH_METRICS_TOKEN").ok().map(mesh_core::Secret::new);
    cfg.validate()?;
    let mesh = mesh_server::Mesh::build(&cfg).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    mesh.serve(listener, async move {
        tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
    })
    .await
}
