//! Virtual MCPs (gateways): member curation and namespacing rules, pure so that the control
//! plane (validating a gateway when it is saved) and the data plane (merging lists at run time)
//! apply exactly the same ones.
//!
//! Names: a member's tool or prompt `name` is exposed as `{prefix}_{name}` (or renamed first),
//! or as is when the member has an empty prefix. Final tool names must be 1–64 characters of
//! `[A-Za-z0-9_.-]` (MCP 2025-11-25, tools: tool names). Two members exposing the same final
//! name is a collision, reported naming both — never resolved by "first wins".
//!
//! Resource URIs: `{uri-prefix}+{uri}`, where the URI prefix is the member prefix with `_` made
//! `-`, so that the result is still a URI with a valid scheme (`fs+file:///tmp/a`) and resource
//! templates keep their `{variables}`. An empty prefix leaves URIs as they are.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The separator between a member prefix and a name.
pub const SEPARATOR: &str = "_";

/// What to expose of one kind of a member's features.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Selection {
    /// Everything (`"all"`).
    #[default]
    #[serde(with = "all_marker")]
    All,
    /// Only these original names (tools, prompts) or URIs (resources).
    Only(Vec<String>),
}

mod all_marker {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("all")
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        match String::deserialize(d)?.as_str() {
            "all" => Ok(()),
            other => Err(serde::de::Error::custom(format!("expected \"all\" or a list of names, got \"{other}\""))),
        }
    }
}

impl Selection {
    /// Whether `name` is selected.
    pub fn allows(&self, name: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// One member of a gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberConfig {
    /// The connection (id or slug).
    pub connection: String,
    /// Prefix for names; absent means the connection slug, `""` means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Which tools to expose.
    #[serde(default)]
    pub tools: Selection,
    /// Which resources (by URI) and resource templates (by URI template) to expose.
    #[serde(default)]
    pub resources: Selection,
    /// Which prompts to expose.
    #[serde(default)]
    pub prompts: Selection,
    /// Original tool or prompt name → the name to expose instead (before prefixing).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub renames: BTreeMap<String, String>,
    /// Original tool or prompt name → a description to show instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub descriptions: BTreeMap<String, String>,
}

impl MemberConfig {
    /// A member exposing everything of `connection` under its default prefix.
    pub fn all_of(connection: &str) -> MemberConfig {
        MemberConfig {
            connection: connection.to_string(),
            prefix: None,
            tools: Selection::All,
            resources: Selection::All,
            prompts: Selection::All,
            renames: BTreeMap::new(),
            descriptions: BTreeMap::new(),
        }
    }

    /// The prefix in force, given the connection's slug.
    pub fn effective_prefix<'a>(&'a self, slug: &'a str) -> &'a str {
        self.prefix.as_deref().unwrap_or(slug)
    }
}

/// How a gateway behaves when a member fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Serve the healthy members; tell the client through a log notification.
    #[default]
    Degrade,
    /// Fail the session if any member fails.
    Strict,
}

/// What a virtual MCP shows its clients of its tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Every tool, listed (the default).
    #[default]
    Passthrough,
    /// Three meta-tools instead of the catalogue: search it, describe tools, call one.
    Smart,
    /// One tool, `run_code`: the catalogue as a typed API, called from a sandboxed script.
    Code,
}

impl Strategy {
    /// The name used in configuration and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Passthrough => "passthrough",
            Strategy::Smart => "smart",
            Strategy::Code => "code",
        }
    }

    /// Whether this is the default (kept out of stored configuration).
    pub fn is_default(&self) -> bool {
        *self == Strategy::Passthrough
    }
}

/// Whether `name` is a valid final tool name.
pub fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Whether `prefix` can prefix names (empty, or a valid name fragment).
pub fn valid_prefix(prefix: &str) -> bool {
    prefix.is_empty()
        || (prefix.len() <= 32
            && prefix.as_bytes()[0].is_ascii_alphabetic()
            && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)))
}

/// The exposed name of a member's tool or prompt.
pub fn expose_name(prefix: &str, member: &MemberConfig, original: &str) -> String {
    let base = member.renames.get(original).map(String::as_str).unwrap_or(original);
    if prefix.is_empty() {
        base.to_string()
    } else {
        format!("{prefix}{SEPARATOR}{base}")
    }
}

/// The URI scheme prefix of a member prefix (`my_fs` → `my-fs`), lowercase.
pub fn uri_prefix(prefix: &str) -> String {
    prefix.replace('_', "-").to_ascii_lowercase()
}

/// A member's resource URI (or URI template) as exposed.
pub fn expose_uri(prefix: &str, uri: &str) -> String {
    if prefix.is_empty() {
        uri.to_string()
    } else {
        format!("{}+{uri}", uri_prefix(prefix))
    }
}

/// Two members exposing one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// The exposed name.
    pub name: String,
    /// (connection slug, original name) of the first.
    pub first: (String, String),
    /// (connection slug, original name) of the second.
    pub second: (String, String),
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "name collision: '{}' would be both {}'s '{}' and {}'s '{}'; set a prefix or a rename",
            self.name, self.first.0, self.first.1, self.second.0, self.second.1
        )
    }
}

/// Maps exposed names to (member index, original name), detecting collisions and invalid names.
/// `members` gives, per member, its effective prefix, its slug, its config and the original names.
pub fn name_table<'a>(
    members: impl IntoIterator<Item = (&'a str, &'a str, &'a MemberConfig, Vec<&'a str>)>,
    validate_tool_names: bool,
) -> Result<HashMap<String, (usize, String)>, String> {
    let mut out: HashMap<String, (usize, String)> = HashMap::new();
    let mut owners: HashMap<String, (String, String)> = HashMap::new();
    for (idx, (prefix, slug, member, names)) in members.into_iter().enumerate() {
        for original in names {
            let exposed = expose_name(prefix, member, original);
            if validate_tool_names && !valid_tool_name(&exposed) {
                return Err(format!(
                    "'{exposed}' ({slug}'s '{original}') is not a valid tool name: 1-64 characters of A-Z a-z 0-9 _ . -"
                ));
            }
            if let Some(first) = owners.get(&exposed) {
                return Err(Collision {
                    name: exposed,
                    first: first.clone(),
                    second: (slug.to_string(), original.to_string()),
                }
                .to_string());
            }
            owners.insert(exposed.clone(), (slug.to_string(), original.to_string()));
            out.insert(exposed, (idx, original.to_string()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(conn: &str) -> MemberConfig {
        MemberConfig::all_of(conn)
    }

    #[test]
    fn selection_parses_all_or_a_list() {
        let m: MemberConfig = serde_json::from_str(r#"{"connection":"fs","tools":["read"],"prompts":"all"}"#).unwrap();
        assert_eq!(m.tools, Selection::Only(vec!["read".into()]));
        assert_eq!(m.prompts, Selection::All);
        assert_eq!(m.resources, Selection::All);
        assert!(serde_json::from_str::<MemberConfig>(r#"{"connection":"fs","tools":"some"}"#).is_err());
        assert!(serde_json::from_str::<MemberConfig>(r#"{"connection":"fs","bogus":1}"#).is_err());
        assert_eq!(serde_json::to_value(&m).unwrap()["prompts"], "all");
    }

    #[test]
    fn names_are_prefixed_renamed_and_validated() {
        let mut m = member("fs");
        m.renames.insert("read_text_file".into(), "read".into());
        assert_eq!(expose_name("fs", &m, "read_text_file"), "fs_read");
        assert_eq!(expose_name("fs", &m, "write"), "fs_write");
        assert_eq!(expose_name("", &m, "write"), "write");
        assert!(valid_tool_name("fs_read.v2-x"));
        assert!(!valid_tool_name("") && !valid_tool_name(&"a".repeat(65)) && !valid_tool_name("a b"));
        assert!(valid_prefix("") && valid_prefix("my_fs") && !valid_prefix("9x") && !valid_prefix("a/b"));
    }

    #[test]
    fn uris_are_namespaced_as_a_valid_scheme() {
        assert_eq!(expose_uri("my_fs", "file:///tmp/{name}"), "my-fs+file:///tmp/{name}");
        assert_eq!(expose_uri("", "file:///x"), "file:///x");
    }

    #[test]
    fn collisions_name_both_tools() {
        let (a, b) = (member("a"), member("b"));
        let err = name_table([("", "a", &a, vec!["echo"]), ("", "b", &b, vec!["echo"])], true).unwrap_err();
        assert!(err.contains("'echo'") && err.contains("a's 'echo'") && err.contains("b's 'echo'"), "{err}");
        let ok = name_table([("a", "a", &a, vec!["echo"]), ("b", "b", &b, vec!["echo"])], true).unwrap();
        assert_eq!(ok["b_echo"], (1, "echo".to_string()));
        let long = "x".repeat(70);
        assert!(name_table([("a", "a", &a, vec![long.as_str()])], true).unwrap_err().contains("not a valid tool name"));
    }
}
