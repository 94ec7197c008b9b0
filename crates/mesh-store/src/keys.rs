//! API keys: creation, listing, the active set the authenticator loads, revocation, last use.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::on_write;
use crate::{ApiKey, Store, StoreError};

const COLUMNS: &str =
    "k.id, k.org_id, k.user_id, k.name, k.prefix, k.hash, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, \
     k.policy";

impl Store {
    /// Inserts a key (its `policy` JSON stored verbatim); `Invalid` unless its user is a member
    /// of its organisation.
    pub async fn create_api_key(&self, k: &ApiKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, user_id, name, prefix, hash, created_at, expires_at, revoked_at, last_used_at, \
             policy) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&k.id)
        .bind(&k.org_id)
        .bind(&k.user_id)
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(&k.hash)
        .bind(k.created_at)
        .bind(k.expires_at)
        .bind(k.revoked_at)
        .bind(k.last_used_at)
        .bind(k.policy.as_deref())
        .execute(&self.pool)
        .await
        .map_err(|e| {
            on_write(
                e,
                // The hash is deliberately not echoed: it identifies a live credential.
                |_| format!("api key '{}' (or one with the same hash) already exists", k.id),
                "the api key's user is not a member of its organisation",
            )
        })?;
        Ok(())
    }

    /// Every key of an organisation, revoked and expired ones included, oldest first.
    pub async fn list_api_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys k WHERE k.org_id = $1 ORDER BY k.created_at, k.id");
        let rows = sqlx::query(&sql).bind(org_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    /// Keys that may authenticate at `now_ms` (not revoked, not expired, user still a member),
    /// each with its user's role in the key's organisation.
    pub async fn active_api_keys(&self, now_ms: i64) -> Result<Vec<(ApiKey, String)>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS}, m.role FROM api_keys k \
             JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.user_id \
             WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $1) \
             ORDER BY k.created_at, k.id"
        );
        let rows = sqlx::query(&sql).bind(now_ms).fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok((key_from_row(row)?, row.try_get("role")?))).collect()
    }

    /// Revokes a key of `org_id`. Returns whether this call revoked it: `false` if there is no
    /// such key in that organisation, or it was already revoked (the first time is kept).
    pub async fn revoke_api_key(&self, org_id: &str, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL")
                .bind(now_ms)
                .bind(org_id)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records last use of many keys in one transaction. The authenticator batches these so a
    /// request never waits for a write; a timestamp only ever moves forward, so batches that
    /// arrive out of order do no harm. Unknown ids are ignored.
    pub async fn touch_api_keys(&self, used: &[(String, i64)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (id, at) in used {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(*at)
            .bind(id)
            .bind(*at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn key_from_row(row: &AnyRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        hash: row.try_get("hash")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
        policy: row.try_get("policy")?,
    })
}
