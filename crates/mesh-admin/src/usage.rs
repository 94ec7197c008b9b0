//! Reading usage: calls, errors, bytes and latency over time, grouped by user, key, route, tool,
//! method or time, shared by the `USAGE_QUERY` management tool, `GET /api/v1/usage` and
//! `mcp-mesh usage` (through the tool).
//!
//! Who may read what is the audit trail's rule, since usage is summed from it: owners and admins
//! see their whole organisation, members and viewers only their own requests (asking for someone
//! else's is refused), anonymous callers nothing.
//!
//! Which buckets answer: the finest granularity whose retention still covers `from` (minutes for
//! the last two days, hours for sixty, then days), unless `bucket` asks for one. Totals are exact
//! to the bucket: a bucket that overlaps the range counts whole.

use crate::audit::TimeArg;
use crate::{Admin, AdminError};
use mesh_core::Principal;
use mesh_store::{UsageDim, UsageQuery, UsageSpan};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Groups per answer unless asked otherwise, and the most one may hold.
pub const DEFAULT_LIMIT: i64 = 100;
/// See [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: i64 = 10_000;

/// What a caller may ask for; every field optional. The same names in tool arguments and in the
/// REST query string.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsageRequest {
    /// From (default: 24 hours ago): unix ms, RFC 3339 or an age (`7d`).
    pub from: Option<TimeArg>,
    /// Until (default: now).
    pub to: Option<TimeArg>,
    /// Group by: comma-separated `user`, `key`, `route` (alias `connection`), `tool`, `method`,
    /// `time`; none gives one total.
    pub by: Option<String>,
    /// The bucket size: `minute`, `hour` or `day` (default: chosen from `from`).
    pub bucket: Option<String>,
    /// Only this user (id).
    pub user: Option<String>,
    /// Only this API key (id).
    pub key: Option<String>,
    /// Only this connection or gateway (slug).
    #[serde(alias = "connection")]
    pub route: Option<String>,
    /// Only this tool, prompt or resource.
    pub tool: Option<String>,
    /// Only this JSON-RPC method (e.g. `tools/call`).
    pub method: Option<String>,
    /// Groups to answer (default 100, at most 10,000).
    pub limit: Option<i64>,
}

/// How far back each granularity is kept by default (`mesh_audit::usage::UsageConfig`).
fn finest_covering(age_ms: i64) -> UsageSpan {
    let keep = mesh_audit::usage::UsageConfig::default().keep;
    for (span, keep) in UsageSpan::ALL.into_iter().zip(keep) {
        if keep.is_none_or(|k| i64::try_from(k.as_millis()).unwrap_or(i64::MAX) >= age_ms) {
            return span;
        }
    }
    UsageSpan::Day
}

fn dims(by: Option<&str>) -> Result<Vec<UsageDim>, AdminError> {
    let mut out = Vec::new();
    for d in by.unwrap_or("").split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let dim = match d {
            "user" => UsageDim::User,
            "key" => UsageDim::Key,
            "route" | "connection" | "gateway" => UsageDim::Route,
            "tool" | "name" => UsageDim::Tool,
            "method" => UsageDim::Method,
            "time" | "bucket" => UsageDim::Time,
            other => {
                return Err(AdminError::Invalid(format!(
                    "by: '{other}' is not one of user, key, route (connection), tool, method, time"
                )))
            }
        };
        if !out.contains(&dim) {
            out.push(dim);
        }
    }
    Ok(out)
}

impl Admin {
    /// Usage of the caller's organisation (or, for members and viewers, their own):
    /// `{from, to, bucket, by, items: [{<group>…, calls, errors, bytesIn, bytesOut, latencyMsAvg,
    /// latencyMsMax}]}`, most calls first (by time: oldest first).
    pub async fn query_usage(&self, p: &Principal, r: UsageRequest) -> Result<Value, AdminError> {
        if p.is_anonymous() {
            return Err(AdminError::Forbidden("usage needs an API key"));
        }
        let user_id = if p.role.can_manage() {
            r.user
        } else {
            match r.user {
                Some(u) if u != p.user_id => {
                    return Err(AdminError::Forbidden("members and viewers may only read their own usage"))
                }
                _ => Some(p.user_id.clone()),
            }
        };
        let now = mesh_core::id::now_ms();
        let time = |t: Option<TimeArg>, which: &str, default: i64| -> Result<i64, AdminError> {
            match t {
                None => Ok(default),
                Some(TimeArg::Ms(ms)) => Ok(ms),
                Some(TimeArg::Text(s)) => {
                    mesh_audit::view::parse_time(&s, now).map_err(|e| AdminError::Invalid(format!("{which}: {e}")))
                }
            }
        };
        let from = time(r.from, "from", now - 86_400_000)?;
        let to = time(r.to, "to", now)?;
        if from >= to {
            return Err(AdminError::Invalid("from must be before to".into()));
        }
        let span = match r.bucket.as_deref().filter(|b| !b.is_empty()) {
            Some(b) => UsageSpan::parse(b)
                .ok_or_else(|| AdminError::Invalid(format!("bucket '{b}' is not one of minute, hour, day")))?,
            None => finest_covering(now - from),
        };
        let by = dims(r.by.as_deref())?;
        let limit = r.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AdminError::Invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        // Read-your-writes: requests that ended before this question are summed in first.
        self.flush_audit().await;
        let q = UsageQuery {
            org_id: p.org_id.clone(),
            span,
            from_ms: from,
            to_ms: to,
            by: by.clone(),
            user_id,
            key_id: r.key,
            route: r.route,
            tool: r.tool,
            method: r.method,
            limit,
        };
        let totals = self.store.query_usage(&q).await?;
        let emails: HashMap<String, String> = if by.contains(&UsageDim::User) {
            self.store.list_members(&p.org_id).await?.into_iter().map(|(u, _)| (u.id, u.email)).collect()
        } else {
            HashMap::new()
        };
        let items: Vec<Value> = totals
            .into_iter()
            .map(|t| {
                let mut item = Map::new();
                let mut values = t.group.into_iter();
                for d in &by {
                    let mut next = || Value::String(values.next().unwrap_or_default());
                    match d {
                        UsageDim::User => {
                            let id = next();
                            if let Some(e) = id.as_str().and_then(|id| emails.get(id)) {
                                item.insert("email".into(), json!(e));
                            }
                            item.insert("user".into(), id);
                        }
                        UsageDim::Key => drop(item.insert("key".into(), next())),
                        UsageDim::Route => {
                            item.insert("routeKind".into(), next());
                            item.insert("route".into(), next());
                        }
                        UsageDim::Tool => drop(item.insert("tool".into(), next())),
                        UsageDim::Method => drop(item.insert("method".into(), next())),
                        UsageDim::Time => {
                            let ms: i64 = values.next().and_then(|v| v.parse().ok()).unwrap_or_default();
                            item.insert("time".into(), json!(mesh_audit::view::format_time(ms)));
                            item.insert("timeMs".into(), json!(ms));
                        }
                    }
                }
                let avg = if t.calls > 0 { t.latency_us as f64 / t.calls as f64 / 1000.0 } else { 0.0 };
                item.insert("calls".into(), json!(t.calls));
                item.insert("errors".into(), json!(t.errors));
                item.insert("bytesIn".into(), json!(t.bytes_in));
                item.insert("bytesOut".into(), json!(t.bytes_out));
                item.insert("latencyMsAvg".into(), json!((avg * 1000.0).round() / 1000.0));
                item.insert("latencyMsMax".into(), json!(t.latency_max_us as f64 / 1000.0));
                Value::Object(item)
            })
            .collect();
        let by_names: Vec<&str> = by
            .iter()
            .map(|d| match d {
                UsageDim::User => "user",
                UsageDim::Key => "key",
                UsageDim::Route => "route",
                UsageDim::Tool => "tool",
                UsageDim::Method => "method",
                UsageDim::Time => "time",
            })
            .collect();
        Ok(json!({
            "from": mesh_audit::view::format_time(from),
            "to": mesh_audit::view::format_time(to),
            "bucket": span.as_str(),
            "by": by_names,
            "items": items,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finest_bucket_that_still_holds_the_start_answers() {
        assert_eq!(finest_covering(3_600_000), UsageSpan::Minute);
        assert_eq!(finest_covering(7 * 86_400_000), UsageSpan::Hour);
        assert_eq!(finest_covering(90 * 86_400_000), UsageSpan::Day);
    }

    #[test]
    fn groupings_are_named_and_unknown_ones_refused() {
        assert_eq!(dims(Some("user, tool,user")).unwrap(), vec![UsageDim::User, UsageDim::Tool]);
        assert_eq!(dims(Some("connection")).unwrap(), vec![UsageDim::Route]);
        assert!(dims(None).unwrap().is_empty());
        assert!(dims(Some("colour")).is_err());
    }
}
