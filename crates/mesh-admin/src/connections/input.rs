//! What a caller gives for a connection, checked field by field before anything is stored or
//! sealed: what is saved must be sendable, so a bad value fails here with its field's name and
//! never later as an upstream error far from its cause (issue #16 item 10).

use super::ConnectionInput;
use crate::AdminError;
use mesh_core::slug;
use mesh_store::Connection;

/// The longest upstream request timeout, in milliseconds.
const MAX_TIMEOUT_MS: i64 = 3_600_000;

/// MCP's own request headers, which the mesh sets per session and request.
const MCP_HEADERS: [&str; 3] = ["mcp-session-id", "mcp-protocol-version", "last-event-id"];

/// Longest header value, environment value, argument or URL accepted.
const MAX_VALUE: usize = 8 * 1024;

/// Checks one header or environment entry before it is sealed, so that what is stored can be
/// sent: a value with CR/LF would otherwise fail every initialize later, far from its cause.
pub(super) fn validate_secret(kind: &str, name: &str, value: &str) -> Result<(), AdminError> {
    match kind {
        "header" => {
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if name.is_empty() || name.len() > 256 || !name.bytes().all(token) {
                return Err(AdminError::Invalid(format!(
                    "headers: invalid header name '{}' (letters, digits and -_.!#$%&'*+^`|~ only)",
                    printable(name)
                )));
            }
            let lower = name.to_ascii_lowercase();
            if mesh_relay::spec::MESH_OWNED_HEADERS.contains(&lower.as_str()) || MCP_HEADERS.contains(&lower.as_str()) {
                return Err(AdminError::Invalid(format!("headers: '{name}' is set by the mesh itself")));
            }
            if value.len() > MAX_VALUE || http::HeaderValue::from_str(value).is_err() {
                return Err(AdminError::Invalid(format!(
                    "headers: the value of '{name}' must be visible ASCII, spaces and tabs, at most {MAX_VALUE} bytes \
                     (no line breaks or control characters)"
                )));
            }
        }
        _ => {
            validate_env_name(name)?;
            if value.len() > MAX_VALUE || value.contains('\0') {
                return Err(AdminError::Invalid(format!(
                    "env: the value of '{name}' must be at most {MAX_VALUE} bytes with no NUL character"
                )));
            }
        }
    }
    Ok(())
}

/// Checks an environment variable name: what a process environment can carry.
pub(crate) fn validate_env_name(name: &str) -> Result<(), AdminError> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'=')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "env: invalid variable name '{}' (visible ASCII without '=', not starting with a digit)",
            printable(name)
        )))
    }
}

/// Checks a stdio command line: a program and arguments the operating system can be given.
pub(crate) fn validate_command(command: &str, args: &[String]) -> Result<(), AdminError> {
    if command.trim().is_empty() || command.len() > 4096 || command.contains('\0') {
        return Err(AdminError::Invalid("command: a program name or path, at most 4096 bytes, no NUL".into()));
    }
    if let Some(i) = args.iter().position(|a| a.len() > MAX_VALUE || a.contains('\0')) {
        return Err(AdminError::Invalid(format!("args[{i}]: at most {MAX_VALUE} bytes, no NUL character")));
    }
    if args.len() > 1024 {
        return Err(AdminError::Invalid("args: at most 1024 arguments".into()));
    }
    Ok(())
}

/// Checks a capability selector: a capability name, a bounded list of tags, a version constraint.
fn validate_selector(s: &mesh_core::registry::Dependency) -> Result<(), AdminError> {
    use mesh_core::registry::TagSpec;
    let fine = |t: &str| !t.is_empty() && t.len() <= 200 && !t.chars().any(char::is_control);
    if !fine(&s.capability) {
        return Err(AdminError::Invalid("selector.capability: 1 to 200 bytes, no control characters".into()));
    }
    let tags: Vec<&String> = s
        .tags
        .iter()
        .flat_map(|t| match t {
            TagSpec::One(t) => std::slice::from_ref(t).iter(),
            TagSpec::AnyOf(group) => group.iter(),
        })
        .collect();
    if tags.len() > 64 || !tags.iter().all(|t| fine(t)) {
        return Err(AdminError::Invalid("selector.tags: at most 64 tags of 1 to 200 bytes each".into()));
    }
    if s.version.as_deref().is_some_and(|v| !fine(v)) {
        return Err(AdminError::Invalid("selector.version: 1 to 200 bytes, no control characters".into()));
    }
    Ok(())
}

/// A name quoted back in an error: control characters shown escaped, and cut short.
fn printable(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_default).collect()
}

/// Applies input to a connection and validates the result as a whole.
pub(super) fn apply(c: &mut Connection, i: &ConnectionInput) -> Result<(), AdminError> {
    if let Some(s) = &i.slug {
        slug::validate(s).map_err(|e| AdminError::Invalid(format!("slug: {e}")))?;
        c.slug = s.clone();
    }
    if let Some(t) = &i.title {
        if t.len() > 200 || t.chars().any(char::is_control) {
            return Err(AdminError::Invalid("title: at most 200 bytes, no control characters".into()));
        }
        c.title = t.clone();
    }
    if let Some(d) = &i.description {
        if d.len() > 4096 || d.contains('\0') {
            return Err(AdminError::Invalid("description: at most 4096 bytes, no NUL character".into()));
        }
        c.description = Some(d.clone()).filter(|d| !d.is_empty());
    }
    if let Some(u) = &i.url {
        c.url = Some(u.clone());
    }
    if let Some(cmd) = &i.command {
        c.command = Some(cmd.clone());
    }
    if let Some(a) = &i.args {
        c.args = a.clone();
    }
    if let Some(d) = &i.cwd {
        c.cwd = Some(d.clone()).filter(|d| !d.is_empty());
    }
    if let Some(t) = i.timeout_ms {
        if !(1_000..=MAX_TIMEOUT_MS).contains(&t) {
            return Err(AdminError::Invalid(format!("timeoutMs must be between 1000 and {MAX_TIMEOUT_MS}")));
        }
        c.timeout_ms = t;
    }
    if let Some(s) = &i.status {
        if s != "active" && s != "disabled" {
            return Err(AdminError::Invalid("status must be 'active' or 'disabled'".into()));
        }
        c.status = s.clone();
    }
    if let Some(a) = i.anonymous {
        c.anonymous = a;
    }
    if let Some(sel) = &i.selector {
        validate_selector(sel)?;
        c.selector = Some(serde_json::to_string(sel).map_err(|e| AdminError::Invalid(format!("selector: {e}")))?);
    }
    c.transport = match i.transport.as_deref() {
        Some(t @ ("http" | "sse" | "stdio" | "capability")) => t.to_string(),
        Some(other) => {
            return Err(AdminError::Invalid(format!("unknown transport '{other}' (http, sse, stdio or capability)")))
        }
        // A selector makes a new connection a capability one; an existing one changes kind
        // only when asked to (transport), never as a side effect.
        None if i.selector.is_some() && c.transport.is_empty() => "capability".into(),
        None if !c.transport.is_empty() => c.transport.clone(),
        None if c.command.is_some() || i.template.is_some() => "stdio".into(),
        None if c.url.is_some() => "http".into(),
        None => return Err(AdminError::Invalid("give either url (http/sse) or command (stdio)".into())),
    };
    if c.transport != "capability" && i.selector.is_some() {
        return Err(AdminError::Invalid(format!(
            "selector: only a capability connection has one (this one is {})",
            c.transport
        )));
    }
    match c.transport.as_str() {
        "capability" => {
            if c.selector.is_none() {
                return Err(AdminError::Invalid(
                    "a capability connection needs a selector (at least its capability)".into(),
                ));
            }
            if i.url.is_some() || i.command.is_some() || i.template.is_some() || i.args.is_some() || i.cwd.is_some() {
                return Err(AdminError::Invalid(
                    "a capability connection reaches the registered providers of its capability: give no url, command, args, \
                     cwd or template"
                        .into(),
                ));
            }
            if i.headers.as_ref().is_some_and(|h| !h.is_empty()) || i.env.as_ref().is_some_and(|e| !e.is_empty()) {
                return Err(AdminError::Invalid(
                    "a capability connection has no headers or env of its own: each provider's connection has its own"
                        .into(),
                ));
            }
            c.url = None;
            c.command = None;
            c.args.clear();
            c.cwd = None;
        }
        "stdio" => {
            if c.command.as_deref().is_none_or(str::is_empty) && i.template.is_none() {
                return Err(AdminError::Invalid("a stdio connection needs a command or a template".into()));
            }
            if let Some(command) = &c.command {
                validate_command(command, &c.args)?;
            }
            if c.cwd.as_deref().is_some_and(|d| !d.starts_with('/') || d.contains('\0') || d.len() > 4096) {
                return Err(AdminError::Invalid("cwd: an absolute path, at most 4096 bytes".into()));
            }
            c.url = None;
            c.selector = None;
        }
        _ => {
            c.selector = None;
            let raw = c
                .url
                .as_deref()
                .ok_or_else(|| AdminError::Invalid(format!("a {} connection needs a url", c.transport)))?;
            if raw.len() > MAX_VALUE {
                return Err(AdminError::Invalid(format!("url: at most {MAX_VALUE} bytes")));
            }
            let u = url::Url::parse(raw).map_err(|e| AdminError::Invalid(format!("url: invalid ({e})")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(AdminError::Invalid("url: must be http:// or https://".into()));
            }
            if u.host_str().is_none_or(str::is_empty) {
                return Err(AdminError::Invalid("url: needs a host".into()));
            }
            c.command = None;
            c.args.clear();
            c.cwd = None;
        }
    }
    if let Some(a) = &i.auth {
        c.auth = match a.as_str() {
            // `none` is `headers` without any: one stored value, one behaviour.
            "none" | "headers" => "headers".into(),
            "oauth" => "oauth".into(),
            other => return Err(AdminError::Invalid(format!("auth: unknown mode '{other}' (none, headers or oauth)"))),
        };
    }
    if let Some(shared) = i.oauth_shared {
        c.oauth_shared = shared;
    }
    if c.auth == "oauth" && c.transport == "capability" {
        return Err(AdminError::Invalid("auth: a capability connection uses each provider's own credentials".into()));
    }
    if c.auth == "oauth" && c.transport == "stdio" {
        return Err(AdminError::Invalid(
            "auth: oauth is for http and sse connections (a stdio server takes its credentials from its environment)"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blank() -> Connection {
        Connection {
            id: "conn_1".into(),
            org_id: "org_1".into(),
            slug: String::new(),
            title: String::new(),
            description: None,
            transport: String::new(),
            url: None,
            command: None,
            args: Vec::new(),
            cwd: None,
            timeout_ms: 60_000,
            status: "active".into(),
            anonymous: false,
            created_at: 0,
            updated_at: 0,
            trusted: false,
            template: None,
            auth: "headers".into(),
            oauth_shared: false,
            selector: None,
        }
    }

    fn input(v: serde_json::Value) -> ConnectionInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_selector_makes_a_capability_connection_and_nothing_else_rides_along() {
        let mut c = blank();
        apply(&mut c, &input(json!({"slug": "dates", "selector": {"capability": "date_service", "tags": ["system"]}})))
            .unwrap();
        assert_eq!(c.transport, "capability");
        assert_eq!(c.selector.as_deref(), Some(r#"{"capability":"date_service","tags":["system"]}"#));
        for extra in [
            json!({"url": "http://x/mcp"}),
            json!({"args": ["a"]}),
            json!({"cwd": "/tmp"}),
            json!({"headers": {"A": "b"}}),
        ] {
            let mut again = c.clone();
            let mut given = input(extra.clone());
            given.selector = None;
            assert!(apply(&mut again, &given).is_err(), "{extra}");
        }
        assert!(apply(&mut c.clone(), &input(json!({"auth": "oauth"}))).is_err());
    }

    #[test]
    fn an_existing_connection_changes_kind_only_when_asked() {
        let mut http = blank();
        apply(&mut http, &input(json!({"slug": "web", "url": "http://127.0.0.1:9/mcp"}))).unwrap();
        let err = apply(&mut http.clone(), &input(json!({"selector": {"capability": "c"}}))).unwrap_err();
        assert!(err.to_string().contains("only a capability connection"), "{err}");
        apply(&mut http, &input(json!({"transport": "capability", "selector": {"capability": "c"}}))).unwrap();
        assert_eq!((http.transport.as_str(), http.url.as_deref()), ("capability", None));
        // And back: the selector goes.
        apply(&mut http, &input(json!({"transport": "http", "url": "http://127.0.0.1:9/mcp"}))).unwrap();
        assert_eq!((http.transport.as_str(), http.selector.as_deref()), ("http", None));
        let err = apply(&mut blank(), &input(json!({"slug": "x", "selector": {"capability": "c\u{0}"}}))).unwrap_err();
        assert!(err.to_string().contains("selector.capability"), "{err}");
    }
}
