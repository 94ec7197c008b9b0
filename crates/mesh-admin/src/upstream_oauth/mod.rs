//! Upstream OAuth (#19): the mesh holds each user's (or a connection's shared) grant at an
//! OAuth-protected upstream MCP server, and hands the relay a fresh access token when a session
//! opens. The OAuth steps are `mesh_oauth`'s; this module decides whose grant, keeps it sealed,
//! refreshes it once per expiry, and makes sure the person who completes an authorization in the
//! browser is the user it was started for.
//!
//! Grants are rows of `connection_secrets` (kind `oauth_grant`, named by the subject): sealed
//! under the vault with the same associated data as every secret, so vault rotation re-seals
//! them, and deleting the connection deletes them.

mod clients;
mod live;

pub(crate) use clients::check_input;
pub use clients::METADATA_DOCUMENT_PATH;
pub(crate) use live::{LiveToken, LiveTokens};

use crate::{Admin, AdminError};
use mesh_core::{id, Principal};
use mesh_oauth::{challenge, Grant, Net, OAuthError, Pending};
use mesh_relay::Reach;
use mesh_store::{Connection, SecretRow, UpstreamLogin, OAUTH_GRANT};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest a replica holds a grant's refresh lease: four times the OAuth client's request
/// timeout (15 s), so that neither a slow token endpoint nor some clock skew between replicas
/// lets a second one in while the first still spends the refresh token; a holder that died lets
/// the next one in after this.
const REFRESH_LEASE: Duration = Duration::from_secs(60);

/// How long an authorization link works.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);

/// One lock per grant being refreshed: concurrent sessions opening at an expiry wait for one
/// refresh instead of each spending the (rotating) refresh token.
#[derive(Default)]
pub(crate) struct Refreshing(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Refreshing {
    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Entries nobody holds are dropped as new ones come: the map stays as small as the
        // number of refreshes in flight.
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(key.to_string()).or_default().clone()
    }
}

/// An authorization link for the user.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginLink {
    /// The connection's slug.
    pub connection: String,
    /// The mesh's link: open it in a browser logged in to the mesh as the same user.
    pub url: String,
    /// Its id (to ask whether it was completed).
    pub login_id: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

/// A grant as shown: never a token.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    /// The connection's slug.
    pub connection: String,
    /// `user:<id>` or `shared`.
    pub subject: String,
    /// The authorization server.
    pub issuer: Option<String>,
    /// The mesh's client id there.
    pub client_id: Option<String>,
    /// The granted scope.
    pub scope: Option<String>,
    /// When the access token expires (seconds since the epoch), if known.
    pub expires_at: Option<u64>,
    /// Whether a refresh token is held.
    pub refreshable: bool,
}

/// What an authorization under way keeps (sealed).
#[derive(Serialize, Deserialize)]
struct Underway {
    pending: Pending,
    grant: Grant,
}

pub(crate) fn subject_of(c: &Connection, p: &Principal) -> String {
    if c.oauth_shared {
        "shared".into()
    } else {
        format!("user:{}", p.user_id)
    }
}

/// The associated data of a grant's or client's ciphertext: a secret's (`vault.rs` rotation
/// uses the same).
fn sealed_aad(connection_id: &str, kind: &str, name: &str) -> Vec<u8> {
    format!("{connection_id}/{kind}/{name}").into_bytes()
}

fn login_aad(login_id: &str) -> Vec<u8> {
    format!("upstream_login/{login_id}").into_bytes()
}

fn state_hash(state: &str) -> String {
    hex::encode(sha2::Sha256::digest(state.as_bytes()))
}

/// The access token of `g` and when to renew it.
fn token_of(g: &Grant) -> (String, Option<u64>) {
    let t = g.tokens.as_ref();
    (t.map(|t| t.access_token.clone()).unwrap_or_default(), t.and_then(|t| t.renew_at()))
}

/// Whether `g` holds a token not due for renewal.
fn fresh(g: &Grant) -> bool {
    g.tokens.as_ref().is_some_and(|t| t.renew_at().is_none_or(|at| at > mesh_oauth::flow::now()))
}

/// Whether `g` holds a token that has not expired (still worth sending when renewal failed).
fn usable(g: &Grant) -> bool {
    g.tokens.as_ref().is_some_and(|t| !t.expires_within(mesh_oauth::flow::now(), Duration::ZERO))
}

fn authorization_required(c: &Connection, url: String) -> AdminError {
    AdminError::AuthorizationRequired(vec![mesh_relay::AuthorizationLink { connection: c.slug.clone(), url }])
}

fn oauth_failed(c: &Connection, e: OAuthError) -> AdminError {
    AdminError::UpstreamAuth(format!("connection '{}': {e}", c.slug))
}

impl Admin {
    /// Where authorization servers send users back.
    pub fn upstream_redirect_uri(&self) -> String {
        format!("{}/oauth/upstream/callback", self.oauth.settings.issuer)
    }

    /// The OAuth client for `c`: its connection's reach (an organisation's connection may not
    /// reach internal networks through discovery either; its endpoints must be https), never
    /// following redirects.
    fn oauth_net(&self, c: &Connection) -> Net {
        let reach = self.trust.reach(c.trusted);
        let client = self.http.oauth_client(reach);
        let slug = c.slug.clone();
        let allow: mesh_oauth::net::Allow = Arc::new(move |u: &url::Url| {
            if reach == Reach::Public && u.scheme() != "https" {
                return Err("an organisation's connection talks OAuth over https only".into());
            }
            mesh_relay::upstream::reach::check_url(&slug, u, reach).map_err(|e| e.to_string())
        });
        Net { client, allow: Some(allow) }
    }

    async fn load_grant(&self, c: &Connection, subject: &str) -> Result<Option<(SecretRow, Grant)>, AdminError> {
        self.open_row(c, OAUTH_GRANT, subject).await
    }

    fn seal_grant(&self, c: &Connection, subject: &str, grant: &Grant) -> Result<(String, String), AdminError> {
        self.seal_row(c, OAUTH_GRANT, subject, grant)
    }

    /// Seals `grant` and stores it as `subject`'s at `c`, replacing the one before.
    async fn store_grant(&self, c: &Connection, subject: &str, grant: &Grant) -> Result<(), AdminError> {
        self.store_row(c, OAUTH_GRANT, subject, grant).await
    }

    /// Starts an authorization of `p` at connection `id_or_slug` (its shared grant needs the
    /// admin role): the link to open.
    pub async fn upstream_login(&self, p: &Principal, id_or_slug: &str) -> Result<LoginLink, AdminError> {
        let c = self.find_connection(p, id_or_slug).await?;
        if c.auth != "oauth" {
            return Err(AdminError::Invalid(format!("connection '{}' does not use OAuth (auth: {})", c.slug, c.auth)));
        }
        if c.oauth_shared && !p.role.can_manage() {
            return Err(AdminError::Forbidden("authorizing a connection's shared grant needs the owner or admin role"));
        }
        self.start_login(p, &c, None).await
    }

    /// Discovery from the upstream's own challenge (`challenge`, or the one it answers a request
    /// without credentials with), a client at its authorization server, and the request — kept
    /// sealed until the user comes back.
    async fn start_login(
        &self,
        p: &Principal,
        c: &Connection,
        challenge: Option<mesh_oauth::Challenge>,
    ) -> Result<LoginLink, AdminError> {
        let subject = subject_of(c, p);
        let url = c
            .url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .ok_or_else(|| AdminError::Invalid(format!("connection '{}' has no valid url", c.slug)))?;
        let net = self.oauth_net(c);
        if challenge.is_none() {
            // The link already under way for this user, while it works: asked again (another
            // session, a virtual MCP re-read after an edit, a renewal that needs the user), the
            // mesh must not supersede the link they may be following right now.
            let now = id::now_ms();
            if let Some(l) = self.store.pending_upstream_login(&c.id, &subject, now).await? {
                if l.user_id == p.user_id && l.expires_at - now > (LOGIN_TTL.as_millis() as i64) / 2 {
                    return Ok(self.link_of(c, l.id, l.expires_at - now));
                }
            }
        }
        let challenge = match challenge {
            Some(ch) => Some(ch),
            None => self.challenge(&net, &url).await,
        };
        let found =
            mesh_oauth::discover::discover(&net, &url, challenge.as_ref()).await.map_err(|e| oauth_failed(c, e))?;
        if !found.server.supports_s256() {
            return Err(oauth_failed(c, OAuthError::NoPkce));
        }
        let client = self.upstream_client(c, &net, &found).await?;
        // The grant before (if any) gives the scope asked last: a new authorization widens it.
        let mut grant = self.load_grant(c, &subject).await?.map(|(_, g)| g).unwrap_or_default();
        let pending = grant
            .authorize(found, client, challenge.as_ref(), &self.upstream_redirect_uri())
            .map_err(|e| oauth_failed(c, e))?;
        let login_id = id::random_base62(32);
        let payload = serde_json::to_vec(&Underway { pending, grant })
            .map_err(|e| AdminError::Invalid(format!("authorization: {e}")))?;
        let sealed = {
            let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
            ring.seal(&payload, &login_aad(&login_id))?
        };
        let state = serde_json::from_slice::<Underway>(&payload).map(|u| u.pending.state).unwrap_or_default();
        let now = id::now_ms();
        let row = UpstreamLogin {
            id: login_id.clone(),
            state_hash: state_hash(&state),
            org_id: c.org_id.clone(),
            connection_id: c.id.clone(),
            subject,
            user_id: p.user_id.clone(),
            key_id: sealed.key_id,
            ciphertext: sealed.ciphertext,
            expires_at: now + LOGIN_TTL.as_millis() as i64,
            done_at: None,
            granted_at: None,
        };
        self.store.insert_upstream_login(&row, now).await?;
        tracing::info!(org = %c.org_id, connection = %c.slug, user = %p.user_id, "upstream authorization started");
        Ok(self.link_of(c, login_id, LOGIN_TTL.as_millis() as i64))
    }

    fn link_of(&self, c: &Connection, login_id: String, valid_ms: i64) -> LoginLink {
        LoginLink {
            connection: c.slug.clone(),
            url: format!("{}/oauth/upstream/start?login={login_id}", self.oauth.settings.issuer),
            login_id,
            expires_in: u64::try_from(valid_ms / 1000).unwrap_or(0),
        }
    }

    /// The upstream's `WWW-Authenticate` challenge to a request without credentials, if it
    /// sends one (without it, discovery starts from the well-known URIs).
    async fn challenge(&self, net: &Net, url: &url::Url) -> Option<mesh_oauth::Challenge> {
        if let Some(allow) = &net.allow {
            allow(url).ok()?;
        }
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": mesh_protocol::version::LATEST, "capabilities": {},
            "clientInfo": {"name": "mcp-mesh", "version": env!("CARGO_PKG_VERSION")}}});
        let resp = net
            .client
            .post(url.clone())
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .send()
            .await
            .ok()?;
        challenge::of_response(resp.headers())
    }

    /// The browser opened the link of `login_id`, logged in to the mesh as `user_id`: where to
    /// send it (the authorization server). Refused unless it is the user the link is for — a
    /// link forwarded to someone else must not put their upstream account behind this user's
    /// grant.
    pub async fn upstream_login_redirect(&self, login_id: &str, user_id: &str) -> Result<String, AdminError> {
        let row = self.live_login(login_id).await?;
        if row.user_id != user_id {
            tracing::warn!(login = %login_id, "an upstream authorization link was opened by another user");
            return Err(AdminError::Forbidden("this authorization link was made for another user"));
        }
        Ok(self.open_login(&row)?.pending.url)
    }

    async fn live_login(&self, login_id: &str) -> Result<UpstreamLogin, AdminError> {
        let expired = || AdminError::NotFound("authorization link (it expired or was used; ask for a new one)".into());
        let row = self.store.upstream_login(login_id).await?.ok_or_else(expired)?;
        if row.done_at.is_some() || row.expires_at < id::now_ms() {
            return Err(expired());
        }
        Ok(row)
    }

    fn open_login(&self, row: &UpstreamLogin) -> Result<Underway, AdminError> {
        let plain = {
            let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
            ring.open(&row.key_id, &row.ciphertext, &login_aad(&row.id))?
        };
        serde_json::from_slice(&plain)
            .map_err(|_| AdminError::Invalid("the authorization under way does not read".into()))
    }

    /// The authorization server sent the browser back (logged in to the mesh as `user_id`) with
    /// `params`: the code is exchanged and the grant kept. The connection's slug.
    pub async fn upstream_callback(&self, params: &[(String, String)], user_id: &str) -> Result<String, AdminError> {
        let state = params.iter().find(|(k, _)| k == "state").map(|(_, v)| v.as_str()).unwrap_or_default();
        let unknown = || AdminError::NotFound("authorization (it expired or was used; ask for a new one)".into());
        let row = self.store.upstream_login_by_state(&state_hash(state)).await?.ok_or_else(unknown)?;
        let row = self.live_login(&row.id).await?;
        if row.user_id != user_id {
            return Err(AdminError::Forbidden("this authorization was started by another user"));
        }
        let c = self
            .store
            .get_connection(&row.org_id, &row.connection_id)
            .await?
            .ok_or_else(|| AdminError::NotFound("connection".into()))?;
        let Underway { pending, mut grant } = self.open_login(&row)?;
        // Single use: a replayed callback finds it done.
        if !self.store.finish_upstream_login(&row.id, id::now_ms()).await? {
            return Err(unknown());
        }
        if let Err(e) = grant.finish(&self.oauth_net(&c), &pending, params).await {
            // Nobody waits for an authorization that cannot complete.
            self.store.delete_upstream_login(&row.id).await?;
            return Err(oauth_failed(&c, e));
        }
        self.store_grant(&c, &row.subject, &grant).await?;
        self.oauth.live.renewed(&c.id, &row.subject, &grant);
        // Only now is it done for whoever waits (the CLI, an in-band step-up): the new token is
        // stored and already in this replica's open sessions.
        self.store.grant_upstream_login(&row.id, id::now_ms()).await?;
        tracing::info!(org = %c.org_id, connection = %c.slug, subject = %row.subject, "upstream authorization granted");
        Ok(c.slug)
    }

    /// Whether the authorization of `login_id` (started by `p`) is complete.
    pub async fn upstream_login_done(&self, p: &Principal, login_id: &str) -> Result<bool, AdminError> {
        match self.store.upstream_login(login_id).await? {
            Some(row) if row.user_id == p.user_id && row.org_id == p.org_id => Ok(row.granted_at.is_some()),
            _ => Err(AdminError::NotFound(format!("authorization '{login_id}'"))),
        }
    }

    /// Waits until `p` has completed the authorization `login_id` (a link they were sent to
    /// in-band), up to [`LOGIN_TTL`]: whether they did. Read from the database, so the callback
    /// may land on any replica.
    pub async fn upstream_authorized(&self, p: &Principal, login_id: &str) -> bool {
        let until = std::time::Instant::now() + LOGIN_TTL;
        while std::time::Instant::now() < until {
            match self.upstream_login_done(p, login_id).await {
                Ok(true) => break,
                Ok(false) => tokio::time::sleep(Duration::from_millis(250)).await,
                Err(_) => return false,
            }
        }
        // The callback may have landed on another replica: this one's open sessions take the
        // stored grant now, before the call is sent again.
        let Ok(Some(row)) = self.store.upstream_login(login_id).await else { return false };
        if row.granted_at.is_none() {
            return false;
        }
        let Ok(Some(c)) = self.store.get_connection(&row.org_id, &row.connection_id).await else { return false };
        match self.load_grant(&c, &row.subject).await {
            Ok(Some((_, g))) => {
                self.oauth.live.renewed(&c.id, &row.subject, &g);
                true
            }
            _ => false,
        }
    }

    /// The access token for `p` at `c` (an `oauth` connection), refreshed first if it is due
    /// (`Tokens::renew_at`) — once, however many sessions open at that moment — and when to renew
    /// it next (seconds since the epoch). Without a usable grant:
    /// [`AdminError::AuthorizationRequired`] with a new link.
    pub(crate) async fn upstream_token(
        &self,
        p: &Principal,
        c: &Connection,
    ) -> Result<(String, Option<u64>), AdminError> {
        let subject = subject_of(c, p);
        if let Some((_, g)) = self.load_grant(c, &subject).await? {
            if fresh(&g) {
                return Ok(token_of(&g));
            }
        }
        // In a task of its own: a caller that goes away (a client that disconnects while its
        // session opens) must not stop a refresh between spending the refresh token and storing
        // the new one, nor leave the lease held.
        let (me, p, c) = (self.clone(), p.clone(), c.clone());
        tokio::spawn(async move { me.refresh_due(&p, &c, subject).await })
            .await
            .map_err(|e| AdminError::Invalid(format!("upstream token refresh: {e}")))?
    }

    /// [`Admin::upstream_token`] once the grant is due: one refresh per grant, in this process
    /// (a lock) and across replicas (the row's lease); the others wait for its result.
    async fn refresh_due(
        &self,
        p: &Principal,
        c: &Connection,
        subject: String,
    ) -> Result<(String, Option<u64>), AdminError> {
        let lock = self.oauth.upstream.lock_for(&format!("{}/{subject}", c.id));
        let _turn = lock.lock().await;
        // Whoever held the lock (here, or the lease on another replica) may have refreshed it.
        let waited = std::time::Instant::now();
        let (row, mut g, until) = loop {
            let Some((row, g)) = self.load_grant(c, &subject).await? else {
                return self.authorization_required(p, c).await;
            };
            if fresh(&g) {
                return Ok(token_of(&g));
            }
            if g.tokens.is_none() {
                return self.authorization_required(p, c).await;
            }
            let now = id::now_ms();
            let until = now + REFRESH_LEASE.as_millis() as i64;
            if self.store.lease_upstream_grant(&row.id, &row.ciphertext, now, until).await? {
                break (row, g, until);
            }
            if waited.elapsed() > REFRESH_LEASE {
                if usable(&g) {
                    return Ok(token_of(&g));
                }
                return Err(oauth_failed(c, OAuthError::Response("another replica's refresh did not finish".into())));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let spent = g.tokens.as_ref().and_then(|t| t.refresh_token.clone());
        match g.refresh(&self.oauth_net(c)).await {
            Ok(()) => {
                if self.write_refreshed(c, &subject, row, &g, spent.as_deref()).await? {
                    self.oauth.live.renewed(&c.id, &subject, &g);
                    tracing::info!(connection = %c.slug, subject = %subject, "upstream token refreshed");
                    return Ok(token_of(&g));
                }
                // Another grant stands (a new authorization meanwhile): it is the one to use.
                match self.load_grant(c, &subject).await? {
                    Some((_, now)) if now.tokens.is_some() => Ok(token_of(&now)),
                    _ => self.authorization_required(p, c).await,
                }
            }
            Err(e) if e.needs_user() => {
                tracing::info!(connection = %c.slug, subject = %subject, error = %e, "upstream grant ended; authorization needed");
                self.write_refreshed(c, &subject, row, &g, spent.as_deref()).await?;
                self.authorization_required(p, c).await
            }
            Err(e) => {
                // The authorization server is down: a token that has not expired yet still works.
                let usable = usable(&g);
                tracing::warn!(connection = %c.slug, error = %e, usable, "upstream token refresh failed");
                self.store.release_upstream_grant(&row.id, until).await?;
                match usable {
                    true => Ok(token_of(&g)),
                    false => Err(oauth_failed(c, e)),
                }
            }
        }
    }

    /// Writes the grant `g` that replaced `row` after spending the refresh token `spent`, ending
    /// the lease: only over what was read, so that another writer's grant stands — but a row that
    /// was merely re-sealed or marked meanwhile (a vault rotation, a refused token: the same
    /// refresh token inside) is still replaced, or the rotated refresh token would be lost and
    /// the next refresh would replay the old one. Whether it was written.
    async fn write_refreshed(
        &self,
        c: &Connection,
        subject: &str,
        row: SecretRow,
        g: &Grant,
        spent: Option<&str>,
    ) -> Result<bool, AdminError> {
        let (key_id, ciphertext) = self.seal_grant(c, subject, g)?;
        let mut old = row.ciphertext;
        for _ in 0..3 {
            if self.store.swap_upstream_grant(&row.id, &old, &key_id, &ciphertext, true).await? {
                return Ok(true);
            }
            let Some((now, held)) = self.load_grant(c, subject).await? else { return Ok(false) };
            let same = held.tokens.as_ref().and_then(|t| t.refresh_token.as_deref()) == spent && now.id == row.id;
            if !same {
                tracing::info!(connection = %c.slug, "an upstream grant was written elsewhere meanwhile; that one stands");
                return Ok(false);
            }
            old = now.ciphertext;
        }
        tracing::warn!(connection = %c.slug, "an upstream grant kept changing under a refresh; not written");
        Ok(false)
    }

    /// The upstream refused the access token `p` was given for connection `connection_id` (it
    /// was revoked, or the server's clock disagrees): it is not handed out again. The next
    /// session refreshes the grant, or asks the user when the refresh is refused too — never a
    /// loop of the same refused token.
    pub async fn upstream_refused(&self, p: &Principal, connection_id: &str) -> Result<(), AdminError> {
        let Some(c) = self.store.get_connection(&p.org_id, connection_id).await? else { return Ok(()) };
        if c.auth != "oauth" {
            return Ok(());
        }
        let subject = subject_of(&c, p);
        let lock = self.oauth.upstream.lock_for(&format!("{}/{subject}", c.id));
        let _turn = lock.lock().await;
        let Some((row, mut g)) = self.load_grant(&c, &subject).await? else { return Ok(()) };
        let Some(t) = g.tokens.as_mut() else { return Ok(()) };
        if t.refresh_token.is_some() {
            // Expired as far as the mesh is concerned: the next use refreshes first.
            t.expires_at = Some(0);
        } else {
            g.tokens = None;
        }
        let (key_id, ciphertext) = self.seal_grant(&c, &subject, &g)?;
        // A refresh under way keeps its lease: it writes over this mark (`write_refreshed`).
        self.store.swap_upstream_grant(&row.id, &row.ciphertext, &key_id, &ciphertext, false).await?;
        self.oauth.live.refused(&c.id, &subject);
        tracing::info!(connection = %c.slug, subject = %subject, "the upstream refused its token; it will be renewed before the next use");
        Ok(())
    }

    async fn authorization_required<T>(&self, p: &Principal, c: &Connection) -> Result<T, AdminError> {
        if c.oauth_shared && !p.role.can_manage() {
            return Err(authorization_required(
                c,
                "(an admin of the organisation must authorize this connection: mcp-mesh connection login)".into(),
            ));
        }
        let link = self.start_login(p, c, None).await?;
        Err(authorization_required(c, link.url))
    }

    /// The upstream of connection `connection_id` refused a request of `p`'s for want of scope,
    /// with `challenge` (its `WWW-Authenticate`): an authorization for the wider scope — what
    /// was granted and what the server asks for now — as an [`AdminError::AuthorizationRequired`].
    /// Sessions already open take the new token as soon as it is granted.
    pub async fn upstream_step_up(&self, p: &Principal, connection_id: &str, challenge: &str) -> AdminError {
        let c = match self.store.get_connection(&p.org_id, connection_id).await {
            Ok(Some(c)) if c.auth == "oauth" => c,
            Ok(_) => return AdminError::NotFound("connection".into()),
            Err(e) => return e.into(),
        };
        let Some(ch) = challenge::bearer([challenge]).filter(|ch| ch.insufficient_scope()) else {
            return AdminError::UpstreamAuth(format!("connection '{}': the upstream refused the request", c.slug));
        };
        tracing::info!(connection = %c.slug, user = %p.user_id, scope = ?ch.scope, "the upstream asks for more scope");
        if c.oauth_shared && !p.role.can_manage() {
            return authorization_required(
                &c,
                "(an admin of the organisation must authorize this connection for more: mcp-mesh connection login)"
                    .into(),
            );
        }
        match self.start_login(p, &c, Some(ch)).await {
            Ok(link) => authorization_required(&c, link.url),
            Err(e) => e,
        }
    }

    /// The caller's upstream grants (and, for admins, the shared ones) in their organisation.
    pub async fn upstream_grants(&self, p: &Principal) -> Result<Vec<GrantView>, AdminError> {
        let mut out = Vec::new();
        let mut subjects = vec![format!("user:{}", p.user_id)];
        if p.role.can_manage() {
            subjects.push("shared".into());
        }
        let slugs: HashMap<String, Connection> =
            self.store.list_connections(&p.org_id).await?.into_iter().map(|c| (c.id.clone(), c)).collect();
        for subject in subjects {
            for row in self.store.upstream_grants_of(&p.org_id, &subject).await? {
                let Some(c) = slugs.get(&row.connection_id) else { continue };
                let Some((_, g)) = self.load_grant(c, &subject).await? else { continue };
                out.push(GrantView {
                    connection: c.slug.clone(),
                    subject: subject.clone(),
                    issuer: g.discovery.as_ref().map(|d| d.server.issuer.clone()),
                    client_id: g.client.as_ref().map(|(c, _, _)| c.client_id.clone()),
                    scope: g.tokens.as_ref().and_then(|t| t.scope.clone()),
                    expires_at: g.tokens.as_ref().and_then(|t| t.expires_at),
                    refreshable: g.tokens.as_ref().is_some_and(|t| t.refresh_token.is_some()),
                });
            }
        }
        Ok(out)
    }

    /// Forgets the caller's grant at a connection (its shared grant: admins). Whether there was
    /// one. The tokens stay valid at the authorization server until they expire; revoke them
    /// there too if they leaked.
    pub async fn revoke_upstream_grant(&self, p: &Principal, id_or_slug: &str) -> Result<bool, AdminError> {
        let c = self.find_connection(p, id_or_slug).await?;
        if c.oauth_shared && !p.role.can_manage() {
            return Err(AdminError::Forbidden("revoking a connection's shared grant needs the owner or admin role"));
        }
        let gone = self.store.delete_upstream_grant(&c.org_id, &c.id, &subject_of(&c, p)).await?;
        if gone {
            tracing::info!(org = %c.org_id, connection = %c.slug, user = %p.user_id, "upstream grant revoked");
            // Sessions opened with its token end; new ones ask for a new authorization.
            self.announce(crate::Change::ConnectionEnded { id: c.id.clone() });
        }
        Ok(gone)
    }
}
