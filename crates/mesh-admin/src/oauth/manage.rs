//! Managing the authorization server: pre-registered clients (operators: a client serves the
//! whole installation) and grants (each user their own; owners and admins their organisation's).

use super::secret;
use crate::{Admin, AdminError};
use mesh_core::Principal;
use mesh_store::{OAuthClient, OAuthGrant};
use serde::{Deserialize, Serialize};

/// What an operator gives to pre-register a client.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientInput {
    /// Shown on the consent page.
    pub name: String,
    /// Its redirect URIs (https, or http on loopback; loopback ones match any port).
    pub redirect_uris: Vec<String>,
    /// A confidential client gets a secret (shown once); default: public (PKCE only).
    #[serde(default)]
    pub confidential: bool,
    /// Its home page.
    pub client_uri: Option<String>,
    /// A chosen client id (default: generated).
    pub client_id: Option<String>,
}

/// A client as shown: never its secret or the secret's hash.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientView {
    /// `client_id`.
    pub client_id: String,
    /// `static` (pre-registered) or `dynamic` (RFC 7591).
    pub kind: String,
    /// Name.
    pub name: String,
    /// Home page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Whether it authenticates with a secret.
    pub confidential: bool,
    /// Grant types.
    pub grant_types: Vec<String>,
    /// Who made it (a user id, or `register`).
    pub created_by: String,
    /// ms since epoch.
    pub created_at: i64,
}

impl From<OAuthClient> for ClientView {
    fn from(c: OAuthClient) -> Self {
        ClientView {
            confidential: c.secret_hash.is_some(),
            client_id: c.id,
            kind: c.kind,
            name: c.name,
            client_uri: c.client_uri,
            redirect_uris: c.redirect_uris,
            grant_types: c.grant_types,
            created_by: c.created_by,
            created_at: c.created_at,
        }
    }
}

/// A grant as shown.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    /// Id.
    pub id: String,
    /// The user who consented.
    pub user_id: String,
    /// The client.
    pub client_id: String,
    /// Its name when consent was given.
    pub client_name: String,
    /// The MCP endpoint.
    pub resource: String,
    /// Scopes.
    pub scope: String,
    /// ms since epoch.
    pub created_at: i64,
}

impl From<OAuthGrant> for GrantView {
    fn from(g: OAuthGrant) -> Self {
        GrantView {
            id: g.id,
            user_id: g.user_id,
            client_id: g.client_id,
            client_name: g.client_name,
            resource: g.resource,
            scope: g.scope,
            created_at: g.created_at,
        }
    }
}

fn operators_only(p: &Principal) -> Result<(), AdminError> {
    if p.is_operator() {
        Ok(())
    } else {
        Err(AdminError::Forbidden("only the installation's operators manage OAuth clients"))
    }
}

impl Admin {
    /// A connection or gateway was deleted: the grants given for it end with their tokens, so
    /// that nothing created later under the same name inherits them.
    pub(crate) async fn route_deleted(&self, org_id: &str, routes: &[&str]) -> Result<(), AdminError> {
        if self.store.delete_oauth_grants_for(org_id, routes).await? > 0 {
            tracing::info!(org = %org_id, ?routes, "OAuth grants for a deleted route ended");
            self.access_changed(org_id).await?;
        }
        Ok(())
    }

    /// Sets a user's password for the login page (argon2id). Anyone sets their own; an
    /// installation operator may set anyone's (`user` by id or e-mail). Organisation owners may
    /// not: a person can belong to several organisations, and a password opens all of them.
    pub async fn set_password(&self, p: &Principal, user: Option<&str>, password: &str) -> Result<(), AdminError> {
        crate::trust::Trust::check_not_delegated(p, "an OAuth client cannot set passwords")?;
        let target = match user {
            None => p.user_id.clone(),
            Some(u) => {
                let found = if u.contains('@') {
                    self.store.get_user_by_email(&u.trim().to_lowercase()).await?
                } else {
                    self.store.get_user(u).await?
                };
                let found = found.ok_or_else(|| AdminError::NotFound(format!("user '{u}'")))?;
                if found.id != p.user_id && !p.is_operator() {
                    return Err(AdminError::Forbidden(
                        "only the installation's operators set other people's passwords",
                    ));
                }
                found.id
            }
        };
        if password.chars().count() < crate::orgs::MIN_PASSWORD {
            return Err(AdminError::Invalid(format!(
                "password must be at least {} characters",
                crate::orgs::MIN_PASSWORD
            )));
        }
        if password.len() > 1024 {
            return Err(AdminError::Invalid("password must be at most 1,024 bytes".into()));
        }
        let pw = password.to_string();
        let hash = tokio::task::spawn_blocking(move || crate::orgs::hash_password(&pw))
            .await
            .map_err(|_| AdminError::Invalid("cannot hash the password".into()))??;
        self.store.set_password_hash(&target, Some(&hash)).await?;
        // Now the user's own (or an operator's): no longer one an organisation's admin chose.
        self.store.set_password_origin(&target, None).await?;
        tracing::info!(user = %target, "password set");
        Ok(())
    }

    /// Pre-registers a client (operators). Returns it and, for a confidential one, its secret,
    /// which is never shown again.
    pub async fn create_oauth_client(
        &self,
        p: &Principal,
        input: ClientInput,
    ) -> Result<(ClientView, Option<String>), AdminError> {
        operators_only(p)?;
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(AdminError::Invalid("name must be 1 to 200 characters".into()));
        }
        if input.redirect_uris.is_empty() || input.redirect_uris.len() > 20 {
            return Err(AdminError::Invalid("redirectUris must list 1 to 20 URIs".into()));
        }
        for uri in &input.redirect_uris {
            mesh_auth::redirect::check_registered(uri)
                .map_err(|e| AdminError::Invalid(format!("redirectUris: {e}")))?;
        }
        let id = match input.client_id {
            Some(id) => {
                let ok = (1..=100).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !ok {
                    return Err(AdminError::Invalid(
                        "clientId: 1 to 100 letters, digits, '-', '_' or '.' (URL client ids are metadata documents, not registrations)"
                            .into(),
                    ));
                }
                id
            }
            None => mesh_core::id::new_id("mcc"),
        };
        let client_secret = input.confidential.then(|| secret("mcs_"));
        let row = OAuthClient {
            id,
            kind: "static".into(),
            name: name.to_string(),
            client_uri: input.client_uri,
            redirect_uris: input.redirect_uris,
            secret_hash: client_secret.as_deref().map(crate::keys::hash),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            created_by: p.user_id.clone(),
            created_at: mesh_core::id::now_ms(),
        };
        self.store.create_oauth_client(&row).await?;
        tracing::info!(client = %row.id, name = %row.name, "OAuth client pre-registered");
        Ok((row.into(), client_secret))
    }

    /// Registered clients (pre-registered and dynamic). Owners and admins of any organisation
    /// may see them: consent pages name them to their members.
    pub async fn list_oauth_clients(&self, p: &Principal) -> Result<Vec<ClientView>, AdminError> {
        if !p.role.can_manage() {
            return Err(AdminError::Forbidden("listing OAuth clients needs the owner or admin role"));
        }
        Ok(self.store.list_oauth_clients().await?.into_iter().map(ClientView::from).collect())
    }

    /// Removes a client (operators): every grant given to it ends, and its tokens with them.
    pub async fn delete_oauth_client(&self, p: &Principal, client_id: &str) -> Result<(), AdminError> {
        operators_only(p)?;
        if !self.store.delete_oauth_client(client_id).await? {
            return Err(AdminError::NotFound(format!("OAuth client '{client_id}'")));
        }
        self.reload_access().await?;
        self.announce(crate::Change::Access { org_id: p.org_id.clone() });
        tracing::info!(client = %client_id, "OAuth client removed; its grants and tokens ended");
        Ok(())
    }

    /// Grants in the caller's organisation: their own, or (owners/admins) everyone's, or one
    /// member's (`user`, by id or e-mail).
    pub async fn list_oauth_grants(&self, p: &Principal, user: Option<&str>) -> Result<Vec<GrantView>, AdminError> {
        let user_id = match user {
            Some(u) if u.contains('@') => Some(self.find_member(p, u).await?.user_id),
            Some(u) => Some(u.to_string()),
            None if p.role.can_manage() => None,
            None => Some(p.user_id.clone()),
        };
        if user_id.as_deref().is_some_and(|u| u != p.user_id) && !p.role.can_manage() {
            return Err(AdminError::Forbidden("seeing others' grants needs the owner or admin role"));
        }
        Ok(self
            .store
            .list_oauth_grants(&p.org_id, user_id.as_deref())
            .await?
            .into_iter()
            .map(GrantView::from)
            .collect())
    }

    /// Revokes a grant: its tokens stop working on the next request, and the client must ask
    /// for consent again. Members revoke their own; owners and admins anyone's.
    pub async fn revoke_oauth_grant(&self, p: &Principal, grant_id: &str) -> Result<GrantView, AdminError> {
        let grant = self
            .store
            .get_oauth_grant(grant_id)
            .await?
            .filter(|g| g.org_id == p.org_id && (g.user_id == p.user_id || p.role.can_manage()))
            .ok_or_else(|| AdminError::NotFound(format!("grant '{grant_id}'")))?;
        self.store.delete_oauth_grant(&p.org_id, &grant.id).await?;
        self.access_changed(&p.org_id).await?;
        tracing::info!(org = %p.org_id, grant = %grant.id, client = %grant.client_id, "OAuth grant revoked");
        Ok(grant.into())
    }
}
