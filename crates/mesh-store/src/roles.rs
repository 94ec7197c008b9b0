//! Roles of an organisation: custom roles, and the rules attached to built-in ones. Every query
//! but `all_roles` is scoped by organisation; the rules stay JSON text the store never reads.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::on_write;
use crate::{RoleRow, Store, StoreError};

const COLUMNS: &str = "org_id, name, description, base, rules, created_at, updated_at";

impl Store {
    /// Inserts a role. `Conflict` if the organisation already has one of that name; `Invalid` if
    /// the organisation does not exist.
    pub async fn create_role(&self, r: &RoleRow) -> Result<(), StoreError> {
        sqlx::query(&format!("INSERT INTO roles ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(&r.org_id)
            .bind(&r.name)
            .bind(r.description.as_deref())
            .bind(&r.base)
            .bind(&r.rules)
            .bind(r.created_at)
            .bind(r.updated_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                on_write(
                    e,
                    |_| format!("role '{}' already exists", r.name),
                    &format!("organisation '{}' does not exist", r.org_id),
                )
            })?;
        Ok(())
    }

    /// A role of `org_id` by name; another organisation's is never returned.
    pub async fn get_role(&self, org_id: &str, name: &str) -> Result<Option<RoleRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM roles WHERE org_id = $1 AND name = $2");
        let row = sqlx::query(&sql).bind(org_id).bind(name).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(role_from_row).transpose()?)
    }

    /// Every role row of `org_id`, by name.
    pub async fn list_roles(&self, org_id: &str) -> Result<Vec<RoleRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM roles WHERE org_id = $1 ORDER BY name");
        let rows = sqlx::query(&sql).bind(org_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(role_from_row).collect::<Result<_, _>>()?)
    }

    /// Replaces a role's description, base, rules and `updated_at` (matched by `r.org_id` and
    /// `r.name`; the name and `created_at` are kept). Returns whether the role exists.
    pub async fn update_role(&self, r: &RoleRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE roles SET description = $1, base = $2, rules = $3, updated_at = $4 WHERE org_id = $5 AND name = $6",
        )
        .bind(r.description.as_deref())
        .bind(&r.base)
        .bind(&r.rules)
        .bind(r.updated_at)
        .bind(&r.org_id)
        .bind(&r.name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a role of `org_id`. Returns whether it existed. Members holding it are not
    /// touched: refusing to delete a role in use is the service's decision (it counts holders in
    /// the member list it reads anyway).
    pub async fn delete_role(&self, org_id: &str, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM roles WHERE org_id = $1 AND name = $2")
            .bind(org_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every role of every organisation, by organisation then name: loaded whole into the
    /// in-memory policy cache, so authorising a call needs no query.
    pub async fn all_roles(&self) -> Result<Vec<RoleRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM roles ORDER BY org_id, name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(role_from_row).collect::<Result<_, _>>()?)
    }
}

fn role_from_row(row: &AnyRow) -> Result<RoleRow, sqlx::Error> {
    Ok(RoleRow {
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        base: row.try_get("base")?,
        rules: row.try_get("rules")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
