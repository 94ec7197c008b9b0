//! Connections: registering upstream MCP servers, with their secrets sealed in the vault.

pub mod catalog;
mod input;

use input::{apply, validate_secret};
pub(crate) use input::{validate_command, validate_env_name};

use crate::{Admin, AdminError};
use mesh_core::{id, Principal, Secret};
use mesh_relay::ports::{ResolvedRoute, RouteResolver};
use mesh_relay::{RelayError, TransportSpec, UpstreamSpec};
use mesh_store::{Connection, SecretRow};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The default upstream request timeout.
pub const DEFAULT_TIMEOUT_MS: i64 = 60_000;

/// What a caller may set on a connection. On update, absent fields stay as they are; `headers`
/// or `env`, when given, replace the whole set. Its `Debug` shows secrets by name only.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionInput {
    /// Unique per organisation; used in `/mcp/{slug}`.
    pub slug: Option<String>,
    /// Display name.
    pub title: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// `http`, `sse`, `stdio` or `capability`; inferred from `url`/`command`/`selector` when absent.
    pub transport: Option<String>,
    /// For `capability`: which registered providers to balance over (capability, tags, version).
    pub selector: Option<mesh_core::registry::Dependency>,
    /// Endpoint of an `http` or `sse` upstream.
    pub url: Option<String>,
    /// Request headers for `http`/`sse` (secret, write-only).
    pub headers: Option<BTreeMap<String, String>>,
    /// A catalogue template to make a `stdio` upstream from (its command and arguments).
    pub template: Option<String>,
    /// Program of a `stdio` upstream.
    pub command: Option<String>,
    /// Its arguments.
    pub args: Option<Vec<String>>,
    /// Its environment (secret, write-only).
    pub env: Option<BTreeMap<String, String>>,
    /// Its working directory.
    pub cwd: Option<String>,
    /// Per-request timeout in milliseconds.
    pub timeout_ms: Option<i64>,
    /// `active` or `disabled`.
    pub status: Option<String>,
    /// Admit callers without credentials to this connection (off by default).
    pub anonymous: Option<bool>,
    /// How the mesh authenticates upstream: `none`, `headers` (the default) or `oauth`.
    pub auth: Option<String>,
    /// With `oauth`: one grant for the whole connection instead of one per user.
    pub oauth_shared: Option<bool>,
    /// With `oauth`: the client registered by hand at the upstream's authorization server (an
    /// empty string removes it; without one the mesh registers itself).
    pub oauth_client_id: Option<String>,
    /// Its secret, for a confidential client (sealed; write-only).
    pub oauth_client_secret: Option<String>,
}

impl std::fmt::Debug for ConnectionInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |m: &Option<BTreeMap<String, String>>| m.as_ref().map(|m| m.keys().cloned().collect::<Vec<_>>());
        f.debug_struct("ConnectionInput")
            .field("slug", &self.slug)
            .field("transport", &self.transport)
            .field("selector", &self.selector)
            .field("url", &self.url.as_deref().map(mesh_audit::redact::mask_url))
            .field("headers", &names(&self.headers))
            .field("template", &self.template)
            .field("command", &self.command)
            .field("args", &self.args.as_ref().map(|a| mesh_audit::redact::mask_args(a)))
            .field("env", &names(&self.env))
            .field("status", &self.status)
            .field("auth", &self.auth)
            .field("oauth_shared", &self.oauth_shared)
            .field("oauth_client_id", &self.oauth_client_id)
            .field("oauth_client_secret", &self.oauth_client_secret.as_ref().map(|_| MASK))
            .finish_non_exhaustive()
    }
}

/// A connection as shown to callers: secrets appear by name only, values masked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    /// Id.
    pub id: String,
    /// Slug.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Transport.
    pub transport: String,
    /// URL (http/sse).
    pub url: Option<String>,
    /// What a `capability` connection balances over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<Value>,
    /// Header names with masked values.
    pub headers: BTreeMap<String, String>,
    /// Command (stdio).
    pub command: Option<String>,
    /// Arguments (stdio).
    pub args: Vec<String>,
    /// Env names with masked values.
    pub env: BTreeMap<String, String>,
    /// Working directory (stdio).
    pub cwd: Option<String>,
    /// Timeout in milliseconds.
    pub timeout_ms: i64,
    /// Status.
    pub status: String,
    /// Whether callers without credentials are admitted.
    pub anonymous: bool,
    /// The catalogue template a stdio connection was made from.
    pub template: Option<String>,
    /// `headers` or `oauth`.
    pub auth: String,
    /// With `oauth`: one grant for the whole connection.
    pub oauth_shared: bool,
    /// With `oauth`: the client registered by hand, if any (its secret is never shown).
    pub oauth_client_id: Option<String>,
    /// A stdio connection whose command was set directly, not from the catalogue.
    pub outside_catalogue: bool,
    /// Whether it may reach internal networks (an operator set its URL, or it predates the
    /// trust tiers).
    pub trusted: bool,
    /// The proxy endpoint path.
    pub endpoint: String,
    /// Created, ms since epoch.
    pub created_at: i64,
    /// Updated, ms since epoch.
    pub updated_at: i64,
}

const MASK: &str = "***";

fn require_manage(p: &Principal) -> Result<(), AdminError> {
    if p.role.can_manage() {
        Ok(())
    } else {
        Err(AdminError::Forbidden("managing connections needs the owner or admin role"))
    }
}

fn aad(connection_id: &str, kind: &str, name: &str) -> Vec<u8> {
    format!("{connection_id}/{kind}/{name}").into_bytes()
}

impl Admin {
    /// Registers a connection.
    pub async fn create_connection(&self, p: &Principal, input: ConnectionInput) -> Result<ConnectionView, AdminError> {
        require_manage(p)?;
        let now = id::now_ms();
        let slug = input.slug.clone().ok_or_else(|| AdminError::Invalid("slug is required".into()))?;
        let mut c = Connection {
            id: id::new_id("conn"),
            org_id: p.org_id.clone(),
            slug: slug.clone(),
            title: input.title.clone().unwrap_or_else(|| slug.clone()),
            description: None,
            transport: String::new(),
            url: None,
            command: None,
            args: Vec::new(),
            cwd: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            status: "active".into(),
            anonymous: false,
            created_at: now,
            updated_at: now,
            trusted: false,
            template: None,
            auth: "headers".into(),
            oauth_shared: false,
            selector: None,
        };
        apply(&mut c, &input)?;
        crate::upstream_oauth::check_input(&c, &input)?;
        self.govern_host_access(p, &mut c, &input, None, &[]).await?;
        self.check_anonymous_slug(&c).await?;
        let secrets = self.seal_secrets(&c, &input)?.unwrap_or_default();
        self.store.create_connection(&c, &secrets).await?;
        self.apply_preregistered(p, &c, &input).await?;
        self.keys.reload_anonymous(&self.store).await?;
        self.announce(crate::Change::Connections { org_id: p.org_id.clone() });
        tracing::info!(org = %p.org_id, connection = %c.slug, transport = %c.transport, "connection created");
        self.view(c).await
    }

    /// Lists the organisation's connections.
    pub async fn list_connections(&self, p: &Principal) -> Result<Vec<ConnectionView>, AdminError> {
        let mut out = Vec::new();
        for c in self.store.list_connections(&p.org_id).await? {
            out.push(self.view(c).await?);
        }
        Ok(out)
    }

    /// One connection, by id or slug.
    pub async fn get_connection(&self, p: &Principal, id_or_slug: &str) -> Result<ConnectionView, AdminError> {
        let c = self.find(p, id_or_slug).await?;
        self.view(c).await
    }

    /// Changes a connection.
    pub async fn update_connection(
        &self,
        p: &Principal,
        id_or_slug: &str,
        input: ConnectionInput,
    ) -> Result<ConnectionView, AdminError> {
        require_manage(p)?;
        let before = self.find(p, id_or_slug).await?;
        self.tool_lists.forget(&before.id);
        let mut c = before.clone();
        let mut input = input;
        let stored = self.store.connection_secrets(&p.org_id, &c.id).await?;
        let stored_env: Vec<String> = stored.iter().filter(|r| r.kind == "env").map(|r| r.name.clone()).collect();
        apply(&mut c, &input)?;
        crate::upstream_oauth::check_input(&c, &input)?;
        self.govern_host_access(p, &mut c, &input, Some(&before), &stored_env).await?;
        if c.transport != "stdio" && input.env.is_none() && !stored_env.is_empty() {
            // An environment belongs to a program: a connection that no longer runs one drops it.
            input.env = Some(BTreeMap::new());
        }
        if c.transport == "capability" && input.headers.is_none() && stored.iter().any(|r| r.kind == "header") {
            // Each provider is reached with its own connection's headers: none are kept here.
            input.headers = Some(BTreeMap::new());
        }
        self.check_anonymous_slug(&c).await?;
        c.updated_at = id::now_ms();
        let mut secrets = self.seal_secrets(&c, &input)?;
        if let Some(rows) = secrets.as_mut() {
            // Replacing one kind keeps the other: carry over stored rows of the kind not given.
            let keep =
                |kind: &str| (kind == "header" && input.headers.is_none()) || (kind == "env" && input.env.is_none());
            rows.extend(stored.into_iter().filter(|r| keep(&r.kind)));
        }
        self.store.update_connection(&c, secrets.as_deref()).await?;
        let client_changed = self.apply_preregistered(p, &c, &input).await?;
        self.keys.reload_anonymous(&self.store).await?;
        if c.slug != before.slug {
            // Grants name the route as the client wrote it: the old name is free for another
            // connection now, which must not inherit them.
            self.route_deleted(&p.org_id, &[&before.slug]).await?;
        }
        let upstream_changed = c.status != "active"
            || secrets.is_some()
            || (c.transport.as_str(), &c.url, &c.command, &c.args, &c.cwd, &c.selector)
                != (
                    before.transport.as_str(),
                    &before.url,
                    &before.command,
                    &before.args,
                    &before.cwd,
                    &before.selector,
                );
        if (&c.url, &c.auth, c.oauth_shared) != (&before.url, &before.auth, before.oauth_shared) {
            // Tokens are for one resource and one way of holding them: another URL or mode
            // starts from no grant.
            self.store.delete_upstream_grants_at(&p.org_id, &c.id).await?;
        }
        if upstream_changed || client_changed || c.auth != before.auth {
            self.announce(crate::Change::ConnectionEnded { id: c.id.clone() });
        }
        self.announce(crate::Change::Connections { org_id: p.org_id.clone() });
        tracing::info!(org = %p.org_id, connection = %c.slug, "connection updated");
        self.view(c).await
    }

    /// Deletes a connection and its secrets.
    pub async fn delete_connection(&self, p: &Principal, id_or_slug: &str) -> Result<String, AdminError> {
        require_manage(p)?;
        let c = self.find(p, id_or_slug).await?;
        if !self.store.delete_connection(&p.org_id, &c.id).await? {
            return Err(AdminError::NotFound(format!("connection '{id_or_slug}'")));
        }
        self.keys.reload_anonymous(&self.store).await?;
        self.route_deleted(&p.org_id, &[&c.slug, &c.id]).await?;
        self.announce(crate::Change::ConnectionEnded { id: c.id.clone() });
        self.announce(crate::Change::Connections { org_id: p.org_id.clone() });
        tracing::info!(org = %p.org_id, connection = %c.slug, "connection deleted");
        Ok(c.id)
    }

    /// Initialises the upstream and reports what it is.
    pub async fn test_connection(&self, p: &Principal, id_or_slug: &str) -> Result<Value, AdminError> {
        let c = self.find(p, id_or_slug).await?;
        let spec = self.spec(&c).await?;
        let started = Instant::now();
        // Failures are reported classified, never with the upstream's own bytes (the test must not
        // be a port scanner with readable output, mesh_relay::failure); the whole error is logged.
        let failed = |e: &mesh_relay::client::ClientError| {
            tracing::info!(org = %p.org_id, connection = %c.slug, error = %e, "connection test failed");
            mesh_relay::failure::Failure::of(e).to_json()
        };
        let client = match mesh_relay::client::McpClient::connect(&spec, &self.http, "mcp-mesh-connection-test").await {
            Ok(c) => c,
            Err(e) => return Ok(json!({"ok": false, "connection": c.slug, "error": failed(&e)})),
        };
        let init = client.initialize_result().clone();
        let tools = client.list_tools().await;
        client.close().await;
        let mut out = json!({
            "ok": tools.is_ok(),
            "connection": c.slug,
            "protocolVersion": init.get("protocolVersion"),
            "serverInfo": init.get("serverInfo"),
            "capabilities": init.get("capabilities"),
            "latencyMs": started.elapsed().as_millis() as u64,
        });
        match tools {
            Ok(t) => out["toolCount"] = json!(t.len()),
            Err(e) => {
                let mut error = failed(&e);
                error["message"] =
                    json!(format!("tools/list failed: {}", error["message"].as_str().unwrap_or_default()));
                out["error"] = error;
            }
        }
        Ok(out)
    }

    /// A connection of the caller's organisation, by id or slug.
    pub(crate) async fn find_connection(&self, p: &Principal, id_or_slug: &str) -> Result<Connection, AdminError> {
        self.find(p, id_or_slug).await
    }

    async fn find(&self, p: &Principal, id_or_slug: &str) -> Result<Connection, AdminError> {
        self.store
            .get_connection(&p.org_id, id_or_slug)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("connection '{id_or_slug}'")))
    }

    fn seal_secrets(&self, c: &Connection, input: &ConnectionInput) -> Result<Option<Vec<SecretRow>>, AdminError> {
        if input.headers.is_none() && input.env.is_none() {
            return Ok(None);
        }
        let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
        let mut rows = Vec::new();
        let sets = [("header", &input.headers), ("env", &input.env)];
        for (kind, set) in sets {
            for (name, value) in set.iter().flat_map(|m| m.iter()) {
                validate_secret(kind, name, value)?;
                let sealed = ring.seal(value.as_bytes(), &aad(&c.id, kind, name))?;
                rows.push(SecretRow {
                    id: id::new_id("sec"),
                    org_id: c.org_id.clone(),
                    connection_id: c.id.clone(),
                    kind: kind.into(),
                    name: name.clone(),
                    key_id: sealed.key_id,
                    ciphertext: sealed.ciphertext,
                });
            }
        }
        Ok(Some(rows))
    }

    async fn view(&self, c: Connection) -> Result<ConnectionView, AdminError> {
        let secrets = self.store.connection_secrets(&c.org_id, &c.id).await?;
        let oauth_client_id = self.preregistered_client_id(&c).await?;
        let masked = |kind: &str| -> BTreeMap<String, String> {
            secrets.iter().filter(|s| s.kind == kind).map(|s| (s.name.clone(), MASK.to_string())).collect()
        };
        Ok(ConnectionView {
            headers: masked("header"),
            env: masked("env"),
            endpoint: format!("/mcp/{}", c.slug),
            id: c.id,
            slug: c.slug,
            title: c.title,
            description: c.description,
            outside_catalogue: c.transport == "stdio" && c.template.is_none(),
            transport: c.transport,
            url: c.url.as_deref().map(mesh_audit::redact::mask_url),
            selector: c.selector.as_deref().and_then(|s| serde_json::from_str(s).ok()),
            command: c.command,
            args: mesh_audit::redact::mask_args(&c.args),
            cwd: c.cwd,
            timeout_ms: c.timeout_ms,
            status: c.status,
            anonymous: c.anonymous,
            template: c.template,
            auth: c.auth,
            oauth_shared: c.oauth_shared,
            oauth_client_id,
            trusted: c.trusted,
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
    }

    /// The connection as an upstream spec, with its secrets opened. The only place plaintext
    /// credentials are produced.
    pub async fn spec(&self, c: &Connection) -> Result<UpstreamSpec, AdminError> {
        let rows = self.store.connection_secrets(&c.org_id, &c.id).await?;
        let mut headers = Vec::new();
        let mut env = Vec::new();
        {
            let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
            for r in rows {
                let plain = ring.open(&r.key_id, &r.ciphertext, &aad(&c.id, &r.kind, &r.name))?;
                let value = Secret::new(
                    String::from_utf8(plain).map_err(|_| AdminError::Invalid("secret is not UTF-8".into()))?,
                );
                match r.kind.as_str() {
                    "header" => headers.push((r.name, value)),
                    _ => env.push((r.name, value)),
                }
            }
        }
        let url = || -> Result<url::Url, AdminError> {
            let raw = c.url.as_deref().ok_or_else(|| AdminError::Invalid("connection has no url".into()))?;
            url::Url::parse(raw).map_err(|e| AdminError::Invalid(format!("invalid url: {e}")))
        };
        let transport = match c.transport.as_str() {
            "capability" => {
                let selector: mesh_core::registry::Dependency = c
                    .selector
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .ok_or_else(|| AdminError::Invalid("connection has no valid selector".into()))?;
                // Boxed: filling a source opens its providers' specs, which is this function.
                let providers = Box::pin(self.selectors.source(self, &c.org_id, &selector)).await?;
                TransportSpec::Balanced { selector: crate::registry::selectors::describe(&selector), providers }
            }
            "http" => TransportSpec::Http { url: url()?, headers },
            "sse" => TransportSpec::Sse { url: url()?, headers },
            _ => TransportSpec::Stdio {
                command: c.command.clone().unwrap_or_default(),
                args: c.args.clone(),
                env,
                cwd: Some(match &c.cwd {
                    Some(dir) => dir.into(),
                    None => self.child_dir(c)?,
                }),
            },
        };
        Ok(UpstreamSpec {
            name: c.slug.clone(),
            transport,
            timeout: Duration::from_millis(c.timeout_ms as u64),
            reach: self.trust.reach(c.trusted),
            credential: None,
        })
    }

    /// Gives `spec` (of `c`, an `oauth` connection) `p`'s credential: their own token (or the
    /// connection's shared one), fresh — never theirs from the request (no token passthrough),
    /// never another user's. [`AdminError::AuthorizationRequired`] when there is none yet.
    pub(crate) async fn oauth_credential(
        &self,
        p: &Principal,
        c: &Connection,
        spec: &mut UpstreamSpec,
    ) -> Result<(), AdminError> {
        let token = self.upstream_token(p, c).await?;
        match &mut spec.transport {
            // Renewed while the session lives.
            TransportSpec::Http { .. } => {
                spec.credential =
                    Some(crate::upstream_oauth::LiveToken::new(self.clone(), p.clone(), c.clone(), token));
            }
            // The legacy transport keeps the token it opened with (its GET stream's headers are
            // fixed); an expired one ends the session (`RouteResolver::refused`).
            TransportSpec::Sse { headers, .. } => {
                headers.retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
                headers.push(("authorization".into(), Secret::new(format!("Bearer {}", token.0))));
            }
            TransportSpec::Stdio { .. } | TransportSpec::Balanced { .. } => {}
        }
        Ok(())
    }

    /// The working directory of a stdio child without one of its own: a folder per connection
    /// in the mesh's private children directory, never the mesh's working or data directory
    /// (a relative path in a command must not land next to the vault key).
    fn child_dir(&self, c: &Connection) -> Result<std::path::PathBuf, AdminError> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.children_dir.path().join(&c.id);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| {
            tracing::error!(dir = %dir.display(), error = %e, "cannot create a stdio child's working directory");
            AdminError::Invalid(format!("connection {} cannot start: no working directory for its process", c.slug))
        })?;
        Ok(dir)
    }

    /// Applies the trust tiers to a connection being saved (`before`: as stored, on update):
    /// a command line comes from the catalogue unless the caller may set one, and a URL set by
    /// someone who may not reach internal networks makes the connection untrusted.
    async fn govern_host_access(
        &self,
        p: &Principal,
        c: &mut Connection,
        input: &ConnectionInput,
        before: Option<&Connection>,
        stored_env: &[String],
    ) -> Result<(), AdminError> {
        let sets_command = input.command.is_some() || input.args.is_some() || input.cwd.is_some();
        // The template's variables when this request names the template (read once).
        let mut named_env: Option<Vec<String>> = None;
        if let Some(name) = &input.template {
            if sets_command || input.url.is_some() {
                return Err(AdminError::Invalid(
                    "template: a connection made from a template takes its command and arguments from it; \
                     give no command, args, cwd or url"
                        .into(),
                ));
            }
            self.trust.check_template()?;
            let t = self
                .store
                .get_template(name)
                .await?
                .ok_or_else(|| AdminError::Invalid(format!("template: no template '{name}' in the catalogue")))?;
            c.transport = "stdio".into();
            c.command = Some(t.command);
            c.args = t.args;
            c.cwd = None;
            c.url = None;
            c.template = Some(t.name);
            c.trusted = false;
            named_env = Some(t.env);
        } else if sets_command {
            self.trust.check_raw_command(p)?;
            c.template = None;
        }
        // The environment the child would get: what is given now, else what is stored. Checked
        // whole, so that variables stored under another transport or template never ride along.
        let env: Vec<&String> = match &input.env {
            Some(given) => given.keys().collect(),
            None => stored_env.iter().collect(),
        };
        if c.transport == "stdio" {
            let was_stdio = before.is_some_and(|b| b.transport == "stdio");
            let template_changed = input.template.is_some();
            if c.template.is_none() && (!was_stdio || input.env.is_some()) {
                // A new command line, or new environment for one an operator wrote.
                self.trust.check_raw_command(p)?;
            }
            if let Some(name) = &c.template {
                if input.env.is_some() {
                    self.trust.check_template()?;
                }
                let allowed = match named_env {
                    Some(env) => Some(env),
                    None => self.store.get_template(name).await?.map(|t| t.env),
                };
                match allowed {
                    Some(allowed) => {
                        if let Some(extra) = env.iter().find(|k| !allowed.contains(k)) {
                            return Err(AdminError::Invalid(format!(
                                "env: template '{name}' does not take '{extra}' (it takes: {}){}",
                                if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") },
                                if input.env.is_none() { "; give env again with only those" } else { "" }
                            )));
                        }
                    }
                    // The template was withdrawn: its list of variables went with it.
                    None if input.env.is_some() || template_changed => self.trust.check_raw_command(p)?,
                    None => {}
                }
            }
        } else {
            if input.env.as_ref().is_some_and(|e| !e.is_empty()) {
                return Err(AdminError::Invalid(format!(
                    "env: only a stdio connection has an environment (this one is {})",
                    c.transport
                )));
            }
            c.template = None;
            // Whoever sets the URL — even to what it was — decides where it may reach.
            let url_set = input.url.is_some() || before.is_none_or(|b| b.url != c.url || b.transport == "stdio");
            if url_set {
                c.trusted = self.trust.may_reach_private(p);
            }
        }
        Ok(())
    }

    /// Anonymous callers find a connection by slug alone: two organisations opening the same
    /// slug would shadow each other, so the second is refused.
    async fn check_anonymous_slug(&self, c: &Connection) -> Result<(), AdminError> {
        if !c.anonymous || c.status != "active" {
            return Ok(());
        }
        let taken = self
            .store
            .anonymous_connections()
            .await?
            .into_iter()
            .any(|(org, id, slug)| org != c.org_id && id != c.id && slug == c.slug);
        if taken {
            return Err(AdminError::Conflict(format!(
                "anonymous: another organisation already opens a connection named '{}' to callers without \
                 credentials; choose another slug",
                c.slug
            )));
        }
        Ok(())
    }
}

/// Resolves `/mcp/{route}` to an upstream for the relay.
pub struct Routes(pub Admin);

#[async_trait::async_trait]
impl RouteResolver for Routes {
    async fn resolve(&self, principal: &Principal, route: &str) -> Result<ResolvedRoute, RelayError> {
        let c = match self.0.store.get_connection(&principal.org_id, route).await {
            // The anonymous principal reaches only connections opened to it.
            Ok(Some(c)) if c.status == "active" && (c.anonymous || !principal.is_anonymous()) => c,
            Ok(_) => return Err(RelayError::RouteNotFound(route.chars().take(64).collect())),
            Err(e) => return Err(RelayError::Internal(format!("store: {e}"))),
        };
        let mut spec = self.0.spec(&c).await.map_err(|e| {
            tracing::error!(connection = %c.slug, error = %e, "cannot build upstream spec");
            RelayError::Internal(format!("connection {} cannot be opened: {}", c.slug, e.public_message()))
        })?;
        if c.auth == "oauth" {
            self.0.oauth_credential(principal, &c, &mut spec).await.map_err(|e| match e {
                AdminError::AuthorizationRequired(links) => RelayError::AuthorizationRequired(links),
                e => {
                    tracing::warn!(connection = %c.slug, error = %e, "no upstream token");
                    RelayError::UpstreamUnavailable(e.public_message())
                }
            })?;
        }
        Ok(ResolvedRoute { id: c.id, slug: c.slug, spec })
    }

    async fn refused(&self, principal: &Principal, connection_id: &str) {
        if let Err(e) = self.0.upstream_refused(principal, connection_id).await {
            tracing::warn!(connection = %connection_id, error = %e, "cannot mark an upstream token refused");
        }
    }

    async fn authorized(&self, principal: &Principal, elicitation_id: &str) -> bool {
        self.0.upstream_authorized(principal, elicitation_id).await
    }

    async fn step_up(&self, principal: &Principal, connection_id: &str, challenge: &str) -> Option<RelayError> {
        match self.0.upstream_step_up(principal, connection_id, challenge).await {
            AdminError::AuthorizationRequired(links) => Some(RelayError::AuthorizationRequired(links)),
            e => {
                tracing::warn!(connection = %connection_id, error = %e, "cannot ask for a wider upstream authorization");
                None
            }
        }
    }

    async fn resolve_gateway(
        &self,
        principal: &Principal,
        gateway: &str,
    ) -> Result<mesh_relay::ports::ResolvedGateway, RelayError> {
        self.0.resolve_gateway(principal, gateway).await.map_err(|e| match e {
            AdminError::NotFound(_) => RelayError::RouteNotFound(gateway.chars().take(64).collect()),
            AdminError::AuthorizationRequired(links) => RelayError::AuthorizationRequired(links),
            e => {
                tracing::error!(gateway = %gateway.chars().take(64).collect::<String>(), error = %e, "cannot resolve gateway");
                RelayError::Internal(format!("gateway cannot be opened: {}", e.public_message()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_secrets_by_name_only() {
        let input = ConnectionInput {
            headers: Some(BTreeMap::from([("Authorization".into(), "Bearer header-secret".into())])),
            env: Some(BTreeMap::from([("API_KEY".into(), "env-secret".into())])),
            oauth_client_id: Some("client-1".into()),
            oauth_client_secret: Some("client-secret".into()),
            ..Default::default()
        };
        let shown = format!("{input:?}");
        for secret in ["header-secret", "env-secret", "client-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        for name in ["Authorization", "API_KEY", "client-1"] {
            assert!(shown.contains(name), "{shown}");
        }
    }
}
