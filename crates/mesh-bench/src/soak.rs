//! `mesh-bench soak`: one path through the mesh under steady load for longer than a request
//! timeout, printing the mesh's RSS and CPU as it goes. A mesh that keeps per-call state alive
//! after the reply shows it here as RSS growing until the timeout, then a plateau; a mesh that
//! frees it at once shows a flat line.

use crate::client::{self, HttpSession, Session};
use crate::coldstart::register;
use crate::load::{self, Budget};
use crate::processes::{MeshProcess, UpstreamProcess};
use crate::procfs;
use crate::report::mib;
use crate::run::{log, RunConfig, HTTP_CONNECTION};
use futures_util::{stream, StreamExt, TryStreamExt};
use std::time::Duration;

/// One line of the soak: seconds since the load began, calls so far, mesh memory and CPU.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakPoint {
    /// Seconds since the load began.
    pub secs: f64,
    /// Calls completed in the last interval, per second.
    pub calls_per_sec: f64,
    /// Mesh VmRSS, KiB.
    pub rss_kib: u64,
    /// Mesh CPU per call in the last interval, µs.
    pub mesh_cpu_us_per_call: f64,
}

/// Runs `/mcp/{connection}` at `concurrency` for `secs`, reporting every `every`; in the
/// stateless revision (2026-07-28) when `stateless`.
pub async fn soak(
    cfg: &RunConfig,
    secs: u64,
    concurrency: usize,
    every: Duration,
    stateless: bool,
) -> anyhow::Result<Vec<SoakPoint>> {
    let upstream = UpstreamProcess::start(&cfg.bench_exe, cfg.tools).await?;
    let data = tempfile::tempdir()?;
    let mesh = MeshProcess::start(&cfg.mesh, data.path()).await?;
    let out = async {
        register(cfg, &mesh, &upstream).await?;
        let http = client::http_client();
        let url = mesh.url(&format!("/mcp/{HTTP_CONNECTION}"));
        let mut pool: Vec<Session> = match stateless {
            true => (0..concurrency.max(1))
                .map(|_| HttpSession::stateless(&http, &url, Some(&mesh.key)).map(Session::Http))
                .collect::<anyhow::Result<_>>()?,
            false => {
                stream::iter(0..concurrency.max(1))
                    .map(|_| HttpSession::open(&http, &url, Some(&mesh.key)))
                    .buffer_unordered(8)
                    .map_ok(Session::Http)
                    .try_collect()
                    .await?
            }
        };
        let revision = if stateless { " (stateless)" } else { "" };
        log(format!("soak: {secs} s at concurrency {concurrency} through {url}{revision}"));
        println!("| seconds | calls/s | mesh VmRSS MiB | mesh CPU µs/call |\n|---:|---:|---:|---:|");
        let mut points = Vec::new();
        let mut elapsed = Duration::ZERO;
        while elapsed.as_secs() < secs {
            let cpu0 = procfs::cpu_us(mesh.pid).unwrap_or(0);
            let (back, samples) = load::slice(pool, client::ECHO, Budget { duration: every, calls: u64::MAX }).await;
            pool = back;
            anyhow::ensure!(samples.errors == 0, "soak calls failed: {}", samples.first_error.unwrap_or_default());
            elapsed += samples.elapsed;
            let cpu = procfs::cpu_us(mesh.pid).unwrap_or(0).saturating_sub(cpu0);
            let p = SoakPoint {
                secs: elapsed.as_secs_f64(),
                calls_per_sec: samples.throughput(),
                rss_kib: procfs::rss(mesh.pid).map_or(0, |r| r.rss_kib),
                mesh_cpu_us_per_call: cpu as f64 / samples.calls().max(1) as f64,
            };
            println!(
                "| {:.0} | {:.0} | {:.1} | {:.0} |",
                p.secs,
                p.calls_per_sec,
                mib(p.rss_kib),
                p.mesh_cpu_us_per_call
            );
            points.push(p);
        }
        stream::iter(pool).for_each_concurrent(16, |s| s.close()).await;
        Ok(points)
    }
    .await;
    mesh.stop().await;
    upstream.stop().await;
    out
}
