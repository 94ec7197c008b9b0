//! The organisation's catalogue in the official MCP Registry's format (#22): `GET /v0.1/servers`
//! lists every active connection and virtual MCP as a `server.json` entry whose one remote is
//! the mesh's own endpoint for it, so registry clients (and other meshes, with `mcp-mesh import
//! --registry`) find what the mesh serves. Read-only: publishing stays the mesh's own business.
//!
//! Names follow the registry's `namespace/name` rule: the namespace is the mesh's host in
//! reverse-DNS order and the organisation's slug (`com.example.mesh.acme`), the name the
//! connection's slug, or `gateway.{slug}` for a virtual MCP, so the two never collide.

use mesh_audit::view::format_time;
use mesh_core::Principal;
use serde_json::{json, Value};

use crate::{Admin, AdminError};

/// Most entries per page, as the official registry allows.
pub const MAX_LIMIT: usize = 100;
/// Entries per page when the caller does not say.
pub const DEFAULT_LIMIT: usize = 30;
/// The version every entry carries: the mesh serves one, current, version of each.
const VERSION: &str = "1.0.0";

/// What a caller asked of the list.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The last name of the previous page.
    pub cursor: Option<String>,
    /// Page size (1–100).
    pub limit: Option<usize>,
    /// A case-insensitive part of the name.
    pub search: Option<String>,
    /// Unix milliseconds: only entries changed since.
    pub updated_since: Option<i64>,
    /// `latest` or an exact version.
    pub version: Option<String>,
}

/// The text cut to `max` characters, never empty (the schema wants 1–100).
fn bounded(text: &str, max: usize, fallback: &str) -> String {
    let text = text.trim();
    let text = if text.is_empty() { fallback } else { text };
    text.chars().take(max).collect()
}

/// The namespace of names: the host reversed (`mesh.example.com` → `com.example.mesh`; an IP
/// address as it is), then the organisation's slug.
pub fn namespace(base_url: &str, org_slug: &str) -> String {
    let host = url::Url::parse(base_url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    let host = host.trim_matches(['[', ']']);
    let reversed = if host.parse::<std::net::IpAddr>().is_ok() {
        host.replace(':', "-")
    } else {
        host.split('.').rev().collect::<Vec<_>>().join(".")
    };
    let clean = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect::<String>()
    };
    let org = clean(org_slug);
    match clean(&reversed).trim_matches(['.', '-']) {
        "" => org,
        host => format!("{host}.{org}"),
    }
}

/// One catalogue entry.
struct Entry {
    name: String,
    value: Value,
    updated_at: i64,
}

#[allow(clippy::too_many_arguments)]
fn entry(
    namespace: &str,
    name: String,
    title: &str,
    description: Option<&str>,
    url: String,
    created_at: i64,
    updated_at: i64,
) -> Entry {
    let full = format!("{namespace}/{name}");
    let fallback = format!("{title}, served by MCP Mesh");
    let value = json!({
        "server": {
            "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
            "name": full,
            "title": bounded(title, 100, &name),
            "description": bounded(description.unwrap_or(""), 100, &fallback),
            "version": VERSION,
            "remotes": [{
                "type": "streamable-http",
                "url": url,
                "headers": [{
                    "name": "Authorization",
                    "description": "Bearer and an API key of this mesh (or an OAuth access token for this endpoint)",
                    "isRequired": true,
                    "isSecret": true,
                }],
            }],
        },
        "_meta": {
            "io.modelcontextprotocol.registry/official": {
                "status": "active",
                "publishedAt": format_time(created_at),
                "updatedAt": format_time(updated_at),
                "isLatest": true,
            }
        },
    });
    Entry { name: full, value, updated_at }
}

impl Admin {
    /// Every active connection and virtual MCP of the caller's organisation, by name.
    async fn catalogue(&self, p: &Principal, base_url: &str) -> Result<Vec<Entry>, AdminError> {
        let org = self.store.get_org(&p.org_id).await?.ok_or_else(|| AdminError::NotFound("organisation".into()))?;
        let ns = namespace(base_url, &org.slug);
        let mut out = Vec::new();
        for c in self.store.list_connections(&p.org_id).await?.into_iter().filter(|c| c.status == "active") {
            let url = format!("{base_url}/mcp/{}", c.slug);
            out.push(entry(&ns, c.slug.clone(), &c.title, c.description.as_deref(), url, c.created_at, c.updated_at));
        }
        for g in self.store.list_gateways(&p.org_id).await?.into_iter().filter(|g| g.status == "active") {
            let url = format!("{base_url}/mcp/gateway/{}", g.slug);
            let name = format!("gateway.{}", g.slug);
            out.push(entry(&ns, name, &g.title, g.description.as_deref(), url, g.created_at, g.updated_at));
        }
        // The schema caps names at 200 characters; a longer one (a long host and slug) is left
        // out rather than served invalid.
        out.retain(|e| e.name.len() <= 200);
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A page of the catalogue as `GET /v0.1/servers` answers.
    pub async fn registry_servers(&self, p: &Principal, base_url: &str, q: &Query) -> Result<Value, AdminError> {
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AdminError::Invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        let search = q.search.as_deref().map(str::to_lowercase);
        let matching: Vec<Entry> = self
            .catalogue(p, base_url)
            .await?
            .into_iter()
            .filter(|e| q.cursor.as_deref().is_none_or(|c| e.name.as_str() > c))
            .filter(|e| search.as_deref().is_none_or(|s| e.name.to_lowercase().contains(s)))
            .filter(|e| q.updated_since.is_none_or(|t| e.updated_at >= t))
            .filter(|_| q.version.as_deref().is_none_or(|v| v == "latest" || v == VERSION))
            .collect();
        let more = matching.len() > limit;
        let page: Vec<&Entry> = matching.iter().take(limit).collect();
        let mut metadata = json!({"count": page.len()});
        if more {
            metadata["nextCursor"] = json!(page.last().map(|e| e.name.clone()));
        }
        Ok(json!({"servers": page.iter().map(|e| e.value.clone()).collect::<Vec<_>>(), "metadata": metadata}))
    }

    /// The versions of one entry (`GET /v0.1/servers/{name}/versions`): there is one.
    pub async fn registry_versions(&self, p: &Principal, base_url: &str, name: &str) -> Result<Value, AdminError> {
        let e = self.registry_server(p, base_url, name, "latest").await?;
        Ok(json!({"servers": [e], "metadata": {"count": 1}}))
    }

    /// One entry at a version (`latest` or the one it has).
    pub async fn registry_server(
        &self,
        p: &Principal,
        base_url: &str,
        name: &str,
        version: &str,
    ) -> Result<Value, AdminError> {
        let not_found = || AdminError::NotFound(format!("server '{name}'"));
        if version != "latest" && version != VERSION {
            return Err(not_found());
        }
        self.catalogue(p, base_url).await?.into_iter().find(|e| e.name == name).map(|e| e.value).ok_or_else(not_found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_reverse_dns_and_valid() {
        assert_eq!(namespace("https://mesh.example.com", "acme"), "com.example.mesh.acme");
        assert_eq!(namespace("http://127.0.0.1:3000", "acme"), "127.0.0.1.acme");
        assert_eq!(namespace("http://[::1]:3000", "my_org"), "1.my-org");
        assert_eq!(namespace("not a url", "acme"), "acme");
        assert_eq!(bounded("", 100, "fallback"), "fallback");
        assert_eq!(bounded(&"é".repeat(150), 100, "x").chars().count(), 100);
    }
}
