//! `mcp-mesh connection …`, `import` and `call`.

use crate::api::{self, Target};
use crate::output;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

/// Connection sub-commands.
#[derive(Subcommand)]
pub enum ConnectionCmd {
    /// Register an upstream MCP server.
    Add(Box<AddArgs>),
    /// List connections.
    #[command(visible_alias = "ls")]
    List(Target),
    /// Show one connection (secret values masked).
    #[command(visible_alias = "get")]
    Show(NameArg),
    /// Delete a connection.
    #[command(visible_alias = "delete", visible_alias = "remove")]
    Rm(NameArg),
    /// Initialise the upstream and report what it is.
    Test(NameArg),
    /// Authorize the mesh at an OAuth connection's server (for you; its shared grant: admins):
    /// prints the link to open in a browser logged in to the mesh, and waits until it is done.
    Login(LoginArgs),
    /// Forget your authorization at an OAuth connection.
    Logout(NameArg),
    /// Your authorizations at OAuth connections.
    Grants(Target),
}

/// `connection login`.
#[derive(Args)]
pub struct LoginArgs {
    /// Connection slug or id.
    name: String,
    /// Print the link and return without waiting.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    target: Target,
}

/// A connection named by slug or id.
#[derive(Args)]
pub struct NameArg {
    /// Connection slug or id.
    name: String,
    #[command(flatten)]
    target: Target,
}

/// `connection add`.
#[derive(Args)]
pub struct AddArgs {
    /// Slug: the connection is served at /mcp/{slug}.
    name: String,
    /// Streamable HTTP (or, with --transport sse, legacy SSE) endpoint.
    #[arg(long, conflicts_with = "command")]
    url: Option<String>,
    /// Header sent upstream, "Name: value" (repeatable; stored encrypted).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// A stdio server from the installation's catalogue (`mcp-mesh template list`); --env may
    /// set the variables the template names.
    #[arg(long, conflicts_with_all = ["url", "command"])]
    template: Option<String>,
    /// Program of a stdio server (installation operators only, unless MESH_STDIO=admins).
    #[arg(long)]
    command: Option<String>,
    /// Argument of the stdio program (repeatable).
    #[arg(long = "arg", allow_hyphen_values = true)]
    args: Vec<String>,
    /// Environment of the stdio program, KEY=value (repeatable; stored encrypted).
    #[arg(long = "env", short = 'e')]
    env: Vec<String>,
    /// Working directory of the stdio program.
    #[arg(long)]
    cwd: Option<String>,
    /// Balance over every healthy registered provider of this capability instead of one server
    /// (agents that joined by heartbeat, or `mcp-mesh register`; docs/REGISTRY.md).
    #[arg(long, conflicts_with_all = ["url", "command", "template"])]
    capability: Option<String>,
    /// With --capability: a tag the provider must have; `+tag` preferred, `-tag` excluded,
    /// `a,b` one of them (repeatable).
    #[arg(long = "tag", requires = "capability", allow_hyphen_values = true)]
    tags: Vec<String>,
    /// With --capability: a version constraint, e.g. '>=1.0', '~1.2', '^2'.
    #[arg(long, requires = "capability")]
    version: Option<String>,
    /// http, sse, stdio or capability (inferred when absent).
    #[arg(long)]
    transport: Option<String>,
    /// Display name.
    #[arg(long)]
    title: Option<String>,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    /// Per-request upstream timeout in seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Admit callers without credentials to this connection (for local clients that cannot send
    /// headers). They reach only this connection, never management.
    #[arg(long)]
    allow_anonymous: bool,
    /// How the mesh authenticates upstream: none, headers (default) or oauth (each user
    /// authorizes once: `mcp-mesh connection login`; docs/UPSTREAM-OAUTH.md).
    #[arg(long, value_parser = ["none", "headers", "oauth"])]
    auth: Option<String>,
    /// With --auth oauth: one grant for the whole connection, authorized by an admin.
    #[arg(long, requires = "auth")]
    oauth_shared: bool,
    /// With --auth oauth: a client registered by hand at the server's authorization server
    /// (without one, the mesh registers itself or uses its client metadata document).
    #[arg(long, requires = "auth")]
    oauth_client_id: Option<String>,
    /// Its secret, for a confidential client (stored encrypted; used only with
    /// --oauth-client-id). Prefer
    /// MESH_OAUTH_CLIENT_SECRET in the environment: a flag shows in the process list.
    #[arg(long, env = "MESH_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    oauth_client_secret: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// `import FILE`.
#[derive(Args)]
pub struct ImportArgs {
    /// A Claude Desktop / Cursor / VS Code config with "mcpServers" (or "servers").
    #[arg(required_unless_present = "registry", conflicts_with = "registry")]
    file: Option<std::path::PathBuf>,
    /// Import from an MCP Registry instead (the official format, `GET {URL}/v0.1/servers`): its
    /// servers' remotes become connections.
    #[arg(long)]
    registry: Option<url::Url>,
    /// A bearer token for that registry (another mesh's API key, for one).
    #[arg(long, env = "MESH_IMPORT_REGISTRY_KEY", hide_env_values = true)]
    registry_key: Option<String>,
    /// Only the registry's servers whose name contains this.
    #[arg(long, requires = "registry")]
    search: Option<String>,
    /// Also import remotes over plain http or on loopback, private or link-local addresses (a
    /// registry is someone else's list: by default only public https servers are taken).
    #[arg(long, requires = "registry")]
    allow_private: bool,
    /// Show what would be created without creating it.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    target: Target,
}

/// `call CONNECTION TOOL`.
#[derive(Args)]
pub struct CallArgs {
    /// Connection slug or id.
    connection: String,
    /// Tool name.
    tool: String,
    /// Arguments as one JSON object.
    #[arg(long = "args")]
    args_json: Option<String>,
    /// One argument, key=value (value parsed as JSON when it is JSON, else a string; repeatable).
    #[arg(long = "arg", short = 'a')]
    arg: Vec<String>,
    #[command(flatten)]
    target: Target,
}

fn pairs(items: &[String], sep: char, what: &str) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    for it in items {
        let (k, v) = it.split_once(sep).with_context(|| format!("{what} '{it}' is not in the form name{sep}value"))?;
        m.insert(k.trim().to_string(), Value::String(v.trim_start().to_string()));
    }
    Ok(m)
}

/// Runs a connection sub-command.
pub async fn run(cmd: ConnectionCmd) -> anyhow::Result<()> {
    match cmd {
        ConnectionCmd::Add(a) => add(*a).await,
        ConnectionCmd::List(t) => list(t).await,
        ConnectionCmd::Show(n) => {
            let out = api::manage(&n.target, "COLLECTION_CONNECTIONS_GET", json!({"id": n.name})).await?;
            print_item(&n.target, &out["item"])
        }
        ConnectionCmd::Rm(n) => {
            api::manage(&n.target, "COLLECTION_CONNECTIONS_DELETE", json!({"id": n.name})).await?;
            println!("connection \"{}\" deleted", n.name);
            Ok(())
        }
        ConnectionCmd::Test(n) => test(n).await,
        ConnectionCmd::Login(l) => login(l).await,
        ConnectionCmd::Logout(n) => {
            let out = api::manage(&n.target, "CONNECTION_GRANT_REVOKE", json!({"id": n.name})).await?;
            match out["revoked"].as_bool() {
                Some(true) => println!("authorization at \"{}\" forgotten", n.name),
                _ => println!("no authorization at \"{}\" to forget", n.name),
            }
            Ok(())
        }
        ConnectionCmd::Grants(t) => {
            let out = api::manage(&t, "CONNECTION_GRANT_LIST", json!({})).await?;
            let items = out["items"].as_array().cloned().unwrap_or_default();
            if t.json {
                println!("{}", serde_json::to_string_pretty(&items)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|g| {
                    let s = |k: &str| g[k].as_str().unwrap_or("-").to_string();
                    let expires = g["expiresAt"].as_u64().map(|t| t.to_string()).unwrap_or_else(|| "-".into());
                    vec![s("connection"), s("subject"), s("issuer"), s("scope"), expires, g["refreshable"].to_string()]
                })
                .collect();
            output::table(&["CONNECTION", "SUBJECT", "ISSUER", "SCOPE", "EXPIRES (epoch s)", "REFRESHABLE"], &rows);
            Ok(())
        }
    }
}

/// Starts an authorization through the REST API (a link is personal: it is made for the key's
/// user), prints the link, and waits for the browser to complete it.
async fn login(l: LoginArgs) -> anyhow::Result<()> {
    let path = format!("api/v1/connections/{}/login", l.name);
    let out = api::rest(&l.target, reqwest::Method::POST, &path).await?;
    let item = &out["item"];
    let (url, id) = (item["url"].as_str().unwrap_or_default(), item["loginId"].as_str().unwrap_or_default());
    let expires = item["expiresIn"].as_u64().unwrap_or(600);
    if l.target.json {
        println!("{}", serde_json::to_string_pretty(item)?);
    } else {
        println!(
            "Open this link in a browser logged in to the mesh as yourself (valid {} min):\n\n  {url}\n",
            expires / 60
        );
    }
    if l.no_wait {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(expires);
    let status = format!("api/v1/connections/{}/login/{id}", l.name);
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        if api::rest(&l.target, reqwest::Method::GET, &status).await?["done"] == true {
            if !l.target.json {
                println!("authorized: \"{}\" now uses your token", l.name);
            }
            return Ok(());
        }
    }
    bail!("the link expired before the authorization was completed; run the command again")
}

async fn add(a: AddArgs) -> anyhow::Result<()> {
    let mut input = Map::new();
    input.insert("slug".into(), json!(a.name));
    let opt = |m: &mut Map<String, Value>, k: &str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    };
    opt(&mut input, "url", a.url);
    opt(&mut input, "template", a.template);
    opt(&mut input, "command", a.command);
    opt(&mut input, "cwd", a.cwd);
    opt(&mut input, "transport", a.transport);
    if let Some(capability) = a.capability {
        input.insert("selector".into(), selector(capability, &a.tags, a.version));
    }
    opt(&mut input, "title", a.title);
    opt(&mut input, "description", a.description);
    if !a.args.is_empty() {
        input.insert("args".into(), json!(a.args));
    }
    if !a.headers.is_empty() {
        input.insert("headers".into(), Value::Object(pairs(&a.headers, ':', "header")?));
    }
    if !a.env.is_empty() {
        input.insert("env".into(), Value::Object(pairs(&a.env, '=', "env")?));
    }
    if let Some(t) = a.timeout {
        input.insert("timeoutMs".into(), json!(t * 1000));
    }
    if a.allow_anonymous {
        input.insert("anonymous".into(), json!(true));
    }
    opt(&mut input, "auth", a.auth);
    if a.oauth_shared {
        input.insert("oauthShared".into(), json!(true));
    }
    if a.oauth_client_id.is_some() {
        opt(&mut input, "oauthClientSecret", a.oauth_client_secret);
    }
    opt(&mut input, "oauthClientId", a.oauth_client_id);
    let out = api::manage(&a.target, "COLLECTION_CONNECTIONS_CREATE", Value::Object(input)).await?;
    if a.target.json {
        return print_item(&a.target, &out["item"]);
    }
    println!(
        "connection \"{}\" created: {}{}",
        out["item"]["slug"].as_str().unwrap_or("?"),
        a.target.mesh_url.as_str().trim_end_matches('/'),
        out["item"]["endpoint"].as_str().unwrap_or("")
    );
    Ok(())
}

/// A capability selector from the flags: `a,b` is a group of which one must match.
fn selector(capability: String, tags: &[String], version: Option<String>) -> Value {
    let tags: Vec<Value> = tags
        .iter()
        .map(|t| match t.contains(',') {
            true => json!(t.split(',').map(str::trim).filter(|x| !x.is_empty()).collect::<Vec<_>>()),
            false => json!(t),
        })
        .collect();
    let mut out = json!({"capability": capability, "tags": tags});
    if let Some(v) = version {
        out["version"] = json!(v);
    }
    out
}

/// What a capability connection selects, as one line: `date_service tags=system,+fast version=>=1`.
fn describe_selector(s: &Value) -> String {
    let mut out = s["capability"].as_str().unwrap_or("?").to_string();
    let tags: Vec<String> = s["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| match t {
                    Value::Array(group) => group.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("|"),
                    t => t.as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if !tags.is_empty() {
        out.push_str(&format!(" tags={}", tags.join(",")));
    }
    if let Some(v) = s["version"].as_str() {
        out.push_str(&format!(" version={v}"));
    }
    out
}

async fn list(t: Target) -> anyhow::Result<()> {
    let out = api::manage(&t, "COLLECTION_CONNECTIONS_LIST", json!({})).await?;
    if t.json {
        println!("{}", serde_json::to_string_pretty(&out["items"])?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = out["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|c| {
                    let target = match c["transport"].as_str() {
                        Some("stdio") => {
                            let args: Vec<&str> = c["args"]
                                .as_array()
                                .map(|a| a.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            format!("{} {}", c["command"].as_str().unwrap_or(""), args.join(" "))
                        }
                        Some("capability") => describe_selector(&c["selector"]),
                        _ => c["url"].as_str().unwrap_or("").to_string(),
                    };
                    let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
                    // Where its command came from: stdio servers made outside the catalogue
                    // run whatever an operator (or, before the trust tiers, an admin) wrote.
                    let source = match (c["template"].as_str(), c["outsideCatalogue"].as_bool()) {
                        (Some(t), _) => format!("template:{t}"),
                        (None, Some(true)) => "command".to_string(),
                        _ if c["transport"] == "capability" => "registry".to_string(),
                        _ => "url".to_string(),
                    };
                    vec![s("slug"), s("transport"), s("status"), source, target.trim().to_string()]
                })
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        println!(
            "No connections. Add one with: mcp-mesh connection add NAME --url URL | --command CMD | --capability CAP"
        );
        return Ok(());
    }
    output::table(&["NAME", "TRANSPORT", "STATUS", "SOURCE", "TARGET"], &rows);
    Ok(())
}

fn print_item(t: &Target, item: &Value) -> anyhow::Result<()> {
    if t.json {
        println!("{}", serde_json::to_string_pretty(item)?);
        return Ok(());
    }
    for key in [
        "slug",
        "id",
        "title",
        "description",
        "transport",
        "url",
        "selector",
        "template",
        "command",
        "args",
        "cwd",
        "headers",
        "env",
        "timeoutMs",
        "status",
        "endpoint",
    ] {
        let v = &item[key];
        let shown = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Array(a) if a.is_empty() => continue,
            Value::Object(o) if o.is_empty() => continue,
            other => other.to_string(),
        };
        println!("{:<12} {shown}", format!("{key}:"));
    }
    Ok(())
}

async fn test(n: NameArg) -> anyhow::Result<()> {
    let out = api::manage(&n.target, "CONNECTION_TEST", json!({"id": n.name})).await?;
    if n.target.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if out["ok"].as_bool() == Some(true) {
        println!(
            "ok: {} {} (protocol {}), {} tools, {} ms",
            out["serverInfo"]["name"].as_str().unwrap_or("?"),
            out["serverInfo"]["version"].as_str().unwrap_or(""),
            out["protocolVersion"].as_str().unwrap_or("?"),
            out["toolCount"],
            out["latencyMs"]
        );
    }
    if out["ok"].as_bool() != Some(true) {
        // `error` is `{"kind", "message"}` (classified by the mesh).
        let error = &out["error"];
        let message = error["message"].as_str().or(error.as_str()).unwrap_or("unknown error");
        bail!("connection test failed: {message}");
    }
    Ok(())
}

/// `mcp-mesh import FILE`.
pub async fn import(a: ImportArgs) -> anyhow::Result<()> {
    let (entries, skipped) = match (&a.file, &a.registry) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            mesh_admin::import::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        }
        (None, Some(registry)) => {
            from_registry(registry, a.registry_key.as_deref(), a.search.as_deref(), a.allow_private).await?
        }
        (None, None) => bail!("give a config file or --registry URL"),
    };
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    let mut failed = 0;
    for e in entries {
        let slug = e.input.slug.clone().unwrap_or_default();
        if a.dry_run {
            println!("would create \"{slug}\" ({}) from \"{}\"", e.input.transport.as_deref().unwrap_or("?"), e.name);
            continue;
        }
        let mut v = serde_json::to_value(ImportInput(&e.input))?;
        if let Value::Object(m) = &mut v {
            m.retain(|_, x| !x.is_null());
        }
        match api::manage(&a.target, "COLLECTION_CONNECTIONS_CREATE", v).await {
            Ok(_) => println!("created \"{slug}\" from \"{}\"", e.name),
            Err(err) => {
                failed += 1;
                eprintln!("failed \"{}\": {err:#}", e.name);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} server(s) could not be imported");
    }
    Ok(())
}

/// Every page of a registry's listing, read into connection inputs (the notes printed as found).
/// Only the latest version of each server, only active ones, one per slug; remotes that are not
/// public https only with `allow_private`.
async fn from_registry(
    registry: &url::Url,
    key: Option<&str>,
    search: Option<&str>,
    allow_private: bool,
) -> anyhow::Result<(Vec<mesh_admin::import::Imported>, Vec<String>)> {
    // A registry that keeps answering is not followed for ever, nor read into memory whole.
    const MAX_PAGES: usize = 100;
    const MAX_PAGE_BYTES: usize = 8 << 20;
    const MAX_SERVERS: usize = 5_000;
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let list = registry.join("v0.1/servers").context("invalid registry URL")?;
    let (mut entries, mut skipped) = (Vec::<mesh_admin::import::Imported>::new(), Vec::new());
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut req = http.get(list.clone()).query(&[("limit", "100"), ("version", "latest")]);
        if let Some(s) = search {
            req = req.query(&[("search", s)]);
        }
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the registry at {registry}: {}", e.without_url()))?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) =
            resp.chunk().await.map_err(|e| anyhow::anyhow!("reading {registry}: {}", e.without_url()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_PAGE_BYTES {
                bail!("a page of the registry at {registry} is larger than {} MiB", MAX_PAGE_BYTES >> 20);
            }
        }
        let page: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "the registry at {registry} answered {status}: {}",
                page["error"].as_str().or(page["detail"].as_str()).unwrap_or("")
            );
        }
        let got = mesh_admin::import::parse_registry(&page).map_err(|e| anyhow::anyhow!("{registry}: {e}"))?;
        for n in got.notes {
            eprintln!("note: {n}");
        }
        for e in got.servers {
            let url = e.input.url.as_deref().and_then(|u| url::Url::parse(u).ok());
            if !allow_private && !url.as_ref().is_some_and(public_https) {
                skipped.push(format!("{}: not a public https remote (--allow-private takes it)", e.name));
            } else if entries.iter().any(|x| x.input.slug == e.input.slug) {
                skipped.push(format!("{}: another server already takes the name {:?}", e.name, e.input.slug));
            } else {
                entries.push(e);
            }
        }
        skipped.extend(got.skipped);
        if entries.len() > MAX_SERVERS {
            bail!("the registry at {registry} lists more than {MAX_SERVERS} servers; narrow it with --search");
        }
        let next = page["metadata"]["nextCursor"].as_str().filter(|c| !c.is_empty()).map(str::to_string);
        if next.is_none() || next == cursor {
            return Ok((entries, skipped));
        }
        cursor = next;
    }
    bail!("the registry at {registry} gave more than {MAX_PAGES} pages; narrow it with --search")
}

/// Whether `url` is https to a name or a public address (the relay's own classification). A name
/// that resolves to a private address is still caught when the mesh connects, by the trust rules
/// of whoever imports.
fn public_https(url: &url::Url) -> bool {
    use mesh_relay::upstream::reach::is_public;
    url.scheme() == "https"
        && match url.host() {
            Some(url::Host::Domain(d)) => !d.eq_ignore_ascii_case("localhost") && !d.ends_with(".localhost"),
            Some(url::Host::Ipv4(ip)) => is_public(ip.into()),
            Some(url::Host::Ipv6(ip)) => is_public(ip.into()),
            None => false,
        }
}

/// Serialises an import entry as management tool arguments.
struct ImportInput<'a>(&'a mesh_admin::connections::ConnectionInput);

impl serde::Serialize for ImportInput<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let i = self.0;
        json!({"slug": i.slug, "title": i.title, "description": i.description, "transport": i.transport, "url": i.url, "headers": i.headers,
               "command": i.command, "args": i.args, "env": i.env, "cwd": i.cwd})
        .serialize(s)
    }
}

/// `mcp-mesh call CONNECTION TOOL`.
pub async fn call(a: CallArgs) -> anyhow::Result<()> {
    let mut args = match &a.args_json {
        Some(j) => match serde_json::from_str::<Value>(j).context("--args must be a JSON object")? {
            Value::Object(m) => m,
            _ => bail!("--args must be a JSON object"),
        },
        None => Map::new(),
    };
    for kv in &a.arg {
        let (k, v) = kv.split_once('=').with_context(|| format!("--arg '{kv}' is not key=value"))?;
        args.insert(k.to_string(), serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string())));
    }
    let client = api::connect(&a.target, &format!("/mcp/{}", a.connection)).await?;
    let result = client.call_tool(&a.tool, Value::Object(args)).await;
    client.close().await;
    let result = result.map_err(|e| anyhow::anyhow!("{}: {e}", a.tool))?;
    if a.target.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        let text = api::text_of(&result);
        match (text.is_empty(), result.get("structuredContent")) {
            (true, Some(s)) => println!("{}", serde_json::to_string_pretty(s)?),
            _ => println!("{text}"),
        }
    }
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        bail!("the tool reported an error");
    }
    Ok(())
}
