//! Gateways (virtual MCPs): a curated set of an organisation's connections behind one endpoint.
//! Every query is scoped by organisation.

use mesh_core::gateway::{MemberConfig, Strategy};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::on_write;
use crate::{Store, StoreError};

const COLUMNS: &str =
    "id, org_id, slug, title, description, mode, config, all_connections, status, created_at, updated_at";

/// A virtual MCP served at `/mcp/gateway/{slug}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    /// `gw_…` id.
    pub id: String,
    /// The owning organisation; every query filters on it.
    pub org_id: String,
    /// Unique within the organisation; used in URLs.
    pub slug: String,
    /// Display name.
    pub title: String,
    /// Free text.
    pub description: Option<String>,
    /// "degrade" | "strict" (`mesh_core::gateway::FailureMode`).
    pub mode: String,
    /// The members in order, each naming its connection by id. Empty when `all_connections`.
    pub members: Vec<MemberConfig>,
    /// Items per page of merged lists.
    pub page_size: i64,
    /// What clients are shown of the tools.
    pub strategy: Strategy,
    /// Members are every active connection of the organisation, computed when resolved.
    pub all_connections: bool,
    /// "active" | "disabled".
    pub status: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// The JSON in the `config` column. Unknown keys are kept out on purpose: what the column holds
/// is exactly what this struct says, so a typo in a hand-edited row fails loudly on read.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    members: Vec<MemberConfig>,
    page_size: i64,
    /// Absent for passthrough, so rows written before strategies read the same.
    #[serde(default, skip_serializing_if = "Strategy::is_default")]
    strategy: Strategy,
}

impl Store {
    /// Inserts a gateway. `Conflict` if its slug (or id) is taken in the organisation; `Invalid`
    /// if the organisation does not exist.
    pub async fn create_gateway(&self, g: &Gateway) -> Result<(), StoreError> {
        sqlx::query(&format!("INSERT INTO gateways ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"))
            .bind(&g.id)
            .bind(&g.org_id)
            .bind(&g.slug)
            .bind(&g.title)
            .bind(g.description.as_deref())
            .bind(&g.mode)
            .bind(config_json(g))
            .bind(i64::from(g.all_connections))
            .bind(&g.status)
            .bind(g.created_at)
            .bind(g.updated_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                on_write(e, |what| conflict(g, what), &format!("organisation '{}' does not exist", g.org_id))
            })?;
        Ok(())
    }

    /// A gateway of `org_id` by id or by slug; another organisation's is never returned.
    pub async fn get_gateway(&self, org_id: &str, id_or_slug: &str) -> Result<Option<Gateway>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM gateways WHERE org_id = $1 AND (id = $2 OR slug = $3)");
        let rows = sqlx::query(&sql).bind(org_id).bind(id_or_slug).bind(id_or_slug).fetch_all(&self.pool).await?;
        let found = rows.iter().map(gateway_from_row).collect::<Result<Vec<_>, _>>()?;
        // As for connections: a slug spelling another gateway's id loses to the id.
        let by_id = found.iter().position(|g| g.id == id_or_slug);
        Ok(found.into_iter().nth(by_id.unwrap_or(0)))
    }

    /// Every gateway of `org_id`, by slug.
    pub async fn list_gateways(&self, org_id: &str) -> Result<Vec<Gateway>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM gateways WHERE org_id = $1 ORDER BY slug");
        let rows = sqlx::query(&sql).bind(org_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(gateway_from_row).collect::<Result<_, _>>()?)
    }

    /// Updates a gateway (matched by `g.org_id` and `g.id`; `created_at` is kept). `NotFound` if
    /// the organisation has no such gateway; `Conflict` if the new slug is taken.
    pub async fn update_gateway(&self, g: &Gateway) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE gateways SET slug = $1, title = $2, description = $3, mode = $4, config = $5, \
             all_connections = $6, status = $7, updated_at = $8 WHERE org_id = $9 AND id = $10",
        )
        .bind(&g.slug)
        .bind(&g.title)
        .bind(g.description.as_deref())
        .bind(&g.mode)
        .bind(config_json(g))
        .bind(i64::from(g.all_connections))
        .bind(&g.status)
        .bind(g.updated_at)
        .bind(&g.org_id)
        .bind(&g.id)
        .execute(&self.pool)
        .await
        .map_err(|e| on_write(e, |what| conflict(g, what), "gateway refers to a missing object"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Deletes a gateway of `org_id`. Returns whether it existed.
    pub async fn delete_gateway(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM gateways WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

fn conflict(g: &Gateway, what: &str) -> String {
    if what.contains("slug") {
        format!("gateway slug '{}' already exists", g.slug)
    } else {
        format!("gateway '{}' already exists", g.id)
    }
}

fn config_json(g: &Gateway) -> String {
    let config = Config { members: g.members.clone(), page_size: g.page_size, strategy: g.strategy };
    serde_json::to_string(&config).expect("gateway config always serialises")
}

fn gateway_from_row(row: &AnyRow) -> Result<Gateway, sqlx::Error> {
    let config: String = row.try_get("config")?;
    let config: Config = serde_json::from_str(&config)
        .map_err(|e| sqlx::Error::ColumnDecode { index: "config".into(), source: Box::new(e) })?;
    Ok(Gateway {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        slug: row.try_get("slug")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        mode: row.try_get("mode")?,
        members: config.members,
        page_size: config.page_size,
        strategy: config.strategy,
        all_connections: row.try_get::<i64, _>("all_connections")? != 0,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
