//! Installation-wide records: the catalogue of stdio command templates (written by operators
//! only) and which organisation's owners are the operators.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::on_write;
use crate::{json, list};
use crate::{StdioTemplate, Store, StoreError};

const COLUMNS: &str = "name, description, command, args, env, created_at, updated_at";

impl Store {
    /// Inserts a template; `Conflict` if the name is taken.
    pub async fn create_template(&self, t: &StdioTemplate) -> Result<(), StoreError> {
        sqlx::query(&format!("INSERT INTO stdio_templates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(&t.name)
            .bind(t.description.as_deref())
            .bind(&t.command)
            .bind(json(&t.args))
            .bind(json(&t.env))
            .bind(t.created_at)
            .bind(t.updated_at)
            .execute(&self.pool)
            .await
            .map_err(|e| on_write(e, |_| format!("template '{}' already exists", t.name), "invalid template"))?;
        Ok(())
    }

    /// One template by name.
    pub async fn get_template(&self, name: &str) -> Result<Option<StdioTemplate>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM stdio_templates WHERE name = $1");
        let row = sqlx::query(&sql).bind(name).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(template_from_row).transpose()?)
    }

    /// Every template, by name.
    pub async fn list_templates(&self) -> Result<Vec<StdioTemplate>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM stdio_templates ORDER BY name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(template_from_row).collect::<Result<_, _>>()?)
    }

    /// The operator organisation: the one recorded at first start, or (on the first start after
    /// an upgrade) the oldest organisation, recorded then. `None` while there is no organisation.
    pub async fn operator_org(&self) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM installation WHERE name = 'operator_org'")
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            return Ok(Some(row.try_get("value")?));
        }
        let Some(first) = self.list_orgs().await?.into_iter().next() else { return Ok(None) };
        self.set_operator_org(&first.id).await?;
        // Another process may have recorded one first: read what holds.
        let row =
            sqlx::query("SELECT value FROM installation WHERE name = 'operator_org'").fetch_one(&self.pool).await?;
        Ok(Some(row.try_get("value")?))
    }

    /// Records the operator organisation unless one is recorded already (first start).
    pub async fn set_operator_org(&self, org_id: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO installation (name, value) VALUES ('operator_org', $1) ON CONFLICT (name) DO NOTHING")
            .bind(org_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A fact about the installation by name (see the `installation` table).
    pub async fn installation_value(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT value FROM installation WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Records a fact about the installation, replacing what was there. `operator_org` is
    /// written once and never replaced (`set_operator_org`).
    pub async fn set_installation_value(&self, name: &str, value: &str) -> Result<(), StoreError> {
        if name == "operator_org" {
            return Err(StoreError::Invalid("the operator organisation is recorded once".into()));
        }
        sqlx::query("INSERT INTO installation (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes a template. Connections made from it keep their copy of the command.
    pub async fn delete_template(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM stdio_templates WHERE name = $1").bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}

fn template_from_row(row: &AnyRow) -> Result<StdioTemplate, sqlx::Error> {
    Ok(StdioTemplate {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        command: row.try_get("command")?,
        args: list(row, "args")?,
        env: list(row, "env")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
