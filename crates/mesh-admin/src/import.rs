//! Reading `mcpServers` files from Claude Desktop, Cursor and VS Code into connection inputs.
//!
//! Claude Desktop and Cursor use `{"mcpServers": {name: {command, args, env} | {url, headers}}}`;
//! VS Code uses `{"servers": {name: {type, command|url, …}}}` (also under `"mcp"` in settings).

use crate::connections::ConnectionInput;
use serde_json::Value;

/// One server found in a client config.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The name in the file.
    pub name: String,
    /// The connection to create (slug derived from the name).
    pub input: ConnectionInput,
}

/// Parses a client config. Entries that cannot become connections are returned as errors by name.
pub fn parse(text: &str) -> Result<(Vec<Imported>, Vec<String>), String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let servers = doc
        .get("mcpServers")
        .or_else(|| doc.get("servers"))
        .or_else(|| doc.get("mcp").and_then(|m| m.get("servers")))
        .and_then(Value::as_object)
        .ok_or("no \"mcpServers\" (or \"servers\") object found")?;
    let mut ok = Vec::new();
    let mut skipped = Vec::new();
    for (name, v) in servers {
        match entry(name, v) {
            Ok(input) => ok.push(Imported { name: name.clone(), input }),
            Err(why) => skipped.push(format!("{name}: {why}")),
        }
    }
    Ok((ok, skipped))
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
}

fn string_map(v: Option<&Value>) -> Option<std::collections::BTreeMap<String, String>> {
    let obj = v?.as_object()?;
    let m: std::collections::BTreeMap<String, String> =
        obj.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect();
    (!m.is_empty()).then_some(m)
}

fn entry(name: &str, v: &Value) -> Result<ConnectionInput, String> {
    let slug = mesh_core::slug::slugify(name).ok_or("name cannot be turned into a slug")?;
    let kind = v.get("type").or_else(|| v.get("transport")).and_then(Value::as_str);
    let mut input = ConnectionInput { slug: Some(slug), title: Some(name.to_string()), ..Default::default() };
    if let Some(cmd) = v.get("command").and_then(Value::as_str) {
        input.transport = Some("stdio".into());
        input.command = Some(cmd.to_string());
        input.args = strings(v.get("args"));
        input.env = string_map(v.get("env"));
        input.cwd = v.get("cwd").and_then(Value::as_str).map(str::to_string);
    } else if let Some(url) = v.get("url").or_else(|| v.get("serverUrl")).and_then(Value::as_str) {
        input.transport = Some(match kind {
            Some("sse") => "sse".into(),
            _ if url.trim_end_matches('/').ends_with("/sse") && kind.is_none() => "sse".into(),
            _ => "http".into(),
        });
        input.url = Some(url.to_string());
        input.headers = string_map(v.get("headers"));
    } else {
        return Err("neither \"command\" nor \"url\"".into());
    }
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_cursor_and_vscode_shapes() {
        let claude = r#"{"mcpServers":{
            "Filesystem":{"command":"npx","args":["-y","@modelcontextprotocol/server-filesystem","/tmp"],"env":{"A":"1"}},
            "github":{"url":"https://api.example.com/mcp","headers":{"Authorization":"Bearer x"}},
            "legacy":{"url":"http://127.0.0.1:9/sse"},
            "broken":{"foo":1}}}"#;
        let (ok, skipped) = parse(claude).unwrap();
        assert_eq!(ok.len(), 3);
        let fs = ok.iter().find(|i| i.name == "Filesystem").unwrap();
        assert_eq!(fs.input.slug.as_deref(), Some("filesystem"));
        assert_eq!(fs.input.transport.as_deref(), Some("stdio"));
        assert_eq!(fs.input.args.as_ref().unwrap().len(), 3);
        let gh = ok.iter().find(|i| i.name == "github").unwrap();
        assert_eq!(gh.input.transport.as_deref(), Some("http"));
        assert!(gh.input.headers.as_ref().unwrap().contains_key("Authorization"));
        assert_eq!(ok.iter().find(|i| i.name == "legacy").unwrap().input.transport.as_deref(), Some("sse"));
        assert_eq!(skipped, vec!["broken: neither \"command\" nor \"url\"".to_string()]);

        let vscode = r#"{"servers":{"time":{"type":"stdio","command":"uvx","args":["mcp-server-time"]}}}"#;
        assert_eq!(parse(vscode).unwrap().0.len(), 1);
        assert!(parse("{}").is_err());
        assert!(parse("nope").is_err());
    }
}
