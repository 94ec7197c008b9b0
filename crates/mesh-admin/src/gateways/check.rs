//! Save-time checks of a gateway's members: the rules that need no upstream (pure), then the
//! exposed names against what each reachable member really offers.
//!
//! Why check at save time at all, when the data plane applies the same rules at run time: a
//! collision found when someone saves a gateway is a clear error for the person who caused it;
//! found at run time it is a broken endpoint for every client. Why a member that cannot be reached
//! is only a warning: upstreams come and go (a laptop's stdio server, a flaky SaaS), and refusing
//! to save would make a gateway impossible to edit while one member is down. The data plane
//! checks again, with the names of the day.

use crate::AdminError;
use mesh_core::gateway::{self, MemberConfig, Selection};
use mesh_relay::client::McpClient;
use mesh_relay::UpstreamSpec;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// The longest a save waits for one member's answer (the connection's own timeout, if shorter).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// One member as the checks see it.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// The connection's slug.
    pub slug: &'a str,
    /// The connection's id.
    pub id: &'a str,
    /// Its curation.
    pub config: &'a MemberConfig,
}

impl Member<'_> {
    fn prefix(&self) -> &str {
        self.config.effective_prefix(self.slug)
    }
}

/// What a reachable member offers: its original tool and prompt names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offered {
    /// Tool names.
    pub tools: Vec<String>,
    /// Prompt names.
    pub prompts: Vec<String>,
}

/// The rules that need no upstream: each connection once, valid prefixes, distinct resource URI
/// prefixes, no empty renames.
pub fn check_members(members: &[Member<'_>]) -> Result<(), AdminError> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut uri_prefixes: HashMap<String, &str> = HashMap::new();
    for m in members {
        if seen.insert(m.id, m.slug).is_some() {
            return Err(AdminError::Invalid(format!(
                "connection '{}' is a member twice; a connection joins a gateway once (its allow-lists and renames say what to expose)",
                m.slug
            )));
        }
        let prefix = m.prefix();
        if !gateway::valid_prefix(prefix) {
            let what = match &m.config.prefix {
                Some(p) => format!("member '{}': invalid prefix '{p}'", m.slug),
                None => format!("member '{}': its slug cannot be a prefix; set one", m.slug),
            };
            return Err(AdminError::Invalid(format!(
                "{what} (a prefix is empty, or a letter then at most 31 letters, digits, '_' or '-')"
            )));
        }
        if !prefix.is_empty() {
            // `my_fs` and `my-fs` are different name prefixes but one URI scheme prefix.
            let uri = gateway::uri_prefix(prefix);
            if let Some(first) = uri_prefixes.insert(uri.clone(), m.slug) {
                return Err(AdminError::Invalid(format!(
                    "members '{first}' and '{}' would share the prefix '{uri}' (resource URIs '{uri}+…'); give them different prefixes",
                    m.slug
                )));
            }
        }
        if let Some((original, _)) = m.config.renames.iter().find(|(_, to)| to.is_empty()) {
            return Err(AdminError::Invalid(format!("member '{}': the rename of '{original}' is empty", m.slug)));
        }
    }
    Ok(())
}

/// Builds the exposed tool and prompt names of every member and refuses a collision or an
/// invalid tool name, naming both sides. `offered[i]` is member i's names, or `None` when it
/// could not be reached: then its allow-lists stand in for its names (it can expose no others).
/// Returns warnings: allow-listed names a reachable member does not offer.
pub fn check_names(members: &[Member<'_>], offered: &[Option<Offered>]) -> Result<Vec<String>, AdminError> {
    let mut warnings = Vec::new();
    let mut tools: Vec<Vec<&str>> = Vec::new();
    let mut prompts: Vec<Vec<&str>> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let known = offered.get(i).and_then(Option::as_ref);
        for (kind, selection, names, out) in [
            ("tool", &m.config.tools, known.map(|o| &o.tools), &mut tools),
            ("prompt", &m.config.prompts, known.map(|o| &o.prompts), &mut prompts),
        ] {
            out.push(match (names, selection) {
                (Some(names), _) => {
                    if let Selection::Only(wanted) = selection {
                        for w in wanted.iter().filter(|w| !names.contains(w)) {
                            warnings.push(format!("member '{}' offers no {kind} '{w}' (yet)", m.slug));
                        }
                    }
                    names.iter().map(String::as_str).filter(|n| selection.allows(n)).collect()
                }
                (None, Selection::Only(wanted)) => wanted.iter().map(String::as_str).collect(),
                (None, Selection::All) => Vec::new(),
            });
        }
    }
    let table = |lists: &[Vec<&str>], validate: bool| {
        let rows = members.iter().zip(lists).map(|(m, names)| (m.prefix(), m.slug, m.config, names.clone()));
        gateway::name_table(rows, validate).map(|_| ()).map_err(AdminError::Invalid)
    };
    table(&tools, true)?;
    table(&prompts, false).map_err(|e| AdminError::Invalid(format!("prompts: {e}")))?;
    Ok(warnings)
}

/// Connects to a member and lists its tools and prompts (each only if the server declares the
/// capability). The error is a sentence for a warning.
pub async fn probe(mut spec: UpstreamSpec, http: mesh_relay::UpstreamClients) -> Result<Offered, String> {
    spec.timeout = spec.timeout.min(PROBE_TIMEOUT);
    // Classified, never the upstream's own words: a gateway's warnings must not turn saving a
    // gateway into a way to read what answers on some port (issue #16 item 2).
    let client = McpClient::connect(&spec, &http, "mcp-mesh-gateway-check").await.map_err(|e| {
        tracing::info!(connection = %spec.name, error = %e, "gateway member unreachable while saving");
        mesh_relay::failure::Failure::of(&e).message()
    })?;
    let caps = client.initialize_result().get("capabilities").cloned().unwrap_or(Value::Null);
    let listed = async {
        let mut out = Offered::default();
        if caps.get("tools").is_some() {
            out.tools = names(client.list_tools().await.map_err(|e| format!("tools/list: {e}"))?);
        }
        if caps.get("prompts").is_some() {
            out.prompts = names(list_prompts(&client).await.map_err(|e| format!("prompts/list: {e}"))?);
        }
        Ok(out)
    }
    .await;
    // Closed on every path: a stdio member is a child process.
    client.close().await;
    listed
}

async fn list_prompts(client: &McpClient) -> Result<Vec<Value>, mesh_relay::client::ClientError> {
    client.list_all("prompts/list", "prompts").await
}

fn names(items: Vec<Value>) -> Vec<String> {
    items.iter().filter_map(|t| t.get("name").and_then(Value::as_str)).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(names: &[&str]) -> Selection {
        Selection::Only(names.iter().map(|n| n.to_string()).collect())
    }

    fn cfg(prefix: Option<&str>) -> MemberConfig {
        MemberConfig { prefix: prefix.map(str::to_string), ..MemberConfig::all_of("ignored") }
    }

    fn offered(tools: &[&str], prompts: &[&str]) -> Option<Offered> {
        Some(Offered {
            tools: tools.iter().map(|t| t.to_string()).collect(),
            prompts: prompts.iter().map(|p| p.to_string()).collect(),
        })
    }

    fn err(r: Result<impl std::fmt::Debug, AdminError>) -> String {
        match r {
            Err(AdminError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn member_rules_table() {
        let (none, empty, x, x2, bad) = (cfg(None), cfg(Some("")), cfg(Some("x")), cfg(Some("x")), cfg(Some("9x")));
        let m = |slug, id, config| Member { slug, id, config };
        let ok: &[&[Member]] = &[
            &[],
            &[m("fs", "c1", &none)],
            &[m("fs", "c1", &empty), m("gh", "c2", &empty)], // two unprefixed members: names decide
            &[m("fs", "c1", &x), m("gh", "c2", &none)],
        ];
        for members in ok {
            check_members(members).unwrap_or_else(|e| panic!("{members:?}: {e}"));
        }
        let refused: &[(&[Member], &str)] = &[
            (&[m("fs", "c1", &none), m("fs", "c1", &x)], "'fs' is a member twice"),
            (&[m("9fs", "c1", &none)], "its slug cannot be a prefix"),
            (&[m("fs", "c1", &bad)], "invalid prefix '9x'"),
            (&[m("fs", "c1", &x), m("gh", "c2", &x2)], "members 'fs' and 'gh' would share the prefix 'x'"),
        ];
        for (members, want) in refused {
            let e = err(check_members(members));
            assert!(e.contains(want), "{e} should contain {want}");
        }
        let (a, b) = (cfg(Some("my_fs")), cfg(Some("my-fs")));
        let e = err(check_members(&[m("a", "c1", &a), m("b", "c2", &b)]));
        assert!(e.contains("'my-fs'"), "{e}");
        let mut renamed = cfg(None);
        renamed.renames.insert("read".into(), String::new());
        assert!(err(check_members(&[m("fs", "c1", &renamed)])).contains("rename of 'read' is empty"));
    }

    #[test]
    fn collisions_name_both_members_and_tools() {
        let empty = cfg(Some(""));
        let members = [
            Member { slug: "everything-a", id: "c1", config: &empty },
            Member { slug: "everything-b", id: "c2", config: &empty },
        ];
        let both = [offered(&["echo", "add"], &[]), offered(&["echo"], &[])];
        let e = err(check_names(&members, &both));
        assert!(e.contains("everything-a's 'echo'") && e.contains("everything-b's 'echo'"), "{e}");

        // Prefixed: no collision.
        let (a, b) = (cfg(None), cfg(None));
        let prefixed = [Member { config: &a, ..members[0] }, Member { config: &b, ..members[1] }];
        assert_eq!(check_names(&prefixed, &both).unwrap(), Vec::<String>::new());

        // An allow-list on one and nothing of the other: no collision, and a missing name warns.
        let mut one = cfg(Some(""));
        one.tools = only(&["echo", "nope"]);
        let mut none = cfg(Some(""));
        none.tools = only(&[]);
        let curated = [Member { config: &one, ..members[0] }, Member { config: &none, ..members[1] }];
        assert_eq!(check_names(&curated, &both).unwrap(), ["member 'everything-a' offers no tool 'nope' (yet)"]);

        // Unreachable members: their allow-lists stand in for their names.
        let e = err(check_names(
            &[Member { config: &one, ..members[0] }, Member { config: &one, ..members[1] }],
            &[None, None],
        ));
        assert!(e.contains("collision: 'echo'"), "{e}");
        assert!(check_names(&members, &[None, None]).is_ok(), "nothing known, nothing to refuse");

        // A rename can cause a collision, and can resolve one.
        let mut renamed = cfg(Some(""));
        renamed.renames.insert("add".into(), "echo".into());
        let e = err(check_names(&[Member { config: &renamed, ..members[0] }], &[offered(&["echo", "add"], &[])]));
        assert!(e.contains("everything-a's 'echo'") && e.contains("everything-a's 'add'"), "{e}");
        let mut fixed = cfg(Some(""));
        fixed.renames.insert("echo".into(), "echo_b".into());
        let ok = [Member { config: &empty, ..members[0] }, Member { config: &fixed, ..members[1] }];
        assert!(check_names(&ok, &both).is_ok());
    }

    #[test]
    fn prompts_collide_too_and_tool_names_must_be_valid() {
        let empty = cfg(Some(""));
        let members = [Member { slug: "a", id: "c1", config: &empty }, Member { slug: "b", id: "c2", config: &empty }];
        let e = err(check_names(&members, &[offered(&[], &["greet"]), offered(&[], &["greet"])]));
        assert!(e.starts_with("prompts: ") && e.contains("a's 'greet'") && e.contains("b's 'greet'"), "{e}");
        let long = "t".repeat(60);
        let prefixed = cfg(Some("a_long_prefix"));
        let e = err(check_names(&[Member { config: &prefixed, ..members[0] }], &[offered(&[&long], &[])]));
        assert!(e.contains("not a valid tool name"), "{e}");
        let spaced = [offered(&["has space"], &[]), None];
        assert!(err(check_names(&members, &spaced)).contains("not a valid tool name"));
    }
}
