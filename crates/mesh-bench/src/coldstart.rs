//! Cold start: spawn → `/health/ready` → first `initialize` served, on an empty data directory
//! (first start: database created, migrations, vault key, owner bootstrap) and on a populated one
//! (a restart, the production case). The first start also registers the run's connections.

use crate::client::{self, HttpSession};
use crate::processes::{MeshProcess, UpstreamProcess};
use crate::report::ColdStartRow;
use crate::run::{log, stdio_args, RunConfig, HTTP_CONNECTION, STDIO_CONNECTION};
use serde_json::json;
use std::time::Duration;

/// Cold start: one first start on the empty data directory (which also registers the run's
/// connections), then `restarts` restarts; each ends with its first served `initialize`.
pub async fn measure(
    cfg: &RunConfig,
    upstream: &UpstreamProcess,
    data_dir: &std::path::Path,
) -> anyhow::Result<Vec<ColdStartRow>> {
    log("cold start: first start on an empty data directory");
    let http = client::http_client();
    let mesh = MeshProcess::start(&cfg.mesh, data_dir).await?;
    let s = HttpSession::open(&http, &mesh.url("/mcp"), Some(&mesh.key)).await?;
    let first = ColdStartRow {
        kind: "first start (empty data dir)".into(),
        samples: 1,
        ready_ms: ms(mesh.ready_after),
        first_initialize_ms: ms(mesh.spawned.elapsed()),
    };
    s.close().await;
    register(cfg, &mesh, upstream).await?;
    mesh.stop().await;

    log(format!("cold start: {} restarts", cfg.restarts));
    let mut ready = Vec::new();
    let mut init = Vec::new();
    for _ in 0..cfg.restarts.max(1) {
        let http = client::http_client();
        let mesh = MeshProcess::start(&cfg.mesh, data_dir).await?;
        let s = HttpSession::open(&http, &mesh.url(&format!("/mcp/{HTTP_CONNECTION}")), Some(&mesh.key)).await?;
        init.push(ms(mesh.spawned.elapsed()));
        ready.push(ms(mesh.ready_after));
        s.close().await;
        mesh.stop().await;
    }
    let restart = ColdStartRow {
        kind: "restart (connections registered)".into(),
        samples: ready.len(),
        ready_ms: median(&mut ready),
        first_initialize_ms: median(&mut init),
    };
    Ok(vec![first, restart])
}

/// Registers the run's two connections: the echo upstream over HTTP, and started over stdio.
pub async fn register(cfg: &RunConfig, mesh: &MeshProcess, upstream: &UpstreamProcess) -> anyhow::Result<()> {
    let exe = cfg.bench_exe.display().to_string();
    mesh.manage(
        "COLLECTION_CONNECTIONS_CREATE",
        json!({"slug": HTTP_CONNECTION, "transport": "http", "url": upstream.url.as_str()}),
    )
    .await?;
    mesh.manage(
        "COLLECTION_CONNECTIONS_CREATE",
        json!({"slug": STDIO_CONNECTION, "transport": "stdio", "command": exe, "args": stdio_args(cfg)}),
    )
    .await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
