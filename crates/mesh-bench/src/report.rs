//! The result of a run: a serialisable record (the JSON kept for comparing commits) and its
//! markdown rendering.

use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Why the gateway columns are empty until virtual MCPs exist.
pub const GATEWAY_NA: &str = "n/a (gateways not implemented)";

/// How a call reached the echo server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Path {
    /// Straight to the upstream over Streamable HTTP.
    Direct,
    /// Through the bare relay (`mesh-bench relay`): two HTTP hops and nothing else, the floor of
    /// any proxy on this stack.
    Bare,
    /// Through the mesh at `/mcp/{connection}`, HTTP upstream.
    Mesh,
    /// Through a virtual MCP of 3 members (not implemented yet).
    Gateway,
    /// Straight to a stdio upstream this process started.
    StdioDirect,
    /// Through the mesh at `/mcp/{connection}`, stdio upstream started by the mesh.
    StdioMesh,
    /// `Mesh`, authorised by an OAuth access token instead of an API key.
    MeshOauth,
    /// `Mesh`, in the stateless revision (2026-07-28): no session, an envelope per request.
    MeshStateless,
    /// `tools/call` through a smart virtual MCP's `call_tool` (#23), against `Gateway`.
    SmartCall,
    /// `tools/call` of a code virtual MCP's `run_code` (#23) with a script making one tool call,
    /// against `Gateway`.
    CodeCall,
    /// `Mesh` over a capability connection balanced over three providers (#22), all the echo
    /// upstream.
    Capability,
    /// `Mesh` on a second mesh with tracing on (every span exported over OTLP/HTTP) and its
    /// `/metrics` scraped every second (#20).
    MeshObserved,
}

impl Path {
    /// Column heading.
    pub fn label(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Bare => "bare relay",
            Path::Mesh => "/mcp/{connection}",
            Path::Gateway => "virtual MCP (3 members)",
            Path::StdioDirect => "stdio direct",
            Path::StdioMesh => "stdio via mesh",
            Path::MeshOauth => "/mcp/{connection}, OAuth token",
            Path::MeshStateless => "/mcp/{connection}, stateless (2026-07-28)",
            Path::MeshObserved => "/mcp/{connection}, traced + metrics scraped",
            Path::Capability => "/mcp/{connection}, capability over 3 providers",
            Path::SmartCall => "virtual MCP (3 members), smart, through call_tool",
            Path::CodeCall => "virtual MCP (3 members), code, a script of one call",
        }
    }
}

/// One (path, concurrency) cell of a call measurement, aggregated over all rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRow {
    /// The path measured.
    pub path: Path,
    /// Concurrent workers (each with its own session).
    pub concurrency: usize,
    /// Set when the path was not measured, saying why.
    pub status: Option<String>,
    /// Successful calls.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Wall-clock seconds spent calling.
    pub seconds: f64,
    /// Successful calls per second.
    pub throughput: f64,
    /// Per-round throughput, to see the spread.
    pub round_throughput: Vec<f64>,
    /// Latency percentiles and mean, milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// Mean.
    pub mean_ms: Option<f64>,
    /// Mesh CPU time per successful call, µs (mesh paths; `/proc/<pid>/stat`).
    pub mesh_cpu_us_per_call: Option<f64>,
    /// Echo upstream process CPU per call, µs (HTTP paths).
    pub upstream_cpu_us_per_call: Option<f64>,
    /// Load-generator CPU per call, µs.
    pub client_cpu_us_per_call: Option<f64>,
}

impl CallRow {
    /// A row for a path that could not be measured.
    pub fn unavailable(path: Path, concurrency: usize, why: &str) -> CallRow {
        CallRow {
            path,
            concurrency,
            status: Some(why.to_string()),
            calls: 0,
            errors: 0,
            first_error: None,
            seconds: 0.0,
            throughput: 0.0,
            round_throughput: Vec::new(),
            p50_ms: None,
            p99_ms: None,
            p999_ms: None,
            mean_ms: None,
            mesh_cpu_us_per_call: None,
            upstream_cpu_us_per_call: None,
            client_cpu_us_per_call: None,
        }
    }
}

/// Resident memory of the mesh process at one stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryRow {
    /// `idle`, `sessions` or `load`.
    pub state: String,
    /// Open MCP sessions at the time.
    pub sessions: usize,
    /// `VmRSS` (for `load`: the largest sampled during the load phase), KiB.
    pub rss_kib: u64,
    /// `VmHWM` at the end of the stage, KiB.
    pub hwm_kib: u64,
}

/// Start-up time of the mesh process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColdStartRow {
    /// `first start` (empty data directory) or `restart` (existing data, connections registered).
    pub kind: String,
    /// Runs measured (the figures are their median).
    pub samples: usize,
    /// Spawn → first 200 from `/health/ready`, ms.
    pub ready_ms: f64,
    /// Spawn → first `initialize` answered (first start: at `/mcp`; restart: at `/mcp/{connection}`,
    /// which resolves the route in the database and initialises the upstream), ms.
    pub first_initialize_ms: f64,
}

/// One target of the issue, and whether this run met it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCheck {
    /// What is measured.
    pub name: String,
    /// The goal, as text.
    pub goal: String,
    /// The measured value, in `unit`.
    pub measured: Option<f64>,
    /// Unit of `measured`.
    pub unit: String,
    /// Whether the goal is met; `None` when not measured.
    pub met: Option<bool>,
}

/// Sessions opened through the mesh in the memory stage, and how fast.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionStage {
    /// Sessions opened.
    pub sessions: usize,
    /// Seconds to open them all (16 at a time).
    pub seconds: f64,
    /// RSS growth per fresh session, KiB.
    pub kib_per_session: f64,
    /// `tools/list` calls each session then made.
    pub used_calls: usize,
    /// RSS growth per session after those calls, KiB.
    pub kib_per_used_session: f64,
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Format version of this JSON.
    pub schema: u32,
    /// When the run started (UTC, RFC 3339).
    pub date: String,
    /// `git rev-parse HEAD` of the workspace, when available.
    pub commit: Option<String>,
    /// CPU cores seen.
    pub cores: usize,
    /// The run's settings, as text (`--quick`, rounds, slice…).
    pub settings: String,
    /// The mesh program measured.
    pub mesh_bin: String,
    /// `tools/call` measurements.
    pub calls: Vec<CallRow>,
    /// `tools/list` measurements (concurrency 1).
    pub tools_list: Vec<CallRow>,
    /// Why the gateway paths (`tools/call` through 3 members, `tools/list` through 50 × 20) were
    /// not measured; `None` when they were.
    pub tools_list_gateway: Option<String>,
    /// Mesh memory by stage.
    pub memory: Vec<MemoryRow>,
    /// The session stage.
    pub session_stage: Option<SessionStage>,
    /// Start-up times.
    pub cold_start: Vec<ColdStartRow>,
    /// The targets.
    pub targets: Vec<TargetCheck>,
    /// Where a `perf` profile was written, if one was taken.
    pub profile: Option<String>,
}

impl Report {
    /// The `tools/call` row for `path` at concurrency `c`.
    pub fn call(&self, path: Path, c: usize) -> Option<&CallRow> {
        self.calls.iter().find(|r| r.path == path && r.concurrency == c)
    }

    /// The `tools/list` row for `path`.
    pub fn list(&self, path: Path) -> Option<&CallRow> {
        self.tools_list.iter().find(|r| r.path == path)
    }

    /// The memory row for `state`.
    pub fn memory(&self, state: &str) -> Option<&MemoryRow> {
        self.memory.iter().find(|r| r.state == state)
    }

    /// A table of `other` against `/mcp/{connection}` with an API key, in the same run: throughput,
    /// their ratio, p50 and mesh CPU per call. `base`/`them` are (column name, short name).
    fn versus(
        &self,
        o: &mut String,
        levels: &[usize],
        title: &str,
        other: Path,
        base: (&str, &str),
        them: (&str, &str),
    ) {
        self.versus_of(o, levels, title, (Path::Mesh, "/mcp/{connection}"), other, base, them)
    }

    /// [`Report::versus`] against `against` (a path and how the heading names it).
    #[allow(clippy::too_many_arguments)] // the table's parts, each used once
    fn versus_of(
        &self,
        o: &mut String,
        levels: &[usize],
        title: &str,
        against: (Path, &str),
        other: Path,
        base: (&str, &str),
        them: (&str, &str),
    ) {
        let _ = writeln!(o, "\n### {title} ({}, HTTP upstream)\n", against.1);
        let _ = writeln!(
            o,
            "| concurrency | {} calls/s | {} calls/s | {}/{} | p50 {} | p50 {} | mesh CPU/call {} | mesh CPU/call {} |",
            base.0, them.0, them.1, base.1, base.1, them.1, base.1, them.1
        );
        let _ = writeln!(o, "|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &c in levels {
            let (k, t) = (self.call(against.0, c), self.call(other, c));
            if let Some(why) = t.and_then(|t| t.status.clone()) {
                let _ = writeln!(
                    o,
                    "| {c} | {} | {why} | — | — | — | — | — |",
                    k.map(cell_tp).unwrap_or_else(|| "—".into())
                );
                continue;
            }
            let ratio = match (k, t) {
                (Some(k), Some(t)) if k.throughput > 0.0 => format!("{:.0}%", 100.0 * t.throughput / k.throughput),
                _ => "—".into(),
            };
            let _ = writeln!(
                o,
                "| {c} | {} | {} | {ratio} | {} | {} | {} | {} |",
                k.map(cell_tp).unwrap_or_else(|| "—".into()),
                t.map(cell_tp).unwrap_or_else(|| "—".into()),
                ms(k.and_then(|r| r.p50_ms)),
                ms(t.and_then(|r| r.p50_ms)),
                us(k.and_then(|r| r.mesh_cpu_us_per_call)),
                us(t.and_then(|r| r.mesh_cpu_us_per_call)),
            );
        }
    }

    /// The markdown report.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let commit = self.commit.as_deref().map(short_commit).unwrap_or_else(|| "unknown".into());
        let _ = writeln!(o, "## mesh-bench — {} — commit {commit} — {} cores\n", self.date, self.cores);
        let _ = writeln!(o, "Settings: {}. Mesh: `{}`.\n", self.settings, self.mesh_bin);
        let levels = self.levels();

        let _ = writeln!(o, "### tools/call throughput (calls/s, higher is better)\n");
        let _ = writeln!(
            o,
            "| concurrency | direct | bare relay | bare/direct | /mcp/{{connection}} | mesh/direct | mesh/bare | {} | gateway/direct | stdio direct | stdio via mesh | stdio mesh/direct |",
            Path::Gateway.label()
        );
        let _ = writeln!(o, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &c in &levels {
            let tp = |p| self.call(p, c).map(cell_tp).unwrap_or_else(|| "—".into());
            let ratio = |a, b| match (self.call(a, c), self.call(b, c)) {
                (Some(x), Some(y)) if x.status.is_none() && y.status.is_none() && y.throughput > 0.0 => {
                    format!("{:.0}%", 100.0 * x.throughput / y.throughput)
                }
                _ => "—".into(),
            };
            let _ = writeln!(
                o,
                "| {c} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                tp(Path::Direct),
                tp(Path::Bare),
                ratio(Path::Bare, Path::Direct),
                tp(Path::Mesh),
                ratio(Path::Mesh, Path::Direct),
                ratio(Path::Mesh, Path::Bare),
                tp(Path::Gateway),
                ratio(Path::Gateway, Path::Direct),
                tp(Path::StdioDirect),
                tp(Path::StdioMesh),
                ratio(Path::StdioMesh, Path::StdioDirect)
            );
        }

        self.versus(
            &mut o,
            &levels,
            "OAuth access token vs API key",
            Path::MeshOauth,
            ("API key", "key"),
            ("OAuth", "OAuth"),
        );
        self.versus(
            &mut o,
            &levels,
            "Stateless (2026-07-28) vs session-based requests",
            Path::MeshStateless,
            ("session", "session"),
            ("stateless", "stateless"),
        );
        self.versus(
            &mut o,
            &levels,
            "A capability connection (balanced over 3 providers) vs one connection",
            Path::Capability,
            ("one upstream", "one"),
            ("capability", "capability"),
        );
        self.versus_of(
            &mut o,
            &levels,
            "call_tool of a smart virtual MCP vs a direct call of the tool",
            (Path::Gateway, "virtual MCP of 3 members"),
            Path::SmartCall,
            ("direct", "direct"),
            ("call_tool", "call_tool"),
        );
        self.versus_of(
            &mut o,
            &levels,
            "run_code (a script making one tool call) of a code virtual MCP vs a direct call of the tool",
            (Path::Gateway, "virtual MCP of 3 members"),
            Path::CodeCall,
            ("direct", "direct"),
            ("run_code", "run_code"),
        );
        self.versus(
            &mut o,
            &levels,
            "Tracing on (every span exported) and /metrics scraped vs off",
            Path::MeshObserved,
            ("off", "off"),
            ("traced", "traced"),
        );

        let _ = writeln!(o, "\n### tools/call latency (ms, lower is better)\n");
        let _ = writeln!(
            o,
            "| concurrency | percentile | direct | /mcp/{{connection}} | added by mesh | mesh/direct | {} | stdio direct | stdio via mesh | added (stdio) |",
            Path::Gateway.label()
        );
        let _ = writeln!(o, "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|");
        for &c in levels.iter().filter(|c| **c <= 16) {
            for (name, pick) in QUANTILES {
                let v = |p| self.call(p, c).and_then(pick);
                let na = |p| self.call(p, c).and_then(|r| r.status.clone());
                let _ = writeln!(
                    o,
                    "| {c} | {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    ms(v(Path::Direct)),
                    ms(v(Path::Mesh)),
                    added(v(Path::Mesh), v(Path::Direct)),
                    ratio_x(v(Path::Mesh), v(Path::Direct)),
                    na(Path::Gateway).unwrap_or_else(|| ms(v(Path::Gateway))),
                    ms(v(Path::StdioDirect)),
                    ms(v(Path::StdioMesh)),
                    added(v(Path::StdioMesh), v(Path::StdioDirect)),
                );
            }
        }

        let _ = writeln!(o, "\n### tools/list latency (ms, concurrency 1, warm)\n");
        let _ = writeln!(
            o,
            "| percentile | direct (20 tools) | /mcp/{{connection}} (20 tools) | added by mesh | virtual MCP, 50 upstreams × 20 tools (1,000 tools, one page) |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|");
        for (name, pick) in QUANTILES {
            let v = |p| self.list(p).and_then(pick);
            let gateway = match (self.list(Path::Gateway), &self.tools_list_gateway) {
                (Some(r), _) => ms(pick(r)),
                (None, Some(why)) => why.clone(),
                (None, None) => "—".into(),
            };
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {} | {gateway} |",
                ms(v(Path::Direct)),
                ms(v(Path::Mesh)),
                added(v(Path::Mesh), v(Path::Direct)),
            );
        }

        let _ = writeln!(o, "\n### CPU time per tools/call (µs, from /proc/<pid>/stat)\n");
        let _ = writeln!(o, "| path | concurrency | mesh (or bare relay) | echo upstream | load client |");
        let _ = writeln!(o, "|---|---:|---:|---:|---:|");
        for r in self.calls.iter().filter(|r| r.status.is_none()) {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                r.path.label(),
                r.concurrency,
                us(r.mesh_cpu_us_per_call),
                us(r.upstream_cpu_us_per_call),
                us(r.client_cpu_us_per_call)
            );
        }

        let _ = writeln!(o, "\n### Mesh memory (resident set of the mcp-mesh process)\n");
        let _ = writeln!(o, "| state | open sessions | VmRSS MiB | VmHWM MiB |");
        let _ = writeln!(o, "|---|---:|---:|---:|");
        for m in &self.memory {
            let state = match m.state.as_str() {
                "idle" => "idle (connections registered, no session)",
                "sessions" => "with open MCP sessions (HTTP upstream), fresh",
                "sessions-used" => "the same sessions after 32 tools/list calls each",
                "load" => "under load (largest VmRSS sampled)",
                other => other,
            };
            let _ = writeln!(o, "| {state} | {} | {:.1} | {:.1} |", m.sessions, mib(m.rss_kib), mib(m.hwm_kib));
        }
        if let Some(s) = &self.session_stage {
            let _ = writeln!(
                o,
                "\nOpening {} sessions (16 at a time) took {:.2} s ({:.0} sessions/s); RSS per session: {:.1} KiB fresh, {:.1} KiB after {} tools/list calls.",
                s.sessions,
                s.seconds,
                s.sessions as f64 / s.seconds.max(1e-9),
                s.kib_per_session,
                s.kib_per_used_session,
                s.used_calls
            );
        }

        let _ = writeln!(o, "\n### Cold start (ms)\n");
        let _ = writeln!(o, "| start | runs (median) | spawn → /health/ready | spawn → first initialize served |");
        let _ = writeln!(o, "|---|---:|---:|---:|");
        for c in &self.cold_start {
            let _ = writeln!(o, "| {} | {} | {:.1} | {:.1} |", c.kind, c.samples, c.ready_ms, c.first_initialize_ms);
        }

        let _ = writeln!(o, "\n### Targets (this machine; reported, not enforced)\n");
        let _ = writeln!(o, "| target | goal | measured | met |");
        let _ = writeln!(o, "|---|---|---:|---|");
        for t in &self.targets {
            let measured = t.measured.map(|m| format!("{m:.3} {}", t.unit)).unwrap_or_else(|| "—".into());
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            };
            let _ = writeln!(o, "| {} | {} | {measured} | {met} |", t.name, t.goal);
        }
        let errors: Vec<String> = self
            .calls
            .iter()
            .chain(&self.tools_list)
            .filter(|r| r.errors > 0)
            .map(|r| {
                format!(
                    "{} c={}: {} errors, first: {}",
                    r.path.label(),
                    r.concurrency,
                    r.errors,
                    r.first_error.as_deref().unwrap_or("?")
                )
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(o, "\n**Errors during the run:**\n");
            for e in errors {
                let _ = writeln!(o, "- {e}");
            }
        }
        if let Some(p) = &self.profile {
            let _ = writeln!(o, "\nProfile of the mesh under load: `{p}`.");
        }
        o
    }

    fn levels(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.calls.iter().map(|r| r.concurrency).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

type Pick = fn(&CallRow) -> Option<f64>;
const QUANTILES: [(&str, Pick); 3] = [("p50", |r| r.p50_ms), ("p99", |r| r.p99_ms), ("p99.9", |r| r.p999_ms)];

fn cell_tp(r: &CallRow) -> String {
    match &r.status {
        Some(s) => s.clone(),
        None => format!("{:.0}", r.throughput),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into())
}

fn us(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "—".into())
}

fn added(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:+.3}", a - b),
        _ => "—".into(),
    }
}

fn ratio_x(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

/// The first 12 hex digits of a commit, keeping a `-dirty` suffix.
pub fn short_commit(c: &str) -> String {
    let (hash, dirty) = c.split_once('-').map_or((c, ""), |(h, _)| (h, "-dirty"));
    format!("{}{dirty}", &hash[..hash.len().min(12)])
}

/// KiB → MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
