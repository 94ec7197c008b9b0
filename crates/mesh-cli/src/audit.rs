//! `mcp-mesh audit [filters]`, `audit export [filters]` and `audit verify`, through the
//! `AUDIT_QUERY` and `AUDIT_VERIFY` management tools.
//!
//! Exit codes of `audit verify`: 0 the chain is intact, 2 it is broken (a row was edited or
//! deleted), 1 it could not be checked (no connection, no permission).

use crate::api::{self, Target};
use crate::output;
use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::io::Write;

/// `audit`: the newest matching calls, or a sub-command.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    cmd: Option<AuditCmd>,
    #[command(flatten)]
    filters: Filters,
    /// How many rows to show.
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Continue after this cursor (printed under a full page).
    #[arg(long)]
    cursor: Option<String>,
    #[command(flatten)]
    target: Target,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Every matching row as JSON Lines, oldest first (`> audit.jsonl`).
    Export(ExportArgs),
    /// Recompute the organisation's hash chain; exit 2 if a row was edited or deleted.
    Verify,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    filters: Filters,
}

/// Filters shared by `audit` and `audit export`.
#[derive(Args, Clone, Default)]
struct Filters {
    /// Arrived at or after: RFC 3339 (2025-06-15T10:00:00Z), unix milliseconds, or an age (30m, 2h, 7d).
    #[arg(long, visible_alias = "since")]
    from: Option<String>,
    /// Arrived before (same forms as --from).
    #[arg(long, visible_alias = "until")]
    to: Option<String>,
    /// User id.
    #[arg(long)]
    user: Option<String>,
    /// API key id.
    #[arg(long)]
    key: Option<String>,
    /// Connection or gateway slug, or "management".
    #[arg(long)]
    route: Option<String>,
    /// JSON-RPC method, e.g. tools/call.
    #[arg(long)]
    method: Option<String>,
    /// Tool, prompt or resource name.
    #[arg(long, visible_alias = "name")]
    tool: Option<String>,
    /// ok, tool_error, protocol_error, denied, rate_limited, upstream_down, timeout, cancelled,
    /// client_gone, dropped.
    #[arg(long)]
    outcome: Option<String>,
}

impl Filters {
    fn to_args(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("user", &self.user),
            ("key", &self.key),
            ("route", &self.route),
            ("method", &self.method),
            ("name", &self.tool),
            ("outcome", &self.outcome),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        m
    }
}

/// `audit verify` found tampering: the process exits with 2 (see `main`).
#[derive(Debug)]
pub struct ChainBroken(pub String);

impl std::fmt::Display for ChainBroken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit chain broken {}", self.0)
    }
}

impl std::error::Error for ChainBroken {}

/// Runs `audit …`.
pub async fn run(a: AuditArgs) -> anyhow::Result<()> {
    match a.cmd {
        None => list(a.filters, a.limit, a.cursor, a.target).await,
        Some(AuditCmd::Export(e)) => export(e.filters, a.target).await,
        Some(AuditCmd::Verify) => verify(a.target).await,
    }
}

async fn list(f: Filters, limit: i64, cursor: Option<String>, t: Target) -> anyhow::Result<()> {
    let mut args = f.to_args();
    args.insert("limit".into(), json!(limit));
    if let Some(c) = cursor {
        args.insert("cursor".into(), json!(c));
    }
    let out = api::manage(&t, "AUDIT_QUERY", Value::Object(args)).await?;
    if t.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let rows: Vec<Vec<String>> = out["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let latency = r["latencyUs"].as_i64().map(|us| format!("{:.1}ms", us as f64 / 1000.0)).unwrap_or_default();
            vec![
                s(&r["time"]),
                s(&r["userId"]),
                format!("{}:{}", s(&r["routeKind"]), s(&r["route"])),
                s(&r["method"]),
                s(&r["name"]),
                s(&r["outcome"]),
                latency,
                s(&r["error"]).chars().take(60).collect(),
            ]
        })
        .collect();
    output::table(&["TIME", "USER", "ROUTE", "METHOD", "NAME", "OUTCOME", "LATENCY", "ERROR"], &rows);
    if let Some(c) = out["nextCursor"].as_str() {
        eprintln!("more: add --cursor {c}");
    }
    Ok(())
}

async fn export(f: Filters, t: Target) -> anyhow::Result<()> {
    let mut args = f.to_args();
    // A fixed end, so the export's own AUDIT_QUERY calls (audited too) do not chase it.
    if !args.contains_key("to") {
        args.insert("to".into(), json!(mesh_core::id::now_ms()));
    }
    args.insert("order".into(), json!("asc"));
    args.insert("limit".into(), json!(1000));
    let client = api::connect(&t, "/mcp").await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = async {
        loop {
            let r = client
                .call_tool("AUDIT_QUERY", Value::Object(args.clone()))
                .await
                .map_err(|e| anyhow!("AUDIT_QUERY: {e}"))?;
            if r.get("isError").and_then(Value::as_bool) == Some(true) {
                bail!("{}", api::text_of(&r));
            }
            let page = &r["structuredContent"];
            for item in page["items"].as_array().into_iter().flatten() {
                writeln!(out, "{item}")?;
            }
            match page["nextCursor"].as_str() {
                Some(c) => args.insert("cursor".into(), json!(c)),
                None => break,
            };
        }
        out.flush()?;
        Ok(())
    }
    .await;
    client.close().await;
    result
}

async fn verify(t: Target) -> anyhow::Result<()> {
    let r = api::manage(&t, "AUDIT_VERIFY", json!({})).await?;
    if t.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    if r["ok"].as_bool() == Some(true) {
        if !t.json {
            println!(
                "audit chain intact: {} row(s) checked (seq {}..{}), head {}",
                r["rowsChecked"],
                r["prunedSeq"].as_i64().unwrap_or(0) + 1,
                r["headSeq"],
                r["headHash"].as_str().unwrap_or("")
            );
        }
        return Ok(());
    }
    let detail = r["problem"]["detail"].as_str().unwrap_or("unknown problem").to_string();
    Err(ChainBroken(format!("at seq {}: {detail}", r["problem"]["seq"])).into())
}
