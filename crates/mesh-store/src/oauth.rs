//! The OAuth authorization server's records (#17): clients, grants (consents), codes, tokens,
//! and the browser login sessions of the mesh's own pages.
//!
//! Installation-wide tables: a client serves every organisation, and a grant names the one it
//! acts in. Secrets are stored as their hex SHA-256 only (the caller hashes).

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::on_write;
use crate::{json, list};
use crate::{Store, StoreError};

/// A registered client: pre-registered by an operator (`static`) or through RFC 7591 (`dynamic`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClient {
    /// The `client_id`.
    pub id: String,
    /// `static` or `dynamic`.
    pub kind: String,
    /// Shown on the consent page.
    pub name: String,
    /// The client's home page, if it gave one.
    pub client_uri: Option<String>,
    /// Exact redirect URIs (loopback ones match any port).
    pub redirect_uris: Vec<String>,
    /// Hex SHA-256 of the secret of a confidential client; `None` for a public one.
    pub secret_hash: Option<String>,
    /// `authorization_code`, and `refresh_token` if it may refresh.
    pub grant_types: Vec<String>,
    /// A user id, or `register`.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A user's consent for one client at one resource in one organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthGrant {
    /// `grant_…` id.
    pub id: String,
    /// The organisation the client acts in.
    pub org_id: String,
    /// The user it acts for.
    pub user_id: String,
    /// The client.
    pub client_id: String,
    /// The client's name as shown when consent was given.
    pub client_name: String,
    /// The canonical resource URI.
    pub resource: String,
    /// The route it names: `""` (management), a connection, or `gateway/{slug}`.
    pub route: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// An authorization code, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthCode {
    /// Hex SHA-256 of the code.
    pub hash: String,
    /// The grant it was issued under.
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The exact redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub challenge: String,
    /// The scopes granted.
    pub scope: String,
    /// The token family its exchange starts.
    pub family: String,
    /// Unix milliseconds.
    pub expires_at: i64,
    /// When it was exchanged.
    pub used_at: Option<i64>,
}

/// An access or refresh token, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthToken {
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// `access` or `refresh`.
    pub kind: String,
    /// One authorization and its refreshes: the principal's key id.
    pub family: String,
    /// Its grant.
    pub grant_id: String,
    /// The scopes it carries.
    pub scope: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub expires_at: i64,
    /// When a refresh token was used (it is used once).
    pub rotated_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

/// A browser login session of the mesh's own pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    /// Hex SHA-256 of the cookie value.
    pub hash: String,
    /// Who logged in.
    pub user_id: String,
    /// The anti-CSRF value its forms carry.
    pub csrf: String,
    /// `password` or `sso`.
    pub method: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub expires_at: i64,
}

const CLIENT_COLUMNS: &str =
    "id, kind, name, client_uri, redirect_uris, secret_hash, grant_types, created_by, created_at";
// Aliased where a token has a column of the same name: rows of a join are read by name.
const GRANT_COLUMNS: &str = "g.id, g.org_id, g.user_id, g.client_id, g.client_name, g.resource, g.route, \
                             g.scope AS grant_scope, g.created_at AS grant_created_at";
const TOKEN_COLUMNS: &str =
    "t.hash, t.kind, t.family, t.grant_id, t.scope, t.created_at, t.expires_at, t.rotated_at, t.revoked_at";

impl Store {
    /// Inserts a client; `Conflict` if the id is taken.
    pub async fn create_oauth_client(&self, c: &OAuthClient) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&c.id)
        .bind(&c.kind)
        .bind(&c.name)
        .bind(c.client_uri.as_deref())
        .bind(json(&c.redirect_uris))
        .bind(c.secret_hash.as_deref())
        .bind(json(&c.grant_types))
        .bind(&c.created_by)
        .bind(c.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| on_write(e, |_| format!("OAuth client '{}' already exists", c.id), "invalid OAuth client"))?;
        Ok(())
    }

    /// One client by id.
    pub async fn get_oauth_client(&self, id: &str) -> Result<Option<OAuthClient>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(client_from_row).transpose()?)
    }

    /// Every registered client, oldest first.
    pub async fn list_oauth_clients(&self) -> Result<Vec<OAuthClient>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(client_from_row).collect::<Result<_, _>>()?)
    }

    /// How many clients RFC 7591 registered (to bound them).
    pub async fn count_dynamic_clients(&self) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM oauth_clients WHERE kind = 'dynamic'").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    /// Deletes a client and every grant given to it (their codes and tokens with them).
    pub async fn delete_oauth_client(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM oauth_grants WHERE client_id = $1").bind(id).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM oauth_clients WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records consent: a new grant, or the existing one for the same organisation, user,
    /// client and resource with the new scope. Returns the grant as stored.
    pub async fn upsert_oauth_grant(&self, g: &OAuthGrant) -> Result<OAuthGrant, StoreError> {
        sqlx::query(
            "INSERT INTO oauth_grants (id, org_id, user_id, client_id, client_name, resource, route, scope, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (org_id, user_id, client_id, resource) DO UPDATE SET scope = excluded.scope, \
             client_name = excluded.client_name, route = excluded.route",
        )
        .bind(&g.id)
        .bind(&g.org_id)
        .bind(&g.user_id)
        .bind(&g.client_id)
        .bind(&g.client_name)
        .bind(&g.resource)
        .bind(&g.route)
        .bind(&g.scope)
        .bind(g.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| on_write(e, |_| "grant exists".into(), "the user is not a member of that organisation"))?;
        self.find_oauth_grant(&g.org_id, &g.user_id, &g.client_id, &g.resource)
            .await?
            .ok_or_else(|| StoreError::Invalid("the grant vanished while it was written".into()))
    }

    /// The grant of `user_id` in `org_id` to `client_id` for `resource`, if consent was given.
    pub async fn find_oauth_grant(
        &self,
        org_id: &str,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<OAuthGrant>, StoreError> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM oauth_grants g \
             WHERE g.org_id = $1 AND g.user_id = $2 AND g.client_id = $3 AND g.resource = $4"
        );
        let row = sqlx::query(&sql)
            .bind(org_id)
            .bind(user_id)
            .bind(client_id)
            .bind(resource)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(grant_from_row).transpose()?)
    }

    /// One grant by id.
    pub async fn get_oauth_grant(&self, id: &str) -> Result<Option<OAuthGrant>, StoreError> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM oauth_grants g WHERE g.id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(grant_from_row).transpose()?)
    }

    /// The grants in `org_id` (of one user, if given), newest first.
    pub async fn list_oauth_grants(&self, org_id: &str, user_id: Option<&str>) -> Result<Vec<OAuthGrant>, StoreError> {
        let rows = match user_id {
            Some(u) => {
                let sql = format!(
                    "SELECT {GRANT_COLUMNS} FROM oauth_grants g WHERE g.org_id = $1 AND g.user_id = $2 \
                     ORDER BY g.created_at DESC, g.id"
                );
                sqlx::query(&sql).bind(org_id).bind(u).fetch_all(&self.pool).await?
            }
            None => {
                let sql = format!(
                    "SELECT {GRANT_COLUMNS} FROM oauth_grants g WHERE g.org_id = $1 ORDER BY g.created_at DESC, g.id"
                );
                sqlx::query(&sql).bind(org_id).fetch_all(&self.pool).await?
            }
        };
        Ok(rows.iter().map(grant_from_row).collect::<Result<_, _>>()?)
    }

    /// Deletes a grant of `org_id`, and with it its codes and tokens.
    pub async fn delete_oauth_grant(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM oauth_grants WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes `org_id`'s grants for any of `routes` (a deleted connection or gateway, by slug
    /// and id), and with them their codes and tokens. Returns how many.
    pub async fn delete_oauth_grants_for(&self, org_id: &str, routes: &[&str]) -> Result<u64, StoreError> {
        let mut n = 0;
        for route in routes {
            n += sqlx::query("DELETE FROM oauth_grants WHERE org_id = $1 AND route = $2")
                .bind(org_id)
                .bind(*route)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }

    /// Stores an authorization code.
    pub async fn create_oauth_code(&self, c: &OAuthCode) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_codes (hash, grant_id, client_id, redirect_uri, challenge, scope, family, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&c.hash)
        .bind(&c.grant_id)
        .bind(&c.client_id)
        .bind(&c.redirect_uri)
        .bind(&c.challenge)
        .bind(&c.scope)
        .bind(&c.family)
        .bind(c.expires_at)
        .bind(c.used_at)
        .execute(&self.pool)
        .await
        .map_err(|e| on_write(e, |_| "code exists".into(), "the grant is gone"))?;
        Ok(())
    }

    /// Marks a code used and returns it: `(code, true)` the first time, `(code, false)` on any
    /// later use (a replay), `None` for an unknown code. One conditional UPDATE decides, so two
    /// concurrent exchanges cannot both be first.
    pub async fn use_oauth_code(&self, hash: &str, now_ms: i64) -> Result<Option<(OAuthCode, bool)>, StoreError> {
        let first = sqlx::query("UPDATE oauth_codes SET used_at = $1 WHERE hash = $2 AND used_at IS NULL")
            .bind(now_ms)
            .bind(hash)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0;
        let row = sqlx::query(
            "SELECT hash, grant_id, client_id, redirect_uri, challenge, scope, family, expires_at, used_at \
             FROM oauth_codes WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let code = OAuthCode {
            hash: row.try_get("hash")?,
            grant_id: row.try_get("grant_id")?,
            client_id: row.try_get("client_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            challenge: row.try_get("challenge")?,
            scope: row.try_get("scope")?,
            family: row.try_get("family")?,
            expires_at: row.try_get("expires_at")?,
            used_at: row.try_get("used_at")?,
        };
        Ok(Some((code, first)))
    }

    /// Forgets codes that expired before `now_ms` (housekeeping).
    pub async fn prune_oauth(&self, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_codes WHERE expires_at < $1").bind(now_ms).execute(&self.pool).await?;
        sqlx::query("DELETE FROM oauth_tokens WHERE expires_at < $1").bind(now_ms).execute(&self.pool).await?;
        sqlx::query("DELETE FROM user_sessions WHERE expires_at < $1").bind(now_ms).execute(&self.pool).await?;
        Ok(())
    }

    /// Stores tokens (an access token and, usually, a refresh token) in one transaction.
    pub async fn create_oauth_tokens(&self, tokens: &[OAuthToken]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for t in tokens {
            sqlx::query(
                "INSERT INTO oauth_tokens (hash, kind, family, grant_id, scope, created_at, expires_at, rotated_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&t.hash)
            .bind(&t.kind)
            .bind(&t.family)
            .bind(&t.grant_id)
            .bind(&t.scope)
            .bind(t.created_at)
            .bind(t.expires_at)
            .bind(t.rotated_at)
            .bind(t.revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| on_write(e, |_| "token exists".into(), "the grant is gone"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A token with its grant, by hash.
    pub async fn get_oauth_token(&self, hash: &str) -> Result<Option<(OAuthToken, OAuthGrant)>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, {GRANT_COLUMNS} FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id \
             WHERE t.hash = $1"
        );
        let row = sqlx::query(&sql).bind(hash).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(|r| Ok::<_, sqlx::Error>((token_from_row(r)?, grant_from_row(r)?))).transpose()?)
    }

    /// Marks a refresh token used. `true` only for the one call that used it first.
    pub async fn rotate_oauth_refresh(&self, hash: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE oauth_tokens SET rotated_at = $1 WHERE hash = $2 AND kind = 'refresh' AND rotated_at IS NULL \
             AND revoked_at IS NULL",
        )
        .bind(now_ms)
        .bind(hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes every token of a family (a replayed code or refresh token, RFC 7009 on a refresh
    /// token). Returns how many were live.
    pub async fn revoke_oauth_family(&self, family: &str, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(family)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Revokes one token. Returns whether it was live.
    pub async fn revoke_oauth_token(&self, hash: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Live access tokens with their grant and the user's role name (the key cache's loader;
    /// spans organisations on purpose). A member removed takes their grants, so their tokens.
    pub async fn active_oauth_tokens(&self, now_ms: i64) -> Result<Vec<(OAuthToken, OAuthGrant, String)>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, {GRANT_COLUMNS}, m.role FROM oauth_tokens t \
             JOIN oauth_grants g ON g.id = t.grant_id \
             JOIN memberships m ON m.org_id = g.org_id AND m.user_id = g.user_id \
             WHERE t.kind = 'access' AND t.revoked_at IS NULL AND t.expires_at > $1 ORDER BY t.created_at, t.hash"
        );
        let rows = sqlx::query(&sql).bind(now_ms).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((token_from_row(r)?, grant_from_row(r)?, r.try_get("role")?))).collect()
    }

    /// Starts a browser login session.
    pub async fn create_user_session(&self, s: &UserSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_sessions (hash, user_id, csrf, method, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.hash)
        .bind(&s.user_id)
        .bind(&s.csrf)
        .bind(&s.method)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| on_write(e, |_| "session exists".into(), "no such user"))?;
        Ok(())
    }

    /// A live login session by the hash of its cookie.
    pub async fn get_user_session(&self, hash: &str, now_ms: i64) -> Result<Option<UserSession>, StoreError> {
        let row = sqlx::query(
            "SELECT hash, user_id, csrf, method, created_at, expires_at FROM user_sessions \
             WHERE hash = $1 AND expires_at > $2",
        )
        .bind(hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(UserSession {
            hash: row.try_get("hash")?,
            user_id: row.try_get("user_id")?,
            csrf: row.try_get("csrf")?,
            method: row.try_get("method")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Ends a login session.
    pub async fn delete_user_session(&self, hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM user_sessions WHERE hash = $1").bind(hash).execute(&self.pool).await?;
        Ok(())
    }
}

fn client_from_row(row: &AnyRow) -> Result<OAuthClient, sqlx::Error> {
    Ok(OAuthClient {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        client_uri: row.try_get("client_uri")?,
        redirect_uris: list(row, "redirect_uris")?,
        secret_hash: row.try_get("secret_hash")?,
        grant_types: list(row, "grant_types")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

fn grant_from_row(row: &AnyRow) -> Result<OAuthGrant, sqlx::Error> {
    Ok(OAuthGrant {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        client_name: row.try_get("client_name")?,
        resource: row.try_get("resource")?,
        route: row.try_get("route")?,
        scope: row.try_get("grant_scope")?,
        created_at: row.try_get("grant_created_at")?,
    })
}

fn token_from_row(row: &AnyRow) -> Result<OAuthToken, sqlx::Error> {
    Ok(OAuthToken {
        hash: row.try_get("hash")?,
        kind: row.try_get("kind")?,
        family: row.try_get("family")?,
        grant_id: row.try_get("grant_id")?,
        scope: row.try_get("scope")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        rotated_at: row.try_get("rotated_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
