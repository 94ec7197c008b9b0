//! Scopes (RFC 6749 §3.3): a space-separated list of tokens, each of the characters the RFC
//! allows, order and duplicates without meaning.

use std::collections::BTreeSet;

/// Why a `scope` parameter is refused (`invalid_scope`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope '{0}' has characters RFC 6749 does not allow in a scope token")]
pub struct ScopeError(pub String);

/// The set of scope tokens in `raw` (absent or empty: none).
pub fn parse(raw: Option<&str>) -> Result<BTreeSet<String>, ScopeError> {
    let allowed = |b: u8| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b);
    let mut out = BTreeSet::new();
    for token in raw.unwrap_or("").split(' ').filter(|t| !t.is_empty()) {
        if !token.bytes().all(allowed) {
            return Err(ScopeError(token.to_string()));
        }
        out.insert(token.to_string());
    }
    Ok(out)
}

/// The set as the `scope` parameter spells it: tokens in order, one space apart.
pub fn format(scopes: &BTreeSet<String>) -> String {
    scopes.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_sets_of_rfc_tokens() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(parse(None), Ok(set(&[])));
        assert_eq!(parse(Some("")), Ok(set(&[])));
        assert_eq!(parse(Some("mcp:tools  offline_access mcp:tools")), Ok(set(&["mcp:tools", "offline_access"])));
        assert_eq!(format(&parse(Some("b a")).unwrap()), "a b");
        for bad in ["a\"b", "a\\\\b", "caf\u{e9}", "tab\there"] {
            assert_eq!(parse(Some(bad)), Err(ScopeError(bad.split(' ').next().unwrap().to_string())), "{bad:?}");
        }
    }
}
