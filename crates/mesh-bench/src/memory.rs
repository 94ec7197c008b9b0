//! The memory stage: the mesh's RSS with many open sessions, fresh and after some use.

use crate::client::{self, Call, HttpSession};
use crate::processes::MeshProcess;
use crate::procfs;
use crate::report::{MemoryRow, SessionStage};
use crate::run::{log, RunConfig, HTTP_CONNECTION};
use anyhow::Context;
use futures_util::{stream, StreamExt, TryStreamExt};
use std::time::{Duration, Instant};

/// Replies each session keeps for resumption after they were delivered (the relay keeps the
/// last 32 finished request streams of a session, `KEEP_FINISHED` in mesh-relay): the memory
/// stage makes this many `tools/list` calls per session to show what that costs.
const USED_CALLS: usize = 32;

/// RSS with `cfg.sessions` open sessions, fresh and then after `USED_CALLS` `tools/list` each.
pub async fn session_stage(
    cfg: &RunConfig,
    mesh: &MeshProcess,
    idle: procfs::Rss,
    memory: &mut Vec<MemoryRow>,
) -> anyhow::Result<SessionStage> {
    log(format!("opening {} sessions through the mesh", cfg.sessions));
    let mesh_http = client::http_client();
    let route = mesh.url(&format!("/mcp/{HTTP_CONNECTION}"));
    let t0 = Instant::now();
    let opened: Vec<HttpSession> = stream::iter(0..cfg.sessions)
        .map(|_| HttpSession::open(&mesh_http, &route, Some(&mesh.key)))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let open_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let with = procfs::rss(mesh.pid).context("mesh RSS")?;
    memory.push(MemoryRow {
        state: "sessions".into(),
        sessions: cfg.sessions,
        rss_kib: with.rss_kib,
        hwm_kib: with.hwm_kib,
    });

    log(format!("{USED_CALLS} tools/list calls on each of them"));
    let used: Vec<HttpSession> = stream::iter(opened)
        .map(|mut s| async move {
            for _ in 0..USED_CALLS {
                s.call(Call::ListTools).await?;
            }
            anyhow::Ok(s)
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = procfs::rss(mesh.pid).context("mesh RSS")?;
    memory.push(MemoryRow {
        state: "sessions-used".into(),
        sessions: cfg.sessions,
        rss_kib: after.rss_kib,
        hwm_kib: after.hwm_kib,
    });
    stream::iter(used).for_each_concurrent(16, |s| s.close()).await;
    Ok(SessionStage {
        sessions: cfg.sessions,
        seconds: open_secs,
        kib_per_session: with.rss_kib.saturating_sub(idle.rss_kib) as f64 / cfg.sessions.max(1) as f64,
        kib_per_used_session: after.rss_kib.saturating_sub(idle.rss_kib) as f64 / cfg.sessions.max(1) as f64,
        used_calls: USED_CALLS,
    })
}
