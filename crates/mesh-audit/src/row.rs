//! From what the relay reports to what is stored: redaction and size caps applied, and the notes
//! the trail writes about itself.

use mesh_core::audit::CallRecord;
use mesh_store::AuditRow;

use crate::redact::{self, cap_text, clean};
use crate::AuditConfig;

/// Caps of short fields: a client controls them all, and none is worth more than this.
const MAX_NAME: usize = 1024;
const MAX_SHORT: usize = 256;

/// The row for one request (unsealed: the store assigns `seq`, `prev_hash` and `hash`).
/// `omitted` says the queue's byte budget left the arguments out.
pub(crate) fn from_record(rec: CallRecord, omitted: bool, cfg: &AuditConfig) -> AuditRow {
    let o = &*rec.origin;
    let (arguments, truncated) = match rec.arguments.as_deref() {
        // Management operations carry connections' headers, env, URLs and command lines, through
        // the management tools, REST and the dashboard alike.
        Some(raw) if matches!(o.route_kind, "management" | "rest" | "dashboard") => {
            redact::management_arguments(raw, cfg.max_arguments_bytes)
        }
        Some(raw) => redact::arguments(raw, cfg.max_arguments_bytes),
        None => (None, omitted),
    };
    let (client_name, client_version) = match &o.client {
        Some((n, v)) => (Some(cap_str(n, MAX_SHORT)), Some(cap_str(v, MAX_SHORT))),
        None => (None, None),
    };
    AuditRow {
        org_id: o.principal.org_id.clone(),
        seq: 0,
        time_ms: rec.time_ms,
        user_id: o.principal.user_id.clone(),
        role: o.principal.role_name().to_string(),
        key_id: o.principal.key_id.clone(),
        session_id: cap_str(&o.session_id, MAX_SHORT),
        client_name,
        client_version,
        route_kind: o.route_kind.to_string(),
        route: cap_str(&o.route, MAX_SHORT),
        method: cap_text(rec.method.into_owned(), MAX_SHORT),
        name: rec.name.map(|n| cap_text(n, MAX_NAME)),
        arguments: arguments.map(clean),
        arguments_truncated: truncated,
        outcome: rec.outcome.as_str().to_string(),
        error: rec.error.map(|e| cap_text(e, cfg.max_error_bytes)),
        latency_us: i64::try_from(rec.latency_us).unwrap_or(i64::MAX),
        bytes_in: i64::try_from(rec.bytes_in).unwrap_or(i64::MAX),
        bytes_out: i64::try_from(rec.bytes_out).unwrap_or(i64::MAX),
        request_id: cap_text(rec.request_id.into_string(), MAX_SHORT),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// `cap_text` of a field the session shares with its other records: copied, since it is kept.
fn cap_str(s: &str, max: usize) -> String {
    cap_text(s.to_string(), max)
}

/// The note written into an organisation's chain when records could not be queued, so a loss is
/// visible in the (tamper-evident) trail itself and not only in a log.
pub(crate) fn drop_note(org: &str, count: u64, first_ms: i64, last_ms: i64) -> AuditRow {
    AuditRow {
        org_id: org.to_string(),
        seq: 0,
        time_ms: first_ms,
        user_id: "system".into(),
        key_id: "system".into(),
        role: "system".into(),
        session_id: String::new(),
        client_name: None,
        client_version: None,
        route_kind: "audit".into(),
        route: "audit".into(),
        method: "audit/dropped".into(),
        name: None,
        arguments: Some(serde_json::json!({"dropped": count, "fromMs": first_ms, "toMs": last_ms}).to_string()),
        arguments_truncated: false,
        outcome: "dropped".into(),
        error: Some(format!("{count} audit record(s) dropped: the audit queue was full or shut down")),
        latency_us: 0,
        bytes_in: 0,
        bytes_out: 0,
        request_id: "null".into(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::audit::{Origin, Outcome};
    use mesh_core::{Principal, Role};
    use std::sync::Arc;

    pub(crate) fn record(args: Option<&str>) -> CallRecord {
        CallRecord {
            time_ms: 1,
            origin: Arc::new(Origin {
                principal: Principal {
                    org_id: "org_a".into(),
                    user_id: "usr".into(),
                    key_id: "key".into(),
                    role: Role::Member,
                    custom_role: None,
                    operator: false,
                    manage: true,
                    key_expires_at: None,
                    audience: None,
                },
                session_id: "sess".into(),
                client: Some(("claude\0code".into(), "1".into())),
                route_kind: "connection",
                route: "github".into(),
            }),
            method: "tools/call".into(),
            name: Some("search".into()),
            arguments: args.map(String::from),
            outcome: Outcome::ToolError,
            error: Some("x".repeat(5000)),
            latency_us: 42,
            bytes_in: 10,
            bytes_out: 20,
            request_id: "\"r-1\"".into(),
        }
    }

    #[test]
    fn records_become_redacted_capped_rows() {
        let cfg = AuditConfig::default();
        let row = from_record(record(Some(r#"{"password":"hunter2","q":1}"#)), false, &cfg);
        assert_eq!(row.arguments.as_deref(), Some(r#"{"password":"[REDACTED]","q":1}"#));
        assert!(!row.arguments_truncated);
        assert_eq!((row.role.as_str(), row.outcome.as_str()), ("member", "tool_error"));
        assert_eq!(row.client_name.as_deref(), Some("claude\u{FFFD}code"), "NUL cannot reach PostgreSQL");
        let error = row.error.unwrap();
        assert!(error.len() <= cfg.max_error_bytes + '…'.len_utf8() && error.ends_with('…'));
        assert_eq!(row.request_id, "\"r-1\"");

        let omitted = from_record(record(None), true, &cfg);
        assert_eq!((omitted.arguments, omitted.arguments_truncated), (None, true));
        let none = from_record(record(None), false, &cfg);
        assert_eq!((none.arguments, none.arguments_truncated), (None, false));
    }
}
