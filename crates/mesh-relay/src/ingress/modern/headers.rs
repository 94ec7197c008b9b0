//! The headers of a stateless request that mirror its body (2026-07-28 streamable-http):
//! `Mcp-Method` and `Mcp-Name`, which a gateway may route by, and the `Mcp-Param-*` headers a
//! tool's schema asks for. A header that disagrees with the body is refused: the body is what
//! the mesh governs.

use super::pool;
use http::{HeaderMap, HeaderValue};
use mesh_protocol::{modern, Message};

/// The headers of a stateless request that mirror its body, found in one pass over its headers
/// (a lookup per header would hash each name).
pub(super) struct Mirrors<'h> {
    /// `Mcp-Method`, mirroring `method`.
    pub method: Mirror<'h>,
    /// `Mcp-Name`, mirroring `params.name`, `params.uri` or `params.taskId`.
    pub name: Mirror<'h>,
    /// `Mcp-Param-*` (name, value as sent), which the mesh forwards to a stateless upstream.
    pub params: Vec<(String, String)>,
    /// An `Mcp-Param-*` header given more than once: refused, since the check reads one value
    /// and the forwarding could carry another.
    pub repeated_param: Option<String>,
}

/// How often a mirrored header came.
pub(super) enum Mirror<'h> {
    Absent,
    Once(&'h HeaderValue),
    Repeated,
}

impl<'h> Mirrors<'h> {
    pub(super) fn of(headers: &'h HeaderMap) -> Mirrors<'h> {
        let mut m = Mirrors { method: Mirror::Absent, name: Mirror::Absent, params: Vec::new(), repeated_param: None };
        for (k, v) in headers {
            let Some(own) = k.as_str().strip_prefix("mcp-") else { continue };
            match own {
                "method" => m.method.add(v),
                "name" => m.name.add(v),
                _ if own.starts_with("param-") => {
                    if m.params.iter().any(|(name, _)| name == k.as_str()) {
                        m.repeated_param = Some(k.as_str().to_string());
                    }
                    if let Ok(value) = v.to_str() {
                        m.params.push((k.as_str().to_string(), value.to_string()));
                    }
                }
                _ => {}
            }
        }
        m
    }
}

impl<'h> Mirror<'h> {
    fn add(&mut self, value: &'h HeaderValue) {
        *self = match self {
            Mirror::Absent => Mirror::Once(value),
            _ => Mirror::Repeated,
        };
    }

    /// Checks the header against the body's value: present once, and equal once trimmed and
    /// decoded (values compare case-sensitively).
    pub(super) fn agrees(&self, body: Option<&str>) -> Result<(), &'static str> {
        let value = match self {
            Mirror::Once(v) => v,
            Mirror::Absent => return Err("is required"),
            Mirror::Repeated => return Err("is given more than once"),
        };
        match (modern::header_value(value.as_bytes()), body) {
            (Some(v), Some(b)) if v == b => Ok(()),
            (None, _) => Err("is not a valid header value"),
            _ => Err("disagrees with the body"),
        }
    }
}

/// Checks a `tools/call`'s `Mcp-Param-*` headers against its arguments, for the tools whose
/// annotations this pooled session has seen listed (2026-07-28 streamable-http, "Custom Headers
/// from Tool Parameters"): an annotated argument with a value needs its header, equal once
/// decoded; a header without its argument, or one that does not decode, disagrees.
pub(super) fn params_mirrored(headers: &HeaderMap, known: &pool::ParamHeaders, msg: &Message) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Call {
        #[serde(default)]
        arguments: Option<serde_json::Map<String, serde_json::Value>>,
    }
    let annotated = {
        let known = known.lock().unwrap_or_else(|p| p.into_inner());
        // The usual case: no tool of this session asked for headers, and the body is not read.
        if known.is_empty() {
            return Ok(());
        }
        let Some(name) = modern::Request::read(msg.bytes()).and_then(|p| p.name.map(|n| n.into_owned())) else {
            return Ok(());
        };
        match known.get(&name) {
            Some(a) if !a.is_empty() => a.clone(),
            _ => return Ok(()),
        }
    };
    let arguments = msg.params::<Call>().and_then(|c| c.arguments).unwrap_or_default();
    for (argument, token) in annotated {
        let header = format!("mcp-param-{}", token.to_ascii_lowercase());
        let body = arguments.get(&argument).filter(|v| !v.is_null());
        match (headers.get(header.as_str()), body) {
            (None, None) => {}
            (None, Some(_)) => return Err(format!("{header} is required for argument {argument}")),
            (Some(_), None) => return Err(format!("{header} is given without argument {argument}")),
            (Some(value), Some(v)) => {
                let expected = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => return Err(format!("argument {argument} cannot travel in a header")),
                };
                match modern::header_value(value.as_bytes()) {
                    Some(got) if got == expected => {}
                    Some(_) => return Err(format!("{header} disagrees with argument {argument}")),
                    None => return Err(format!("{header} is not a valid header value")),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_headers_are_found_in_one_pass_and_checked_like_lookups() {
        let mut headers = HeaderMap::new();
        headers.insert("mcp-method", HeaderValue::from_static(" tools/call "));
        headers.append("mcp-name", HeaderValue::from_static("a"));
        headers.append("mcp-name", HeaderValue::from_static("a"));
        headers.insert("mcp-param-region", HeaderValue::from_static("eu"));
        headers.insert("mcp-protocol-version", HeaderValue::from_static("2026-07-28"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let m = Mirrors::of(&headers);
        assert_eq!(m.method.agrees(Some("tools/call")), Ok(()));
        assert_eq!(m.method.agrees(Some("tools/list")), Err("disagrees with the body"));
        assert_eq!(m.name.agrees(Some("a")), Err("is given more than once"));
        assert_eq!(m.params, vec![("mcp-param-region".to_string(), "eu".to_string())]);
        headers.remove("mcp-name");
        headers.insert("mcp-method", HeaderValue::from_bytes(b"tools/call\xff").expect("opaque bytes"));
        let m = Mirrors::of(&headers);
        assert_eq!(m.name.agrees(Some("a")), Err("is required"));
        assert_eq!(m.method.agrees(Some("tools/call")), Err("is not a valid header value"));
    }
}
