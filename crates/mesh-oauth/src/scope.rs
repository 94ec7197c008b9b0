//! Which scopes to ask for (MCP authorization, "Scope Selection Strategy", and SEP-2207 on
//! `offline_access`).

use crate::challenge::Challenge;
use crate::metadata::{AuthorizationServer, ProtectedResource};

/// The scope to request, or none (the parameter is then omitted, never sent empty): the
/// challenge's `scope` when it named one, else every scope the protected resource lists;
/// `offline_access` added when the authorization server offers it (a refresh token is what keeps
/// a user's grant alive) and never when it does not.
pub fn choose(
    challenge: Option<&Challenge>,
    resource: &ProtectedResource,
    server: &AuthorizationServer,
) -> Option<String> {
    let mut scopes: Vec<String> = match challenge.and_then(|c| c.scope.as_deref()) {
        Some(s) => split(s),
        None => resource.scopes_supported.clone().unwrap_or_default(),
    };
    if server.offers_scope("offline_access") && !scopes.iter().any(|s| s == "offline_access") && !scopes.is_empty() {
        scopes.push("offline_access".into());
    }
    if !server.offers_scope("offline_access") {
        scopes.retain(|s| s != "offline_access");
    }
    (!scopes.is_empty()).then(|| scopes.join(" "))
}

/// The scopes of a step-up: those already granted and those the challenge asks for, once each,
/// in that order.
pub fn widened(granted: Option<&str>, asked: &str) -> String {
    let mut all = granted.map(split).unwrap_or_default();
    for s in split(asked) {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    all.join(" ")
}

/// Whether `granted` holds every scope of `asked`.
pub fn covers(granted: &str, asked: &str) -> bool {
    let g = split(granted);
    split(asked).iter().all(|s| g.contains(s))
}

fn split(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in s.split_ascii_whitespace() {
        if !out.iter().any(|x| x == w) {
            out.push(w.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prm(scopes: Option<&[&str]>) -> ProtectedResource {
        ProtectedResource {
            resource: "https://mcp.example/mcp".into(),
            authorization_servers: vec!["https://auth.example".into()],
            scopes_supported: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
        }
    }

    fn asm(scopes: Option<&[&str]>) -> AuthorizationServer {
        AuthorizationServer {
            issuer: "https://auth.example".into(),
            authorization_endpoint: "https://auth.example/authorize".into(),
            token_endpoint: "https://auth.example/token".into(),
            registration_endpoint: None,
            scopes_supported: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
            code_challenge_methods_supported: Some(vec!["S256".into()]),
            token_endpoint_auth_methods_supported: None,
            grant_types_supported: None,
            client_id_metadata_document_supported: false,
            authorization_response_iss_parameter_supported: false,
        }
    }

    #[test]
    fn the_challenge_first_then_the_resources_list_then_nothing() {
        let c = Challenge { scope: Some("a b".into()), ..Default::default() };
        assert_eq!(choose(Some(&c), &prm(Some(&["x"])), &asm(None)).as_deref(), Some("a b"));
        assert_eq!(choose(None, &prm(Some(&["x", "y"])), &asm(None)).as_deref(), Some("x y"));
        assert_eq!(choose(Some(&Challenge::default()), &prm(None), &asm(None)), None);
        assert_eq!(choose(None, &prm(Some(&[])), &asm(None)), None);
    }

    #[test]
    fn offline_access_only_where_offered() {
        let offered = asm(Some(&["x", "offline_access"]));
        assert_eq!(choose(None, &prm(Some(&["x"])), &offered).as_deref(), Some("x offline_access"));
        assert_eq!(choose(None, &prm(Some(&["x", "offline_access"])), &asm(Some(&["x"]))).as_deref(), Some("x"));
        // Never a scope parameter made only of offline_access.
        assert_eq!(choose(None, &prm(None), &offered), None);
    }

    #[test]
    fn step_up_widens_once_each() {
        assert_eq!(widened(Some("a b"), "b c"), "a b c");
        assert_eq!(widened(None, "c"), "c");
        assert!(covers("a b c", "c a"));
        assert!(!covers("a", "a b"));
    }
}
