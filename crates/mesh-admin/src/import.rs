//! Reading `mcpServers` files from Claude Desktop, Cursor and VS Code into connection inputs.
//!
//! Claude Desktop and Cursor use `{"mcpServers": {name: {command, args, env} | {url, headers}}}`;
//! VS Code uses `{"servers": {name: {type, command|url, …}}}` (also under `"mcp"` in settings).
//! A page of an MCP Registry (`GET /v0.1/servers`, the official format) is read by
//! [`parse_registry`]: its servers' remotes become HTTP or SSE connections.

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

/// Reads one page of an MCP Registry listing (`{"servers": [{"server": {…}}], …}`). Servers with
/// a usable remote become connections; the others are returned by name with the reason. A
/// remote's required headers without a value are for the user to supply: they are named in
/// the entry's `notes`.
pub fn parse_registry(page: &Value) -> Result<RegistryPage, String> {
    let servers =
        page.get("servers").and_then(Value::as_array).ok_or("no \"servers\" list: not an MCP Registry page")?;
    let (mut ok, mut skipped, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    for item in servers {
        let server = item.get("server").unwrap_or(item);
        let name = server.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
        let official = &item["_meta"]["io.modelcontextprotocol.registry/official"];
        if let Some(status) = official["status"].as_str().filter(|s| *s != "active") {
            skipped.push(format!("{name}: {status} in the registry"));
            continue;
        }
        match registry_entry(server, &mut notes) {
            Ok(input) => ok.push(Imported { name, input }),
            Err(why) => skipped.push(format!("{name}: {why}")),
        }
    }
    Ok(RegistryPage { servers: ok, skipped, notes })
}

/// What one page of a registry listing gives.
#[derive(Debug, Clone)]
pub struct RegistryPage {
    /// The servers that become connections.
    pub servers: Vec<Imported>,
    /// The others, each with why (`name: reason`).
    pub skipped: Vec<String>,
    /// What the user must add by hand (headers the servers require).
    pub notes: Vec<String>,
}

fn registry_entry(server: &Value, notes: &mut Vec<String>) -> Result<ConnectionInput, String> {
    let name = server.get("name").and_then(Value::as_str).ok_or("no name")?;
    let short = name.rsplit('/').next().unwrap_or(name);
    let slug = mesh_core::slug::slugify(short).ok_or("name cannot be turned into a slug")?;
    let remotes = server.get("remotes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let pick = |kind: &str| remotes.iter().find(|r| r.get("type").and_then(Value::as_str) == Some(kind));
    let (remote, transport) = match (pick("streamable-http"), pick("sse")) {
        (Some(r), _) => (r, "http"),
        (None, Some(r)) => (r, "sse"),
        (None, None) if server.get("packages").is_some() => {
            return Err("packages only (a local program): add it from a template or as a stdio connection".into())
        }
        (None, None) => return Err("no remote to connect to".into()),
    };
    let url = remote.get("url").and_then(Value::as_str).ok_or("a remote without a URL")?;
    if url.contains('{') {
        return Err("its URL has variables to fill in".into());
    }
    let mut headers = std::collections::BTreeMap::new();
    for h in remote.get("headers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        let Some(header) = h.get("name").and_then(Value::as_str) else { continue };
        match h.get("value").and_then(Value::as_str) {
            Some(v) if !v.contains('{') => {
                headers.insert(header.to_string(), v.to_string());
            }
            _ if h.get("isRequired").and_then(Value::as_bool) == Some(true) => {
                notes.push(format!(
                    "{slug} needs the header {header}: set it in the dashboard or with PATCH \
                     /api/v1/connections/{slug} {{\"headers\": {{\"{header}\": \"…\"}}}}"
                ));
            }
            _ => {}
        }
    }
    Ok(ConnectionInput {
        slug: Some(slug),
        title: server.get("title").and_then(Value::as_str).map(str::to_string).or_else(|| Some(short.to_string())),
        description: server.get("description").and_then(Value::as_str).map(str::to_string),
        transport: Some(transport.into()),
        url: Some(url.to_string()),
        headers: (!headers.is_empty()).then_some(headers),
        ..Default::default()
    })
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

    #[test]
    fn registry_pages() {
        let page: Value = serde_json::from_str(
            r#"{"servers":[
              {"server":{"name":"io.example/weather","title":"Weather","description":"d","version":"1.0.0",
                "remotes":[{"type":"sse","url":"https://w.example/sse"},
                           {"type":"streamable-http","url":"https://w.example/mcp",
                            "headers":[{"name":"Authorization","isRequired":true,"isSecret":true},
                                       {"name":"X-Tenant","value":"acme"}]}]}},
              {"server":{"name":"io.example/local","version":"1","packages":[{"registryType":"npm"}]}},
              {"server":{"name":"io.example/templated","version":"1","remotes":[{"type":"sse","url":"https://{host}/sse"}]}}
            ],"metadata":{"count":3}}"#,
        )
        .unwrap();
        let RegistryPage { servers: ok, skipped, notes } = parse_registry(&page).unwrap();
        assert_eq!(ok.len(), 1);
        let w = &ok[0].input;
        assert_eq!((w.slug.as_deref(), w.transport.as_deref()), (Some("weather"), Some("http")));
        assert_eq!(w.url.as_deref(), Some("https://w.example/mcp"));
        assert_eq!(w.headers.as_ref().unwrap().get("X-Tenant").map(String::as_str), Some("acme"));
        assert!(notes[0].contains("weather needs the header Authorization"), "{notes:?}");
        assert!(skipped[0].starts_with("io.example/local: packages only"), "{skipped:?}");
        assert!(skipped[1].contains("variables"), "{skipped:?}");
        assert!(parse_registry(&serde_json::json!({"mcpServers": {}})).is_err());
    }
}
