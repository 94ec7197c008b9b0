//! Who acts in the dashboard: a user logged in with a browser (a login session of
//! [`crate::oauth::login`]), acting in one of their organisations with their role there — the
//! same `Principal` an API key of theirs would carry, so every service decides alike.

use crate::{Admin, AdminError};
use mesh_core::{Principal, Role};
use mesh_store::{Org, UserSession};
use std::time::Duration;

/// How long a token the dashboard makes for one playground request lives at most.
const PLAYGROUND_TOKEN_TTL: Duration = Duration::from_secs(120);

/// A user's organisations and the one they act in.
pub struct BrowserUser {
    /// Who.
    pub user: mesh_store::User,
    /// Every organisation of theirs with their role name there, oldest first.
    pub orgs: Vec<(Org, String)>,
    /// Acting as.
    pub principal: Principal,
}

impl Admin {
    /// The principal of `session`'s user in organisation `org` (id or slug; `None`: their first).
    /// The key id is `login:` and the start of the session's hash, so that the audit trail tells
    /// browser sessions apart without naming their cookie.
    pub async fn browser_user(&self, session: &UserSession, org: Option<&str>) -> Result<BrowserUser, AdminError> {
        let user = self
            .store
            .get_user(&session.user_id)
            .await?
            .ok_or_else(|| AdminError::NotFound("the logged-in user".into()))?;
        let orgs = self.store.orgs_of_user(&user.id).await?;
        let (o, role_name) = match org {
            Some(want) => orgs.iter().find(|(o, _)| o.id == want || o.slug == want),
            None => orgs.first(),
        }
        .ok_or_else(|| AdminError::NotFound(format!("organisation '{}' of yours", org.unwrap_or("any"))))?;
        let (role, custom_role) = match Role::parse(role_name) {
            Some(r) => (r, None),
            None => {
                let row = self
                    .store
                    .get_role(&o.id, role_name)
                    .await?
                    .ok_or_else(|| AdminError::NotFound(format!("role '{role_name}'")))?;
                let base = Role::parse(&row.base).ok_or_else(|| AdminError::NotFound(format!("role '{role_name}'")))?;
                (base, Some(role_name.clone()))
            }
        };
        let operator_org = self.store.operator_org().await?;
        let principal = Principal {
            org_id: o.id.clone(),
            user_id: user.id.clone(),
            key_id: format!("login:{}", &session.hash[..session.hash.len().min(12)]),
            role,
            custom_role,
            // The user at their own browser, not a key handed out to do less: as an owner of
            // the operator organisation they are an operator, exactly as with their owner key.
            operator: mesh_core::principal::operator_tier(role, &o.id, operator_org.as_deref(), false),
            manage: true,
            // The user acts as themselves, not through a credential that expires: a key they make
            // here may outlive this login session, as one made with their owner key may.
            key_expires_at: None,
            audience: None,
        };
        Ok(BrowserUser { user, orgs, principal })
    }

    /// A bearer token for one playground request of `p` to MCP route `route` (a connection
    /// slug or `gateway/{slug}`): held in memory only, valid for that route only (an audience,
    /// like an OAuth token), with no management rights, for two minutes at most; the caller
    /// drops it with [`Admin::drop_playground_token`] when done.
    pub fn playground_token(&self, p: &Principal, route: &str) -> String {
        let token = crate::oauth::secret("mpt_");
        let mut principal = p.clone();
        principal.manage = false;
        principal.operator = false;
        principal.audience = Some(route.into());
        let expires = mesh_core::id::now_ms() + PLAYGROUND_TOKEN_TTL.as_millis() as i64;
        principal.key_expires_at = Some(p.key_expires_at.map_or(expires, |e| e.min(expires)));
        self.keys.add_ephemeral(&token, principal);
        token
    }

    /// Forgets a playground token.
    pub fn drop_playground_token(&self, token: &str) {
        self.keys.remove_ephemeral(token);
    }
}
