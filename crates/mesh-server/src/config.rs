//! Server configuration, validated. Layers (defaults < environment < flags) are applied by the
//! CLI with clap; this type holds the result. `docs/config.md` documents every setting.

use mesh_core::Secret;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`MESH_LISTEN`, default `127.0.0.1:3000`).
    pub listen: SocketAddr,
    /// Data directory (`MESH_DATA_DIR`, default `./data`).
    pub data_dir: PathBuf,
    /// Database URL (`DATABASE_URL`, default `sqlite://<data dir>/mesh.db`).
    pub database_url: Option<Secret<String>>,
    /// Primary vault key (`MESH_ENCRYPTION_KEY`), else a key file in the data dir.
    pub encryption_key: Option<Secret<String>>,
    /// Previous vault keys still needed to open old ciphertexts (`MESH_ENCRYPTION_KEYS_OLD`).
    pub old_encryption_keys: Vec<Secret<String>>,
    /// The URL clients use to reach the mesh (`MESH_PUBLIC_URL`).
    pub public_url: Option<url::Url>,
    /// Extra accepted `Origin` values (`MESH_ALLOWED_ORIGINS`).
    pub allowed_origins: Vec<String>,
    /// Extra accepted `Host` names (`MESH_ALLOWED_HOSTS`).
    pub allowed_hosts: Vec<String>,
    /// Largest accepted request body in bytes (`MESH_MAX_BODY_BYTES`, default 4 MiB).
    pub max_body_bytes: usize,
    /// Idle MCP sessions are closed after this long (`MESH_SESSION_IDLE_SECS`, default 1800).
    pub session_idle: Duration,
    /// Audit rows older than this many days are pruned (`MESH_AUDIT_RETENTION_DAYS`, default 90;
    /// 0 keeps them forever).
    pub audit_retention_days: u32,
    /// The agent registry's timing (`MESH_REGISTRY_UNHEALTHY_SECS`, default 10;
    /// `MESH_REGISTRY_RETENTION_SECS`, default 3600).
    pub registry: mesh_admin::registry::RegistrySettings,
    /// What a script of a `code` virtual MCP may use (`MESH_CODE_TIMEOUT_SECS` 30,
    /// `MESH_CODE_MEMORY_MB` 64, `MESH_CODE_STACK_KB` 512, `MESH_CODE_MAX_CALLS` 64,
    /// `MESH_CODE_MAX_OUTPUT_KB` 256).
    pub code_limits: mesh_relay::CodeLimits,
    /// Trust tiers (`MESH_STDIO`, `MESH_ORG_CREATE`, `MESH_UPSTREAM_PRIVATE`, each default
    /// `operators`): who besides the installation's operators may reach the host.
    pub trust: mesh_admin::trust::Trust,
    /// Sessions the mesh holds at once; beyond it new ones get 503 (`MESH_MAX_SESSIONS`,
    /// default 10000).
    pub max_sessions: usize,
    /// Sessions one organisation holds at once; beyond it 429 (`MESH_MAX_SESSIONS_PER_ORG`,
    /// default 1000).
    pub max_sessions_per_org: usize,
    /// Sessions one API key holds at once; beyond it 429 (`MESH_MAX_SESSIONS_PER_KEY`, default 64).
    pub max_sessions_per_key: usize,
    /// Sessions one API key may open per minute, also the burst; beyond it 429 with
    /// `Retry-After` (`MESH_SESSION_OPEN_PER_MINUTE`, default 120; 0 = unlimited).
    pub session_open_per_minute: u32,
    /// A PEM file of extra root certificates trusted for HTTPS upstreams, besides the built-in web
    /// roots (`MESH_UPSTREAM_CA_FILE`, default none): for upstreams behind a private CA.
    pub upstream_ca_file: Option<PathBuf>,
    /// The OAuth authorization server (`MESH_OAUTH_*`, `MESH_OIDC_*`; docs/OAUTH.md).
    pub oauth: OAuthConfig,
    /// Behind a reverse proxy: the header it puts the client's address in, the last address of
    /// which is used for per-address limits (`MESH_CLIENT_IP_HEADER`, e.g. `x-forwarded-for`;
    /// default none: the peer's address).
    pub client_ip_header: Option<String>,
    /// The bearer token `GET /metrics` asks for on the main address, which serves no metrics
    /// without one (`MESH_METRICS_TOKEN`, default none).
    pub metrics_token: Option<Secret<String>>,
    /// An address of its own for `GET /metrics` (`MESH_METRICS_LISTEN`, e.g. `127.0.0.1:9464`;
    /// default none). It asks for the token too when one is set.
    pub metrics_listen: Option<SocketAddr>,
    /// OpenTelemetry traces (the standard `OTEL_*` variables; off unless an OTLP endpoint is set).
    pub tracing: Option<mesh_telemetry::TraceSettings>,
    /// OTLP metrics push (the standard `OTEL_*` variables; off unless an OTLP endpoint is set).
    pub metrics_export: Option<mesh_telemetry::MetricsExport>,
}

/// The OAuth authorization server's settings.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Access-token lifetime in seconds (`MESH_OAUTH_ACCESS_TTL_SECS`, default 3600).
    pub access_ttl_secs: u64,
    /// Refresh-token lifetime in days, renewed on each rotation (`MESH_OAUTH_REFRESH_TTL_DAYS`,
    /// default 30).
    pub refresh_ttl_days: u64,
    /// Open dynamic client registration, RFC 7591 (`MESH_OAUTH_DCR`, default on).
    pub dynamic_registration: bool,
    /// Registrations one address may make per hour (`MESH_OAUTH_DCR_PER_HOUR`, default 20).
    pub registrations_per_hour: u32,
    /// Fetch client metadata documents from internal addresses too (`MESH_OAUTH_CIMD_PRIVATE`,
    /// default off: only public addresses, like an organisation's upstream).
    pub documents_from_private: bool,
    /// Single sign-on through an OpenID Connect provider.
    pub oidc: Option<OidcConfig>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            access_ttl_secs: 3600,
            refresh_ttl_days: 30,
            dynamic_registration: true,
            registrations_per_hour: 20,
            documents_from_private: false,
            oidc: None,
        }
    }
}

/// An OpenID Connect provider for single sign-on (`MESH_OIDC_*`).
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Its issuer URL (`MESH_OIDC_ISSUER`).
    pub issuer: String,
    /// The mesh's client id there (`MESH_OIDC_CLIENT_ID`).
    pub client_id: String,
    /// The mesh's client secret there (`MESH_OIDC_CLIENT_SECRET`): sealed into the vault at
    /// start; later starts may leave it out and use the sealed one.
    pub client_secret: Option<Secret<String>>,
    /// The organisation (slug) people without an account join (`MESH_OIDC_ORG`; default none:
    /// they are refused).
    pub org: Option<String>,
    /// E-mail domains that may sign in this way (`MESH_OIDC_DOMAINS`; empty: any).
    pub domains: Vec<String>,
    /// Their role there (`MESH_OIDC_ROLE`, default member).
    pub role: String,
    /// The login button's label (`MESH_OIDC_LABEL`, default "Single sign-on").
    pub label: String,
}

impl Config {
    /// Defaults for a data directory, as `mcp-mesh serve` with no settings would use.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            data_dir: data_dir.into(),
            database_url: None,
            encryption_key: None,
            old_encryption_keys: Vec::new(),
            public_url: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            session_idle: Duration::from_secs(1800),
            audit_retention_days: 90,
            registry: mesh_admin::registry::RegistrySettings::default(),
            code_limits: mesh_relay::CodeLimits::default(),
            trust: mesh_admin::trust::Trust::default(),
            max_sessions: 10_000,
            max_sessions_per_org: 1_000,
            max_sessions_per_key: 64,
            session_open_per_minute: 120,
            upstream_ca_file: None,
            oauth: OAuthConfig::default(),
            client_ip_header: None,
            metrics_token: None,
            metrics_listen: None,
            tracing: None,
            metrics_export: None,
        }
    }

    /// The OAuth issuer, and the base of every resource URI: `MESH_PUBLIC_URL` without a
    /// trailing slash, else the listen address (loopback when listening on every interface:
    /// set `MESH_PUBLIC_URL` then, or remote clients are sent to an address they cannot reach).
    pub fn issuer(&self) -> String {
        if let Some(u) = &self.public_url {
            return u.as_str().trim_end_matches('/').to_string();
        }
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    }

    /// The database URL in force.
    pub fn database_url(&self) -> Secret<String> {
        self.database_url
            .clone()
            .unwrap_or_else(|| Secret::new(format!("sqlite://{}", self.data_dir.join("mesh.db").display())))
    }

    /// Creates the data directory, readable only by its owner.
    pub fn ensure_data_dir(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if !self.data_dir.exists() {
            std::fs::create_dir_all(&self.data_dir)?;
            std::fs::set_permissions(&self.data_dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// The HTTP clients for upstreams, trusting `upstream_ca_file`'s certificates too; an error
    /// naming the setting when the file cannot be read or holds no certificate.
    pub fn upstream_clients(&self) -> anyhow::Result<mesh_relay::UpstreamClients> {
        let roots = match &self.upstream_ca_file {
            Some(path) => mesh_relay::upstream::clients::load_roots(path)
                .map_err(|e| anyhow::anyhow!("MESH_UPSTREAM_CA_FILE: {e}"))?,
            None => Vec::new(),
        };
        mesh_relay::UpstreamClients::new(&roots).map_err(|e| anyhow::anyhow!("MESH_UPSTREAM_CA_FILE: {e}"))
    }

    /// Checks settings that clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_body_bytes < 1024 {
            anyhow::bail!("MESH_MAX_BODY_BYTES must be at least 1024");
        }
        if self.session_idle < Duration::from_secs(10) {
            anyhow::bail!("MESH_SESSION_IDLE_SECS must be at least 10");
        }
        if self.registry.unhealthy_after < Duration::from_secs(1) || self.registry.retention < Duration::from_secs(1) {
            anyhow::bail!("MESH_REGISTRY_UNHEALTHY_SECS and MESH_REGISTRY_RETENTION_SECS must be at least 1");
        }
        let (c, most) = (&self.code_limits, &mesh_relay::CODE_CEILING);
        if c.wall < Duration::from_secs(1)
            || c.memory < (1 << 20)
            || c.stack < (64 << 10)
            || c.calls == 0
            || c.output < 1024
        {
            anyhow::bail!(
                "MESH_CODE_*: a script needs at least 1 s (MESH_CODE_TIMEOUT_SECS), 1 MiB of memory, 64 KiB of stack, \
                 one tool call and 1 KiB of output"
            );
        }
        if c.wall > most.wall
            || c.memory > most.memory
            || c.stack > most.stack
            || c.calls > most.calls
            || c.output > most.output
        {
            anyhow::bail!(
                "MESH_CODE_*: at most {} s, {} MiB of memory, {} KiB of stack, {} tool calls and {} KiB of output",
                most.wall.as_secs(),
                most.memory >> 20,
                most.stack >> 10,
                most.calls,
                most.output >> 10
            );
        }
        if self.audit_retention_days > 36_500 {
            anyhow::bail!("MESH_AUDIT_RETENTION_DAYS must be at most 36500 (0 keeps audit rows forever)");
        }
        for (name, n) in [
            ("MESH_MAX_SESSIONS", self.max_sessions),
            ("MESH_MAX_SESSIONS_PER_ORG", self.max_sessions_per_org),
            ("MESH_MAX_SESSIONS_PER_KEY", self.max_sessions_per_key),
        ] {
            if n == 0 {
                anyhow::bail!("{name} must be at least 1");
            }
        }
        self.upstream_clients()?;
        for o in &self.allowed_origins {
            if url::Url::parse(o).is_err() {
                anyhow::bail!("MESH_ALLOWED_ORIGINS entry '{o}' is not an origin like https://app.example.com");
            }
        }
        Ok(())
    }
}
