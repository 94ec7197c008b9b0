//! Who is calling: the identity every request carries after authentication.

use serde::{Deserialize, Serialize};

/// A role within an organisation. Ordered from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including deleting the organisation.
    Owner,
    /// Manage connections, gateways, members and keys.
    Admin,
    /// Use connections; read configuration.
    Member,
    /// Read-only.
    Viewer,
}

impl Role {
    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role may change the organisation's configuration.
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// The user and key id of the anonymous principal.
pub const ANONYMOUS: &str = "anonymous";

/// An authenticated caller: an API key acting for a user within one organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The organisation every object this principal touches must belong to.
    pub org_id: String,
    /// The user the key belongs to.
    pub user_id: String,
    /// The API key that authenticated this request; MCP sessions are bound to it.
    pub key_id: String,
    /// The user's role in `org_id` (for a custom role: its base, which decides management rights).
    pub role: Role,
    /// The custom role the user holds, if any (its rules apply to MCP traffic).
    pub custom_role: Option<String>,
    /// Whether the caller is one of the installation's operators ([`operator_tier`] decides).
    pub operator: bool,
    /// Whether the key may use management operations at all: a key narrowed to some routes or
    /// tools may not, unless its scope grants management explicitly.
    pub manage: bool,
    /// When the key expires (ms since epoch); a key never mints one that outlives it.
    pub key_expires_at: Option<i64>,
    /// The one route an OAuth access token was issued for (RFC 8707): `""` for the management
    /// server, a connection's slug or id, or `gateway/{gateway}`; `None` for API keys, which are
    /// narrowed by their scope instead. Refused anywhere else with 401.
    pub audience: Option<std::sync::Arc<str>>,
}

/// The two trust tiers (docs/SECURITY.md): whether a key acts for an **installation operator**,
/// who owns the host, its data directory, the vault, stdio commands and internal networks, or
/// only within its organisation.
///
/// The one place this is decided: operators are the owners of the operator organisation — the
/// one the mesh's first start created, whose owner key it wrote into the data directory —
/// acting through a key that is not narrowed. Anyone may own an organisation they created, so
/// owning *an* organisation says nothing about the host; and a narrowed key is handed out to do
/// less, never to run the installation.
pub fn operator_tier(role: Role, org_id: &str, operator_org: Option<&str>, narrowed: bool) -> bool {
    role == Role::Owner && operator_org == Some(org_id) && !narrowed
}

impl Principal {
    /// The caller without credentials, admitted only to connections an admin opened to it.
    /// It can never manage anything, and all anonymous callers share one identity.
    pub fn anonymous(org_id: &str) -> Principal {
        Principal {
            org_id: org_id.to_string(),
            user_id: ANONYMOUS.into(),
            key_id: ANONYMOUS.into(),
            role: Role::Viewer,
            custom_role: None,
            operator: false,
            manage: false,
            key_expires_at: None,
            audience: None,
        }
    }

    /// The name of the role the user holds: the custom role's, else the built-in one's.
    pub fn role_name(&self) -> &str {
        self.custom_role.as_deref().unwrap_or(self.role.as_str())
    }

    /// Whether the caller is an installation operator (decided by [`operator_tier`] when the
    /// key was loaded).
    pub fn is_operator(&self) -> bool {
        self.operator
    }

    /// Whether `other` acts with the same rights: everything but the expiry, which an OAuth
    /// token's refresh moves on without changing who acts or what they may do.
    /// Runs on every request in a session, so it compares in place.
    pub fn same_rights(&self, other: &Principal) -> bool {
        let Principal { org_id, user_id, key_id, role, custom_role, operator, manage, key_expires_at: _, audience } =
            self;
        *org_id == other.org_id
            && *user_id == other.user_id
            && *key_id == other.key_id
            && *role == other.role
            && *custom_role == other.custom_role
            && *operator == other.operator
            && *manage == other.manage
            && *audience == other.audience
    }

    /// Whether this is the anonymous principal.
    pub fn is_anonymous(&self) -> bool {
        self.key_id == ANONYMOUS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_rights_ignores_only_the_expiry() {
        let a = Principal { key_expires_at: Some(1), ..Principal::anonymous("o") };
        assert!(a.same_rights(&Principal { key_expires_at: Some(2), ..a.clone() }));
        assert!(!a.same_rights(&Principal { role: Role::Admin, ..a.clone() }));
        assert!(!a.same_rights(&Principal { audience: Some("x".into()), ..a.clone() }));
        assert!(!a.same_rights(&Principal { key_id: "k".into(), ..a.clone() }));
    }

    #[test]
    fn only_unnarrowed_owners_of_the_operator_organisation_are_operators() {
        let first = Some("org_first");
        let cases = [
            (Role::Owner, "org_first", first, false, true),
            (Role::Owner, "org_first", first, true, false),
            (Role::Admin, "org_first", first, false, false),
            (Role::Member, "org_first", first, false, false),
            (Role::Owner, "org_other", first, false, false),
            (Role::Owner, "org_first", None, false, false),
        ];
        for (role, org, operator_org, narrowed, expected) in cases {
            assert_eq!(operator_tier(role, org, operator_org, narrowed), expected, "{role:?} {org} {narrowed}");
        }
    }
}
