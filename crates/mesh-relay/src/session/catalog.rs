//! A virtual MCP's catalogue: each member's lists, fetched whole (following its pagination) and
//! kept while fresh — until the member says the list changed, or, for a stateless client, its own
//! `ttlMs` runs out — then curated, namespaced, filtered by policy, merged in member order, and
//! paged with a cursor the virtual MCP owns. A change is told to the client once, and only when
//! what it can see moved.

use super::gateway::{warning, Gateway, ListKind};
use super::Session;
use crate::RelayError;
use mesh_core::gateway::{expose_name, expose_uri, valid_tool_name, FailureMode};
use mesh_core::policy::Item;
use mesh_protocol::Message;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a member whose list could not be fetched is not asked for it again.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(5);

/// A merged, curated list.
pub(super) struct Merged {
    pub(super) items: Vec<Value>,
    /// Exposed name (or URI) → (member, original name or URI).
    pub(super) index: HashMap<String, (usize, String)>,
    /// Exposed names policy hides from this session: answered as unknown, audited as denied.
    pub(super) hidden: std::collections::HashSet<String>,
    pub(super) fingerprint: u64,
    /// Its kind's generation when it was built ([`Catalog::generations`]).
    pub(super) generation: u64,
}

#[derive(Default)]
pub(super) struct Catalog {
    pub(super) raw: HashMap<(usize, ListKind), Listed>,
    /// When each member's list was last asked for, and whether that failed.
    pub(super) tried: HashMap<(usize, ListKind), (Instant, bool)>,
    pub(super) merged: HashMap<ListKind, Arc<Merged>>,
    /// The `smart` strategy's search index of the merged tools (`smart.rs`).
    pub(super) search: Option<Arc<super::smart::Index>>,
    /// The lists recent first pages were served from, when they had more pages, newest last: a
    /// later page is served from the list its first page saw, though another caller's list (on a
    /// pooled session) merged it again meanwhile.
    pub(super) paged: HashMap<ListKind, std::collections::VecDeque<Arc<Merged>>>,
    /// Per kind, moves on whenever what its list may show changes otherwise than by a member's
    /// list going stale (the rules, the members, a member's announced change): a list built
    /// before is never cached or served again, though a cursor names it.
    pub(super) generations: HashMap<ListKind, u64>,
}

impl Catalog {
    /// The generation of the lists of `kind` ([`Catalog::generations`]).
    pub(super) fn generation(&self, kind: ListKind) -> u64 {
        self.generations.get(&kind).copied().unwrap_or(0)
    }

    /// Moves the lists of `kind` on a generation: its merge and the lists kept for later pages
    /// are dropped (the merge returned, for the caller to compare).
    pub(super) fn new_generation(&mut self, kind: ListKind) -> Option<Arc<Merged>> {
        *self.generations.entry(kind).or_default() += 1;
        self.paged.remove(&kind);
        self.merged.remove(&kind)
    }

    /// Whether later pages of the list of `kind` with this fingerprint may come from `merged`:
    /// it is that list, of the kind's generation.
    fn serves(&self, merged: &Merged, kind: ListKind, fingerprint: u64) -> bool {
        merged.fingerprint == fingerprint && merged.generation == self.generation(kind)
    }
}

/// Lists of one kind kept for their later pages ([`Catalog::paged`]).
const PAGED_KEPT: usize = 4;

/// One member's whole list of one kind, as last fetched.
pub(super) struct Listed {
    pub(super) items: Arc<Vec<Value>>,
    /// When it was fetched, and for how long the member said it stays fresh (`ttlMs`, the
    /// shortest of its pages; `None` when a page gave none, as every session-based member's).
    pub(super) fetched: Instant,
    pub(super) ttl_ms: Option<u64>,
    /// Its time is up: fetched again at the next merge, and served as it is if that fails.
    pub(super) stale: bool,
}

impl Listed {
    /// How much longer the member said the list stays fresh, in milliseconds (0 when it said
    /// nothing: immediately stale, as the revision reads a missing `ttlMs`).
    fn fresh_for(&self) -> u64 {
        let ttl = self.ttl_ms.unwrap_or(0);
        ttl.saturating_sub(u64::try_from(self.fetched.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

pub(super) fn fingerprint(items: &[Value]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(items).unwrap_or_default().hash(&mut h);
    h.finish()
}

impl Gateway {
    /// A page of the merged list of `kind`: from the start for a client's first page (a stateless
    /// client's first page asks again the members whose lists went stale, [`Gateway::fresh_merged`]),
    /// else from where the cursor says, in the list the first page was served from. A cursor names
    /// that list by its fingerprint, so the pages a client reads add up to one list, never to parts
    /// of two (on a pooled session another caller's first page may merge the list again between
    /// this caller's pages); one whose list is gone is refused, never read against another list.
    pub(super) async fn page(&self, s: &Session, kind: ListKind, cursor: Option<&str>) -> Result<Value, RelayError> {
        let (merged, start) = match cursor {
            None if s.is_pooled() => (self.fresh_merged(s, kind).await?, 0),
            None => (self.merged(s, kind).await?, 0),
            Some(c) => {
                let invalid = || RelayError::InvalidParams("invalid cursor".into());
                let (start, seen) = c.strip_prefix('p').and_then(|c| c.split_once('-')).ok_or_else(invalid)?;
                let start = start.parse::<usize>().map_err(|_| invalid())?;
                let seen = u64::from_str_radix(seen, 16).map_err(|_| invalid())?;
                let merged = match self.kept(kind, seen) {
                    Some(m) => m,
                    None => {
                        let current = self.merged(s, kind).await?;
                        if !self.catalog().serves(&current, kind, seen) {
                            let why = "invalid cursor: the list changed since its first page; list it again";
                            return Err(RelayError::InvalidParams(why.into()));
                        }
                        current
                    }
                };
                match start <= merged.items.len() {
                    true => (merged, start),
                    false => return Err(invalid()),
                }
            }
        };
        let end = (start + self.page_size).min(merged.items.len());
        let mut out = Map::new();
        out.insert(kind.key().into(), Value::Array(merged.items[start..end].to_vec()));
        if end < merged.items.len() {
            out.insert("nextCursor".into(), Value::String(format!("p{end}-{:x}", merged.fingerprint)));
            if start == 0 {
                self.keep(kind, merged);
            }
        }
        Ok(Value::Object(out))
    }

    /// The list of `kind` with this fingerprint that later pages may still be served from: the
    /// current merge, or one a first page was served from, of the kind's generation.
    fn kept(&self, kind: ListKind, fingerprint: u64) -> Option<Arc<Merged>> {
        let catalog = self.catalog();
        let current = catalog.merged.get(&kind).into_iter();
        let mut all = current.chain(catalog.paged.get(&kind).into_iter().flatten());
        all.find(|m| catalog.serves(m, kind, fingerprint)).cloned()
    }

    /// Keeps `merged`, whose first page was just served, for its later pages.
    fn keep(&self, kind: ListKind, merged: Arc<Merged>) {
        let mut catalog = self.catalog();
        if merged.generation != catalog.generation(kind) {
            return;
        }
        let kept = catalog.paged.entry(kind).or_default();
        kept.retain(|m| m.fingerprint != merged.fingerprint);
        kept.push_back(merged);
        if kept.len() > PAGED_KEPT {
            kept.pop_front();
        }
    }

    /// The merged list of `kind`, fetching what is not cached.
    pub(super) async fn merged(&self, s: &Session, kind: ListKind) -> Result<Arc<Merged>, RelayError> {
        if let Some(m) = self.catalog().merged.get(&kind) {
            return Ok(m.clone());
        }
        let wanted: Vec<(usize, String)> = {
            let members = self.members();
            let catalog = self.catalog();
            let lacking = |k: usize| catalog.raw.get(&(k, kind)).is_none_or(|l| l.stale);
            members
                .iter()
                .enumerate()
                .filter(|(k, m)| m.has(kind.capability()) && lacking(*k))
                .map(|(k, m)| (k, m.slug.clone()))
                .collect()
        };
        let fetched = futures_util::future::join_all(
            wanted.into_iter().map(|(k, slug)| async move { (k, slug, Self::fetch_all(s, k, kind).await) }),
        )
        .await;
        for (k, slug, result) in fetched {
            self.catalog().tried.insert((k, kind), (Instant::now(), result.is_err()));
            match result {
                Ok((items, ttl_ms)) => {
                    let fetched = Instant::now();
                    let listed = Listed { items: Arc::new(items), fetched, ttl_ms, stale: false };
                    self.catalog().raw.insert((k, kind), listed);
                }
                Err(e) if self.mode == FailureMode::Strict => {
                    return Err(RelayError::UpstreamUnavailable(format!("member {slug}: {e}")));
                }
                // A stale list that could not be fetched again is served as it was (and asked
                // for again on the next list).
                Err(e) => {
                    tracing::warn!(gateway = %self.slug, member = %slug, error = %e, "member list unavailable; serving the others");
                    s.notify_client(&warning(&format!("member {slug} is unavailable: {e}")));
                }
            }
        }
        let merged = Arc::new(self.build(s, kind));
        let mut catalog = self.catalog();
        // Built before the kind moved on a generation (the rules or the members changed while it
        // was built): answered, never cached, so that the merge the change starts is the one kept.
        if merged.generation == catalog.generation(kind) {
            catalog.merged.insert(kind, merged.clone());
        }
        Ok(merged)
    }

    /// Every page of `member`'s list of `kind`, and the shortest `ttlMs` its pages gave (`None`
    /// when one gave none).
    pub(super) async fn fetch_all(
        s: &Session,
        member: usize,
        kind: ListKind,
    ) -> Result<(Vec<Value>, Option<u64>), RelayError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut ttl_ms = Some(u64::MAX);
        for _ in 0..100 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = s.internal(member, kind.method(), &params).await?;
            items.extend(page.get(kind.key()).and_then(Value::as_array).cloned().unwrap_or_default());
            // A page of the stateless revision (it says its `resultType`) without `ttlMs` is
            // stale at once, as the revision reads it; a session-based member's pages say
            // nothing, and its list is kept until it says it changed.
            let stateless = page.get("resultType").is_some().then_some(0);
            let ttl = page.get("ttlMs").and_then(Value::as_u64).or(stateless);
            ttl_ms = ttl_ms.zip(ttl).map(|(a, b)| a.min(b));
            cursor = page.get("nextCursor").and_then(Value::as_str).map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        Ok((items, ttl_ms))
    }

    /// The merged list of `kind` for a stateless client's list (its first page), with the
    /// members' lists that have gone stale fetched again: the member said for how long its list
    /// stays fresh, that time is up, and it does not announce changes of the list (one that
    /// does is refetched when it says so); and a serving member whose list could not be fetched
    /// is asked again. Calls do not ask: what a call finds by name is the list as the client last
    /// saw it. Serialised with `renew`, so that neither builds a merge without what the other
    /// dropped.
    ///
    /// Lists that came in while one was fetching take what it fetched (only a member last asked
    /// before they came is asked again), and a member whose fetch failed is not asked again for a
    /// few seconds: one failing member must not make every list wait on it.
    pub(super) async fn fresh_merged(&self, s: &Session, kind: ListKind) -> Result<Arc<Merged>, RelayError> {
        let arrived = Instant::now();
        if !self.expire(kind, None) {
            return self.merged(s, kind).await;
        }
        let _serial = self.refresh.lock().await;
        self.expire(kind, Some(arrived));
        self.merged(s, kind).await
    }

    /// Whether a member's list of `kind` is stale or missing (see [`Gateway::fresh_merged`]) and
    /// may be asked for again; with `arrived` (under the refresh lock), those last asked for
    /// before then are marked to be fetched again and the merged list dropped.
    fn expire(&self, kind: ListKind, arrived: Option<Instant>) -> bool {
        let members = self.members();
        let mut catalog = self.catalog();
        let mut any = false;
        for (k, m) in members.iter().enumerate().filter(|(_, m)| m.has(kind.capability())) {
            let tried = catalog.tried.get(&(k, kind)).copied();
            let failed_lately = tried.is_some_and(|(at, failed)| failed && at.elapsed() < RETRY_FAILED_AFTER);
            let asked_since = arrived.is_some_and(|t| tried.is_some_and(|(at, _)| at >= t));
            if failed_lately || asked_since {
                continue;
            }
            let mark = arrived.is_some();
            let Some(listed) = catalog.raw.get_mut(&(k, kind)) else {
                any = true;
                continue;
            };
            if listed.ttl_ms.is_some() && listed.fresh_for() == 0 && !m.announces_changes(kind) {
                any = true;
                listed.stale |= mark;
            }
        }
        if any && arrived.is_some() {
            catalog.merged.remove(&kind);
        }
        any
    }

    /// How long the merged list of `kind` stays fresh, in milliseconds: the least any member in
    /// it still has (each member's own `ttlMs` since it was fetched; 0 for one that gave none or
    /// whose list is missing from the merge).
    pub(super) fn fresh_for(&self, kind: ListKind) -> u64 {
        let members = self.members();
        let catalog = self.catalog();
        let serving = members.iter().enumerate().filter(|(_, m)| m.has(kind.capability()));
        serving.map(|(k, _)| catalog.raw.get(&(k, kind)).map_or(0, Listed::fresh_for)).min().unwrap_or(0)
    }

    pub(super) fn build(&self, s: &Session, kind: ListKind) -> Merged {
        let policy_kind = super::governance::item_kind(kind);
        let members = self.members();
        let catalog = self.catalog();
        // The rules read with the generation, under the catalogue's lock: a change of them is
        // written before it moves the generation on, so a list of the new generation was built
        // under the new rules.
        let access = s.access();
        let mut candidates: Vec<(String, usize, String, Value)> = Vec::new();
        let mut hidden = std::collections::HashSet::new();
        for (k, m) in members.iter().enumerate() {
            let Some(raw) = catalog.raw.get(&(k, kind)) else { continue };
            for item in raw.items.iter() {
                let Some(original) = item.get(kind.id_field()).and_then(Value::as_str) else { continue };
                if !m.selection(kind).allows(original) {
                    continue;
                }
                let exposed = match kind {
                    ListKind::Tools | ListKind::Prompts => expose_name(&m.prefix, &m.config, original),
                    ListKind::Resources | ListKind::Templates => expose_uri(&m.prefix, original),
                };
                let entry = Item { connection: &m.slug, gateway: Some(&self.slug), kind: policy_kind, name: original };
                if !access.allows(&entry) {
                    hidden.insert(exposed);
                    continue;
                }
                if kind == ListKind::Tools && !valid_tool_name(&exposed) {
                    tracing::warn!(gateway = %self.slug, member = %m.slug, name = %exposed, "exposed tool name invalid; left out");
                    continue;
                }
                let mut def = item.clone();
                def[kind.id_field()] = Value::String(exposed.clone());
                if let Some(d) =
                    m.config.descriptions.get(original).filter(|_| matches!(kind, ListKind::Tools | ListKind::Prompts))
                {
                    def["description"] = Value::String(d.clone());
                }
                candidates.push((exposed, k, original.to_string(), def));
            }
        }
        // A name exposed twice is a collision: neither is served, and both are named, rather
        // than letting whichever member answered first win.
        let mut count: HashMap<&str, Vec<(usize, &str)>> = HashMap::new();
        for (name, k, original, _) in &candidates {
            count.entry(name.as_str()).or_default().push((*k, original.as_str()));
        }
        for (name, owners) in count.iter().filter(|(_, o)| o.len() > 1) {
            let who: Vec<String> = owners.iter().map(|(k, o)| format!("{}'s '{o}'", members[*k].slug)).collect();
            let text = format!(
                "name collision in gateway {}: '{name}' is {}; neither is served",
                self.slug,
                who.join(" and ")
            );
            tracing::warn!("{text}");
            s.notify_client(&warning(&text));
        }
        let mut items = Vec::new();
        let mut index = HashMap::new();
        for (name, k, original, def) in candidates.iter().cloned() {
            if count.get(name.as_str()).is_some_and(|o| o.len() > 1) {
                continue;
            }
            index.insert(name, (k, original));
            items.push(def);
        }
        let fingerprint = fingerprint(&items);
        Merged { items, index, hidden, fingerprint, generation: catalog.generation(kind) }
    }

    /// Refetches `member`'s lists of `kinds` (all members' when `None`) and tells the client
    /// once per kind whose visible list changed.
    pub(super) fn refresh(&self, s: &Session, member: Option<usize>, kinds: &[ListKind]) {
        self.renew(s, Some(member), kinds);
    }

    /// Re-curates every merged list from the cached member lists (the policy changed) and tells
    /// the client of those whose visible content moved.
    pub(super) fn rebuild(&self, s: &Session) {
        self.renew(s, None, &ListKind::ALL);
    }

    /// `refetch`: `Some(member)` drops that member's cached lists (`Some(None)`: every member's)
    /// before merging again; `None` keeps them.
    fn renew(&self, s: &Session, refetch: Option<Option<usize>>, kinds: &[ListKind]) {
        let Some(me) = s.me.upgrade() else { return };
        let kinds = kinds.to_vec();
        tokio::spawn(async move {
            let Some(gw) = me.gateway.as_ref() else { return };
            let _serial = gw.refresh.lock().await;
            let mut announce: Vec<&'static str> = Vec::new();
            for kind in kinds {
                let old = {
                    let mut c = gw.catalog();
                    if let Some(member) = refetch {
                        c.raw.retain(|(k, kk), _| *kk != kind || member.is_some_and(|m| m != *k));
                    }
                    c.new_generation(kind)
                };
                // A list the client never fetched cannot have changed for it.
                let Some(old) = old else { continue };
                gw.merge_again(&me, kind, &old, &mut announce).await;
            }
            announce_changes(&me, announce);
        });
    }

    /// Merges `kind` again, its merged list `old` having been dropped, and notes in `announce`
    /// the kind's `list_changed` when what the client can see moved.
    pub(super) async fn merge_again(
        &self,
        s: &Session,
        kind: ListKind,
        old: &Merged,
        announce: &mut Vec<&'static str>,
    ) {
        match self.merged(s, kind).await {
            Ok(new) if new.fingerprint != old.fingerprint => {
                if !announce.contains(&kind.changed_notification()) {
                    announce.push(kind.changed_notification());
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(gateway = %self.slug, error = %e, "merging a list again failed"),
        }
    }
}

/// Tells the client of each list whose visible content moved, once each.
pub(super) fn announce_changes(s: &Session, announce: Vec<&'static str>) {
    for method in announce {
        s.notify_client(&Message::notification(method, None));
    }
}

#[cfg(test)]
mod tests {
    use super::{Catalog, ListKind, Merged};
    use std::sync::Arc;

    fn list(generation: u64) -> Arc<Merged> {
        let (index, hidden) = (Default::default(), Default::default());
        Arc::new(Merged { items: Vec::new(), index, hidden, fingerprint: 7, generation })
    }

    #[test]
    fn a_kind_moves_on_a_generation_alone() {
        let mut c = Catalog::default();
        for kind in [ListKind::Tools, ListKind::Prompts] {
            c.merged.insert(kind, list(0));
            c.paged.entry(kind).or_default().push_back(list(0));
        }
        let dropped = c.new_generation(ListKind::Tools);
        assert!(dropped.is_some_and(|m| m.generation == 0), "the merge it dropped, to compare with");
        assert_eq!((c.generation(ListKind::Tools), c.generation(ListKind::Prompts)), (1, 0));
        assert!(!c.merged.contains_key(&ListKind::Tools) && !c.paged.contains_key(&ListKind::Tools));
        assert!(c.merged.contains_key(&ListKind::Prompts) && c.paged[&ListKind::Prompts].len() == 1);
        assert!(c.new_generation(ListKind::Tools).is_none(), "nothing merged since");
        assert_eq!(c.generation(ListKind::Tools), 2);
    }
}
