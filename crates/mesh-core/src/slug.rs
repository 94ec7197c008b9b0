//! Slugs: the human names of connections and gateways, used in URLs (`/mcp/{slug}`).

/// Why a slug was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    /// Empty or longer than 63 characters.
    #[error("slug must be 1 to 63 characters long")]
    Length,
    /// A character outside `[a-z0-9-]`, or a leading/trailing dash.
    #[error("slug may contain only lowercase letters, digits and '-', and must start and end with a letter or digit")]
    Charset,
    /// A name the mesh's own routes use.
    #[error("slug '{0}' is reserved")]
    Reserved(String),
}

/// Path segments under `/mcp/` that belong to the mesh itself and so cannot name a connection.
pub const RESERVED: &[&str] = &["gateway", "gateways", "sse", "message", "messages", "health", "api", "oauth"];

/// Checks a connection or gateway slug: DNS-label style, so it is safe in URLs, prefixes and logs.
pub fn validate(slug: &str) -> Result<(), SlugError> {
    if slug.is_empty() || slug.len() > 63 {
        return Err(SlugError::Length);
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if !slug.chars().all(ok_char) || slug.starts_with(['-', '_']) || slug.ends_with(['-', '_']) {
        return Err(SlugError::Charset);
    }
    if RESERVED.contains(&slug) {
        return Err(SlugError::Reserved(slug.to_string()));
    }
    Ok(())
}

/// Turns a free-form name (an `mcpServers` key, say) into a valid slug, if anything is left.
pub fn slugify(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').chars().take(63).collect::<String>();
    let out = out.trim_end_matches('-').to_string();
    match validate(&out) {
        Ok(()) => Some(out),
        Err(SlugError::Reserved(_)) => Some(format!("{out}-server")),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules() {
        for good in ["github", "fs", "my-server-2", "a", "time_utc"] {
            assert_eq!(validate(good), Ok(()), "{good}");
        }
        assert_eq!(validate(""), Err(SlugError::Length));
        assert_eq!(validate(&"a".repeat(64)), Err(SlugError::Length));
        for bad in ["GitHub", "-x", "x-", "a/b", "a b", "é"] {
            assert_eq!(validate(bad), Err(SlugError::Charset), "{bad}");
        }
        assert!(matches!(validate("gateway"), Err(SlugError::Reserved(_))));
    }

    #[test]
    fn slugify_names_from_client_configs() {
        assert_eq!(slugify("GitHub Server").as_deref(), Some("github-server"));
        assert_eq!(slugify("@scope/pkg").as_deref(), Some("scope-pkg"));
        assert_eq!(slugify("gateway").as_deref(), Some("gateway-server"));
        assert_eq!(slugify("!!!"), None);
    }
}
