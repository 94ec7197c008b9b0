//! The store's one error type, and the mapping of constraint violations onto it.

use std::path::PathBuf;

use mesh_core::Fault;
use sqlx::error::ErrorKind;

/// Why a storage operation failed.
///
/// `Display` never includes SQL parameters: sqlx reports the database's message, and ours name
/// only the colliding slug, email or id, never a secret.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// A unique constraint refused the write; the message names what collided.
    #[error("{0}")]
    Conflict(String),
    /// The object to update does not exist (or belongs to another organisation).
    #[error("not found")]
    NotFound,
    /// The write refers to something missing (an organisation, a membership) or is inconsistent
    /// with itself (a secret for another connection).
    #[error("{0}")]
    Invalid(String),
    /// The database URL is unusable; the message never repeats the URL (it may hold a password).
    #[error("bad database URL: {0}")]
    BadUrl(&'static str),
    /// The directory for an SQLite file could not be created.
    #[error("cannot create database directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Any other database failure (connection lost, pool timed out, schema drift).
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The audit trail's SQLite writer failed (`audit_sqlite.rs`); the message is SQLite's.
    #[error("database error (audit): {0}")]
    Audit(String),
    /// Applying migrations failed at start-up.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        // PostgreSQL refuses NUL in text (SQLSTATE 22021; 22P05 for characters the encoding
        // lacks): that is the caller's input, not the database failing, so never a 500.
        let text_refused = err.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "22021" || c == "22P05");
        if text_refused {
            return StoreError::Invalid("text must not contain NUL or characters the database cannot store".into());
        }
        StoreError::Database(err)
    }
}

impl StoreError {
    /// Whose fault the failure is: the caller's for conflicts and missing objects, ours otherwise.
    pub fn fault(&self) -> Fault {
        match self {
            StoreError::Conflict(_) | StoreError::NotFound | StoreError::Invalid(_) => Fault::Downstream,
            StoreError::BadUrl(_)
            | StoreError::Io { .. }
            | StoreError::Database(_)
            | StoreError::Audit(_)
            | StoreError::Migrate(_) => Fault::Internal,
        }
    }
}

/// Maps a failed insert or update: unique violations become `Conflict(conflict(what))`, foreign
/// key violations `Invalid(missing)`, everything else `Database`.
///
/// `what` is PostgreSQL's constraint name or SQLite's column list ("connections.org_id,
/// connections.slug"); both name the columns, which is how callers tell a slug from an id.
pub(crate) fn on_write(err: sqlx::Error, conflict: impl FnOnce(&str) -> String, missing: &str) -> StoreError {
    let Some(db) = err.as_database_error() else {
        return StoreError::Database(err);
    };
    match db.kind() {
        ErrorKind::UniqueViolation => {
            let what = db.constraint().unwrap_or_else(|| db.message());
            StoreError::Conflict(conflict(what))
        }
        ErrorKind::ForeignKeyViolation => StoreError::Invalid(missing.to_string()),
        _ => StoreError::from(err),
    }
}
