//! `mcp-mesh usage [--by user|key|connection|tool|method|time] [--from 7d]`: usage summed over a
//! time range, through the `USAGE_QUERY` management tool.

use crate::api::{self, Target};
use crate::output;
use clap::Args;
use serde_json::{json, Map, Value};

/// `usage`: calls, errors, bytes and latency, grouped.
#[derive(Args)]
pub struct UsageArgs {
    /// Group by, comma-separated: user, key, connection (alias route), tool, method, time.
    /// Default: one total.
    #[arg(long)]
    by: Option<String>,
    /// From: RFC 3339 (2025-06-15T10:00:00Z), unix milliseconds, or an age (30m, 2h, 7d).
    #[arg(long, visible_alias = "since", default_value = "24h")]
    from: String,
    /// Until (same forms as --from; default now).
    #[arg(long, visible_alias = "until")]
    to: Option<String>,
    /// Bucket size: minute, hour or day (default: the finest still kept for --from); with
    /// --by time, the step of the series.
    #[arg(long)]
    bucket: Option<String>,
    /// Only this user id.
    #[arg(long)]
    user: Option<String>,
    /// Only this API key id.
    #[arg(long)]
    key: Option<String>,
    /// Only this connection or virtual MCP (slug).
    #[arg(long, visible_alias = "route")]
    connection: Option<String>,
    /// Only this tool, prompt or resource.
    #[arg(long)]
    tool: Option<String>,
    /// Only this JSON-RPC method, e.g. tools/call.
    #[arg(long)]
    method: Option<String>,
    /// Groups to show.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    #[command(flatten)]
    target: Target,
}

/// Runs `usage …`.
pub async fn run(a: UsageArgs) -> anyhow::Result<()> {
    let mut args = Map::new();
    args.insert("from".into(), json!(a.from));
    args.insert("limit".into(), json!(a.limit));
    for (k, v) in [
        ("to", &a.to),
        ("by", &a.by),
        ("bucket", &a.bucket),
        ("user", &a.user),
        ("key", &a.key),
        ("route", &a.connection),
        ("tool", &a.tool),
        ("method", &a.method),
    ] {
        if let Some(v) = v {
            args.insert(k.into(), json!(v));
        }
    }
    let out = api::manage(&a.target, "USAGE_QUERY", Value::Object(args)).await?;
    if a.target.json {
        return output::json(&out);
    }
    let by: Vec<String> =
        out["by"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
    let mut headers: Vec<&str> = Vec::new();
    for d in &by {
        headers.push(match d.as_str() {
            "user" => "USER",
            "key" => "KEY",
            "route" => "ROUTE",
            "tool" => "TOOL",
            "method" => "METHOD",
            _ => "TIME",
        });
    }
    headers.extend(["CALLS", "ERRORS", "BYTES IN", "BYTES OUT", "AVG MS", "MAX MS"]);
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let rows: Vec<Vec<String>> = out["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let mut row: Vec<String> = by
                .iter()
                .map(|d| match d.as_str() {
                    "user" => r["email"].as_str().map(String::from).unwrap_or_else(|| s(&r["user"])),
                    "route" if r["routeKind"] == "gateway" => format!("gateway/{}", s(&r["route"])),
                    "time" => s(&r["time"]),
                    d => s(&r[d]),
                })
                .collect();
            row.extend([
                r["calls"].to_string(),
                r["errors"].to_string(),
                r["bytesIn"].to_string(),
                r["bytesOut"].to_string(),
                r["latencyMsAvg"].to_string(),
                r["latencyMsMax"].to_string(),
            ]);
            row
        })
        .collect();
    output::table(&headers, &rows);
    eprintln!("{} .. {} ({} buckets)", s(&out["from"]), s(&out["to"]), s(&out["bucket"]));
    Ok(())
}
