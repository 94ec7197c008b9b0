//! The agent registry's vocabulary and its resolution rules (#22).
//!
//! Agents built on the mcp-mesh SDK register their tools, each offering a *capability* with
//! tags and a version, and declare *dependencies* on other capabilities. The registry answers
//! each declared dependency with one healthy provider. The rules here are the ones the SDK's
//! agents expect of their registry (observed against its reference implementation; where its
//! manual disagrees, the observed behaviour wins, since that is what deployed agents rely on):
//!
//! 1. candidates: the tools of healthy agents whose capability equals the requested one;
//! 2. tags: a plain tag is required (+5), `+tag` is preferred (+10 when present), `-tag`
//!    excludes; a nested list is a group of which one member must match (+5, or +10 for a
//!    `+` member), and every group must hold;
//! 3. version: the dependency's constraint ([`version::satisfies`]);
//! 4. ties: higher score, then higher version (any version above an unparsable one), then the
//!    lower agent id, then the lower tool name.

pub mod version;

use serde::{Deserialize, Serialize};
use version::Version;

/// One entry of a dependency's `tags`: a tag (with an optional `+`/`-` prefix) or a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TagSpec {
    /// `"t"` required, `"+t"` preferred, `"-t"` excluded.
    One(String),
    /// At least one member must match.
    AnyOf(Vec<String>),
}

/// A dependency as an agent declares it on one of its tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The capability asked for.
    pub capability: String,
    /// Tag requirements and preferences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagSpec>,
    /// A version constraint (`>=1.2`, `~1.2`, `^2`, `1.5.0`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A tool of a healthy agent, as resolution sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The agent offering it.
    pub agent_id: &'a str,
    /// The MCP tool name callers use.
    pub function_name: &'a str,
    /// The capability it offers.
    pub capability: &'a str,
    /// Its version (free text; semver when it parses).
    pub version: &'a str,
    /// Its tags.
    pub tags: &'a [String],
}

/// How a tag of a dependency reads.
enum Tag<'a> {
    Required(&'a str),
    Preferred(&'a str),
    Excluded(&'a str),
}

fn tag(text: &str) -> Tag<'_> {
    if let Some(t) = text.strip_prefix('+') {
        Tag::Preferred(t)
    } else if let Some(t) = text.strip_prefix('-') {
        Tag::Excluded(t)
    } else {
        Tag::Required(text)
    }
}

/// The candidate's tag score, or `None` when the tags rule it out.
fn score(specs: &[TagSpec], has: impl Fn(&str) -> bool) -> Option<u32> {
    let mut total = 0;
    for spec in specs {
        match spec {
            TagSpec::One(text) => match tag(text) {
                Tag::Required(t) if has(t) => total += 5,
                Tag::Required(_) => return None,
                Tag::Preferred(t) if has(t) => total += 10,
                Tag::Preferred(_) => {}
                Tag::Excluded(t) if has(t) => return None,
                Tag::Excluded(_) => {}
            },
            TagSpec::AnyOf(group) => {
                let mut best = None;
                let mut wanted = false;
                for text in group {
                    match tag(text) {
                        Tag::Excluded(t) if has(t) => return None,
                        Tag::Excluded(_) => {}
                        Tag::Required(t) => {
                            wanted = true;
                            if has(t) {
                                best = best.max(Some(5));
                            }
                        }
                        Tag::Preferred(t) => {
                            wanted = true;
                            if has(t) {
                                best = best.max(Some(10));
                            }
                        }
                    }
                }
                match best {
                    Some(points) => total += points,
                    None if wanted => return None,
                    None => {}
                }
            }
        }
    }
    Some(total)
}

/// Every candidate that could answer `dep` with the best tag score: the providers a capability
/// selector balances over (#22), where [`resolve`] would pick one of them. Preferred tags still
/// prefer; version order does not, since every provider in range serves.
pub fn qualifying<'a>(dep: &Dependency, candidates: &[Candidate<'a>]) -> Vec<Candidate<'a>> {
    let constraint = dep.version.as_deref().unwrap_or("");
    let scored: Vec<(u32, Candidate<'a>)> = candidates
        .iter()
        .filter(|c| c.capability == dep.capability && version::satisfies(constraint, c.version))
        .filter_map(|c| score(&dep.tags, |t| c.tags.iter().any(|have| have == t)).map(|s| (s, *c)))
        .collect();
    let best = scored.iter().map(|(s, _)| *s).max();
    scored.into_iter().filter(|(s, _)| Some(*s) == best).map(|(_, c)| c).collect()
}

/// The candidate that answers `dep`, or `None` when none qualifies. `candidates` must already
/// be limited to healthy agents.
pub fn resolve<'a>(dep: &Dependency, candidates: &[Candidate<'a>]) -> Option<Candidate<'a>> {
    let constraint = dep.version.as_deref().unwrap_or("");
    candidates
        .iter()
        .filter(|c| c.capability == dep.capability && version::satisfies(constraint, c.version))
        .filter_map(|c| score(&dep.tags, |t| c.tags.iter().any(|have| have == t)).map(|s| (s, c)))
        .max_by(|(sa, a), (sb, b)| {
            sa.cmp(sb)
                .then_with(|| Version::parse(a.version).cmp(&Version::parse(b.version)))
                // Lower ids win, so they compare as greater here.
                .then_with(|| b.agent_id.cmp(a.agent_id))
                .then_with(|| b.function_name.cmp(a.function_name))
        })
        .map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(capability: &str, tags: serde_json::Value, version: Option<&str>) -> Dependency {
        Dependency {
            capability: capability.into(),
            tags: serde_json::from_value(tags).unwrap(),
            version: version.map(str::to_string),
        }
    }

    struct Agent {
        id: &'static str,
        capability: &'static str,
        version: &'static str,
        tags: Vec<String>,
    }

    fn agent(id: &'static str, capability: &'static str, version: &'static str, tags: &[&str]) -> Agent {
        Agent { id, capability, version, tags: tags.iter().map(|t| t.to_string()).collect() }
    }

    fn candidates(agents: &[Agent]) -> Vec<Candidate<'_>> {
        agents
            .iter()
            .map(|a| Candidate {
                agent_id: a.id,
                function_name: "f",
                capability: a.capability,
                version: a.version,
                tags: &a.tags,
            })
            .collect()
    }

    fn pick(agents: &[Agent], d: &Dependency) -> Option<&'static str> {
        let candidates = candidates(agents);
        let found = resolve(d, &candidates).map(|c| c.agent_id);
        found.map(|id| agents.iter().find(|a| a.id == id).unwrap().id)
    }

    #[test]
    fn resolution_table() {
        use serde_json::json;
        let agents = [
            agent("py-add", "math", "1.0.0", &["addition", "python"]),
            agent("ts-add", "math", "1.0.0", &["addition", "typescript", "fast"]),
            agent("py-old", "math", "0.9.0", &["addition", "python", "legacy"]),
            agent("other", "date_service", "2.0.0", &["system"]),
        ];
        // (dependency, expected provider), each row one rule.
        let table = [
            // Capability must match exactly.
            (dep("maths", json!([]), None), None),
            (dep("date_service", json!([]), None), Some("other")),
            // Required tags; matching is case-sensitive.
            (dep("math", json!(["typescript"]), None), Some("ts-add")),
            (dep("math", json!(["Python"]), None), None),
            (dep("math", json!(["python", "rust"]), None), None),
            // Preferred tags outrank version.
            (dep("math", json!(["+legacy"]), None), Some("py-old")),
            (dep("math", json!(["addition", "+fast"]), None), Some("ts-add")),
            // Excluded tags.
            (dep("math", json!(["-typescript", "-legacy"]), None), Some("py-add")),
            (dep("math", json!(["-addition"]), None), None),
            // Groups: one member must match; + inside a group prefers; groups AND together.
            (dep("math", json!([["rust", "typescript"]]), None), Some("ts-add")),
            (dep("math", json!([["+python", "typescript"]]), Some(">=1.0")), Some("py-add")),
            (dep("math", json!([["rust", "go"]]), None), None),
            (dep("math", json!([["python"], ["typescript"]]), None), None),
            (dep("math", json!([["python", "-legacy"]]), None), Some("py-add")),
            // Version constraints, and the highest version among equals.
            (dep("math", json!(["python"]), Some("<1.0")), Some("py-old")),
            (dep("math", json!(["python"]), None), Some("py-add")),
            (dep("math", json!([]), Some(">=2")), None),
            // Ties on score and version: the lower agent id.
            (dep("math", json!(["addition"]), Some("1.0.0")), Some("py-add")),
        ];
        for (d, expected) in table {
            assert_eq!(pick(&agents, &d), expected, "{d:?}");
        }
    }

    #[test]
    fn a_selector_balances_over_every_provider_of_the_best_score() {
        use serde_json::json;
        let agents = [
            agent("a", "date", "1.0.0", &["system"]),
            agent("b", "date", "1.2.0", &["system", "fast"]),
            agent("c", "date", "2.0.0", &["system"]),
            agent("d", "date", "1.1.0", &["other"]),
            agent("e", "time", "1.0.0", &["system"]),
        ];
        let ids =
            |d: &Dependency| -> Vec<&str> { qualifying(d, &candidates(&agents)).iter().map(|c| c.agent_id).collect() };
        assert_eq!(ids(&dep("date", json!(["system"]), Some(">=1.0"))), ["a", "b", "c"]);
        assert_eq!(ids(&dep("date", json!(["system"]), Some("^1"))), ["a", "b"]);
        assert_eq!(ids(&dep("date", json!(["system", "+fast"]), None)), ["b"]);
        assert_eq!(ids(&dep("date", json!(["-system"]), None)), ["d"]);
        assert!(ids(&dep("date", json!(["missing"]), None)).is_empty());
    }

    #[test]
    fn tags_read_from_the_sdk_wire_form() {
        let d: Dependency =
            serde_json::from_str(r#"{"capability":"c","tags":["a",["b","+c"],"-d"],"version":"^1"}"#).unwrap();
        assert_eq!(
            d.tags,
            vec![TagSpec::One("a".into()), TagSpec::AnyOf(vec!["b".into(), "+c".into()]), TagSpec::One("-d".into())]
        );
    }
}
