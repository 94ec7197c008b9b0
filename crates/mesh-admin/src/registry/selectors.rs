//! Capability selectors (#22): the providers a `capability` connection balances over, kept in
//! memory so that a call never asks the database.
//!
//! One [`Source`] per organisation and selector while some session uses it (links hold it; the
//! table only remembers it weakly). The registry's sweep refreshes every live source each
//! second from the agents' health, so a provider that stops beating leaves rotation within
//! `MESH_REGISTRY_UNHEALTHY_SECS` and a second; the link itself leaves out a provider that
//! refuses it at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use mesh_core::id;
use mesh_core::registry::{self, Candidate, Dependency};
use mesh_relay::{Provider, ProviderSet, Providers};
use mesh_store::{AgentRow, Connection};

use super::wire::{tools_of, AgentTool};
use crate::{Admin, AdminError};

/// The live selectors of the installation.
#[derive(Debug)]
pub struct Selectors {
    unhealthy_after: Duration,
    live: Mutex<HashMap<(String, String), Weak<Source>>>,
}

impl Default for Selectors {
    fn default() -> Self {
        Selectors::new(super::RegistrySettings::default().unhealthy_after)
    }
}

/// What one provider in a set stands on.
type Behind = (String, Vec<String>, String, i64);

/// The providers of one selector in one organisation.
#[derive(Debug)]
pub struct Source {
    org_id: String,
    selector: Dependency,
    set: RwLock<Arc<ProviderSet>>,
    /// `(agent, its tools that qualify, connection, its revision)` of the qualifying providers
    /// last seen: the set is rebuilt only when this changes…
    behind: Mutex<Vec<Behind>>,
    /// …or, after a provider's spec could not be built (a passing database error), at this time.
    retry_at: Mutex<Option<std::time::Instant>>,
    /// What the current set was built from: a new version only when this changes.
    published: Mutex<Vec<Behind>>,
}

/// How long a provider whose spec could not be built waits before it is tried again.
const RETRY_SPEC: Duration = Duration::from_secs(30);

impl Providers for Source {
    fn current(&self) -> Arc<ProviderSet> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What a selector is resolved against: the organisation's agents and connections.
async fn org_view(admin: &Admin, org_id: &str) -> Result<(Vec<AgentRow>, Vec<Connection>), AdminError> {
    Ok((admin.store.list_agents(org_id).await?, admin.store.list_connections(org_id).await?))
}

/// How a selector reads in logs and errors: `date_service tags=["system"] version=>=1.0`.
pub fn describe(s: &Dependency) -> String {
    let mut out = s.capability.clone();
    if !s.tags.is_empty() {
        out.push_str(&format!(" tags={}", serde_json::to_string(&s.tags).unwrap_or_default()));
    }
    if let Some(v) = &s.version {
        out.push_str(&format!(" version={v}"));
    }
    out
}

impl Selectors {
    /// Selectors whose agents are healthy while heard from within `unhealthy_after`.
    pub fn new(unhealthy_after: Duration) -> Selectors {
        Selectors { unhealthy_after, live: Mutex::default() }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Weak<Source>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The source of `selector` in `org_id`: the live one, or a new one filled now.
    pub async fn source(&self, admin: &Admin, org_id: &str, selector: &Dependency) -> Result<Arc<Source>, AdminError> {
        let key = (org_id.to_string(), serde_json::to_string(selector).unwrap_or_default());
        if let Some(s) = self.live().get(&key).and_then(Weak::upgrade) {
            return Ok(s);
        }
        let source = Arc::new(Source {
            org_id: org_id.to_string(),
            selector: selector.clone(),
            set: RwLock::default(),
            behind: Mutex::default(),
            retry_at: Mutex::default(),
            published: Mutex::default(),
        });
        let (agents, connections) = org_view(admin, org_id).await?;
        self.fill(admin, &source, &agents, &connections).await?;
        // Two sessions opening at once may both have made one; the first stored wins.
        let mut live = self.live();
        if let Some(s) = live.get(&key).and_then(Weak::upgrade) {
            return Ok(s);
        }
        live.insert(key, Arc::downgrade(&source));
        Ok(source)
    }

    /// Brings every live source up to date with the registry (the sweep calls it each second).
    pub async fn refresh(&self, admin: &Admin) -> Result<(), AdminError> {
        let sources: Vec<Arc<Source>> = {
            let mut live = self.live();
            live.retain(|_, s| s.strong_count() > 0);
            live.values().filter_map(Weak::upgrade).collect()
        };
        let mut by_org: HashMap<&str, Vec<&Arc<Source>>> = HashMap::new();
        for s in &sources {
            by_org.entry(s.org_id.as_str()).or_default().push(s);
        }
        // One organisation's trouble (a database error) leaves the others' sets current.
        let mut first_error = None;
        for (org_id, sources) in by_org {
            let (agents, connections) = match org_view(admin, org_id).await {
                Ok(both) => both,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            for s in sources {
                if let Err(e) = self.fill(admin, s, &agents, &connections).await {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Sets `source`'s providers from `agents`: the healthy ones whose tools qualify, each
    /// through its active connection.
    async fn fill(
        &self,
        admin: &Admin,
        source: &Source,
        agents: &[AgentRow],
        connections: &[Connection],
    ) -> Result<(), AdminError> {
        let fresh = id::now_ms() - i64::try_from(self.unhealthy_after.as_millis()).unwrap_or(i64::MAX);
        let healthy: Vec<(&AgentRow, Vec<AgentTool>)> =
            agents.iter().filter(|a| a.status == "healthy" && a.last_seen >= fresh).map(|a| (a, tools_of(a))).collect();
        let candidates: Vec<Candidate> = healthy
            .iter()
            .flat_map(|(a, tools)| {
                tools.iter().map(|t| Candidate {
                    agent_id: &a.id,
                    function_name: &t.function_name,
                    capability: &t.capability,
                    version: &t.version,
                    tags: &t.tags,
                })
            })
            .collect();
        // Agent by agent (in id order), with the names of its tools that qualify.
        let mut chosen: std::collections::BTreeMap<&str, Vec<String>> = std::collections::BTreeMap::new();
        for c in registry::qualifying(&source.selector, &candidates) {
            chosen.entry(c.agent_id).or_default().push(c.function_name.to_string());
        }
        let mut behind = Vec::new();
        for (agent, tools) in chosen {
            let Some(a) = healthy.iter().find(|(a, _)| a.id == agent).map(|(a, _)| *a) else { continue };
            let Some(c) = a.connection_id.as_deref().and_then(|id| connections.iter().find(|c| c.id == id)) else {
                continue;
            };
            // An admin who disabled an agent's connection took it out of every selector too; a
            // provider the mesh would need a user's token for cannot serve everyone.
            if c.status == "active" && c.transport == "http" && c.auth != "oauth" {
                behind.push((a.id.clone(), tools, c.id.clone(), c.updated_at));
            }
        }
        let now = std::time::Instant::now();
        let due = source.retry_at.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| now >= t);
        if *source.behind.lock().unwrap_or_else(|p| p.into_inner()) == behind && !due {
            return Ok(());
        }
        let mut providers = Vec::with_capacity(behind.len());
        let mut built = Vec::with_capacity(behind.len());
        for b in &behind {
            let (agent, tools, connection, revision) = b;
            let Some(c) = connections.iter().find(|c| &c.id == connection) else { continue };
            match admin.spec(c).await {
                Ok(spec) => {
                    providers.push(Provider {
                        key: Arc::from(agent.as_str()),
                        revision: *revision,
                        spec,
                        tools: tools.clone(),
                    });
                    built.push(b.clone());
                }
                Err(e) => {
                    tracing::warn!(org = %source.org_id, agent = %agent, error = %e, "a provider cannot be reached")
                }
            }
        }
        *source.retry_at.lock().unwrap_or_else(|p| p.into_inner()) =
            (built.len() < behind.len()).then_some(now + RETRY_SPEC);
        *source.behind.lock().unwrap_or_else(|p| p.into_inner()) = behind;
        let mut published = source.published.lock().unwrap_or_else(|p| p.into_inner());
        if *published == built {
            return Ok(());
        }
        *published = built;
        drop(published);
        let version = source.current().version + 1;
        tracing::info!(
            org = %source.org_id,
            selector = %describe(&source.selector),
            providers = providers.len(),
            "capability providers changed"
        );
        *source.set.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ProviderSet { version, providers });
        Ok(())
    }
}
