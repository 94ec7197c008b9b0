//! `mesh-bench compare OLD.json NEW.json`: the change between two runs, row by row.

use crate::report::{CallRow, Report};
use std::fmt::Write;

fn pct(old: f64, new: f64) -> String {
    if old > 0.0 {
        format!("{:+.1}%", 100.0 * (new - old) / old)
    } else {
        "—".into()
    }
}

fn opt_pct(old: Option<f64>, new: Option<f64>) -> String {
    match (old, new) {
        (Some(o), Some(n)) => pct(o, n),
        _ => "—".into(),
    }
}

fn find<'a>(rows: &'a [CallRow], r: &CallRow) -> Option<&'a CallRow> {
    rows.iter().find(|x| x.path == r.path && x.concurrency == r.concurrency && x.status.is_none())
}

/// A markdown table of throughput and latency changes from `old` to `new`.
pub fn markdown(old: &Report, new: &Report) -> String {
    let mut o = String::new();
    let short = |c: &Option<String>| c.as_deref().map(crate::report::short_commit).unwrap_or_default();
    let _ = writeln!(o, "## {} ({}) → {} ({})\n", short(&old.commit), old.date, short(&new.commit), new.date);
    // Mesh CPU per call is the steadiest figure on a shared machine: look there first.
    let _ = writeln!(o, "| call | path | concurrency | throughput | p50 | p99 | p99.9 | mesh CPU/call |");
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|");
    for (what, olds, news) in [("tools/call", &old.calls, &new.calls), ("tools/list", &old.tools_list, &new.tools_list)]
    {
        for n in news.iter().filter(|r| r.status.is_none()) {
            let Some(p) = find(olds, n) else { continue };
            let _ = writeln!(
                o,
                "| {what} | {} | {} | {} | {} | {} | {} | {} |",
                n.path.label(),
                n.concurrency,
                pct(p.throughput, n.throughput),
                opt_pct(p.p50_ms, n.p50_ms),
                opt_pct(p.p99_ms, n.p99_ms),
                opt_pct(p.p999_ms, n.p999_ms),
                opt_pct(p.mesh_cpu_us_per_call, n.mesh_cpu_us_per_call)
            );
        }
    }
    let _ = writeln!(o, "\n| memory | old MiB | new MiB |\n|---|---:|---:|");
    for m in &new.memory {
        if let Some(p) = old.memory(&m.state) {
            let _ = writeln!(
                o,
                "| {} | {:.1} | {:.1} |",
                m.state,
                crate::report::mib(p.rss_kib),
                crate::report::mib(m.rss_kib)
            );
        }
    }
    o
}
