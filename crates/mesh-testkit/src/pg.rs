//! Fresh PostgreSQL databases for end-to-end tests that must run on both backends.
//!
//! `MESH_TEST_PG_URL` names the test server's admin URL (`scripts/pg-test-server` prints it,
//! `scripts/test` exports it). Without it the PostgreSQL half is skipped, loudly — unless
//! `MESH_REQUIRE_PG=1` (the test command sets it), which turns the skip into a failure.

use sqlx::migrate::MigrateDatabase;

/// A database created for one test, dropped by [`PgDatabase::drop_now`].
pub struct PgDatabase {
    /// Its URL, for `DATABASE_URL` / `Config::database_url`.
    pub url: String,
}

/// A new, empty database on the test server, or `None` when none is configured.
pub async fn fresh(prefix: &str) -> Option<PgDatabase> {
    let admin = match std::env::var("MESH_TEST_PG_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ if std::env::var("MESH_REQUIRE_PG").as_deref() == Ok("1") => {
            panic!("MESH_TEST_PG_URL is not set but MESH_REQUIRE_PG=1")
        }
        _ => {
            let line = "\n*** SKIPPED: postgres (set MESH_TEST_PG_URL; `scripts/pg-test-server` prints one) ***\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            return None;
        }
    };
    sqlx::any::install_default_drivers();
    let mut url = url::Url::parse(&admin).expect("MESH_TEST_PG_URL is a URL");
    let name = format!("{prefix}_{}_{}", std::process::id(), mesh_core::id::random_base62(10).to_lowercase());
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    sqlx::Any::create_database(&url).await.expect("create test database");
    Some(PgDatabase { url })
}

impl PgDatabase {
    /// Drops the database (after the mesh using it has stopped).
    pub async fn drop_now(self) {
        if let Err(e) = sqlx::Any::force_drop_database(&self.url).await {
            eprintln!("could not drop test database: {e}");
        }
    }
}
