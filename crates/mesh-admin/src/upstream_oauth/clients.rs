//! Who the mesh is at a connection's authorization server, in the MCP spec's order: the client
//! an admin registered there by hand (id, and a secret sealed in the vault), the mesh's client
//! ID metadata document (when its public URL is https and the server accepts documents), or a
//! client the mesh registered dynamically — once per authorization server, kept for every user
//! of the connection, not once per user.

use super::{oauth_failed, sealed_aad};
use crate::connections::ConnectionInput;
use crate::{Admin, AdminError};
use mesh_core::{id, Principal};
use mesh_oauth::register::{self, Origin};
use mesh_oauth::{AuthMethod, Client, Discovery, Net};
use mesh_store::{Connection, SecretRow, OAUTH_CLIENT};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The row name of the client given by hand.
const PREREGISTERED: &str = "preregistered";

/// Where the mesh publishes its client ID metadata document, under its public URL.
pub const METADATA_DOCUMENT_PATH: &str = "/oauth/upstream/client.json";

/// Largest client id or secret accepted (real ones are tens of bytes).
const MAX_CREDENTIAL: usize = 2048;

/// A client registered by hand.
#[derive(Serialize, Deserialize)]
struct Preregistered {
    client_id: String,
    client_secret: Option<String>,
    /// The authorization server it is for: the one discovery found when it was first used. Its
    /// secret goes to no other (an upstream that names another server later is refused).
    #[serde(default)]
    issuer: Option<String>,
}

/// A client the mesh registered, and for which callback (a new public URL needs a new one).
#[derive(Serialize, Deserialize)]
struct Registered {
    client: Client,
    redirect_uri: String,
}

fn registered_name(issuer: &str) -> String {
    format!("registered:{issuer}")
}

/// Checks the hand-registered client fields of `input` for connection `c` (after `apply`).
pub(crate) fn check_input(c: &Connection, input: &ConnectionInput) -> Result<(), AdminError> {
    let (id, secret) = (&input.oauth_client_id, &input.oauth_client_secret);
    if secret.is_some() && id.is_none() {
        return Err(AdminError::Invalid("oauthClientSecret: give it with its oauthClientId".into()));
    }
    let Some(id) = id else { return Ok(()) };
    if !id.is_empty() && c.auth != "oauth" {
        return Err(AdminError::Invalid("oauthClientId: only for a connection with auth oauth".into()));
    }
    for (field, value) in [("oauthClientId", Some(id)), ("oauthClientSecret", secret.as_ref())] {
        let Some(v) = value else { continue };
        if v.len() > MAX_CREDENTIAL || v.chars().any(char::is_control) {
            return Err(AdminError::Invalid(format!("{field}: at most {MAX_CREDENTIAL} bytes, no control characters")));
        }
    }
    if id.is_empty() && secret.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(AdminError::Invalid("oauthClientSecret: an empty oauthClientId removes the client".into()));
    }
    Ok(())
}

impl Admin {
    /// The URL of the mesh's client ID metadata document, when it can have one: the draft wants
    /// an https URL, and the authorization server must be able to fetch it.
    pub fn upstream_metadata_document_url(&self) -> Option<String> {
        let issuer = &self.oauth.settings.issuer;
        issuer.starts_with("https://").then(|| format!("{issuer}{METADATA_DOCUMENT_PATH}"))
    }

    pub(super) fn oauth_options(&self) -> register::Options {
        register::Options {
            preregistered: None,
            metadata_document: self.upstream_metadata_document_url(),
            redirect_uri: self.upstream_redirect_uri(),
            client_name: "MCP Mesh".into(),
        }
    }

    /// The mesh's client ID metadata document, if it publishes one.
    pub fn upstream_metadata_document(&self) -> Option<serde_json::Value> {
        register::metadata_document(&self.oauth_options(), &self.oauth.settings.issuer)
    }

    /// Opens the sealed row `kind`/`name` of connection `c`, if there is one.
    pub(super) async fn open_row<T: DeserializeOwned>(
        &self,
        c: &Connection,
        kind: &str,
        name: &str,
    ) -> Result<Option<(SecretRow, T)>, AdminError> {
        let row = match kind {
            OAUTH_CLIENT => self.store.upstream_client(&c.org_id, &c.id, name).await?,
            _ => self.store.upstream_grant(&c.org_id, &c.id, name).await?,
        };
        let Some(row) = row else { return Ok(None) };
        let plain = {
            let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
            ring.open(&row.key_id, &row.ciphertext, &sealed_aad(&c.id, kind, name))?
        };
        let value = serde_json::from_slice(&plain)
            .map_err(|_| AdminError::Invalid(format!("connection '{}': a stored {kind} does not read", c.slug)))?;
        Ok(Some((row, value)))
    }

    /// Seals `value` as row `kind`/`name` of `c`: its key id and ciphertext.
    pub(super) fn seal_row<T: Serialize>(
        &self,
        c: &Connection,
        kind: &str,
        name: &str,
        value: &T,
    ) -> Result<(String, String), AdminError> {
        let plain = serde_json::to_vec(value).map_err(|e| AdminError::Invalid(format!("{kind}: {e}")))?;
        let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
        let sealed = ring.seal(&plain, &sealed_aad(&c.id, kind, name))?;
        Ok((sealed.key_id, sealed.ciphertext))
    }

    /// Seals and stores `value` as row `kind`/`name` of `c`, replacing the one before.
    pub(super) async fn store_row<T: Serialize>(
        &self,
        c: &Connection,
        kind: &str,
        name: &str,
        value: &T,
    ) -> Result<(), AdminError> {
        let (key_id, ciphertext) = self.seal_row(c, kind, name, value)?;
        let row = SecretRow {
            id: id::new_id("sec"),
            org_id: c.org_id.clone(),
            connection_id: c.id.clone(),
            kind: kind.into(),
            name: name.into(),
            key_id,
            ciphertext,
        };
        Ok(self.store.put_upstream_oauth(&row).await?)
    }

    /// The client to authorize `c`'s users as at `found`'s authorization server.
    pub(super) async fn upstream_client(
        &self,
        c: &Connection,
        net: &Net,
        found: &Discovery,
    ) -> Result<(Client, Origin), AdminError> {
        let server = &found.server;
        if let Some((_, mut pre)) = self.open_row::<Preregistered>(c, OAUTH_CLIENT, PREREGISTERED).await? {
            match &pre.issuer {
                Some(at) if *at != server.issuer => {
                    tracing::warn!(connection = %c.slug, registered_at = %at, now = %server.issuer,
                        "the upstream names another authorization server than its client was registered at");
                    return Err(AdminError::UpstreamAuth(format!(
                        "connection '{}': its OAuth client was registered at {at}, but the server now names {}; \
                         an admin must set oauthClientId again (a client for the new server)",
                        c.slug, server.issuer
                    )));
                }
                Some(_) => {}
                None => {
                    pre.issuer = Some(server.issuer.clone());
                    self.store_row(c, OAUTH_CLIENT, PREREGISTERED, &pre).await?;
                }
            }
            let auth_method = AuthMethod::for_server(server, pre.client_secret.is_some());
            let client = Client { client_id: pre.client_id, client_secret: pre.client_secret, auth_method };
            return Ok((client, Origin::Preregistered));
        }
        let opts = self.oauth_options();
        if server.client_id_metadata_document_supported && opts.metadata_document.is_some() {
            return register::client(net, server, &opts).await.map_err(|e| oauth_failed(c, e));
        }
        let name = registered_name(&server.issuer);
        // One registration however many users start at once.
        let lock = self.oauth.upstream.lock_for(&format!("{}/{name}", c.id));
        let _turn = lock.lock().await;
        if let Some((_, r)) = self.open_row::<Registered>(c, OAUTH_CLIENT, &name).await? {
            if r.redirect_uri == opts.redirect_uri {
                return Ok((r.client, Origin::Registered));
            }
        }
        let (client, origin) = register::client(net, server, &opts).await.map_err(|e| oauth_failed(c, e))?;
        if origin == Origin::Registered {
            let kept = Registered { client: client.clone(), redirect_uri: opts.redirect_uri.clone() };
            self.store_row(c, OAUTH_CLIENT, &name, &kept).await?;
            tracing::info!(org = %c.org_id, connection = %c.slug, issuer = %server.issuer, client_id = %client.client_id,
                "registered at an upstream authorization server");
        }
        Ok((client, origin))
    }

    /// Applies the hand-registered client of `input` to `c` (already stored): set, replaced or
    /// (with an empty id) removed. Grants made with another client end with the change.
    pub(crate) async fn apply_preregistered(
        &self,
        p: &Principal,
        c: &Connection,
        input: &ConnectionInput,
    ) -> Result<bool, AdminError> {
        let Some(client_id) = &input.oauth_client_id else { return Ok(false) };
        let before = self.open_row::<Preregistered>(c, OAUTH_CLIENT, PREREGISTERED).await?.map(|(_, v)| v);
        let secret = input.oauth_client_secret.clone().filter(|s| !s.is_empty());
        let same = before.as_ref().is_some_and(|b| b.client_id == *client_id && b.client_secret == secret);
        if same || (before.is_none() && client_id.is_empty()) {
            return Ok(false);
        }
        if client_id.is_empty() {
            self.store.delete_upstream_client(&c.org_id, &c.id, PREREGISTERED).await?;
        } else {
            let pre = Preregistered { client_id: client_id.clone(), client_secret: secret, issuer: None };
            self.store_row(c, OAUTH_CLIENT, PREREGISTERED, &pre).await?;
        }
        self.store.delete_upstream_grants_at(&c.org_id, &c.id).await?;
        // An authorization started with the other client must not store a grant made with it.
        self.store.delete_upstream_logins_at(&c.org_id, &c.id).await?;
        tracing::info!(org = %p.org_id, connection = %c.slug, "the connection's OAuth client changed; its grants ended");
        Ok(true)
    }

    /// The hand-registered client id of `c`, to show (never its secret).
    pub(crate) async fn preregistered_client_id(&self, c: &Connection) -> Result<Option<String>, AdminError> {
        if c.auth != "oauth" {
            return Ok(None);
        }
        Ok(self.open_row::<Preregistered>(c, OAUTH_CLIENT, PREREGISTERED).await?.map(|(_, v)| v.client_id))
    }
}
