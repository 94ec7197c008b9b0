//! Storage for MCP Mesh: one repository layer over SQLite and PostgreSQL.
//!
//! Why one layer and not a trait with two backends: the schema uses only what both databases
//! spell the same way (TEXT, BIGINT; booleans as 0/1, timestamps as unix milliseconds), so one
//! set of queries through `sqlx::AnyPool` serves both, and a single storage test story runs
//! against each. Two implementations would drift; one cannot.
//!
//! Decisions that keep the queries portable:
//! - **Placeholders are `$1, $2, …` everywhere.** PostgreSQL requires them; SQLite accepts
//!   `$NNN` and sqlx binds `$N` to the N-th argument. Each placeholder is used once per query
//!   (a value needed twice is bound twice) so no driver has to infer one type for two uses.
//!   One exception, for speed: the audit trail's multi-row INSERT uses anonymous `?` on SQLite
//!   (see `audit.rs`).
//! - **One exception to one layer: audit appends to an SQLite file** go through a rusqlite
//!   connection on a thread of their own (`audit_sqlite.rs` says why: they are the data plane's
//!   hot path). Same statements, same chain rules; the storage story covers both paths.
//! - **One migrations folder** (`migrations/`), embedded at compile time by `sqlx::migrate!`.
//! - **Runtime queries only** (`sqlx::query` + manual row mapping): nothing needs a database at
//!   build time.
//! - **Org scoping lives in every query**: each method on an organisation's objects
//!   (connections, secrets, gateways, roles, rate limits, members) takes the organisation id and
//!   filters on it, and the schema ties a secret to its connection's organisation with a
//!   composite foreign key. The exceptions span organisations on purpose and say so: loaders for
//!   in-memory caches (`active_api_keys`, `anonymous_connections`, `all_roles`,
//!   `all_rate_limits`).
//! - **Deleting an organisation is one `DELETE`**: the schema cascades to everything it owns, so
//!   no list of child tables can fall out of date.
#![forbid(unsafe_code)]

mod audit;
mod audit_sqlite;
mod connections;
mod error;
mod gateways;
mod keys;
mod limits;
mod models;
mod oauth;
mod orgs;
mod registry;
mod roles;
mod secrets;
mod templates;
mod upstream_oauth;
mod usage;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

pub use audit::{AuditChain, AuditFilter, AuditOrder, AuditRow, AuditSeal, AUDIT_GENESIS};
pub use error::StoreError;
pub use gateways::Gateway;
pub use models::{ApiKey, Connection, Membership, Org, RateLimitRow, RoleRow, SecretRow, StdioTemplate, User};
pub use oauth::{OAuthClient, OAuthCode, OAuthGrant, OAuthToken, UserSession};
pub use orgs::MemberChange;
pub use registry::{AgentRow, Beat, SweptAgent};
pub use upstream_oauth::{UpstreamLogin, CLIENT as OAUTH_CLIENT, GRANT as OAUTH_GRANT};
pub use usage::{UsageDim, UsageQuery, UsageRow, UsageSpan, UsageTotal};

/// A list of strings as its stored JSON text.
pub(crate) fn json(list: &[String]) -> String {
    serde_json::to_string(list).expect("a list of strings always serialises")
}

/// A stored JSON list of strings, read from `column`.
pub(crate) fn list(row: &sqlx::any::AnyRow, column: &str) -> Result<Vec<String>, sqlx::Error> {
    use sqlx::Row as _;
    let raw: String = row.try_get(column)?;
    serde_json::from_str(&raw).map_err(|e| sqlx::Error::ColumnDecode { index: column.into(), source: Box::new(e) })
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone (it wraps the connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Audit appends for an SQLite file (`None` for PostgreSQL and in-memory SQLite).
    sqlite_audit: Option<Arc<audit_sqlite::Appender>>,
}

impl Store {
    /// Connects to `sqlite://path/to/file.db` (creating the file and its directory) or
    /// `postgres://…`, then applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url, in_memory) = if url.starts_with("sqlite:") {
            let (url, in_memory) = sqlite_url(url)?;
            (Backend::Sqlite, url, in_memory)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string(), false)
        } else {
            return Err(StoreError::BadUrl("expected sqlite://… or postgres://…"));
        };

        let mut options = AnyPoolOptions::new().after_connect(move |conn, _meta| {
            Box::pin(async move {
                // Per connection, not per file: SQLite forgets this setting on every open.
                if backend == Backend::Sqlite {
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        });
        if in_memory {
            // Every connection to `:memory:` is a separate empty database: keep exactly one.
            options = options.max_connections(1).idle_timeout(None).max_lifetime(None);
        }
        let pool = options.connect(&url).await?;
        if backend == Backend::Sqlite {
            // Persistent in the file: readers no longer block the writer. Set once, here, because
            // changing the journal mode needs a lock that busy_timeout does not wait for.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        MIGRATOR.run(&pool).await?;
        // Opened after the migrations: the audit tables exist and the file is in WAL mode.
        let sqlite_audit = match (backend, in_memory) {
            (Backend::Sqlite, false) => match audit_file(&url) {
                Some(path) => Some(Arc::new(audit_sqlite::Appender::open(&path)?)),
                None => None,
            },
            _ => None,
        };
        tracing::info!(backend = ?backend, "store ready");
        Ok(Store { pool, backend, sqlite_audit })
    }

    /// "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// A trivial round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every pooled connection; later calls fail. For orderly shutdown.
    pub async fn close(&self) {
        if let Some(appender) = &self.sqlite_audit {
            appender.close().await;
        }
        self.pool.close().await;
    }
}

/// Normalises an SQLite URL: creates the file's directory and adds `mode=rwc` (create if
/// missing) unless a mode is given. Returns the URL and whether it names an in-memory database.
fn sqlite_url(url: &str) -> Result<(String, bool), StoreError> {
    let (path, query) = sqlite_parts(url);
    if path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return Ok((url.to_string(), true));
    }
    if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: PathBuf::from(dir), source })?;
    }
    if query.split('&').any(|p| p.starts_with("mode=")) {
        return Ok((url.to_string(), false));
    }
    let sep = if query.is_empty() { "?" } else { "&" };
    Ok((format!("{url}{sep}mode=rwc"), false))
}

/// An SQLite URL's path (as written) and query.
fn sqlite_parts(url: &str) -> (&str, &str) {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    rest.split_once('?').unwrap_or((rest, ""))
}

/// The file the audit writer thread opens for an SQLite URL: the one sqlx opened (its own
/// reading of the URL, percent-decoding included). `None` keeps audit appends on the pool:
/// read-only or immutable databases, another VFS, and URI filenames (`file:…`), where a second
/// connection might not see the same database.
fn audit_file(url: &str) -> Option<PathBuf> {
    use std::str::FromStr;
    let (path, query) = sqlite_parts(url);
    let special = |p: &str| p == "mode=ro" || p == "mode=memory" || p.starts_with("immutable") || p.starts_with("vfs");
    if path.starts_with("file:") || query.split('&').any(special) {
        return None;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode_and_memory_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/mesh.db");
        let url = format!("sqlite://{}", file.display());
        assert_eq!(sqlite_url(&url).unwrap(), (format!("{url}?mode=rwc"), false));
        assert!(file.parent().unwrap().is_dir());
        let with_query = format!("{url}?cache=shared");
        assert_eq!(sqlite_url(&with_query).unwrap().0, format!("{with_query}&mode=rwc"));
        let read_only = format!("{url}?mode=ro");
        assert_eq!(sqlite_url(&read_only).unwrap().0, read_only);
        assert!(sqlite_url("sqlite::memory:").unwrap().1);
        assert!(sqlite_url("sqlite://:memory:").unwrap().1);
    }

    #[test]
    fn the_audit_writer_opens_the_file_sqlx_opens_or_none() {
        assert_eq!(audit_file("sqlite:///d/my%20db.db?mode=rwc"), Some(PathBuf::from("/d/my db.db")));
        assert_eq!(audit_file("sqlite:data/mesh.db"), Some(PathBuf::from("data/mesh.db")));
        for kept_on_the_pool in [
            "sqlite:///d/m.db?mode=ro",
            "sqlite:///d/m.db?immutable=1",
            "sqlite:///d/m.db?vfs=memdb",
            "sqlite://file::memory:",
        ] {
            assert_eq!(audit_file(kept_on_the_pool), None, "{kept_on_the_pool}");
        }
    }
}
