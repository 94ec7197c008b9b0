//! A short, bounded run of the whole benchmark (200 calls per slice, 50 sessions): every phase
//! runs against a real mesh process and real upstreams, and the report has every row with sane
//! numbers. No timing thresholds: those belong to `mesh-bench run`, on a quiet machine.

use mesh_bench::processes::MeshBin;
use mesh_bench::report::{Path, Report, GATEWAY_NA};
use mesh_bench::run::{run, RunConfig};
use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_run_reports_every_row_with_sane_numbers() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_mesh-bench"));
    // The mesh from its library inside this crate's binary: `cargo test` cannot build the
    // release mcp-mesh first, and the server code is the same.
    let cfg = RunConfig::smoke(exe.clone(), MeshBin::Bench(exe), 200);
    let report = run(&cfg).await.expect("the run completes");
    println!("{}", report.markdown());

    for c in [1, 16, 64] {
        for path in [
            Path::Direct,
            Path::Bare,
            Path::Mesh,
            Path::MeshOauth,
            Path::MeshStateless,
            Path::MeshObserved,
            Path::StdioDirect,
            Path::StdioMesh,
        ] {
            let r = report.call(path, c).unwrap_or_else(|| panic!("no row for {path:?} at {c}"));
            assert_eq!(r.status, None, "{path:?} at {c}");
            assert_eq!((r.calls, r.errors), (200, 0), "{path:?} at {c}: {:?}", r.first_error);
            assert!(r.throughput > 0.0 && r.seconds > 0.0);
            let (p50, p99, p999) = (r.p50_ms.unwrap(), r.p99_ms.unwrap(), r.p999_ms.unwrap());
            assert!(0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 < 60_000.0, "{path:?} at {c}: {p50} {p99} {p999}");
            assert!(r.client_cpu_us_per_call.is_some());
        }
        assert!(report.call(Path::Mesh, c).unwrap().mesh_cpu_us_per_call.is_some());
        assert!(
            report.call(Path::MeshOauth, c).unwrap().mesh_cpu_us_per_call.is_some(),
            "the OAuth row has a CPU column"
        );
        assert!(report.call(Path::Bare, c).unwrap().mesh_cpu_us_per_call.is_some(), "the bare relay has a CPU column");
        // Measured when the mesh has virtual MCPs, else marked as not available.
        let gw = report.call(Path::Gateway, c).expect("gateway row");
        match &report.tools_list_gateway {
            None => assert_eq!((gw.status.as_deref(), gw.calls, gw.errors), (None, 200, 0), "{:?}", gw.first_error),
            Some(why) => assert_eq!((why.as_str(), gw.status.as_deref()), (GATEWAY_NA, Some(GATEWAY_NA))),
        }
    }
    let mut list_paths = vec![Path::Direct, Path::Mesh];
    if report.tools_list_gateway.is_none() {
        list_paths.push(Path::Gateway);
    }
    for path in list_paths {
        let r = report.list(path).expect("tools/list row");
        assert!(r.calls > 0 && r.errors == 0 && r.p50_ms.is_some(), "{r:?}");
    }

    for state in ["idle", "sessions", "sessions-used", "load"] {
        let m = report.memory(state).unwrap_or_else(|| panic!("no memory row {state}"));
        assert!(m.rss_kib > 1024 && m.rss_kib < 4 * 1024 * 1024 && m.hwm_kib >= m.rss_kib.min(m.hwm_kib), "{m:?}");
    }
    assert_eq!(report.memory("sessions").unwrap().sessions, 50);
    assert_eq!(report.cold_start.len(), 2);
    for c in &report.cold_start {
        assert!(0.0 < c.ready_ms && c.ready_ms <= c.first_initialize_ms && c.first_initialize_ms < 60_000.0, "{c:?}");
    }
    assert_eq!(report.targets.len(), 11);
    assert!(report.targets.iter().all(|t| t.measured.is_some()), "{:?}", report.targets);

    let md = report.markdown();
    for heading in [
        "tools/call throughput",
        "OAuth access token vs API key",
        "Stateless (2026-07-28) vs session-based requests",
        "tools/call latency",
        "tools/list latency",
        "Mesh memory",
        "Cold start",
        "Targets",
    ] {
        assert!(md.contains(heading), "markdown lacks {heading}");
    }
    let back: Report = serde_json::from_str(&serde_json::to_string(&report).unwrap()).expect("JSON round trip");
    assert_eq!(back.calls.len(), report.calls.len());
}
