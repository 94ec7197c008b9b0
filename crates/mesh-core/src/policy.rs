//! Access rules over MCP traffic: who may see and use which tools, prompts and resources.
//!
//! Pure and shared: the control plane validates and stores rules, the data plane evaluates
//! them per call from memory. A principal's effective [`Access`] is a stack of layers — its
//! role's rules, its key's rules, its key's narrowing — and an item is allowed only if every
//! layer allows it. Within a layer a matching `deny` always wins; if the layer has any `allow`
//! rule, one of them must match (an allow-list); a layer without rules allows everything.

use serde::{Deserialize, Serialize};

/// Whether a rule grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Grants what it matches (and makes its layer an allow-list).
    Allow,
    /// Refuses what it matches, whatever else allows it.
    Deny,
}

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// A tool (`tools/list`, `tools/call`).
    Tool,
    /// A prompt (`prompts/list`, `prompts/get`).
    Prompt,
    /// A resource or resource template (matched by URI).
    Resource,
}

/// One allow or deny rule. Absent fields match anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Allow or deny.
    pub effect: Effect,
    /// Glob over the slug of the connection the item belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Glob over the gateway slug; a rule naming a gateway never matches direct traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The kind of item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ItemKind>,
    /// Glob over the item's name at its connection (tool or prompt name, resource URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An item as a call or a list entry presents it to the policy.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// The connection slug.
    pub connection: &'a str,
    /// The gateway slug, for traffic through a virtual MCP.
    pub gateway: Option<&'a str>,
    /// Tool, prompt or resource.
    pub kind: ItemKind,
    /// The name (or URI) at the connection, before any gateway prefix.
    pub name: &'a str,
}

/// Longest glob accepted in a rule; bounds matching cost on the hot path.
pub const MAX_PATTERN: usize = 256;

/// Most entries in one list of a key's scope.
pub const MAX_SCOPE_ENTRIES: usize = 200;

impl Rule {
    /// Checks the rule is well formed (non-empty, bounded patterns).
    pub fn validate(&self) -> Result<(), String> {
        for (field, v) in [("connection", &self.connection), ("gateway", &self.gateway), ("name", &self.name)] {
            if let Some(p) = v {
                if p.is_empty() || p.len() > MAX_PATTERN {
                    return Err(format!("rule field '{field}' must be 1 to {MAX_PATTERN} characters"));
                }
            }
        }
        Ok(())
    }

    /// Whether this rule applies to `item`.
    pub fn matches(&self, item: &Item<'_>) -> bool {
        let gateway_ok = match (&self.gateway, item.gateway) {
            (None, _) => true,
            (Some(p), Some(g)) => glob(p, g),
            (Some(_), None) => false,
        };
        gateway_ok
            && self.kind.is_none_or(|k| k == item.kind)
            && self.connection.as_deref().is_none_or(|p| glob(p, item.connection))
            && self.name.as_deref().is_none_or(|p| glob(p, item.name))
    }
}

/// `*` matches any run of characters, `?` exactly one; everything else is literal.
///
/// Written here rather than pulled from a glob crate: names are short, patterns are few, and
/// this runs per call on the hot path with no allocation (iterative, with one backtrack point,
/// so it is linear in practice and never exponential).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: &[u8] = pattern.as_bytes();
    let t: &[u8] = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) && p[pi] != b'*' {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// One layer of rules (a role's, or a key's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    rules: Vec<Rule>,
    has_allow: bool,
}

impl Layer {
    /// A layer of `rules`.
    pub fn new(rules: Vec<Rule>) -> Layer {
        let has_allow = rules.iter().any(|r| r.effect == Effect::Allow);
        Layer { rules, has_allow }
    }

    /// Whether the layer has no rules (allows everything).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Deny wins; then, if there is any allow rule, one must match.
    pub fn allows(&self, item: &Item<'_>) -> bool {
        let mut allowed = !self.has_allow;
        for r in &self.rules {
            if r.matches(item) {
                match r.effect {
                    Effect::Deny => return false,
                    Effect::Allow => allowed = true,
                }
            }
        }
        allowed
    }
}

/// A key's narrowing: the routes it may open and the tools it may see. Absent lists do not
/// narrow; a present list narrows that dimension to what matches it (an empty list: nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scope {
    /// Connection slugs (globs) the key may open directly at `/mcp/{connection}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<String>>,
    /// Gateway slugs (globs) the key may open at `/mcp/gateway/{gateway}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,
    /// Tool names (globs, at the connection) the key may see and call, on any route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Whether a narrowed key may also use management operations (with its user's role). A
    /// narrowed key is handed out to do less: without this it manages nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub management: bool,
}

impl Scope {
    /// Whether the scope narrows anything at all.
    pub fn is_narrowing(&self) -> bool {
        self.connections.is_some() || self.gateways.is_some() || self.tools.is_some()
    }

    /// Whether a key with this scope may use management operations: an unnarrowed key may, a
    /// narrowed one only when its scope says so.
    pub fn allows_management(&self) -> bool {
        !self.is_narrowing() || self.management
    }

    /// Whether every key this scope allows is also allowed by `parent`: each dimension `parent`
    /// narrows is narrowed here too, to patterns `parent` lists or to plain names one of its
    /// patterns matches; management only if `parent` has it. What a key may mint is judged by it.
    pub fn within(&self, parent: &Scope) -> bool {
        fn dim(child: &Option<Vec<String>>, parent: &Option<Vec<String>>) -> bool {
            match (child, parent) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(c), Some(p)) => {
                    c.iter().all(|pat| p.iter().any(|pp| pp == pat || (!pat.contains(['*', '?']) && glob(pp, pat))))
                }
            }
        }
        // Routes: a scope listing either kind reaches none of the other (`allows_route`), so
        // its missing list is an empty one, not "anything".
        fn closed(s: &Scope) -> (Option<Vec<String>>, Option<Vec<String>>) {
            let narrowed = s.connections.is_some() || s.gateways.is_some();
            let close = |l: &Option<Vec<String>>| if narrowed { Some(l.clone().unwrap_or_default()) } else { None };
            (close(&s.connections), close(&s.gateways))
        }
        let ((cc, cg), (pc, pg)) = (closed(self), closed(parent));
        dim(&cc, &pc)
            && dim(&cg, &pg)
            && dim(&self.tools, &parent.tools)
            && (!self.management || parent.allows_management())
    }

    /// Checks the patterns are well formed and few (each is matched per call).
    pub fn validate(&self) -> Result<(), String> {
        for (field, list) in [("connections", &self.connections), ("gateways", &self.gateways), ("tools", &self.tools)]
        {
            if list.as_ref().is_some_and(|l| l.len() > MAX_SCOPE_ENTRIES) {
                return Err(format!("scope.{field} may list at most {MAX_SCOPE_ENTRIES} entries"));
            }
            for p in list.iter().flatten() {
                if p.is_empty() || p.len() > MAX_PATTERN {
                    return Err(format!("scope.{field} entries must be 1 to {MAX_PATTERN} characters"));
                }
            }
        }
        Ok(())
    }
}

/// Which kind of route a session was opened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `/mcp/{connection}`.
    Connection,
    /// `/mcp/gateway/{gateway}`.
    Gateway,
}

/// Everything that decides what one principal may do with MCP traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Whether `tools/call` is allowed at all (the viewer role lists but does not call).
    pub call_tools: bool,
    layers: Vec<Layer>,
    scope: Option<Scope>,
}

impl Access {
    /// No restriction at all.
    pub fn unrestricted() -> Access {
        Access { call_tools: true, layers: Vec::new(), scope: None }
    }

    /// Access from rule layers (empty ones are dropped) and an optional key narrowing.
    pub fn new(call_tools: bool, layers: Vec<Layer>, scope: Option<Scope>) -> Access {
        let layers = layers.into_iter().filter(|l| !l.is_empty()).collect();
        Access { call_tools, layers, scope: scope.filter(Scope::is_narrowing) }
    }

    /// True when no item can be refused: lists pass through untouched (the fast path).
    pub fn filters_nothing(&self) -> bool {
        self.layers.is_empty() && self.scope.as_ref().is_none_or(|s| s.tools.is_none())
    }

    /// Whether the principal may open this route at all (a key's narrowing).
    pub fn allows_route(&self, kind: RouteKind, slug: &str) -> bool {
        let Some(scope) = &self.scope else { return true };
        if scope.connections.is_none() && scope.gateways.is_none() {
            return true;
        }
        let list = match kind {
            RouteKind::Connection => &scope.connections,
            RouteKind::Gateway => &scope.gateways,
        };
        // A key narrowed to some routes reaches only those: one limited to a gateway must not
        // reach connections directly.
        match list {
            Some(globs) => globs.iter().any(|g| glob(g, slug)),
            None => false,
        }
    }

    /// Whether `item` is visible and usable.
    pub fn allows(&self, item: &Item<'_>) -> bool {
        if let Some(tools) = self.scope.as_ref().and_then(|s| s.tools.as_ref()) {
            if item.kind == ItemKind::Tool && !tools.iter().any(|g| glob(g, item.name)) {
                return false;
            }
        }
        self.layers.iter().all(|l| l.allows(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(effect: Effect, connection: Option<&str>, name: Option<&str>) -> Rule {
        Rule {
            effect,
            connection: connection.map(str::to_string),
            gateway: None,
            kind: None,
            name: name.map(str::to_string),
        }
    }

    fn tool<'a>(connection: &'a str, name: &'a str) -> Item<'a> {
        Item { connection, gateway: None, kind: ItemKind::Tool, name }
    }

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("get_*", "get_customer"));
        assert!(!glob("get_*", "delete_customer"));
        assert!(glob("*_issue", "delete_issue"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("*a*b*", "xxaxxbxx") && !glob("*a*b*", "xxbxxaxx"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        // No exponential blow-up on adversarial patterns.
        assert!(!glob(&"*a".repeat(50), &"a".repeat(40)));
    }

    #[test]
    fn deny_wins_and_allows_make_an_allow_list() {
        let support = Layer::new(vec![
            rule(Effect::Allow, Some("crm"), Some("get_*")),
            rule(Effect::Allow, Some("crm"), Some("search")),
            rule(Effect::Deny, None, Some("get_secret")),
        ]);
        assert!(support.allows(&tool("crm", "get_customer")));
        assert!(support.allows(&tool("crm", "search")));
        assert!(!support.allows(&tool("crm", "get_secret")), "deny wins over a matching allow");
        assert!(!support.allows(&tool("crm", "delete_customer")), "not on the allow-list");
        assert!(!support.allows(&tool("github", "get_issue")), "other connection");
        let deny_only = Layer::new(vec![rule(Effect::Deny, None, Some("delete_*"))]);
        assert!(deny_only.allows(&tool("github", "get_issue")));
        assert!(!deny_only.allows(&tool("github", "delete_issue")));
    }

    #[test]
    fn gateway_rules_never_match_direct_traffic() {
        let r = Rule { gateway: Some("support".into()), ..rule(Effect::Allow, None, None) };
        let direct = tool("crm", "get");
        let via = Item { gateway: Some("support"), ..direct };
        let other = Item { gateway: Some("ops"), ..direct };
        assert!(!r.matches(&direct) && r.matches(&via) && !r.matches(&other));
    }

    #[test]
    fn every_layer_must_allow_and_scope_narrows() {
        let role = Layer::new(vec![rule(Effect::Deny, None, Some("delete_*"))]);
        let scope =
            Scope { connections: Some(vec!["crm".into()]), tools: Some(vec!["get_*".into()]), ..Scope::default() };
        let a = Access::new(true, vec![role, Layer::default()], Some(scope));
        assert!(a.allows_route(RouteKind::Connection, "crm"));
        assert!(!a.allows_route(RouteKind::Connection, "github"));
        assert!(!a.allows_route(RouteKind::Gateway, "default"), "narrowed keys reach only what they name");
        assert!(a.allows(&tool("crm", "get_customer")));
        assert!(!a.allows(&tool("crm", "list_customers")), "not in the key's tools");
        let prompt = Item { kind: ItemKind::Prompt, ..tool("crm", "summary") };
        assert!(a.allows(&prompt), "tool narrowing leaves prompts alone");
        assert!(!a.filters_nothing());
        assert!(Access::unrestricted().filters_nothing());
        assert!(Access::unrestricted().allows_route(RouteKind::Gateway, "x"));
        let tools_only = Scope { tools: Some(vec!["get_*".into()]), ..Scope::default() };
        let a = Access::new(true, vec![], Some(tools_only));
        assert!(a.allows_route(RouteKind::Gateway, "x") && a.allows_route(RouteKind::Connection, "y"));
    }

    #[test]
    fn rules_parse_strictly() {
        let r: Rule =
            serde_json::from_str(r#"{"effect":"deny","connection":"crm","kind":"tool","name":"x*"}"#).unwrap();
        assert_eq!(r.kind, Some(ItemKind::Tool));
        assert!(serde_json::from_str::<Rule>(r#"{"effect":"deny","tool":"x"}"#).is_err());
        assert!(serde_json::from_str::<Rule>(r#"{"effect":"maybe"}"#).is_err());
        assert!(Rule { name: Some(String::new()), ..r }.validate().is_err());
    }

    #[test]
    fn a_scope_is_within_its_parent_only_when_it_reaches_no_further() {
        let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let parent = Scope { connections: list(&["crm-*", "github"]), tools: list(&["get_*"]), ..Scope::default() };
        let cases: [(Scope, bool); 8] = [
            (Scope { connections: list(&["crm-eu"]), tools: list(&["get_a"]), ..Scope::default() }, true),
            (Scope { connections: list(&["crm-*"]), tools: list(&["get_*"]), ..Scope::default() }, true),
            (Scope { connections: list(&["crm*"]), tools: list(&["get_*"]), ..Scope::default() }, false),
            (Scope { connections: list(&["slack"]), tools: list(&["get_*"]), ..Scope::default() }, false),
            (Scope { connections: list(&["github"]), ..Scope::default() }, false),
            (Scope { tools: list(&["get_x"]), ..Scope::default() }, false),
            (Scope::default(), false),
            (Scope { management: true, ..parent.clone() }, false),
        ];
        for (child, expected) in cases {
            assert_eq!(child.within(&parent), expected, "{child:?}");
        }
        // A parent narrowed to connections reaches no gateway (issue #16 review): a child may not
        // add one, since the default gateway serves every connection. An empty list is within.
        let gw = Scope { gateways: list(&["dev"]), ..parent.clone() };
        assert!(!gw.within(&parent));
        assert!(Scope { gateways: Some(vec![]), ..parent.clone() }.within(&parent));
        let gateway_only = Scope { gateways: list(&["dev"]), ..Scope::default() };
        assert!(!Scope { connections: list(&["*"]), ..gateway_only.clone() }.within(&gateway_only));
        assert!(Scope { management: true, ..gw.clone() }.within(&Scope::default()));
        assert!(parent.within(&Scope { management: true, ..parent.clone() }));
    }
}
