//! Organisations and their members.
//!
//! A key acts in exactly one organisation, so every operation here is about the caller's own
//! organisation: another one's id or slug is "not found", like anything else that crosses the
//! tenant boundary. Listing is the exception: it shows which organisations the caller's *user*
//! belongs to (their own memberships, nothing about the others' contents), so they know which
//! keys to ask for. Creating one makes the caller its owner and answers with a key for it.

use crate::{keys, Admin, AdminError};
use mesh_core::{id, Principal, Role};
use mesh_store::{MemberChange, Membership, Org, User};
use serde::{Deserialize, Serialize};

/// An organisation as shown.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgView {
    /// Id.
    pub id: String,
    /// Unique name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Created, ms since epoch.
    pub created_at: i64,
    /// The caller's role in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl OrgView {
    fn of(o: Org, role: Option<String>) -> OrgView {
        OrgView { id: o.id, slug: o.slug, name: o.name, created_at: o.created_at, role }
    }
}

/// A member as shown.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The user's id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role in the organisation (built-in or custom).
    pub role: String,
    /// Whether the user has a password (can log in to the dashboard). Shown only to the user
    /// themselves: a person's login is not an organisation's business.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_password: Option<bool>,
    /// Member since, ms since epoch.
    pub created_at: i64,
}

fn member_view(p: &Principal, u: User, m: Membership) -> MemberView {
    MemberView {
        has_password: (u.id == p.user_id).then_some(u.password_hash.is_some()),
        user_id: u.id,
        email: u.email,
        name: u.name,
        role: m.role,
        created_at: m.created_at,
    }
}

/// Adding a member.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MemberInput {
    /// Email; a new one creates a local user.
    pub email: String,
    /// Display name of a new user (default: the part of the email before '@').
    pub name: Option<String>,
    /// Role: owner, admin, member, viewer, or a custom role of the organisation.
    pub role: String,
    /// Password of a new local user (hashed with argon2id; never stored or logged as given).
    pub password: Option<String>,
}

/// Shortest accepted password.
pub(crate) const MIN_PASSWORD: usize = 12;

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes, random salt).
pub fn hash_password(password: &str) -> Result<String, AdminError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| AdminError::Invalid(format!("salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AdminError::Invalid(format!("cannot hash the password: {e}")))
}

/// Checks a password against a stored argon2 hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(stored).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

fn normalise_email(email: &str) -> Result<String, AdminError> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(e)
    } else {
        Err(AdminError::Invalid(format!("'{}' is not an email address", email.chars().take(80).collect::<String>())))
    }
}

pub(crate) fn require_manage(p: &Principal) -> Result<(), AdminError> {
    if p.is_anonymous() || !p.role.can_manage() {
        return Err(AdminError::Forbidden("this needs the owner or admin role"));
    }
    Ok(())
}

impl Admin {
    /// Creates an organisation owned by the caller's user; returns it and an owner key for it
    /// (shown once).
    pub async fn create_org(
        &self,
        p: &Principal,
        slug: &str,
        name: Option<&str>,
    ) -> Result<(OrgView, String), AdminError> {
        require_manage(p)?;
        crate::trust::Trust::check_not_delegated(
            p,
            "an OAuth client cannot create organisations (it would receive an owner key)",
        )?;
        // Founding organisations is the installation's business, not one organisation's.
        self.trust.check_org_create(p)?;
        mesh_core::slug::validate(slug).map_err(|e| AdminError::Invalid(e.to_string()))?;
        let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(slug);
        if name.len() > 200 {
            return Err(AdminError::Invalid("name must be at most 200 characters".into()));
        }
        let now = id::now_ms();
        let org = Org { id: id::new_id("org"), slug: slug.to_string(), name: name.to_string(), created_at: now };
        self.store.create_org(&org).await?;
        self.store.create_gateway(&crate::gateways::default_gateway(&org.id, now)).await?;
        let member =
            Membership { org_id: org.id.clone(), user_id: p.user_id.clone(), role: "owner".into(), created_at: now };
        self.store.add_member(&member).await?;
        let (key, k) = keys::issue(&org.id, &p.user_id, &format!("owner of {slug}"), now, None);
        self.store.create_api_key(&key).await?;
        self.keys.reload(&self.store).await?;
        tracing::info!(org = %org.id, slug = %org.slug, by = %p.user_id, "organisation created");
        Ok((OrgView::of(org, Some("owner".into())), k.full.into_inner()))
    }

    /// The organisations the caller's user belongs to, with their role in each.
    pub async fn list_orgs(&self, p: &Principal) -> Result<Vec<OrgView>, AdminError> {
        if p.is_anonymous() {
            return Err(AdminError::Forbidden("anonymous callers have no organisations"));
        }
        Ok(self.store.orgs_of_user(&p.user_id).await?.into_iter().map(|(o, r)| OrgView::of(o, Some(r))).collect())
    }

    /// The caller's organisation, named by id or slug (or nothing); any other is not found.
    pub async fn get_org(&self, p: &Principal, id_or_slug: Option<&str>) -> Result<OrgView, AdminError> {
        let org = self.store.get_org(&p.org_id).await?.ok_or_else(|| AdminError::NotFound("organisation".into()))?;
        match id_or_slug {
            Some(x) if x != org.id && x != org.slug => Err(AdminError::NotFound(format!("organisation '{x}'"))),
            _ => Ok(OrgView::of(org, Some(p.role_name().to_string()))),
        }
    }

    /// Renames the caller's organisation (owner or admin).
    pub async fn update_org(
        &self,
        p: &Principal,
        id_or_slug: Option<&str>,
        name: Option<&str>,
        slug: Option<&str>,
    ) -> Result<OrgView, AdminError> {
        let current = self.get_org(p, id_or_slug).await?;
        require_manage(p)?;
        let mut org = Org { id: current.id, slug: current.slug, name: current.name, created_at: current.created_at };
        if let Some(s) = slug {
            mesh_core::slug::validate(s).map_err(|e| AdminError::Invalid(e.to_string()))?;
            org.slug = s.to_string();
        }
        if let Some(n) = name.map(str::trim) {
            if n.is_empty() || n.len() > 200 {
                return Err(AdminError::Invalid("name must be 1 to 200 characters".into()));
            }
            org.name = n.to_string();
        }
        self.store.update_org(&org).await?;
        tracing::info!(org = %org.id, "organisation updated");
        Ok(OrgView::of(org, Some(p.role_name().to_string())))
    }

    /// Deletes the caller's organisation and everything in it (owner only; `confirm` must be
    /// its slug). Its audit trail is kept.
    pub async fn delete_org(&self, p: &Principal, id_or_slug: &str, confirm: &str) -> Result<String, AdminError> {
        let org = self.get_org(p, Some(id_or_slug)).await?;
        if p.role != Role::Owner {
            return Err(AdminError::Forbidden("deleting an organisation needs the owner role"));
        }
        // The operators are the owners of the first organisation: deleting it would make the
        // owners of whichever organisation comes next the installation's operators.
        if self.store.operator_org().await?.as_deref() == Some(org.id.as_str()) {
            return Err(AdminError::Forbidden(
                "the operator organisation (the installation's first) cannot be deleted: its owners run the installation",
            ));
        }
        if confirm != org.slug {
            return Err(AdminError::Invalid(format!("to delete it, pass confirm: \"{}\" (its slug)", org.slug)));
        }
        self.store.delete_org(&org.id).await?;
        self.access_changed(&org.id).await?;
        self.keys.reload_anonymous(&self.store).await?;
        tracing::warn!(org = %org.id, slug = %org.slug, by = %p.user_id, "organisation deleted");
        Ok(org.id)
    }

    /// The members of the caller's organisation.
    pub async fn list_members(&self, p: &Principal) -> Result<Vec<MemberView>, AdminError> {
        if p.is_anonymous() {
            return Err(AdminError::Forbidden("anonymous callers cannot list members"));
        }
        Ok(self.store.list_members(&p.org_id).await?.into_iter().map(|(u, m)| member_view(p, u, m)).collect())
    }

    /// Whether `role` names a built-in role or a custom role of `org_id`.
    async fn role_exists(&self, org_id: &str, role: &str) -> Result<bool, AdminError> {
        Ok(Role::parse(role).is_some() || self.store.get_role(org_id, role).await?.is_some())
    }

    /// Adds a member (owner or admin; only owners make owners), creating a local user for a
    /// new email.
    pub async fn add_member(&self, p: &Principal, input: MemberInput) -> Result<MemberView, AdminError> {
        require_manage(p)?;
        if input.password.is_some() {
            crate::trust::Trust::check_not_delegated(p, "an OAuth client cannot give members passwords")?;
        }
        let email = normalise_email(&input.email)?;
        if !self.role_exists(&p.org_id, &input.role).await? {
            return Err(AdminError::Invalid(format!("no role named '{}'", input.role)));
        }
        if input.role == "owner" && p.role != Role::Owner {
            return Err(AdminError::Forbidden("only owners can make owners"));
        }
        let now = id::now_ms();
        let default_name = email.split('@').next().unwrap_or("").to_string();
        let given_name: String = input
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(&default_name)
            .chars()
            .take(200)
            .collect();
        let user = match self.store.get_user_by_email(&email).await? {
            Some(mut u) => {
                if input.password.is_some() {
                    // Another organisation's admin must not be able to reset this person's login.
                    return Err(AdminError::Invalid(
                        "this user already exists; their password is theirs to set, leave it out".into(),
                    ));
                }
                // A password another organisation's admin chose for this person would let that
                // admin log in as them here: it is cleared, and the person sets their own.
                if let Some(origin) = self.store.password_origin(&u.id).await? {
                    if origin != p.org_id && u.password_hash.is_some() {
                        self.store.set_password_hash(&u.id, None).await?;
                        self.store.set_password_origin(&u.id, None).await?;
                        tracing::warn!(user = %u.id, "an admin-chosen password was cleared: the user joined another organisation");
                    }
                }
                // The answer must not show what another organisation knows of this person (the
                // name they were given there, whether they have a password): it reads as it
                // would for a new user.
                u.name = given_name.clone();
                u
            }
            None => {
                let password_hash = match input.password.as_deref() {
                    Some(pw) if pw.chars().count() < MIN_PASSWORD => {
                        return Err(AdminError::Invalid(format!("password must be at least {MIN_PASSWORD} characters")))
                    }
                    Some(pw) => Some(hash_password(pw)?),
                    None => None,
                };
                let u = User {
                    id: id::new_id("usr"),
                    email: email.clone(),
                    name: given_name.clone(),
                    password_hash,
                    created_at: now,
                };
                self.store.create_user(&u).await?;
                if u.password_hash.is_some() {
                    self.store.set_password_origin(&u.id, Some(&p.org_id)).await?;
                }
                u
            }
        };
        let m = Membership {
            org_id: p.org_id.clone(),
            user_id: user.id.clone(),
            role: input.role.clone(),
            created_at: now,
        };
        self.store.add_member(&m).await?;
        tracing::info!(org = %p.org_id, user = %user.id, role = %m.role, "member added");
        Ok(member_view(p, user, m))
    }

    /// A member of the caller's organisation by user id or email.
    pub(crate) async fn find_member(&self, p: &Principal, user: &str) -> Result<MemberView, AdminError> {
        let wanted = user.trim().to_lowercase();
        self.list_members(p)
            .await?
            .into_iter()
            .find(|m| m.user_id == user || m.email == wanted)
            .ok_or_else(|| AdminError::NotFound(format!("member '{user}'")))
    }

    /// Lets only owners touch owners (the store keeps the last owner).
    fn check_owner_change(&self, p: &Principal, target: &MemberView, new_role: Option<&str>) -> Result<(), AdminError> {
        let touches_owner = target.role == "owner" || new_role == Some("owner");
        if touches_owner && p.role != Role::Owner {
            return Err(AdminError::Forbidden("only owners can change owners"));
        }
        Ok(())
    }

    /// Changes a member's role. Their open sessions end (they were opened with other rights).
    pub async fn update_member_role(&self, p: &Principal, user: &str, role: &str) -> Result<MemberView, AdminError> {
        require_manage(p)?;
        let target = self.find_member(p, user).await?;
        if !self.role_exists(&p.org_id, role).await? {
            return Err(AdminError::Invalid(format!("no role named '{role}'")));
        }
        self.check_owner_change(p, &target, Some(role))?;
        changed(self.store.update_member_role(&p.org_id, &target.user_id, role).await?, user)?;
        self.access_changed(&p.org_id).await?;
        tracing::info!(org = %p.org_id, user = %target.user_id, from = %target.role, to = %role, "member role changed");
        self.find_member(p, &target.user_id).await
    }

    /// Removes a member; their keys in this organisation are deleted with the membership.
    pub async fn remove_member(&self, p: &Principal, user: &str) -> Result<String, AdminError> {
        require_manage(p)?;
        let target = self.find_member(p, user).await?;
        self.check_owner_change(p, &target, None)?;
        changed(self.store.remove_member(&p.org_id, &target.user_id).await?, user)?;
        // Their upstream tokens leave with them.
        self.store.delete_upstream_grants_of(&p.org_id, &format!("user:{}", target.user_id)).await?;
        self.access_changed(&p.org_id).await?;
        tracing::info!(org = %p.org_id, user = %target.user_id, "member removed");
        Ok(target.user_id)
    }
}

/// A membership change the store refused, as the caller's error.
fn changed(outcome: MemberChange, user: &str) -> Result<(), AdminError> {
    match outcome {
        MemberChange::Done => Ok(()),
        // Removed concurrently, between the lookup and the change.
        MemberChange::NotMember => Err(AdminError::NotFound(format!("member '{user}'"))),
        MemberChange::LastOwner => Err(AdminError::Invalid("an organisation must keep at least one owner".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse battery!", &h));
        assert_ne!(h, hash_password("correct horse battery").unwrap(), "salted");
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalise_email("  Ada@Example.ORG ").unwrap(), "ada@example.org");
        for bad in ["", "ada", "@x", "ada@", "a da@x.org"] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
    }
}
