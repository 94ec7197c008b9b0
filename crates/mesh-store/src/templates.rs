//! The catalogue of stdio command templates: installation-wide, written by operators only.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::on_write;
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

    /// Deletes a template. Connections made from it keep their copy of the command.
    pub async fn delete_template(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM stdio_templates WHERE name = $1").bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).expect("a list of strings always serialises")
}

fn list(row: &AnyRow, column: &str) -> Result<Vec<String>, sqlx::Error> {
    let raw: String = row.try_get(column)?;
    serde_json::from_str(&raw).map_err(|e| sqlx::Error::ColumnDecode { index: column.into(), source: Box::new(e) })
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
