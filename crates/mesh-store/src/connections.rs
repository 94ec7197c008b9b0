//! Connections (registered upstream MCP servers). Every query is scoped by organisation.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::on_write;
use crate::secrets::{check_secrets, insert_secrets};
use crate::{Connection, SecretRow, Store, StoreError};

const COLUMNS: &str =
    "id, org_id, slug, title, description, transport, url, command, args, cwd, timeout_ms, status, anonymous, created_at, updated_at, trusted, template, auth, oauth_shared, selector";

impl Store {
    /// Inserts a connection and its secrets in one transaction. `Conflict` if the slug is taken
    /// in the organisation or a secret name is given twice; `Invalid` if a secret belongs to
    /// another connection or the organisation does not exist.
    pub async fn create_connection(&self, c: &Connection, secrets: &[SecretRow]) -> Result<(), StoreError> {
        check_secrets(c, secrets)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO connections ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        ))
        .bind(&c.id)
        .bind(&c.org_id)
        .bind(&c.slug)
        .bind(&c.title)
        .bind(c.description.as_deref())
        .bind(&c.transport)
        .bind(c.url.as_deref())
        .bind(c.command.as_deref())
        .bind(args_json(c))
        .bind(c.cwd.as_deref())
        .bind(c.timeout_ms)
        .bind(&c.status)
        .bind(i64::from(c.anonymous))
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(i64::from(c.trusted))
        .bind(c.template.as_deref())
        .bind(&c.auth)
        .bind(i64::from(c.oauth_shared))
        .bind(c.selector.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| on_write(e, |what| conflict(c, what), &format!("organisation '{}' does not exist", c.org_id)))?;
        insert_secrets(&mut tx, secrets).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A connection of `org_id` by id or by slug; another organisation's is never returned.
    pub async fn get_connection(&self, org_id: &str, id_or_slug: &str) -> Result<Option<Connection>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM connections WHERE org_id = $1 AND (id = $2 OR slug = $3)");
        let rows = sqlx::query(&sql).bind(org_id).bind(id_or_slug).bind(id_or_slug).fetch_all(&self.pool).await?;
        let found = rows.iter().map(connection_from_row).collect::<Result<Vec<_>, _>>()?;
        // A slug may, in theory, spell another connection's id: the id wins, it is unambiguous.
        let by_id = found.iter().position(|c| c.id == id_or_slug);
        Ok(found.into_iter().nth(by_id.unwrap_or(0)))
    }

    /// `(org_id, id, slug)` of every active connection that admits anonymous callers, across
    /// organisations: loaded into memory so that admitting such a caller needs no query.
    pub async fn anonymous_connections(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query("SELECT org_id, id, slug FROM connections WHERE anonymous = 1 AND status = 'active'")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("org_id")?, r.try_get("id")?, r.try_get("slug")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Every connection of `org_id`, by slug.
    pub async fn list_connections(&self, org_id: &str) -> Result<Vec<Connection>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM connections WHERE org_id = $1 ORDER BY slug");
        let rows = sqlx::query(&sql).bind(org_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(connection_from_row).collect::<Result<_, _>>()?)
    }

    /// Updates a connection (matched by `c.org_id` and `c.id`; `created_at` is kept) and, when
    /// `replace_secrets` is given, replaces all its secrets, in one transaction. `NotFound` if
    /// the organisation has no such connection; `Conflict` if the new slug is taken.
    pub async fn update_connection(
        &self,
        c: &Connection,
        replace_secrets: Option<&[SecretRow]>,
    ) -> Result<(), StoreError> {
        if let Some(secrets) = replace_secrets {
            check_secrets(c, secrets)?;
        }
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE connections SET slug = $1, title = $2, description = $3, transport = $4, url = $5, \
             command = $6, args = $7, cwd = $8, timeout_ms = $9, status = $10, updated_at = $11, \
             anonymous = $12, trusted = $13, template = $14, auth = $15, oauth_shared = $16, \
             selector = $17 WHERE org_id = $18 AND id = $19",
        )
        .bind(&c.slug)
        .bind(&c.title)
        .bind(c.description.as_deref())
        .bind(&c.transport)
        .bind(c.url.as_deref())
        .bind(c.command.as_deref())
        .bind(args_json(c))
        .bind(c.cwd.as_deref())
        .bind(c.timeout_ms)
        .bind(&c.status)
        .bind(c.updated_at)
        .bind(i64::from(c.anonymous))
        .bind(i64::from(c.trusted))
        .bind(c.template.as_deref())
        .bind(&c.auth)
        .bind(i64::from(c.oauth_shared))
        .bind(c.selector.as_deref())
        .bind(&c.org_id)
        .bind(&c.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| on_write(e, |what| conflict(c, what), "connection refers to a missing object"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound); // dropping `tx` rolls back
        }
        if let Some(secrets) = replace_secrets {
            // Headers and environment only: users' OAuth grants are not the editor's to drop.
            sqlx::query(
                "DELETE FROM connection_secrets WHERE org_id = $1 AND connection_id = $2 AND kind IN ('header', 'env')",
            )
            .bind(&c.org_id)
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
            insert_secrets(&mut tx, secrets).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a connection of `org_id` and its secrets. Returns whether it existed.
    pub async fn delete_connection(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Explicit rather than left to ON DELETE CASCADE alone: correct even on an SQLite
        // connection opened elsewhere without `PRAGMA foreign_keys`.
        sqlx::query("DELETE FROM connection_secrets WHERE org_id = $1 AND connection_id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM upstream_logins WHERE org_id = $1 AND connection_id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM connections WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

fn conflict(c: &Connection, what: &str) -> String {
    if what.contains("slug") {
        format!("connection slug '{}' already exists", c.slug)
    } else {
        format!("connection '{}' already exists", c.id)
    }
}

fn args_json(c: &Connection) -> String {
    serde_json::to_string(&c.args).expect("a list of strings always serialises")
}

fn connection_from_row(row: &AnyRow) -> Result<Connection, sqlx::Error> {
    let args: String = row.try_get("args")?;
    let args = serde_json::from_str(&args)
        .map_err(|e| sqlx::Error::ColumnDecode { index: "args".into(), source: Box::new(e) })?;
    Ok(Connection {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        slug: row.try_get("slug")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        transport: row.try_get("transport")?,
        url: row.try_get("url")?,
        command: row.try_get("command")?,
        args,
        cwd: row.try_get("cwd")?,
        timeout_ms: row.try_get("timeout_ms")?,
        status: row.try_get("status")?,
        anonymous: row.try_get::<i64, _>("anonymous")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        trusted: row.try_get::<i64, _>("trusted")? != 0,
        template: row.try_get("template")?,
        auth: row.try_get("auth")?,
        oauth_shared: row.try_get::<i64, _>("oauth_shared")? != 0,
        selector: row.try_get("selector")?,
    })
}
