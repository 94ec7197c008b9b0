//! The trust tiers' settings: what organisation admins may do that touches the host.
//!
//! Installation operators ([`mesh_core::principal::operator_tier`]) own the host; an
//! organisation's owners and admins govern their organisation only. Three things reach past an
//! organisation onto the host — running a program (stdio connections), connecting to internal
//! networks (HTTP/SSE upstreams on private addresses), and founding organisations — and each is
//! operator-only unless a setting widens it. docs/SECURITY.md is the threat model.

use crate::AdminError;
use mesh_core::Principal;
use mesh_relay::Reach;

/// Who may do one of the host-reaching things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Who {
    /// The installation's operators only (the default).
    #[default]
    Operators,
    /// Also every organisation's owners and admins.
    Admins,
    /// Nobody (stdio only: no new or changed stdio connections at all).
    Off,
}

impl Who {
    /// Parses a setting's value; `allow_off` says whether `off` is one of its choices.
    pub fn parse(setting: &str, value: &str, allow_off: bool) -> Result<Who, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "operators" => Ok(Who::Operators),
            "admins" => Ok(Who::Admins),
            "off" if allow_off => Ok(Who::Off),
            _ if allow_off => Err(format!("{setting} must be 'operators', 'admins' or 'off', not '{value}'")),
            _ => Err(format!("{setting} must be 'operators' or 'admins', not '{value}'")),
        }
    }

    /// Whether `p` is among them (management rights themselves are checked by the caller).
    fn includes(self, p: &Principal) -> bool {
        match self {
            Who::Operators => p.is_operator(),
            Who::Admins => p.is_operator() || p.role.can_manage(),
            Who::Off => false,
        }
    }
}

/// The installation's choices (`MESH_STDIO`, `MESH_ORG_CREATE`, `MESH_UPSTREAM_PRIVATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trust {
    /// Who may create or change a stdio connection's own command, arguments, working directory
    /// or environment. Organisation admins may always use the operators' catalogue (unless off).
    pub stdio: Who,
    /// Who may create organisations.
    pub org_create: Who,
    /// Who may configure HTTP/SSE upstreams that reach loopback, private or link-local addresses.
    pub upstream_private: Who,
}

impl Trust {
    /// Whether `p` may set a stdio connection's command line itself (not from the catalogue).
    pub fn check_raw_command(&self, p: &Principal) -> Result<(), AdminError> {
        match self.stdio {
            Who::Off => {
                Err(AdminError::Forbidden("stdio connections are turned off on this installation (MESH_STDIO=off)"))
            }
            w if w.includes(p) => Ok(()),
            _ => Err(AdminError::Forbidden(
                "only the installation's operators may set a stdio command, its arguments, working directory or \
                 environment; create it from a catalogue template instead (`mcp-mesh template list`)",
            )),
        }
    }

    /// Whether stdio connections may be made from catalogue templates (anyone who may manage
    /// connections may, unless stdio is off).
    pub fn check_template(&self) -> Result<(), AdminError> {
        match self.stdio {
            Who::Off => {
                Err(AdminError::Forbidden("stdio connections are turned off on this installation (MESH_STDIO=off)"))
            }
            _ => Ok(()),
        }
    }

    /// Whether `p` may publish or withdraw catalogue templates: operators only, whatever the
    /// settings (a template is a command that runs on the host).
    pub fn check_catalogue(&self, p: &Principal) -> Result<(), AdminError> {
        self.check_template()?;
        if p.is_operator() {
            Ok(())
        } else {
            Err(AdminError::Forbidden("only the installation's operators manage the stdio template catalogue"))
        }
    }

    /// Whether `p`'s key may use management operations at all (`Principal::manage`): the one
    /// refusal of a narrowed key, for the management tools and REST alike.
    pub fn check_management(p: &Principal) -> Result<(), AdminError> {
        if p.manage {
            Ok(())
        } else {
            Err(AdminError::Forbidden(
                "this API key is narrowed to some routes or tools and has no management rights (its scope does not set management)",
            ))
        }
    }

    /// Refuses `p` when it is an OAuth access token (`Principal::audience`): a third-party
    /// client the user consented to may manage within the user's role, but never mint a
    /// credential — an API key, an organisation's owner key, a password — that would outlive
    /// the grant, or (for the owners of the operator organisation) act with more than the
    /// token's own rights. `what` completes "an OAuth client cannot …".
    pub fn check_not_delegated(p: &Principal, what: &'static str) -> Result<(), AdminError> {
        if p.audience.is_some() {
            tracing::warn!(org = %p.org_id, user = %p.user_id, what, "refused to an OAuth access token");
            Err(AdminError::Forbidden(what))
        } else {
            Ok(())
        }
    }

    /// Whether `p` may create an organisation.
    pub fn check_org_create(&self, p: &Principal) -> Result<(), AdminError> {
        if self.org_create.includes(p) {
            Ok(())
        } else {
            Err(AdminError::Forbidden(
                "only the installation's operators may create organisations (MESH_ORG_CREATE=operators)",
            ))
        }
    }

    /// Whether a URL set by `p` may reach internal networks (the connection is then trusted).
    pub fn may_reach_private(&self, p: &Principal) -> bool {
        self.upstream_private.includes(p)
    }

    /// The addresses a connection may reach: anything when an operator set its URL (or the
    /// installation lets admins), public ones otherwise.
    pub fn reach(&self, trusted: bool) -> Reach {
        if trusted || self.upstream_private == Who::Admins {
            Reach::Any
        } else {
            Reach::Public
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::Role;

    fn principal(role: Role, operator: bool) -> Principal {
        Principal { role, operator, ..Principal::anonymous("org") }
    }

    #[test]
    fn settings_decide_who_reaches_the_host() {
        let op = principal(Role::Owner, true);
        let admin = principal(Role::Admin, false);
        let member = principal(Role::Member, false);
        let default = Trust::default();
        assert!(default.check_raw_command(&op).is_ok());
        assert!(default.check_raw_command(&admin).is_err());
        assert!(default.check_template().is_ok());
        assert!(default.check_catalogue(&admin).is_err());
        assert!(default.check_org_create(&admin).is_err());
        assert!(default.check_org_create(&op).is_ok());
        assert_eq!(default.reach(false), Reach::Public);
        assert_eq!(default.reach(true), Reach::Any);
        assert!(!default.may_reach_private(&admin));

        let open = Trust { stdio: Who::Admins, org_create: Who::Admins, upstream_private: Who::Admins };
        assert!(open.check_raw_command(&admin).is_ok());
        assert!(open.check_raw_command(&member).is_err());
        assert!(open.check_org_create(&admin).is_ok());
        assert!(open.check_catalogue(&admin).is_err());
        assert_eq!(open.reach(false), Reach::Any);

        let off = Trust { stdio: Who::Off, ..Trust::default() };
        assert!(off.check_raw_command(&op).is_err());
        assert!(off.check_template().is_err());
    }

    #[test]
    fn setting_values_parse_or_name_the_setting() {
        assert_eq!(Who::parse("MESH_STDIO", "Admins", true), Ok(Who::Admins));
        assert_eq!(Who::parse("MESH_STDIO", "off", true), Ok(Who::Off));
        assert!(Who::parse("MESH_ORG_CREATE", "off", false).unwrap_err().contains("MESH_ORG_CREATE"));
        assert!(Who::parse("MESH_STDIO", "everyone", true).unwrap_err().contains("'everyone'"));
    }
}
