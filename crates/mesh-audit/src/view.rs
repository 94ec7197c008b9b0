//! How audit rows are shown and asked for, the same everywhere (management tools, REST, CLI,
//! JSON Lines export): one JSON shape per row, and one syntax for times.

use mesh_store::AuditRow;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A row as JSON: camelCase fields, the time also as RFC 3339, arguments and request id as JSON
/// when they are whole JSON (a truncated prefix stays a string, flagged by `argumentsTruncated`).
pub fn row_json(r: &AuditRow) -> Value {
    let arguments = match (&r.arguments, r.arguments_truncated) {
        (Some(a), false) => serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone())),
        (Some(a), true) => Value::String(a.clone()),
        (None, _) => Value::Null,
    };
    let request_id = serde_json::from_str(&r.request_id).unwrap_or_else(|_| Value::String(r.request_id.clone()));
    json!({
        "seq": r.seq,
        "time": format_time(r.time_ms),
        "timeMs": r.time_ms,
        "orgId": r.org_id,
        "userId": r.user_id,
        "keyId": r.key_id,
        "role": r.role,
        "sessionId": r.session_id,
        "clientName": r.client_name,
        "clientVersion": r.client_version,
        "routeKind": r.route_kind,
        "route": r.route,
        "method": r.method,
        "name": r.name,
        "arguments": arguments,
        "argumentsTruncated": r.arguments_truncated,
        "outcome": r.outcome,
        "error": r.error,
        "latencyUs": r.latency_us,
        "bytesIn": r.bytes_in,
        "bytesOut": r.bytes_out,
        "requestId": request_id,
        "prevHash": r.prev_hash,
        "hash": r.hash,
    })
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Parses a time bound: unix milliseconds (`1750000000000`), RFC 3339 (`2025-06-15T10:00:00Z`),
/// or an age before `now_ms` (`90s`, `15m`, `2h`, `7d`).
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| format!("time '{s}' is out of range"));
    }
    let unit = s.chars().last().unwrap_or(' ');
    let per: i64 = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => 0,
    };
    match s[..s.len() - unit.len_utf8().min(s.len())].parse::<i64>() {
        Ok(n) if per > 0 && n >= 0 => Ok(now_ms.saturating_sub(n.saturating_mul(per))),
        _ => Err(format!(
            "'{s}' is not a time: use unix milliseconds, RFC 3339 (2025-06-15T10:00:00Z) or an age (30m, 2h, 7d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_three_spellings() {
        let now = 1_750_000_000_000;
        let cases: &[(&str, Result<i64, ()>)] = &[
            ("1749999999999", Ok(1_749_999_999_999)),
            ("2025-06-15T15:06:40Z", Ok(1_750_000_000_000)),
            ("2025-06-15T17:06:40.5+02:00", Ok(1_750_000_000_500)),
            ("90s", Ok(now - 90_000)),
            ("15m", Ok(now - 900_000)),
            ("2h", Ok(now - 7_200_000)),
            ("7d", Ok(now - 604_800_000)),
            ("0d", Ok(now)),
            ("yesterday", Err(())),
            ("-5m", Err(())),
            ("5w", Err(())),
            ("", Err(())),
        ];
        for (input, want) in cases {
            assert_eq!(parse_time(input, now).map_err(|_| ()), *want, "{input}");
        }
        assert_eq!(format_time(1_750_000_000_500), "2025-06-15T15:06:40.5Z");
    }

    #[test]
    fn rows_show_arguments_as_json_unless_cut() {
        let mut r = crate::chain::tests::sample();
        let v = row_json(&r);
        assert_eq!((v["arguments"]["q"].as_str(), v["requestId"].as_i64()), (Some("x"), Some(1)));
        r.arguments = Some(r#"{"q":"x"#.into());
        r.arguments_truncated = true;
        assert_eq!(row_json(&r)["arguments"], r#"{"q":"x"#);
    }
}
