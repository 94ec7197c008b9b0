//! Rate limits of an organisation, at most one per `(scope, target)`. Every query but
//! `all_rate_limits` is scoped by organisation.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::on_write;
use crate::{RateLimitRow, Store, StoreError};

const COLUMNS: &str = "id, org_id, scope, target, per_minute, burst, created_at, updated_at";

impl Store {
    /// Sets a limit: inserts `l`, or, when the organisation already limits that `(scope,
    /// target)`, updates that row's `per_minute`, `burst` and `updated_at`, keeping its id and
    /// `created_at`. Returns the row as stored. `Invalid` if the organisation does not exist;
    /// `Conflict` if `l.id` belongs to another limit.
    pub async fn upsert_rate_limit(&self, l: &RateLimitRow) -> Result<RateLimitRow, StoreError> {
        // One statement rather than SELECT-then-write: two admins setting the same limit at once
        // cannot both insert. SQLite (3.35+, bundled by sqlx) and PostgreSQL spell
        // `ON CONFLICT … DO UPDATE … RETURNING` alike; `excluded` names the refused row, so no
        // placeholder is used twice.
        let sql = format!(
            "INSERT INTO rate_limits ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (org_id, scope, target) DO UPDATE SET per_minute = excluded.per_minute, \
             burst = excluded.burst, updated_at = excluded.updated_at \
             RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&l.id)
            .bind(&l.org_id)
            .bind(&l.scope)
            .bind(&l.target)
            .bind(l.per_minute)
            .bind(l.burst)
            .bind(l.created_at)
            .bind(l.updated_at)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                on_write(
                    e,
                    |_| format!("rate limit '{}' already exists", l.id),
                    &format!("organisation '{}' does not exist", l.org_id),
                )
            })?;
        Ok(limit_from_row(&row)?)
    }

    /// Every limit of `org_id`, by scope then target.
    pub async fn list_rate_limits(&self, org_id: &str) -> Result<Vec<RateLimitRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM rate_limits WHERE org_id = $1 ORDER BY scope, target");
        let rows = sqlx::query(&sql).bind(org_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(limit_from_row).collect::<Result<_, _>>()?)
    }

    /// Deletes a limit of `org_id`. Returns whether it existed.
    pub async fn delete_rate_limit(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM rate_limits WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every limit of every organisation, by organisation, scope, target: loaded whole into the
    /// rate limiter, so admitting a call needs no query.
    pub async fn all_rate_limits(&self) -> Result<Vec<RateLimitRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM rate_limits ORDER BY org_id, scope, target");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(limit_from_row).collect::<Result<_, _>>()?)
    }
}

fn limit_from_row(row: &AnyRow) -> Result<RateLimitRow, sqlx::Error> {
    Ok(RateLimitRow {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        scope: row.try_get("scope")?,
        target: row.try_get("target")?,
        per_minute: row.try_get("per_minute")?,
        burst: row.try_get("burst")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
