//! Connection secrets (sealed headers and environment variables) and vault-rotation support.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::on_write;
use crate::{Connection, SecretRow, Store, StoreError};

const COLUMNS: &str = "id, org_id, connection_id, kind, name, key_id, ciphertext";

impl Store {
    /// The headers and environment of one connection of `org_id`, ordered by kind and name
    /// (users' OAuth grants are read one at a time, `upstream_grant`).
    pub async fn connection_secrets(&self, org_id: &str, connection_id: &str) -> Result<Vec<SecretRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM connection_secrets WHERE org_id = $1 AND connection_id = $2 \
             AND kind IN ('header', 'env') ORDER BY kind, name"
        );
        let rows = sqlx::query(&sql).bind(org_id).bind(connection_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(secret_from_row).collect::<Result<_, _>>()?)
    }

    /// Every secret of every organisation: only for re-sealing under a new vault key.
    pub async fn all_secrets(&self) -> Result<Vec<SecretRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM connection_secrets ORDER BY id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(secret_from_row).collect::<Result<_, _>>()?)
    }

    /// Replaces one secret's ciphertext after re-sealing. `NotFound` if the row is gone: its
    /// connection was deleted or its secrets replaced (with new ids) meanwhile, so a rotation
    /// never writes an old value over a newer one; callers skip such rows.
    pub async fn update_secret_ciphertext(&self, id: &str, key_id: &str, ciphertext: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE connection_secrets SET key_id = $1, ciphertext = $2 WHERE id = $3")
            .bind(key_id)
            .bind(ciphertext)
            .bind(id)
            .execute(&self.pool)
            .await?;
        match done.rows_affected() {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }
}

/// Refuses secrets that do not belong to `c`, and names given twice. Header names compare
/// case-insensitively (HTTP does), environment variable names exactly (POSIX does).
pub(crate) fn check_secrets(c: &Connection, secrets: &[SecretRow]) -> Result<(), StoreError> {
    for (i, s) in secrets.iter().enumerate() {
        if s.connection_id != c.id || s.org_id != c.org_id {
            return Err(StoreError::Invalid(format!("{} '{}' belongs to another connection", s.kind, s.name)));
        }
        let same = |t: &SecretRow| {
            t.kind == s.kind
                && match s.kind.as_str() {
                    "header" => t.name.eq_ignore_ascii_case(&s.name),
                    _ => t.name == s.name,
                }
        };
        if secrets[..i].iter().any(same) {
            return Err(StoreError::Conflict(format!("{} '{}' is given twice", s.kind, s.name)));
        }
    }
    Ok(())
}

/// Inserts already-checked secrets inside the caller's transaction.
pub(crate) async fn insert_secrets(conn: &mut AnyConnection, secrets: &[SecretRow]) -> Result<(), StoreError> {
    for s in secrets {
        sqlx::query(
            "INSERT INTO connection_secrets (id, org_id, connection_id, kind, name, key_id, ciphertext) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.id)
        .bind(&s.org_id)
        .bind(&s.connection_id)
        .bind(&s.kind)
        .bind(&s.name)
        .bind(&s.key_id)
        .bind(&s.ciphertext)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            on_write(e, |_| format!("secret '{}' already exists", s.id), "secret refers to a missing connection")
        })?;
    }
    Ok(())
}

pub(crate) fn secret_from_row(row: &AnyRow) -> Result<SecretRow, sqlx::Error> {
    Ok(SecretRow {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        connection_id: row.try_get("connection_id")?,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        key_id: row.try_get("key_id")?,
        ciphertext: row.try_get("ciphertext")?,
    })
}
