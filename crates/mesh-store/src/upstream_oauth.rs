//! Upstream OAuth (#19): users' grants at connections' authorization servers (sealed rows of
//! `connection_secrets`, kind `oauth_grant`) and the authorizations under way (`upstream_logins`).

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::secrets::secret_from_row as secret;
use crate::{SecretRow, Store, StoreError};

/// The kind of a grant's row in `connection_secrets`.
pub const GRANT: &str = "oauth_grant";

/// The kind of a client's row in `connection_secrets`: the one the operator registered by hand
/// (named `preregistered`), and those the mesh registered dynamically (one per authorization
/// server, named `registered:<issuer>`).
pub const CLIENT: &str = "oauth_client";

/// An authorization under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamLogin {
    /// The mesh's link id.
    pub id: String,
    /// SHA-256 (hex) of the OAuth `state`.
    pub state_hash: String,
    /// The connection's organisation.
    pub org_id: String,
    /// The connection.
    pub connection_id: String,
    /// `user:<id>` or `shared`.
    pub subject: String,
    /// Who must complete it.
    pub user_id: String,
    /// The vault key of `ciphertext`.
    pub key_id: String,
    /// The sealed request and grant.
    pub ciphertext: String,
    /// Unix ms.
    pub expires_at: i64,
    /// Unix ms, once claimed by its callback (single use).
    pub done_at: Option<i64>,
    /// Unix ms, once its grant is stored.
    pub granted_at: Option<i64>,
}

const SECRET_COLUMNS: &str = "id, org_id, connection_id, kind, name, key_id, ciphertext";
const LOGIN_COLUMNS: &str =
    "id, state_hash, org_id, connection_id, subject, user_id, key_id, ciphertext, expires_at, done_at, granted_at";

impl Store {
    /// The grant of `subject` at a connection of `org_id`.
    pub async fn upstream_grant(
        &self,
        org_id: &str,
        connection_id: &str,
        subject: &str,
    ) -> Result<Option<SecretRow>, StoreError> {
        self.oauth_row(org_id, connection_id, GRANT, subject).await
    }

    /// The client named `name` at a connection of `org_id` ([`CLIENT`]).
    pub async fn upstream_client(
        &self,
        org_id: &str,
        connection_id: &str,
        name: &str,
    ) -> Result<Option<SecretRow>, StoreError> {
        self.oauth_row(org_id, connection_id, CLIENT, name).await
    }

    async fn oauth_row(
        &self,
        org_id: &str,
        connection_id: &str,
        kind: &str,
        name: &str,
    ) -> Result<Option<SecretRow>, StoreError> {
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM connection_secrets \
             WHERE org_id = $1 AND connection_id = $2 AND kind = $3 AND name = $4"
        );
        let row =
            sqlx::query(&sql).bind(org_id).bind(connection_id).bind(kind).bind(name).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(secret).transpose()?)
    }

    /// Every grant of `subject` in `org_id`.
    pub async fn upstream_grants_of(&self, org_id: &str, subject: &str) -> Result<Vec<SecretRow>, StoreError> {
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM connection_secrets WHERE org_id = $1 AND kind = '{GRANT}' AND name = $2 \
             ORDER BY connection_id"
        );
        let rows = sqlx::query(&sql).bind(org_id).bind(subject).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(secret).collect::<Result<_, _>>()?)
    }

    /// Stores a grant or a client ([`GRANT`], [`CLIENT`]), replacing the one of that name at
    /// that connection.
    pub async fn put_upstream_oauth(&self, row: &SecretRow) -> Result<(), StoreError> {
        if row.kind != GRANT && row.kind != CLIENT {
            return Err(StoreError::Invalid(format!("'{}' is not an upstream OAuth row", row.kind)));
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM connection_secrets WHERE org_id = $1 AND connection_id = $2 AND kind = $3 AND name = $4",
        )
        .bind(&row.org_id)
        .bind(&row.connection_id)
        .bind(&row.kind)
        .bind(&row.name)
        .execute(&mut *tx)
        .await?;
        crate::secrets::insert_secrets(&mut tx, std::slice::from_ref(row)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a grant's ciphertext only if it is still `old` (what the caller read before
    /// refreshing): false when someone else wrote it meanwhile, whose value then stands. With
    /// `ends_lease` (the lease holder writing its refresh) the refresh lease ends too; other
    /// writers leave a running refresh its lease.
    pub async fn swap_upstream_grant(
        &self,
        id: &str,
        old: &str,
        key_id: &str,
        ciphertext: &str,
        ends_lease: bool,
    ) -> Result<bool, StoreError> {
        let sql = if ends_lease {
            "UPDATE connection_secrets SET key_id = $1, ciphertext = $2, lease_until = NULL WHERE id = $3 AND ciphertext = $4"
        } else {
            "UPDATE connection_secrets SET key_id = $1, ciphertext = $2 WHERE id = $3 AND ciphertext = $4"
        };
        let done = sqlx::query(sql).bind(key_id).bind(ciphertext).bind(id).bind(old).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes the refresh lease of a grant until `until_ms`, if the row still holds `old` (what the
    /// caller read) and no other lease runs at `now_ms`: whether the caller may refresh it. The
    /// lease ends with [`Store::swap_upstream_grant`], [`Store::release_upstream_grant`], or at
    /// `until_ms`.
    pub async fn lease_upstream_grant(
        &self,
        id: &str,
        old: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE connection_secrets SET lease_until = $1 \
             WHERE id = $2 AND ciphertext = $3 AND (lease_until IS NULL OR lease_until < $4)",
        )
        .bind(until_ms)
        .bind(id)
        .bind(old)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends the refresh lease taken until `until_ms` without a new grant (the refresh failed for
    /// now); a lease someone else took since is left alone.
    pub async fn release_upstream_grant(&self, id: &str, until_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE connection_secrets SET lease_until = NULL WHERE id = $1 AND lease_until = $2")
            .bind(id)
            .bind(until_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes the grant of `subject` at a connection. Whether there was one.
    pub async fn delete_upstream_grant(
        &self,
        org_id: &str,
        connection_id: &str,
        subject: &str,
    ) -> Result<bool, StoreError> {
        self.delete_oauth_row(org_id, connection_id, GRANT, subject).await
    }

    /// Removes the client named `name` at a connection. Whether there was one.
    pub async fn delete_upstream_client(
        &self,
        org_id: &str,
        connection_id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        self.delete_oauth_row(org_id, connection_id, CLIENT, name).await
    }

    async fn delete_oauth_row(
        &self,
        org_id: &str,
        connection_id: &str,
        kind: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM connection_secrets WHERE org_id = $1 AND connection_id = $2 AND kind = $3 AND name = $4",
        )
        .bind(org_id)
        .bind(connection_id)
        .bind(kind)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes every grant of `subject` in `org_id` (a member leaving). How many.
    pub async fn delete_upstream_grants_of(&self, org_id: &str, subject: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM connection_secrets WHERE org_id = $1 AND kind = $2 AND name = $3")
            .bind(org_id)
            .bind(GRANT)
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Removes every grant at a connection (its URL or mode changed). How many.
    pub async fn delete_upstream_grants_at(&self, org_id: &str, connection_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM connection_secrets WHERE org_id = $1 AND connection_id = $2 AND kind = $3")
            .bind(org_id)
            .bind(connection_id)
            .bind(GRANT)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records an authorization under way, dropping the expired ones and any earlier one of the
    /// same subject at the same connection (one at a time: the newest link is the one that works).
    pub async fn insert_upstream_login(&self, l: &UpstreamLogin, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM upstream_logins WHERE expires_at < $1 OR (connection_id = $2 AND subject = $3)")
            .bind(now_ms)
            .bind(&l.connection_id)
            .bind(&l.subject)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO upstream_logins ({LOGIN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&l.id)
        .bind(&l.state_hash)
        .bind(&l.org_id)
        .bind(&l.connection_id)
        .bind(&l.subject)
        .bind(&l.user_id)
        .bind(&l.key_id)
        .bind(&l.ciphertext)
        .bind(l.expires_at)
        .bind(l.done_at)
        .bind(l.granted_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An authorization under way by its link id.
    pub async fn upstream_login(&self, id: &str) -> Result<Option<UpstreamLogin>, StoreError> {
        let sql = format!("SELECT {LOGIN_COLUMNS} FROM upstream_logins WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(login).transpose()?)
    }

    /// An authorization under way by the hash of its state.
    pub async fn upstream_login_by_state(&self, state_hash: &str) -> Result<Option<UpstreamLogin>, StoreError> {
        let sql = format!("SELECT {LOGIN_COLUMNS} FROM upstream_logins WHERE state_hash = $1");
        let row = sqlx::query(&sql).bind(state_hash).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(login).transpose()?)
    }

    /// Marks a claimed authorization granted (its grant is stored).
    pub async fn grant_upstream_login(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE upstream_logins SET granted_at = $1 WHERE id = $2 AND done_at IS NOT NULL")
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets an authorization (its exchange failed: nobody should wait for it).
    pub async fn delete_upstream_login(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM upstream_logins WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Forgets every authorization under way at a connection (its client changed: one started
    /// with the old client must not store a grant made with it).
    pub async fn delete_upstream_logins_at(&self, org_id: &str, connection_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM upstream_logins WHERE org_id = $1 AND connection_id = $2")
            .bind(org_id)
            .bind(connection_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// An authorization under way of `subject` at a connection, not yet claimed nor expired at
    /// `now_ms` (the newest: there is one at a time).
    pub async fn pending_upstream_login(
        &self,
        connection_id: &str,
        subject: &str,
        now_ms: i64,
    ) -> Result<Option<UpstreamLogin>, StoreError> {
        let sql = format!(
            "SELECT {LOGIN_COLUMNS} FROM upstream_logins \
             WHERE connection_id = $1 AND subject = $2 AND done_at IS NULL AND expires_at > $3"
        );
        let row = sqlx::query(&sql).bind(connection_id).bind(subject).bind(now_ms).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(login).transpose()?)
    }

    /// Marks an authorization completed, once: false if it already was (a replayed callback).
    pub async fn finish_upstream_login(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE upstream_logins SET done_at = $1, ciphertext = '' WHERE id = $2 AND done_at IS NULL")
                .bind(now_ms)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn login(row: &AnyRow) -> Result<UpstreamLogin, sqlx::Error> {
    Ok(UpstreamLogin {
        id: row.try_get("id")?,
        state_hash: row.try_get("state_hash")?,
        org_id: row.try_get("org_id")?,
        connection_id: row.try_get("connection_id")?,
        subject: row.try_get("subject")?,
        user_id: row.try_get("user_id")?,
        key_id: row.try_get("key_id")?,
        ciphertext: row.try_get("ciphertext")?,
        expires_at: row.try_get("expires_at")?,
        done_at: row.try_get("done_at")?,
        granted_at: row.try_get("granted_at")?,
    })
}
