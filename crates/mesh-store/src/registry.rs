//! Registered agents (#22): rows written by heartbeats and aged by the sweep. Every query but
//! the sweep's is scoped by organisation.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Store, StoreError};

/// One registered agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// Its organisation.
    pub org_id: String,
    /// The agent's own id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `mcp_agent`, `api`, …
    pub agent_type: String,
    /// Its version.
    pub version: String,
    /// Its namespace.
    pub namespace: String,
    /// `python`, `typescript`, …
    pub runtime: String,
    /// Free text.
    pub description: String,
    /// `http://host:port`.
    pub endpoint: String,
    /// Its tools as JSON.
    pub tools: String,
    /// `healthy` or `unhealthy`.
    pub status: String,
    /// The connection made for it.
    pub connection_id: Option<String>,
    /// When it first registered (unix ms).
    pub created_at: i64,
    /// Its last heartbeat of any kind.
    pub last_seen: i64,
    /// Its last full heartbeat.
    pub last_full: i64,
    /// Its last change that other agents must hear of.
    pub changed_at: i64,
}

/// What a fast heartbeat learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// The agent's last full heartbeat.
    pub last_full: i64,
    /// The organisation's last topology change.
    pub topology_at: i64,
}

/// An agent the sweep changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptAgent {
    /// Its organisation.
    pub org_id: String,
    /// Its id.
    pub id: String,
    /// Its connection, if one was made.
    pub connection_id: Option<String>,
}

const COLUMNS: &str = "org_id, id, name, agent_type, version, namespace, runtime, description, endpoint, tools, \
                       status, connection_id, created_at, last_seen, last_full, changed_at";

fn agent_from_row(r: &AnyRow) -> Result<AgentRow, sqlx::Error> {
    Ok(AgentRow {
        org_id: r.try_get("org_id")?,
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        agent_type: r.try_get("agent_type")?,
        version: r.try_get("version")?,
        namespace: r.try_get("namespace")?,
        runtime: r.try_get("runtime")?,
        description: r.try_get("description")?,
        endpoint: r.try_get("endpoint")?,
        tools: r.try_get("tools")?,
        status: r.try_get("status")?,
        connection_id: r.try_get("connection_id")?,
        created_at: r.try_get("created_at")?,
        last_seen: r.try_get("last_seen")?,
        last_full: r.try_get("last_full")?,
        changed_at: r.try_get("changed_at")?,
    })
}

impl Store {
    /// One agent of `org_id`.
    pub async fn get_agent(&self, org_id: &str, id: &str) -> Result<Option<AgentRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM registry_agents WHERE org_id = $1 AND id = $2");
        let row = sqlx::query(&sql).bind(org_id).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(agent_from_row).transpose()?)
    }

    /// Every agent of `org_id`, healthy or not, by id.
    pub async fn list_agents(&self, org_id: &str) -> Result<Vec<AgentRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM registry_agents WHERE org_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql).bind(org_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(agent_from_row).collect::<Result<_, _>>()?)
    }

    /// Writes a full heartbeat: inserts the agent or replaces what it declared (keeping when it
    /// first registered).
    pub async fn put_agent(&self, a: &AgentRow) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO registry_agents ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (org_id, id) DO UPDATE SET name = excluded.name, agent_type = excluded.agent_type, \
             version = excluded.version, namespace = excluded.namespace, runtime = excluded.runtime, \
             description = excluded.description, endpoint = excluded.endpoint, tools = excluded.tools, \
             status = excluded.status, connection_id = excluded.connection_id, last_seen = excluded.last_seen, \
             last_full = excluded.last_full, changed_at = excluded.changed_at"
        );
        sqlx::query(&sql)
            .bind(&a.org_id)
            .bind(&a.id)
            .bind(&a.name)
            .bind(&a.agent_type)
            .bind(&a.version)
            .bind(&a.namespace)
            .bind(&a.runtime)
            .bind(&a.description)
            .bind(&a.endpoint)
            .bind(&a.tools)
            .bind(&a.status)
            .bind(a.connection_id.as_deref())
            .bind(a.created_at)
            .bind(a.last_seen)
            .bind(a.last_full)
            .bind(a.changed_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A fast heartbeat of a healthy agent: refreshes `last_seen`. `None` when the agent is
    /// unknown or unhealthy (a fast heartbeat never revives one: it must register again). An
    /// agent silent since before `fresh_after` was already out of resolution, so its return is
    /// a change the others must hear of.
    pub async fn beat_agent(
        &self,
        org_id: &str,
        id: &str,
        now: i64,
        fresh_after: i64,
    ) -> Result<Option<Beat>, StoreError> {
        let done = sqlx::query(
            "UPDATE registry_agents SET changed_at = CASE WHEN last_seen < $1 THEN $2 ELSE changed_at END, \
             last_seen = $3 WHERE org_id = $4 AND id = $5 AND status = 'healthy'",
        )
        .bind(fresh_after)
        .bind(now)
        .bind(now)
        .bind(org_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT a.last_full AS last_full, (SELECT MAX(changed_at) FROM registry_agents WHERE org_id = $1) AS topology_at \
             FROM registry_agents a WHERE a.org_id = $2 AND a.id = $3",
        )
        .bind(org_id)
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(Beat { last_full: r.try_get("last_full")?, topology_at: r.try_get("topology_at")? }),
            None => None,
        })
    }

    /// Marks an agent unhealthy (it said goodbye). False when it was not healthy.
    pub async fn leave_agent(&self, org_id: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE registry_agents SET status = 'unhealthy', changed_at = $1 WHERE org_id = $2 AND id = $3 AND status = 'healthy'",
        )
        .bind(now)
        .bind(org_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks unhealthy every healthy agent, of any organisation, last seen before `stale_before`.
    /// One statement: a read-then-write transaction could not upgrade its lock on SQLite
    /// while heartbeats write.
    pub async fn age_agents(&self, stale_before: i64, now: i64) -> Result<Vec<SweptAgent>, StoreError> {
        let rows = sqlx::query(
            "UPDATE registry_agents SET status = 'unhealthy', changed_at = $1 \
             WHERE status = 'healthy' AND last_seen < $2 RETURNING org_id, id, connection_id",
        )
        .bind(now)
        .bind(stale_before)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(swept_from_row).collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes every agent, of any organisation, unhealthy since before `before`; returns them
    /// so that their connections can go too.
    pub async fn purge_agents(&self, before: i64) -> Result<Vec<SweptAgent>, StoreError> {
        let rows = sqlx::query(
            "DELETE FROM registry_agents WHERE status = 'unhealthy' AND changed_at < $1 \
             RETURNING org_id, id, connection_id",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        let mut swept = rows.iter().map(swept_from_row).collect::<Result<Vec<_>, _>>()?;
        swept.sort_by(|a, b| (&a.org_id, &a.id).cmp(&(&b.org_id, &b.id)));
        Ok(swept)
    }
}

fn swept_from_row(r: &AnyRow) -> Result<SweptAgent, sqlx::Error> {
    Ok(SweptAgent { org_id: r.try_get("org_id")?, id: r.try_get("id")?, connection_id: r.try_get("connection_id")? })
}
