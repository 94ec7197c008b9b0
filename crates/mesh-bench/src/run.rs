//! One benchmark run, phase by phase:
//!
//! 1. start the echo upstream (HTTP, separate process) and the bare relay in front of it;
//! 2. cold start: the mesh on an empty data directory, then restarts on the same one;
//! 3. the measured mesh: idle RSS, then N open sessions (RSS fresh, and after 32 `tools/list`
//!    each), then closed again; the virtual MCPs are created if the mesh has them;
//! 4. load: for each round, for each concurrency, every path in turn for one short slice —
//!    A/B interleaved, the order reversed every other round, so drift hits all paths alike;
//!    `tools/list` likewise at concurrency 1; mesh RSS sampled throughout;
//! 5. optionally `perf record` on the mesh under a steady load;
//! 6. stop everything and build the report.

use crate::client::{Call, Session};
use crate::load::{self, Budget, Samples};
use crate::pools::Pools;
use crate::processes::{MeshBin, MeshProcess, UpstreamProcess};
use crate::report::{CallRow, MemoryRow, Path, Report, SessionStage, GATEWAY_NA};
use crate::{coldstart, memory, procfs, targets};
use anyhow::Context;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The connection slugs the run registers: the echo upstream over HTTP and over stdio.
pub const HTTP_CONNECTION: &str = "echo";
/// See [`HTTP_CONNECTION`].
pub const STDIO_CONNECTION: &str = "echo-stdio";

/// What to run, and how long.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// This crate's binary: the echo upstream (`upstream`, `upstream --stdio`).
    pub bench_exe: PathBuf,
    /// The mesh program.
    pub mesh: MeshBin,
    /// Interleaved rounds.
    pub rounds: usize,
    /// Length of one slice (one path, one concurrency, one round).
    pub slice: Duration,
    /// Call budget of one slice (`u64::MAX`: time only).
    pub slice_calls: u64,
    /// Concurrency levels of `tools/call`.
    pub concurrency: Vec<usize>,
    /// `tools/list` calls per path per round.
    pub list_calls: u64,
    /// Tools the echo upstream offers.
    pub tools: usize,
    /// Sessions opened in the memory stage.
    pub sessions: usize,
    /// Restarts measured for the cold-start figure.
    pub restarts: usize,
    /// Calls per path before measuring.
    pub warmup_calls: u64,
    /// Record a `perf` profile of the mesh under load into this file.
    pub perf: Option<PathBuf>,
    /// Seconds of load under `perf`.
    pub perf_secs: u64,
    /// What load runs under `perf`.
    pub perf_load: PerfLoad,
    /// Its concurrency, when not the load's own.
    pub perf_concurrency: Option<usize>,
    /// A one-line description for the report.
    pub label: String,
}

impl RunConfig {
    /// The full run (about three minutes on 2 cores).
    pub fn full(bench_exe: PathBuf, mesh: MeshBin) -> RunConfig {
        RunConfig {
            bench_exe,
            mesh,
            rounds: 6,
            slice: Duration::from_millis(1500),
            slice_calls: u64::MAX,
            concurrency: vec![1, 16, 64],
            list_calls: 400,
            tools: 20,
            sessions: 1000,
            restarts: 5,
            warmup_calls: 2000,
            perf: None,
            perf_secs: 10,
            perf_load: PerfLoad::Call,
            perf_concurrency: None,
            label: "full".into(),
        }
    }

    /// A quicker run with the same phases (about half a minute).
    pub fn quick(bench_exe: PathBuf, mesh: MeshBin) -> RunConfig {
        RunConfig {
            rounds: 2,
            slice: Duration::from_millis(500),
            list_calls: 100,
            restarts: 2,
            warmup_calls: 300,
            label: "quick".into(),
            ..RunConfig::full(bench_exe, mesh)
        }
    }

    /// A bounded run for the smoke test: every phase and row, `calls` calls per slice.
    pub fn smoke(bench_exe: PathBuf, mesh: MeshBin, calls: u64) -> RunConfig {
        RunConfig {
            rounds: 1,
            slice: Duration::from_secs(60),
            slice_calls: calls,
            list_calls: 20,
            sessions: 50,
            restarts: 1,
            warmup_calls: 20,
            label: format!("smoke ({calls} calls per slice)"),
            ..RunConfig::full(bench_exe, mesh)
        }
    }

    fn describe(&self) -> String {
        let calls =
            if self.slice_calls == u64::MAX { String::new() } else { format!(", ≤ {} calls", self.slice_calls) };
        format!(
            "{}: {} interleaved rounds × {:?} per slice{calls}, concurrency {:?}, {} tools upstream, {} sessions in the memory stage",
            self.label, self.rounds, self.slice, self.concurrency, self.tools, self.sessions
        )
    }
}

/// The load a `perf` profile is taken under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PerfLoad {
    /// `tools/call` through `/mcp/{connection}` at concurrency 16.
    Call,
    /// `tools/call` through `/mcp/{connection}` in the stateless revision at concurrency 16.
    Stateless,
    /// `tools/list` through the 50 × 20 virtual MCP at concurrency 1.
    GatewayList,
    /// `tools/call` through the observed mesh (traced, metrics scraped) at concurrency 16.
    Observed,
    /// `run_code` of a code virtual MCP, a script of one tool call, at concurrency 4 (the
    /// places an organisation has).
    Code,
}

/// A progress line on stderr (stdout carries the report).
pub fn log(msg: impl AsRef<str>) {
    eprintln!("[mesh-bench] {}", msg.as_ref());
}

/// The paths measured for `tools/call`, in round order.
const CALL_PATHS: [Path; 12] = [
    Path::Direct,
    Path::Bare,
    Path::Mesh,
    Path::MeshOauth,
    Path::MeshStateless,
    Path::MeshObserved,
    Path::Capability,
    Path::Gateway,
    Path::SmartCall,
    Path::CodeCall,
    Path::StdioDirect,
    Path::StdioMesh,
];
/// The paths measured for `tools/list` (the gateway's is the 50-member one).
const LIST_PATHS: [Path; 3] = [Path::Direct, Path::Mesh, Path::Gateway];

/// Runs the benchmark.
pub async fn run(cfg: &RunConfig) -> anyhow::Result<Report> {
    let date =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    log(cfg.describe());
    let upstream = UpstreamProcess::start(&cfg.bench_exe, cfg.tools).await?;
    log(format!("echo upstream at {} (pid {})", upstream.url, upstream.pid));
    let relay = UpstreamProcess::relay(&cfg.bench_exe, &upstream.url).await?;
    log(format!("bare relay at {} (pid {})", relay.url, relay.pid));
    let data = tempfile::tempdir()?;

    let cold_start = coldstart::measure(cfg, &upstream, data.path()).await?;
    let mesh = MeshProcess::start(&cfg.mesh, data.path()).await?;
    log(format!("mesh at {} (pid {}), ready after {:?}", mesh.base, mesh.pid, mesh.ready_after));
    let sink = crate::observed::Sink::start().await?;
    let observed_data = tempfile::tempdir()?;
    let observed = crate::observed::start(&cfg.mesh, observed_data.path(), &sink).await?;
    crate::coldstart::register(cfg, &observed, &upstream).await?;
    log(format!("observed mesh (traced, metrics scraped) at {} (pid {})", observed.base, observed.pid));
    let scraper = crate::observed::Scraper::start(&observed);
    let result = measure(cfg, &upstream, &relay, &mesh, &observed).await;
    let scrapes = scraper.stop().await;
    log(format!(
        "observed mesh: {} trace exports received, {scrapes} metrics scrapes",
        sink.exports.load(std::sync::atomic::Ordering::Relaxed)
    ));
    if result.is_err() {
        log(format!("the run failed; the mesh's last log lines:\n{}", mesh.log_tail()));
        log(format!("the observed mesh's last log lines:\n{}", observed.log_tail()));
    }
    observed.stop().await;
    mesh.stop().await;
    relay.stop().await;
    upstream.stop().await;
    let Measured { calls, tools_list, memory, session_stage, profile, gateway_na } = result?;

    let mut report = Report {
        schema: 1,
        date,
        commit: git_head(),
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        settings: cfg.describe(),
        mesh_bin: cfg.mesh.path().display().to_string(),
        calls,
        tools_list,
        tools_list_gateway: gateway_na,
        memory,
        session_stage: Some(session_stage),
        cold_start,
        targets: Vec::new(),
        profile,
    };
    report.targets = targets::check_all(&report, cfg.sessions);
    Ok(report)
}

/// What the measured mesh yielded.
struct Measured {
    calls: Vec<CallRow>,
    tools_list: Vec<CallRow>,
    memory: Vec<MemoryRow>,
    session_stage: SessionStage,
    profile: Option<String>,
    gateway_na: Option<String>,
}

async fn measure(
    cfg: &RunConfig,
    upstream: &UpstreamProcess,
    relay: &UpstreamProcess,
    mesh: &MeshProcess,
    observed: &MeshProcess,
) -> anyhow::Result<Measured> {
    // Let start-up work (first sqlx pool connections, background tasks) settle before "idle".
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = procfs::rss(mesh.pid).context("mesh RSS")?;
    let mut memory =
        vec![MemoryRow { state: "idle".into(), sessions: 0, rss_kib: idle.rss_kib, hwm_kib: idle.hwm_kib }];

    let session_stage = memory::session_stage(cfg, mesh, idle, &mut memory).await?;

    let max_c = cfg.concurrency.iter().copied().max().unwrap_or(1);
    log(format!("opening {max_c} sessions per path"));
    let mut pools = Pools::open(cfg, upstream, relay, mesh, max_c).await?;
    pools.open_observed(observed, max_c).await?;
    let gateway_na = pools.gateway_na.clone();
    let pools_oauth_na = pools.oauth_na.clone();
    let pools_capability_na = pools.capability_na.clone();
    for (&path, pool) in pools.call.iter_mut() {
        let budget = Budget { duration: Duration::from_secs(30), calls: cfg.warmup_calls };
        warm_up(pool, Pools::tool_call(path), budget, path).await?;
    }
    if let Some(pool) = pools.list_gateway.as_mut() {
        // The first tools/list of a gateway session fetches every member's list; later ones are
        // answered from the session's cache ("warm").
        warm_up(pool, Call::ListTools, Budget { duration: Duration::from_secs(60), calls: 3 }, Path::Gateway).await?;
    }

    // Mesh RSS while under load: sampled, since VmHWM also remembers the session stage.
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, peak, pid) = (sampling.clone(), peak.clone(), mesh.pid);
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(r) = procfs::rss(pid) {
                    peak.fetch_max(r.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let pids = Pids { mesh: mesh.pid, upstream: upstream.pid };
    let mut acc: HashMap<(Path, usize), Acc> = HashMap::new();
    let mut list_acc: HashMap<Path, Acc> = HashMap::new();
    for round in 0..cfg.rounds {
        log(format!("round {}/{}", round + 1, cfg.rounds));
        let mut order: Vec<Path> = CALL_PATHS.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        for &c in &cfg.concurrency {
            for &path in &order {
                let Some(pool) = pools.call.get_mut(&path) else { continue };
                let budget = Budget { duration: cfg.slice, calls: cfg.slice_calls };
                // The bare relay's CPU goes in the mesh's column: it stands where the mesh stands.
                let pids = match path {
                    Path::Bare => Pids { mesh: relay.pid, ..pids },
                    Path::MeshObserved => Pids { mesh: observed.pid, ..pids },
                    _ => pids,
                };
                let (samples, cpu) = timed_slice(pool, c, Pools::tool_call(path), budget, pids).await;
                acc.entry((path, c)).or_default().add(samples, cpu);
            }
        }
        for &path in order.iter().filter(|p| LIST_PATHS.contains(p)) {
            let Some(pool) = pools.for_list(path) else { continue };
            let budget = Budget { duration: cfg.slice, calls: cfg.list_calls };
            let (samples, cpu) = timed_slice(pool, 1, Call::ListTools, budget, pids).await;
            list_acc.entry(path).or_default().add(samples, cpu);
        }
    }

    let profile = match &cfg.perf {
        Some(out) => {
            let (pool, c, call) = match cfg.perf_load {
                PerfLoad::Call => (pools.call.get_mut(&Path::Mesh), 16, Pools::tool_call(Path::Mesh)),
                PerfLoad::Stateless => {
                    (pools.call.get_mut(&Path::MeshStateless), 16, Pools::tool_call(Path::MeshStateless))
                }
                PerfLoad::GatewayList => (pools.list_gateway.as_mut(), 1, Call::ListTools),
                PerfLoad::Observed => {
                    (pools.call.get_mut(&Path::MeshObserved), 16, Pools::tool_call(Path::MeshObserved))
                }
                PerfLoad::Code => (pools.call.get_mut(&Path::CodeCall), 4, Pools::tool_call(Path::CodeCall)),
            };
            let pid = if cfg.perf_load == PerfLoad::Observed { observed.pid } else { mesh.pid };
            Some(profile(cfg, out, pool, cfg.perf_concurrency.unwrap_or(c), call, pid).await?)
        }
        None => None,
    };
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let end = procfs::rss(mesh.pid).context("mesh RSS")?;
    memory.push(MemoryRow {
        state: "load".into(),
        sessions: pools.through_mesh(),
        rss_kib: peak.load(Ordering::Relaxed).max(end.rss_kib),
        hwm_kib: end.hwm_kib,
    });
    pools.close().await;

    let na = gateway_na.clone().unwrap_or_else(|| GATEWAY_NA.to_string());
    let mut calls = Vec::new();
    for &c in &cfg.concurrency {
        for path in CALL_PATHS {
            calls.push(match acc.remove(&(path, c)) {
                Some(a) => a.row(path, c),
                None if path == Path::MeshOauth => {
                    CallRow::unavailable(path, c, pools_oauth_na.as_deref().unwrap_or("n/a"))
                }
                None if path == Path::Capability => {
                    CallRow::unavailable(path, c, pools_capability_na.as_deref().unwrap_or("n/a"))
                }
                None if matches!(path, Path::SmartCall | Path::CodeCall) && gateway_na.is_none() => {
                    CallRow::unavailable(path, c, "n/a (virtual MCP strategies not implemented)")
                }
                None => CallRow::unavailable(path, c, &na),
            });
        }
    }
    let tools_list = LIST_PATHS.into_iter().filter_map(|p| list_acc.remove(&p).map(|a| a.row(p, 1))).collect();
    Ok(Measured { calls, tools_list, memory, session_stage, profile, gateway_na })
}

async fn warm_up(pool: &mut Vec<Session>, call: Call, budget: Budget, path: Path) -> anyhow::Result<()> {
    let (back, warm) = load::slice(std::mem::take(pool), call, budget).await;
    *pool = back;
    anyhow::ensure!(warm.errors == 0, "warm-up of {} failed: {}", path.label(), warm.first_error.unwrap_or_default());
    Ok(())
}

/// How the echo upstream is started as a stdio server.
pub fn stdio_args(cfg: &RunConfig) -> Vec<String> {
    vec!["upstream".into(), "--stdio".into(), "--tools".into(), cfg.tools.to_string()]
}

#[derive(Clone, Copy)]
struct Pids {
    mesh: u32,
    upstream: u32,
}

/// CPU time spent during a slice, µs: mesh, upstream, this process.
#[derive(Default, Clone, Copy)]
struct Cpu {
    mesh: u64,
    upstream: u64,
    client: u64,
}

fn cpu_now(p: Pids) -> Cpu {
    Cpu {
        mesh: procfs::cpu_us(p.mesh).unwrap_or(0),
        upstream: procfs::cpu_us(p.upstream).unwrap_or(0),
        client: procfs::cpu_us(std::process::id()).unwrap_or(0),
    }
}

/// Runs one slice on the first `c` sessions of `pool`, with the CPU each process spent.
async fn timed_slice(pool: &mut Vec<Session>, c: usize, call: Call, budget: Budget, pids: Pids) -> (Samples, Cpu) {
    let c = c.min(pool.len());
    let rest = pool.split_off(c);
    let sessions = std::mem::take(pool);
    let before = cpu_now(pids);
    let (mut back, samples) = load::slice(sessions, call, budget).await;
    let after = cpu_now(pids);
    back.extend(rest);
    *pool = back;
    let cpu = Cpu {
        mesh: after.mesh.saturating_sub(before.mesh),
        upstream: after.upstream.saturating_sub(before.upstream),
        client: after.client.saturating_sub(before.client),
    };
    (samples, cpu)
}

/// Samples of one (path, concurrency) over all rounds.
#[derive(Default)]
struct Acc {
    samples: Samples,
    rounds: Vec<f64>,
    cpu: Cpu,
}

impl Acc {
    fn add(&mut self, s: Samples, cpu: Cpu) {
        self.rounds.push(s.throughput());
        self.samples.merge(s);
        self.cpu.mesh += cpu.mesh;
        self.cpu.upstream += cpu.upstream;
        self.cpu.client += cpu.client;
    }

    fn row(mut self, path: Path, c: usize) -> CallRow {
        let n = self.samples.calls().max(1) as f64;
        let per_call = |us: u64| Some(us as f64 / n);
        let through_mesh = matches!(
            path,
            Path::Bare
                | Path::Mesh
                | Path::MeshOauth
                | Path::MeshStateless
                | Path::MeshObserved
                | Path::StdioMesh
                | Path::Gateway
                | Path::SmartCall
                | Path::CodeCall
                | Path::Capability
        );
        let http_upstream = matches!(
            path,
            Path::Direct
                | Path::Bare
                | Path::Mesh
                | Path::MeshOauth
                | Path::MeshStateless
                | Path::MeshObserved
                | Path::Gateway
                | Path::SmartCall
                | Path::CodeCall
                | Path::Capability
        );
        CallRow {
            path,
            concurrency: c,
            status: None,
            calls: self.samples.calls(),
            errors: self.samples.errors,
            first_error: self.samples.first_error.clone(),
            seconds: self.samples.elapsed.as_secs_f64(),
            throughput: self.samples.throughput(),
            round_throughput: self.rounds.clone(),
            p50_ms: self.samples.quantile_ms(0.5),
            p99_ms: self.samples.quantile_ms(0.99),
            p999_ms: self.samples.quantile_ms(0.999),
            mean_ms: self.samples.mean_ms(),
            mesh_cpu_us_per_call: if through_mesh { per_call(self.cpu.mesh) } else { None },
            upstream_cpu_us_per_call: if http_upstream { per_call(self.cpu.upstream) } else { None },
            client_cpu_us_per_call: per_call(self.cpu.client),
        }
    }
}

/// `perf record` on the mesh while `pool` runs `call` at concurrency `c`.
async fn profile(
    cfg: &RunConfig,
    out: &std::path::Path,
    pool: Option<&mut Vec<Session>>,
    c: usize,
    call: Call,
    pid: u32,
) -> anyhow::Result<String> {
    let pool = pool.context("no sessions to profile with (is the path available on this mesh?)")?;
    log(format!("perf record on the mesh for {} s → {}", cfg.perf_secs, out.display()));
    let mut perf = tokio::process::Command::new("perf")
        .args(["record", "-F", "499", "--call-graph", "dwarf,32768", "-p", &pid.to_string(), "-o"])
        .arg(out)
        .args(["--", "sleep", &cfg.perf_secs.to_string()])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run perf (install linux-perf)")?;
    // Give perf a moment to attach before the load starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let budget = Budget { duration: Duration::from_secs(cfg.perf_secs.saturating_sub(1).max(1)), calls: u64::MAX };
    let (samples, _) = timed_slice(pool, c, call, budget, Pids { mesh: pid, upstream: pid }).await;
    let status = perf.wait().await?;
    anyhow::ensure!(status.success(), "perf record failed: {status}");
    log(format!("profiled {} calls ({:.0}/s)", samples.calls(), samples.throughput()));
    Ok(out.display().to_string())
}

/// `git rev-parse HEAD` of the workspace, with `-dirty` when tracked files have changes: a
/// figure is only comparable with the code it measured.
fn git_head() -> Option<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}
