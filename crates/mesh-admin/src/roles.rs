//! Roles: the four built-in ones and an organisation's custom roles, each with the rules that
//! govern its MCP traffic (see `mesh_core::policy`).
//!
//! A custom role has a base (admin, member or viewer) that decides its management rights, so
//! management authorization stays a short, auditable list of built-in checks; what a custom role
//! adds is rules over traffic. Built-in roles can carry rules too (say, `member` may never call
//! `delete_*`); they are stored as a row named after the built-in role.

use crate::orgs::require_manage;
use crate::{Admin, AdminError};
use mesh_core::policy::Rule;
use mesh_core::{id, Principal, Role};
use mesh_store::RoleRow;
use serde::{Deserialize, Serialize};

const BUILTIN: [&str; 4] = ["owner", "admin", "member", "viewer"];

/// Most rules a role or key may carry; each call checks them, so they stay few.
pub const MAX_RULES: usize = 200;

/// A role as shown.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleView {
    /// Name.
    pub name: String,
    /// The built-in role whose management rights it has (itself, for built-ins).
    pub base: String,
    /// One of owner, admin, member, viewer.
    pub builtin: bool,
    /// What it is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Rules over MCP traffic.
    pub rules: Vec<Rule>,
    /// Members holding it.
    pub members: i64,
}

/// Creating or changing a role; absent fields are kept on update.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleInput {
    /// Name (create only; on update it names the role).
    pub name: String,
    /// Base role: admin, member (default) or viewer.
    pub base: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Rules; on update they replace the role's rules.
    pub rules: Option<Vec<Rule>>,
}

/// Checks a list of rules.
pub fn validate_rules(rules: &[Rule]) -> Result<(), AdminError> {
    if rules.len() > MAX_RULES {
        return Err(AdminError::Invalid(format!("at most {MAX_RULES} rules")));
    }
    for (i, r) in rules.iter().enumerate() {
        r.validate().map_err(|e| AdminError::Invalid(format!("rule {}: {e}", i + 1)))?;
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), AdminError> {
    mesh_core::slug::validate(name).map_err(|e| AdminError::Invalid(format!("role name: {e}")))
}

fn validate_base(base: &str) -> Result<(), AdminError> {
    match base {
        "admin" | "member" | "viewer" => Ok(()),
        "owner" => Err(AdminError::Invalid("a custom role cannot have the owner's rights; base it on admin".into())),
        other => Err(AdminError::Invalid(format!("base must be admin, member or viewer, not '{other}'"))),
    }
}

fn view(row: Option<RoleRow>, name: &str, members: i64) -> Result<RoleView, AdminError> {
    let builtin = BUILTIN.contains(&name);
    let (base, description, rules) = match row {
        Some(r) => {
            let rules: Vec<Rule> = serde_json::from_str(&r.rules)
                .map_err(|e| AdminError::Invalid(format!("stored rules of role '{name}' do not parse: {e}")))?;
            (r.base, r.description, rules)
        }
        None => (name.to_string(), None, Vec::new()),
    };
    Ok(RoleView { name: name.to_string(), base, builtin, description, rules, members })
}

impl Admin {
    /// Every role of the caller's organisation: built-ins first, then custom ones by name.
    pub async fn list_roles(&self, p: &Principal) -> Result<Vec<RoleView>, AdminError> {
        if p.is_anonymous() {
            return Err(AdminError::Forbidden("anonymous callers cannot list roles"));
        }
        let rows = self.store.list_roles(&p.org_id).await?;
        // One read of the members, counted here, rather than a count query per role.
        let members = self.store.list_members(&p.org_id).await?;
        let held = |name: &str| members.iter().filter(|(_, m)| m.role == name).count() as i64;
        let mut out = Vec::new();
        for name in BUILTIN {
            let row = rows.iter().find(|r| r.name == name).cloned();
            out.push(view(row, name, held(name))?);
        }
        for r in rows.into_iter().filter(|r| !BUILTIN.contains(&r.name.as_str())) {
            let name = r.name.clone();
            out.push(view(Some(r), &name, held(&name))?);
        }
        Ok(out)
    }

    /// One role by name.
    pub async fn get_role(&self, p: &Principal, name: &str) -> Result<RoleView, AdminError> {
        self.list_roles(p)
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| AdminError::NotFound(format!("role '{name}'")))
    }

    /// Creates a custom role.
    pub async fn create_role(&self, p: &Principal, input: RoleInput) -> Result<RoleView, AdminError> {
        require_manage(p)?;
        validate_name(&input.name)?;
        if BUILTIN.contains(&input.name.as_str()) {
            return Err(AdminError::Conflict(format!("'{}' is a built-in role", input.name)));
        }
        let base = input.base.unwrap_or_else(|| "member".into());
        validate_base(&base)?;
        if base == "admin" && p.role != Role::Owner {
            return Err(AdminError::Forbidden("only owners can create roles with admin rights"));
        }
        let rules = input.rules.unwrap_or_default();
        validate_rules(&rules)?;
        let now = id::now_ms();
        let row = RoleRow {
            org_id: p.org_id.clone(),
            name: input.name.clone(),
            description: input.description.filter(|d| !d.trim().is_empty()),
            base,
            rules: serde_json::to_string(&rules).unwrap_or_else(|_| "[]".into()),
            created_at: now,
            updated_at: now,
        };
        self.store.create_role(&row).await?;
        self.access_changed(&p.org_id).await?;
        tracing::info!(org = %p.org_id, role = %row.name, "role created");
        self.get_role(p, &input.name).await
    }

    /// Changes a role: a custom role's base, description and rules; a built-in role's rules.
    pub async fn update_role(&self, p: &Principal, input: RoleInput) -> Result<RoleView, AdminError> {
        require_manage(p)?;
        let name = input.name.clone();
        let current = self.get_role(p, &name).await?;
        if current.builtin && (input.base.is_some() || input.description.is_some()) {
            return Err(AdminError::Invalid(format!("'{name}' is built in: only its rules can change")));
        }
        // Rules on owners or admins bind the people who could undo them; only owners set them.
        if p.role != Role::Owner && (current.base == "owner" || current.base == "admin") {
            return Err(AdminError::Forbidden("only owners can change roles with admin rights"));
        }
        let base = input.base.unwrap_or(current.base);
        if !current.builtin {
            validate_base(&base)?;
            if base == "admin" && p.role != Role::Owner {
                return Err(AdminError::Forbidden("only owners can give a role admin rights"));
            }
        }
        let rules = input.rules.unwrap_or(current.rules);
        validate_rules(&rules)?;
        let now = id::now_ms();
        let row = RoleRow {
            org_id: p.org_id.clone(),
            name: name.clone(),
            description: input.description.or(current.description).filter(|d| !d.trim().is_empty()),
            base,
            rules: serde_json::to_string(&rules).unwrap_or_else(|_| "[]".into()),
            created_at: now,
            updated_at: now,
        };
        // A built-in role gets its row the first time it is given rules.
        if !self.store.update_role(&row).await? {
            self.store.create_role(&row).await?;
        }
        self.access_changed(&p.org_id).await?;
        tracing::info!(org = %p.org_id, role = %name, rules = rules.len(), "role updated");
        self.get_role(p, &name).await
    }

    /// Deletes a custom role nobody holds.
    pub async fn delete_role(&self, p: &Principal, name: &str) -> Result<String, AdminError> {
        require_manage(p)?;
        let current = self.get_role(p, name).await?;
        if current.builtin {
            return Err(AdminError::Invalid(format!("'{name}' is built in and cannot be deleted")));
        }
        if current.base == "admin" && p.role != Role::Owner {
            return Err(AdminError::Forbidden("only owners can delete roles with admin rights"));
        }
        if current.members > 0 {
            return Err(AdminError::Invalid(format!(
                "role '{name}' is held by {} member(s); give them another role first",
                current.members
            )));
        }
        self.store.delete_role(&p.org_id, name).await?;
        self.access_changed(&p.org_id).await?;
        tracing::info!(org = %p.org_id, role = %name, "role deleted");
        Ok(name.to_string())
    }
}
