//! The HTTP client the OAuth steps use, with the caller's rule for which URLs it may fetch.
//!
//! Discovery hands the mesh URLs chosen by whoever runs the upstream server (its metadata names
//! the authorization server, whose metadata names the endpoints). For a connection made by an
//! organisation's admin those must not point into the host's network: the caller's reqwest
//! client resolves names only to allowed addresses, and `allow` refuses URLs the resolver never
//! sees (an address written in the URL) or a scheme the caller does not accept.

use crate::error::OAuthError;
use std::sync::Arc;

/// Decides whether a URL may be fetched; `Err` says why not.
pub type Allow = Arc<dyn Fn(&url::Url) -> Result<(), String> + Send + Sync>;

/// A reqwest client (built not to follow redirects) and the URL rule.
#[derive(Clone)]
pub struct Net {
    /// The client.
    pub client: reqwest::Client,
    /// The rule; `None` allows every URL.
    pub allow: Option<Allow>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net").field("guarded", &self.allow.is_some()).finish()
    }
}

impl Net {
    /// A client without a URL rule.
    pub fn new(client: reqwest::Client) -> Net {
        Net { client, allow: None }
    }

    /// `url` parsed, if the rule allows it.
    pub(crate) fn check(&self, url: &str) -> Result<url::Url, OAuthError> {
        let parsed = url::Url::parse(url).map_err(|_| OAuthError::Metadata(format!("{url:?} is not a URL")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OAuthError::Metadata(format!("{url:?} is not an http(s) URL")));
        }
        if let Some(allow) = &self.allow {
            allow(&parsed).map_err(|why| OAuthError::Metadata(format!("{url}: {why}")))?;
        }
        Ok(parsed)
    }
}
