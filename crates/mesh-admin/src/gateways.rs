//! Gateways (virtual MCPs): several connections curated behind one endpoint,
//! `/mcp/gateway/{slug}` — the control-plane half (create, list, get, update, delete, resolve).
//!
//! Vocabulary after linkerd: a gateway is the *logical* service a client names, its members
//! the *concrete* connections, their upstream processes or URLs the *endpoints*.
//!
//! Members are stored naming their connection by id, so renaming a connection keeps the gateway;
//! callers see (and may give) slugs. A member whose connection was disabled or deleted is skipped
//! when the gateway is served and listed under `skipped` when it is shown. The naming rules
//! (prefixes, renames, collisions) are `mesh_core::gateway`'s, shared with the data plane; what
//! is checked when a gateway is saved, and why, is in [`check`].

pub mod check;

use crate::{Admin, AdminError};
use check::Member;
use mesh_core::gateway::{FailureMode, MemberConfig, Strategy};
use mesh_core::{id, slug, Principal};
use mesh_relay::ports::{ResolvedGateway, ResolvedMember};
use mesh_store::{Connection, Gateway};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Items per page of merged lists, unless the gateway says otherwise.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
const MAX_PAGE_SIZE: i64 = 1000;

/// The slug of the gateway every organisation starts with.
pub const DEFAULT_SLUG: &str = "default";

/// What a caller may set on a gateway. On update, absent fields stay as they are; `members`,
/// when given, replaces the whole list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayInput {
    /// Unique per organisation; used in `/mcp/gateway/{slug}`.
    pub slug: Option<String>,
    /// Display name (default: the slug).
    pub title: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// What happens when a member fails (default `degrade`).
    pub mode: Option<FailureMode>,
    /// The members, in order; each names its connection by slug or id.
    pub members: Option<Vec<MemberConfig>>,
    /// Items per page of merged lists, 1 to 1000 (default 100).
    pub page_size: Option<i64>,
    /// What clients are shown of the tools: `passthrough` (default) or `smart`.
    pub strategy: Option<Strategy>,
    /// `active` or `disabled` (a disabled gateway answers 404).
    pub status: Option<String>,
    /// Members are every active connection of the organisation, each under its slug, as they come
    /// and go (the default gateway). Excludes `members`.
    pub all_connections: Option<bool>,
}

/// A gateway as shown to callers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayView {
    /// Id.
    pub id: String,
    /// Slug.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Failure mode.
    pub mode: FailureMode,
    /// Status.
    pub status: String,
    /// Whether the members are every active connection.
    pub all_connections: bool,
    /// Items per page of merged lists.
    pub page_size: i64,
    /// What clients are shown of the tools.
    pub strategy: Strategy,
    /// The members, each with its connection's slug and the prefix in force, so that a member
    /// shown here is valid input as it stands. For `allConnections`, the active connections now.
    pub members: Vec<MemberConfig>,
    /// Members left out when the gateway is served, and why ("fs: connection disabled").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Live health from the data plane (GET only): open sessions, and per member how many of them
    /// have it healthy. A member down in any session is reported `healthy: false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<serde_json::Value>,
    /// The endpoint path.
    pub endpoint: String,
    /// Created, ms since epoch.
    pub created_at: i64,
    /// Updated, ms since epoch.
    pub updated_at: i64,
}

/// The result of a create or update: the gateway, and what the save could not verify.
#[derive(Debug, Clone, Serialize)]
pub struct SavedGateway {
    /// The gateway as stored.
    pub item: GatewayView,
    /// Members that could not be reached to check their names, or allow-listed names they do not
    /// offer. Not errors: the data plane checks again when it serves the gateway.
    pub warnings: Vec<String>,
}

fn require_manage(p: &Principal) -> Result<(), AdminError> {
    if p.role.can_manage() {
        Ok(())
    } else {
        Err(AdminError::Forbidden("managing gateways needs the owner or admin role"))
    }
}

/// The gateway every organisation starts with: all its active connections, each under its slug.
pub fn default_gateway(org_id: &str, now: i64) -> Gateway {
    Gateway {
        id: id::new_id("gw"),
        org_id: org_id.to_string(),
        slug: DEFAULT_SLUG.to_string(),
        title: "Default".into(),
        description: Some("Every active connection of the organisation.".into()),
        mode: "degrade".into(),
        members: Vec::new(),
        page_size: DEFAULT_PAGE_SIZE,
        strategy: Strategy::default(),
        all_connections: true,
        status: "active".into(),
        created_at: now,
        updated_at: now,
    }
}

impl Admin {
    /// Creates a gateway, refusing name collisions between its members.
    pub async fn create_gateway(&self, p: &Principal, input: GatewayInput) -> Result<SavedGateway, AdminError> {
        require_manage(p)?;
        let (g, warnings) = self.gateway_from(p, &input).await?;
        self.store.create_gateway(&g).await?;
        tracing::info!(org = %p.org_id, gateway = %g.slug, members = g.members.len(), "gateway created");
        Ok(SavedGateway { item: self.gateway_view(g, &self.connections_by_id(p).await?), warnings })
    }

    /// Runs a new gateway's save-time checks without saving it (`GATEWAY_CHECK`): the names it
    /// would expose collide or not, and which members could not be reached. What an editor
    /// shows before saving.
    pub async fn check_gateway(&self, p: &Principal, input: GatewayInput) -> Result<serde_json::Value, AdminError> {
        require_manage(p)?;
        let (g, warnings) = self.gateway_from(p, &input).await?;
        Ok(serde_json::json!({"ok": true, "members": g.members.len(), "warnings": warnings}))
    }

    /// A new gateway from `input`, checked, not stored.
    async fn gateway_from(&self, p: &Principal, input: &GatewayInput) -> Result<(Gateway, Vec<String>), AdminError> {
        let slug = input.slug.clone().ok_or_else(|| AdminError::Invalid("slug is required".into()))?;
        let now = id::now_ms();
        let mut g = Gateway {
            id: id::new_id("gw"),
            org_id: p.org_id.clone(),
            slug: slug.clone(),
            title: slug,
            description: None,
            mode: mode_name(FailureMode::default()).into(),
            members: Vec::new(),
            page_size: DEFAULT_PAGE_SIZE,
            strategy: Strategy::default(),
            all_connections: false,
            status: "active".into(),
            created_at: now,
            updated_at: now,
        };
        let warnings = self.apply(p, &mut g, input).await?;
        Ok((g, warnings))
    }

    /// Lists the organisation's gateways.
    pub async fn list_gateways(&self, p: &Principal) -> Result<Vec<GatewayView>, AdminError> {
        let conns = self.connections_by_id(p).await?;
        Ok(self.store.list_gateways(&p.org_id).await?.into_iter().map(|g| self.gateway_view(g, &conns)).collect())
    }

    /// One gateway, by id or slug.
    pub async fn get_gateway(&self, p: &Principal, id_or_slug: &str) -> Result<GatewayView, AdminError> {
        let g = self.find_gateway(p, id_or_slug).await?;
        let mut view = self.gateway_view(g, &self.connections_by_id(p).await?);
        if let Some(live) = self.live.get() {
            let (sessions, members) = live.gateway_members(&view.id);
            let members: Vec<serde_json::Value> = members
                .into_iter()
                .map(|(slug, healthy, total)| serde_json::json!({"connection": slug, "healthy": healthy == total, "healthySessions": healthy, "sessions": total}))
                .collect();
            view.live = Some(serde_json::json!({"openSessions": sessions, "members": members}));
        }
        Ok(view)
    }

    /// Changes a gateway; a new member list is checked as on create.
    pub async fn update_gateway(
        &self,
        p: &Principal,
        id_or_slug: &str,
        input: GatewayInput,
    ) -> Result<SavedGateway, AdminError> {
        require_manage(p)?;
        let mut g = self.find_gateway(p, id_or_slug).await?;
        let old_slug = g.slug.clone();
        let warnings = self.apply(p, &mut g, &input).await?;
        g.updated_at = id::now_ms();
        self.store.update_gateway(&g).await?;
        if g.slug != old_slug {
            // As for a connection renamed: the old name's grants end with it.
            self.route_deleted(&p.org_id, &[&format!("gateway/{old_slug}")]).await?;
        }
        self.announce(crate::Change::Gateway { id: g.id.clone() });
        tracing::info!(org = %p.org_id, gateway = %g.slug, status = %g.status, "gateway updated");
        Ok(SavedGateway { item: self.gateway_view(g, &self.connections_by_id(p).await?), warnings })
    }

    /// Deletes a gateway; returns its id.
    pub async fn delete_gateway(&self, p: &Principal, id_or_slug: &str) -> Result<String, AdminError> {
        require_manage(p)?;
        let g = self.find_gateway(p, id_or_slug).await?;
        if !self.store.delete_gateway(&p.org_id, &g.id).await? {
            return Err(AdminError::NotFound(format!("gateway '{id_or_slug}'")));
        }
        self.route_deleted(&p.org_id, &[&format!("gateway/{}", g.slug), &format!("gateway/{}", g.id)]).await?;
        self.announce(crate::Change::Gateway { id: g.id.clone() });
        tracing::info!(org = %p.org_id, gateway = %g.slug, "gateway deleted");
        Ok(g.id)
    }

    /// The gateway behind `/mcp/gateway/{id_or_slug}`, with its members' upstream specs
    /// (credentials opened). `NotFound` for a disabled gateway, and for the anonymous principal:
    /// anonymous access is granted per connection, never through a gateway.
    pub async fn resolve_gateway(&self, p: &Principal, id_or_slug: &str) -> Result<ResolvedGateway, AdminError> {
        let not_found = || AdminError::NotFound(format!("gateway '{id_or_slug}'"));
        if p.is_anonymous() {
            return Err(not_found());
        }
        let g = self.find_gateway(p, id_or_slug).await?;
        if g.status != "active" {
            return Err(not_found());
        }
        let conns = self.store.list_connections(&p.org_id).await?;
        let members: Vec<(&Connection, MemberConfig)> = if g.all_connections {
            conns.iter().filter(|c| c.status == "active").map(|c| (c, MemberConfig::all_of(&c.slug))).collect()
        } else {
            let by_id: HashMap<&str, &Connection> = conns.iter().map(|c| (c.id.as_str(), c)).collect();
            g.members
                .iter()
                .filter_map(|m| match by_id.get(m.connection.as_str()) {
                    Some(c) if c.status == "active" => Some((*c, m.clone())),
                    _ => {
                        tracing::debug!(gateway = %g.slug, connection = %m.connection, "member skipped: disabled or deleted");
                        None
                    }
                })
                .collect()
        };
        let mut resolved = Vec::with_capacity(members.len());
        // Members at OAuth servers carry the caller's own token; those the caller has not
        // authorized yet are asked for all at once (one -32042 with a link each), not one per
        // attempt.
        let mut authorize = Vec::new();
        for (c, config) in members {
            let mut spec = self.spec(c).await?;
            if c.auth == "oauth" {
                match self.oauth_credential(p, c, &mut spec).await {
                    Ok(()) => {}
                    Err(AdminError::AuthorizationRequired(links)) => {
                        authorize.extend(links);
                        continue;
                    }
                    // Unusable for now (its authorization server is down): the member fails on
                    // its own, as an unreachable one does, under the gateway's failure mode.
                    Err(e) => tracing::warn!(gateway = %g.slug, connection = %c.slug, error = %e, "no upstream token"),
                }
            }
            resolved.push(ResolvedMember { connection_id: c.id.clone(), slug: c.slug.clone(), config, spec });
        }
        if !authorize.is_empty() {
            return Err(AdminError::AuthorizationRequired(authorize));
        }
        Ok(ResolvedGateway {
            id: g.id,
            slug: g.slug,
            mode: if g.mode == "strict" { FailureMode::Strict } else { FailureMode::Degrade },
            page_size: usize::try_from(g.page_size).unwrap_or(DEFAULT_PAGE_SIZE as usize),
            strategy: g.strategy,
            members: resolved,
        })
    }

    async fn find_gateway(&self, p: &Principal, id_or_slug: &str) -> Result<Gateway, AdminError> {
        self.store
            .get_gateway(&p.org_id, id_or_slug)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("gateway '{id_or_slug}'")))
    }

    async fn connections_by_id(&self, p: &Principal) -> Result<HashMap<String, Connection>, AdminError> {
        Ok(self.store.list_connections(&p.org_id).await?.into_iter().map(|c| (c.id.clone(), c)).collect())
    }

    /// Applies input to a gateway and validates the result as a whole; returns save warnings.
    async fn apply(&self, p: &Principal, g: &mut Gateway, i: &GatewayInput) -> Result<Vec<String>, AdminError> {
        apply_fields(g, i)?;
        let Some(members) = &i.members else {
            return Ok(Vec::new());
        };
        if g.all_connections {
            return Err(AdminError::Invalid(
                "this gateway serves every active connection; set allConnections: false to choose its members".into(),
            ));
        }
        // Members name connections by slug or id; they are stored by id.
        let mut conns = Vec::with_capacity(members.len());
        for m in members {
            let c = self
                .store
                .get_connection(&p.org_id, &m.connection)
                .await?
                .ok_or_else(|| AdminError::Invalid(format!("member '{}': no such connection", m.connection)))?;
            conns.push(c);
        }
        let checked: Vec<Member> =
            conns.iter().zip(members).map(|(c, config)| Member { slug: &c.slug, id: &c.id, config }).collect();
        check::check_members(&checked)?;
        let (offered, mut warnings) = self.probe_members(p, &conns).await?;
        warnings.extend(check::check_names(&checked, &offered)?);
        g.members =
            conns.iter().zip(members).map(|(c, m)| MemberConfig { connection: c.id.clone(), ..m.clone() }).collect();
        Ok(warnings)
    }

    /// Lists what each member offers, all members at once. A member that cannot be reached, or
    /// is disabled, yields `None` and a warning.
    async fn probe_members(
        &self,
        p: &Principal,
        conns: &[Connection],
    ) -> Result<(Vec<Option<check::Offered>>, Vec<String>), AdminError> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut warnings = Vec::new();
        for (i, c) in conns.iter().enumerate() {
            if c.status != "active" {
                warnings.push(format!("member '{}' is disabled; its names were not checked", c.slug));
                continue;
            }
            let mut spec = self.spec(c).await?;
            if c.auth == "oauth" {
                // Probed as the caller, with their own grant; without one nothing is started here.
                let held =
                    self.store.upstream_grant(&c.org_id, &c.id, &crate::upstream_oauth::subject_of(c, p)).await?;
                if held.is_none() || self.oauth_credential(p, c, &mut spec).await.is_err() {
                    warnings.push(format!(
                        "member '{}' needs your authorization at its server (mcp-mesh connection login {}); \
                         its names will be checked when the gateway is used",
                        c.slug, c.slug
                    ));
                    continue;
                }
            }
            let http = self.http.clone();
            tasks.spawn(async move { (i, check::probe(spec, http).await) });
        }
        let mut offered = vec![None; conns.len()];
        while let Some(done) = tasks.join_next().await {
            let Ok((i, result)) = done else { continue };
            match result {
                Ok(o) => offered[i] = Some(o),
                Err(e) => warnings.push(format!(
                    "member '{}' could not be reached ({e}); its names will be checked when the gateway is used",
                    conns[i].slug
                )),
            }
        }
        Ok((offered, warnings))
    }

    fn gateway_view(&self, g: Gateway, conns: &HashMap<String, Connection>) -> GatewayView {
        let shown = |c: &Connection, m: &MemberConfig| MemberConfig {
            connection: c.slug.clone(),
            prefix: Some(m.effective_prefix(&c.slug).to_string()),
            ..m.clone()
        };
        let mut skipped = Vec::new();
        let members = if g.all_connections {
            let mut active: Vec<&Connection> = conns.values().filter(|c| c.status == "active").collect();
            active.sort_by(|a, b| a.slug.cmp(&b.slug));
            active.into_iter().map(|c| shown(c, &MemberConfig::all_of(&c.slug))).collect()
        } else {
            g.members
                .iter()
                .map(|m| match conns.get(&m.connection) {
                    Some(c) => {
                        if c.status != "active" {
                            skipped.push(format!("{}: connection disabled", c.slug));
                        }
                        shown(c, m)
                    }
                    None => {
                        skipped.push(format!("{}: connection deleted", m.connection));
                        m.clone()
                    }
                })
                .collect()
        };
        GatewayView {
            endpoint: format!("/mcp/gateway/{}", g.slug),
            mode: if g.mode == "strict" { FailureMode::Strict } else { FailureMode::Degrade },
            id: g.id,
            slug: g.slug,
            title: g.title,
            description: g.description,
            status: g.status,
            all_connections: g.all_connections,
            page_size: g.page_size,
            strategy: g.strategy,
            members,
            skipped,
            live: None,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

fn mode_name(m: FailureMode) -> &'static str {
    match m {
        FailureMode::Degrade => "degrade",
        FailureMode::Strict => "strict",
    }
}

/// Applies and validates every field but the members (which need the store and the upstreams).
fn apply_fields(g: &mut Gateway, i: &GatewayInput) -> Result<(), AdminError> {
    if let Some(s) = &i.slug {
        slug::validate(s).map_err(|e| AdminError::Invalid(format!("slug: {e}")))?;
        g.slug = s.clone();
    }
    if let Some(t) = &i.title {
        g.title = t.clone();
    }
    if let Some(d) = &i.description {
        g.description = Some(d.clone()).filter(|d| !d.is_empty());
    }
    if let Some(m) = i.mode {
        g.mode = mode_name(m).into();
    }
    if let Some(n) = i.page_size {
        if !(1..=MAX_PAGE_SIZE).contains(&n) {
            return Err(AdminError::Invalid(format!("pageSize must be between 1 and {MAX_PAGE_SIZE}")));
        }
        g.page_size = n;
    }
    if let Some(s) = i.strategy {
        g.strategy = s;
    }
    if let Some(s) = &i.status {
        if s != "active" && s != "disabled" {
            return Err(AdminError::Invalid("status must be 'active' or 'disabled'".into()));
        }
        g.status = s.clone();
    }
    if let Some(all) = i.all_connections {
        if all && i.members.is_some() {
            return Err(AdminError::Invalid("give either allConnections or members, not both".into()));
        }
        g.all_connections = all;
        if all {
            g.members.clear();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: serde_json::Value) -> GatewayInput {
        serde_json::from_value(v).expect("valid input")
    }

    #[test]
    fn input_is_camel_case_and_strict() {
        let i = input(serde_json::json!({
            "slug": "dev", "mode": "strict", "pageSize": 5, "allConnections": false,
            "members": [{"connection": "fs", "tools": ["read_text_file"], "prefix": ""}]
        }));
        assert_eq!((i.mode, i.page_size, i.all_connections), (Some(FailureMode::Strict), Some(5), Some(false)));
        assert_eq!(i.members.unwrap()[0].prefix.as_deref(), Some(""));
        for bad in [
            serde_json::json!({"slug": "dev", "bogus": 1}),
            serde_json::json!({"slug": "dev", "mode": "lenient"}),
            serde_json::json!({"slug": "dev", "members": [{"connection": "fs", "tool": ["x"]}]}),
            serde_json::json!({"slug": "dev", "members": [{"connection": "fs", "tools": "some"}]}),
        ] {
            assert!(serde_json::from_value::<GatewayInput>(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_are_validated() {
        let fresh = || default_gateway("org_a", 1);
        let refused = [
            (serde_json::json!({"slug": "Dev Tools"}), "slug"),
            (serde_json::json!({"slug": "gateway"}), "reserved"),
            (serde_json::json!({"pageSize": 0}), "pageSize"),
            (serde_json::json!({"pageSize": 1001}), "pageSize"),
            (serde_json::json!({"status": "paused"}), "status"),
            (serde_json::json!({"allConnections": true, "members": []}), "either allConnections or members"),
        ];
        for (v, want) in refused {
            match apply_fields(&mut fresh(), &input(v.clone())) {
                Err(AdminError::Invalid(m)) => assert!(m.contains(want), "{v}: {m}"),
                other => panic!("{v}: {other:?}"),
            }
        }
        let mut g = fresh();
        let i = input(serde_json::json!({"slug": "tools", "mode": "strict", "pageSize": 1000, "status": "disabled",
                                         "description": "", "allConnections": false}));
        apply_fields(&mut g, &i).unwrap();
        assert_eq!(
            (g.slug.as_str(), g.mode.as_str(), g.page_size, g.status.as_str()),
            ("tools", "strict", 1000, "disabled")
        );
        assert_eq!((g.description, g.all_connections, g.title.as_str()), (None, false, "Default"));
    }

    #[test]
    fn the_default_gateway_serves_everything() {
        let g = default_gateway("org_a", 7);
        assert_eq!((g.slug.as_str(), g.all_connections, g.members.len(), g.page_size), ("default", true, 0, 100));
        assert_eq!((g.status.as_str(), g.mode.as_str()), ("active", "degrade"));
    }
}
