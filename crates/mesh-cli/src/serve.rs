//! `mcp-mesh serve`: settings from flags and environment, then the server until Ctrl-C/SIGTERM.

use anyhow::Context;
use mesh_admin::trust::{Trust, Who};
use mesh_core::Secret;
use mesh_server::{Config, Mesh};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Server settings; every flag also reads its environment variable (flags win).
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "MESH_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Data directory (SQLite database, vault key file, owner key).
    #[arg(long, env = "MESH_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Database URL: sqlite://… or postgres://… (default: SQLite in the data directory).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Vault key, 32 bytes as base64 or hex (default: a key file generated in the data directory).
    #[arg(long, env = "MESH_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    /// Earlier vault keys, comma-separated, still needed to open old secrets.
    #[arg(long, env = "MESH_ENCRYPTION_KEYS_OLD", hide_env_values = true, value_delimiter = ',')]
    encryption_keys_old: Vec<String>,
    /// The URL clients use to reach the mesh (its host and origin are then accepted).
    #[arg(long, env = "MESH_PUBLIC_URL")]
    public_url: Option<url::Url>,
    /// Extra accepted Origin values, comma-separated.
    #[arg(long, env = "MESH_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Extra accepted Host names, comma-separated.
    #[arg(long, env = "MESH_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MESH_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Seconds after which an idle MCP session is closed.
    #[arg(long, env = "MESH_SESSION_IDLE_SECS", default_value_t = 1800)]
    session_idle_secs: u64,
    /// Seconds without a heartbeat after which a registered agent is unhealthy (no longer
    /// resolved or listed as healthy).
    #[arg(long, env = "MESH_REGISTRY_UNHEALTHY_SECS", default_value_t = 10)]
    registry_unhealthy_secs: u64,
    /// Seconds an unhealthy agent is remembered before it and its connection are removed.
    #[arg(long, env = "MESH_REGISTRY_RETENTION_SECS", default_value_t = 3600)]
    registry_retention_secs: u64,
    /// Seconds a script of a `code` virtual MCP may run, its tool calls included.
    #[arg(long, env = "MESH_CODE_TIMEOUT_SECS", default_value_t = 30)]
    code_timeout_secs: u64,
    /// MiB of memory a script may use.
    #[arg(long, env = "MESH_CODE_MEMORY_MB", default_value_t = 64)]
    code_memory_mb: usize,
    /// KiB of stack a script may use.
    #[arg(long, env = "MESH_CODE_STACK_KB", default_value_t = 512)]
    code_stack_kb: usize,
    /// Tool calls one script may make.
    #[arg(long, env = "MESH_CODE_MAX_CALLS", default_value_t = 64)]
    code_max_calls: usize,
    /// KiB a script's result (and, separately, its log) may take.
    #[arg(long, env = "MESH_CODE_MAX_OUTPUT_KB", default_value_t = 256)]
    code_max_output_kb: usize,
    /// Days audit rows are kept before they are pruned (0 keeps them forever).
    #[arg(long, env = "MESH_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    audit_retention_days: u32,
    /// Who may set a stdio connection's own command: operators, admins, or off (organisation
    /// admins can always use the operators' template catalogue, unless off).
    #[arg(long, env = "MESH_STDIO", default_value = "operators")]
    stdio: String,
    /// Who may create organisations: operators or admins.
    #[arg(long, env = "MESH_ORG_CREATE", default_value = "operators")]
    org_create: String,
    /// Who may point HTTP/SSE connections at loopback, private or link-local addresses:
    /// operators or admins.
    #[arg(long, env = "MESH_UPSTREAM_PRIVATE", default_value = "operators")]
    upstream_private: String,
    /// Sessions the mesh holds at once (beyond it: 503).
    #[arg(long, env = "MESH_MAX_SESSIONS", default_value_t = 10_000)]
    max_sessions: usize,
    /// Sessions one organisation holds at once (beyond it: 429).
    #[arg(long, env = "MESH_MAX_SESSIONS_PER_ORG", default_value_t = 1_000)]
    max_sessions_per_org: usize,
    /// Sessions one API key holds at once (beyond it: 429).
    #[arg(long, env = "MESH_MAX_SESSIONS_PER_KEY", default_value_t = 64)]
    max_sessions_per_key: usize,
    /// Sessions one API key may open per minute, also the burst (0 = unlimited).
    #[arg(long, env = "MESH_SESSION_OPEN_PER_MINUTE", default_value_t = 120)]
    session_open_per_minute: u32,
    /// A PEM file of extra root certificates to trust for HTTPS upstreams (a private CA).
    #[arg(long, env = "MESH_UPSTREAM_CA_FILE")]
    upstream_ca_file: Option<std::path::PathBuf>,
    /// Behind a reverse proxy: the header holding the client's address (its last address is
    /// used for per-address login and registration limits), e.g. x-forwarded-for.
    #[arg(long, env = "MESH_CLIENT_IP_HEADER")]
    client_ip_header: Option<String>,
    /// The bearer token GET /metrics asks for; without one the main address serves no metrics.
    #[arg(long, env = "MESH_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// An address of its own for GET /metrics (e.g. 127.0.0.1:9464).
    #[arg(long, env = "MESH_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// OAuth access-token lifetime, in seconds.
    #[arg(long, env = "MESH_OAUTH_ACCESS_TTL_SECS", default_value_t = 3600)]
    oauth_access_ttl_secs: u64,
    /// OAuth refresh-token lifetime, in days (renewed at each rotation).
    #[arg(long, env = "MESH_OAUTH_REFRESH_TTL_DAYS", default_value_t = 30)]
    oauth_refresh_ttl_days: u64,
    /// Dynamic client registration (RFC 7591): on or off.
    #[arg(long, env = "MESH_OAUTH_DCR", default_value = "on")]
    oauth_dcr: String,
    /// Client registrations one address may make per hour.
    #[arg(long, env = "MESH_OAUTH_DCR_PER_HOUR", default_value_t = 20)]
    oauth_dcr_per_hour: u32,
    /// Fetch OAuth client metadata documents from internal addresses too: on or off.
    #[arg(long, env = "MESH_OAUTH_CIMD_PRIVATE", default_value = "off")]
    oauth_cimd_private: String,
    /// Single sign-on: the OpenID Connect provider's issuer URL.
    #[arg(long, env = "MESH_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// Single sign-on: the mesh's client id at the provider.
    #[arg(long, env = "MESH_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// Single sign-on: the mesh's client secret at the provider (sealed into the vault; later
    /// starts may leave it out).
    #[arg(long, env = "MESH_OIDC_CLIENT_SECRET", hide_env_values = true)]
    oidc_client_secret: Option<String>,
    /// Single sign-on: the organisation (slug) people without an account join (default: none;
    /// they are refused).
    #[arg(long, env = "MESH_OIDC_ORG")]
    oidc_org: Option<String>,
    /// Single sign-on: e-mail domains that may sign in this way, comma-separated (default: any
    /// the provider verifies).
    #[arg(long, env = "MESH_OIDC_DOMAINS", value_delimiter = ',')]
    oidc_domains: Vec<String>,
    /// Single sign-on: the role new users get there.
    #[arg(long, env = "MESH_OIDC_ROLE", default_value = "member")]
    oidc_role: String,
    /// Single sign-on: the login button's label.
    #[arg(long, env = "MESH_OIDC_LABEL", default_value = "Single sign-on")]
    oidc_label: String,
}

/// `on`/`off` (and the usual spellings of each) for a setting named `name`.
fn switch(name: &str, v: &str) -> anyhow::Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => anyhow::bail!("{name} must be on or off, not '{v}'"),
    }
}

impl ServeArgs {
    fn config(self) -> anyhow::Result<Config> {
        let mut cfg = Config::with_data_dir(self.data_dir);
        cfg.listen = self.listen;
        cfg.database_url = self.database_url.map(Secret::new);
        cfg.encryption_key = self.encryption_key.map(Secret::new);
        cfg.old_encryption_keys =
            self.encryption_keys_old.into_iter().filter(|k| !k.is_empty()).map(Secret::new).collect();
        cfg.public_url = self.public_url;
        cfg.allowed_origins = self.allowed_origins.into_iter().filter(|o| !o.is_empty()).collect();
        cfg.allowed_hosts =
            self.allowed_hosts.into_iter().filter(|h| !h.is_empty()).map(|h| h.to_ascii_lowercase()).collect();
        cfg.max_body_bytes = self.max_body_bytes;
        cfg.session_idle = Duration::from_secs(self.session_idle_secs);
        cfg.registry = mesh_admin::registry::RegistrySettings {
            unhealthy_after: Duration::from_secs(self.registry_unhealthy_secs),
            retention: Duration::from_secs(self.registry_retention_secs),
        };
        cfg.audit_retention_days = self.audit_retention_days;
        cfg.code_limits = mesh_relay::CodeLimits {
            wall: Duration::from_secs(self.code_timeout_secs),
            memory: self.code_memory_mb.saturating_mul(1 << 20),
            stack: self.code_stack_kb.saturating_mul(1 << 10),
            calls: self.code_max_calls,
            output: self.code_max_output_kb.saturating_mul(1 << 10),
        };
        cfg.trust = Trust {
            stdio: Who::parse("MESH_STDIO", &self.stdio, true).map_err(anyhow::Error::msg)?,
            org_create: Who::parse("MESH_ORG_CREATE", &self.org_create, false).map_err(anyhow::Error::msg)?,
            upstream_private: Who::parse("MESH_UPSTREAM_PRIVATE", &self.upstream_private, false)
                .map_err(anyhow::Error::msg)?,
        };
        cfg.max_sessions = self.max_sessions;
        cfg.max_sessions_per_org = self.max_sessions_per_org;
        cfg.max_sessions_per_key = self.max_sessions_per_key;
        cfg.session_open_per_minute = self.session_open_per_minute;
        cfg.upstream_ca_file = self.upstream_ca_file.filter(|p| !p.as_os_str().is_empty());
        cfg.client_ip_header = self.client_ip_header.filter(|h| !h.is_empty());
        cfg.metrics_token =
            self.metrics_token.filter(|t| !t.trim().is_empty()).map(|t| Secret::new(t.trim().to_string()));
        cfg.metrics_listen = match self.metrics_listen.filter(|a| !a.is_empty()) {
            Some(a) => Some(a.parse().with_context(|| format!("MESH_METRICS_LISTEN is not an address: '{a}'"))?),
            None => None,
        };
        cfg.oauth = mesh_server::config::OAuthConfig {
            access_ttl_secs: self.oauth_access_ttl_secs,
            refresh_ttl_days: self.oauth_refresh_ttl_days,
            dynamic_registration: switch("MESH_OAUTH_DCR", &self.oauth_dcr)?,
            registrations_per_hour: self.oauth_dcr_per_hour,
            documents_from_private: switch("MESH_OAUTH_CIMD_PRIVATE", &self.oauth_cimd_private)?,
            oidc: match (self.oidc_issuer.filter(|s| !s.is_empty()), self.oidc_client_id.filter(|s| !s.is_empty())) {
                (Some(issuer), Some(client_id)) => Some(mesh_server::config::OidcConfig {
                    issuer,
                    client_id,
                    client_secret: self.oidc_client_secret.filter(|s| !s.is_empty()).map(Secret::new),
                    org: self.oidc_org.filter(|s| !s.is_empty()),
                    role: self.oidc_role,
                    label: self.oidc_label,
                    domains: self
                        .oidc_domains
                        .into_iter()
                        .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
                        .filter(|d| !d.is_empty())
                        .collect(),
                }),
                (None, None) => None,
                _ => anyhow::bail!("single sign-on needs both MESH_OIDC_ISSUER and MESH_OIDC_CLIENT_ID"),
            },
        };
        cfg.tracing = mesh_telemetry::TraceSettings::from_env().map_err(anyhow::Error::msg)?;
        cfg.metrics_export = mesh_telemetry::MetricsExport::from_env().map_err(anyhow::Error::msg)?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Runs the server.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = args.config()?;
    // Bound before the mesh is built: with port 0, the OAuth issuer must name the real port.
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    cfg.listen = addr;
    if cfg.public_url.is_none() && !addr.ip().is_loopback() {
        tracing::warn!("listening beyond loopback without MESH_PUBLIC_URL: OAuth metadata names {}; set MESH_PUBLIC_URL to the URL clients use", cfg.issuer());
    }
    let mesh = Mesh::build(&cfg).await?;
    if let Some(key) = &mesh.owner_key {
        let path = mesh_admin::bootstrap::owner_key_path(&cfg.data_dir);
        // Shown once, on the first start; the file lets the CLI on this machine work at once.
        println!("First start: created the default organisation and its owner.");
        println!("Owner API key (shown once, saved to {}):\n  {}", path.display(), key.expose());
        println!(
            "To sign in through OAuth clients as {}, set a password: mcp-mesh user passwd",
            mesh_admin::bootstrap::OWNER_EMAIL
        );
    }
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "MCP Mesh listening: management at http://{addr}/mcp, connections at http://{addr}/mcp/{{connection}}");
    mesh.serve(listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
