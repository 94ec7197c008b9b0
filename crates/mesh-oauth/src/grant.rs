//! One grant — a user's (or a connection's) authorization at one upstream MCP server — and the
//! steps that keep it: begin an authorization after the server's challenge, finish it with the
//! authorization response, refresh it. Storage and the user are the caller's: a [`Grant`] is
//! plain data to seal and keep; nothing here logs a secret.

use crate::challenge::Challenge;
use crate::discover::{self, Discovery};
use crate::error::OAuthError;
use crate::flow::{self, Client, Pending, Tokens};
use crate::net::Net;
use crate::register::{self, Options, Origin};
use crate::scope;
use serde::{Deserialize, Serialize};
use url::Url;

/// What the mesh holds for one grant.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Grant {
    /// The discovered metadata (re-read on every new authorization: servers move).
    pub discovery: Option<Discovery>,
    /// The client at `discovery`'s authorization server, with how it came to be; bound to that
    /// issuer and dropped when the server names another (SEP-2352).
    pub client: Option<(Client, Origin, String)>,
    /// The tokens, once authorized.
    pub tokens: Option<Tokens>,
    /// The scope last asked for.
    pub requested: Option<String>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("issuer", &self.discovery.as_ref().map(|d| &d.server.issuer))
            .field("client", &self.client.as_ref().map(|(c, o, _)| (&c.client_id, o)))
            .field("tokens", &self.tokens)
            .field("requested", &self.requested)
            .finish()
    }
}

impl Grant {
    /// The access token to send, if any.
    pub fn access_token(&self) -> Option<&str> {
        self.tokens.as_ref().map(|t| t.access_token.as_str())
    }

    /// Starts a new authorization after `challenge` (a 401, or a 403 `insufficient_scope`) from
    /// the MCP server at `server`: discovery again (the server may name a new authorization
    /// server), a client there (this grant's own if it has one for that issuer, else one made
    /// with `opts`), then [`Grant::authorize`].
    pub async fn begin(
        &mut self,
        net: &Net,
        server: &Url,
        challenge: Option<&Challenge>,
        opts: &Options,
    ) -> Result<Pending, OAuthError> {
        let found = discover::discover(net, server, challenge).await?;
        if !found.server.supports_s256() {
            return Err(OAuthError::NoPkce);
        }
        let client = match &self.client {
            Some((client, origin, at)) if *at == found.server.issuer => (client.clone(), *origin),
            _ => register::client(net, &found.server, opts).await?,
        };
        self.authorize(found, client, challenge, &opts.redirect_uri)
    }

    /// The authorization request at `found`'s server as `client` (which the caller chose: kept
    /// per authorization server, not per grant): the old client and tokens are dropped if the
    /// issuer changed, and the scope is, on a step-up, what was asked before and what is asked
    /// now.
    pub fn authorize(
        &mut self,
        found: Discovery,
        client: (Client, Origin),
        challenge: Option<&Challenge>,
        redirect_uri: &str,
    ) -> Result<Pending, OAuthError> {
        if !found.server.supports_s256() {
            return Err(OAuthError::NoPkce);
        }
        let issuer = found.server.issuer.clone();
        if self.client.as_ref().is_some_and(|(_, _, at)| *at != issuer) {
            // Another authorization server: nothing of the old one may reach it.
            self.tokens = None;
            self.requested = None;
        }
        let mut wanted = scope::choose(challenge, &found.resource, &found.server);
        if let (Some(before), Some(now)) = (&self.requested, &wanted) {
            // SEP-2350: a re-authorization asks for the union, never loses what was granted.
            wanted = Some(scope::widened(Some(before), now));
        }
        let pending =
            flow::authorize(&found.server, &client.0, redirect_uri, found.resource_indicator(), wanted.as_deref())?;
        self.client = Some((client.0, client.1, issuer));
        self.requested = wanted;
        self.discovery = Some(found);
        Ok(pending)
    }

    /// Finishes the authorization `pending` with the response's query `params`: the code is
    /// exchanged only once the response is shown to be this request's and this issuer's.
    pub async fn finish(
        &mut self,
        net: &Net,
        pending: &Pending,
        params: &[(String, String)],
    ) -> Result<(), OAuthError> {
        let (Some(found), Some((client, _, _))) = (&self.discovery, &self.client) else {
            return Err(OAuthError::Response("no authorization is under way".into()));
        };
        if found.server.issuer != pending.issuer {
            return Err(OAuthError::Response("the authorization server changed during the authorization".into()));
        }
        let code = pending.code(params)?;
        let tokens = flow::exchange(net, &found.server, client, pending, &code).await?;
        self.tokens = Some(tokens);
        Ok(())
    }

    /// Refreshes the access token with the refresh token, for the same resource and scope. An
    /// error that [`OAuthError::needs_user`] means the grant is gone: the tokens are dropped.
    pub async fn refresh(&mut self, net: &Net) -> Result<(), OAuthError> {
        let (Some(found), Some((client, _, _)), Some(tokens)) = (&self.discovery, &self.client, &self.tokens) else {
            return Err(OAuthError::Response("nothing to refresh: not authorized".into()));
        };
        let Some(refresh) = tokens.refresh_token.clone() else {
            return Err(OAuthError::Token {
                endpoint: found.server.token_endpoint.clone(),
                error: "invalid_grant".into(),
                description: Some("no refresh token was issued".into()),
            });
        };
        let scope = tokens.scope.clone().or_else(|| self.requested.clone());
        match flow::refresh(net, &found.server, client, &refresh, found.resource_indicator(), scope.as_deref()).await {
            Ok(t) => {
                self.tokens = Some(t);
                Ok(())
            }
            Err(e) => {
                if e.needs_user() {
                    self.tokens = None;
                }
                Err(e)
            }
        }
    }
}
