//! The process-wide reqwest clients for upstreams, one per [`Reach`].
//!
//! Two clients rather than a check per request: reqwest pools connections per client, so a
//! connection opened for an operator's link to an internal host can never be handed to a
//! `Public` link of the same `host:port`. The `Public` client resolves names through
//! [`reach::Resolver`] (internal addresses dropped) and checks every redirect hop; addresses
//! written in a URL are checked when a link is made (`upstream::connect`), since reqwest does not
//! ask a resolver about those.

use super::reach;
use crate::{Reach, RelayError};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The HTTP clients links are made with; cheap to clone (each client is a handle to its pool).
#[derive(Clone)]
pub struct UpstreamClients {
    any: reqwest::Client,
    public: reqwest::Client,
    /// For OAuth toward upstreams' authorization servers: the same resolvers, no redirects
    /// followed (a token endpoint that redirects is not followed with a code), an overall
    /// timeout.
    oauth_any: reqwest::Client,
    oauth_public: reqwest::Client,
    /// What each upstream URL answered to `server/discover` (`None`: not the stateless
    /// revision), and when.
    eras: Arc<std::sync::Mutex<std::collections::HashMap<String, Era>>>,
}

/// An upstream's `server/discover` when it speaks the stateless revision, and when it was asked.
type Era = (Option<Arc<serde_json::Value>>, std::time::Instant);

/// How long an upstream's revision is remembered: long enough that opening sessions never
/// waits on a probe, short enough that an upgraded upstream is noticed.
const ERA_FOR: Duration = Duration::from_secs(300);

impl UpstreamClients {
    /// Both clients, trusting the built-in web roots plus `extra_roots` (`MESH_UPSTREAM_CA_FILE`).
    pub fn new(extra_roots: &[reqwest::Certificate]) -> Result<UpstreamClients, RelayError> {
        let build = |reach: Reach, oauth: bool| {
            let mut b = reqwest::Client::builder()
                // Pooled connections, bounded connect time, no overall timeout (SSE streams are
                // long-lived; request timeouts are the session's job).
                .connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(64)
                .tcp_nodelay(true)
                .user_agent(crate::USER_AGENT)
                .dns_resolver(Arc::new(reach::Resolver(reach)));
            if oauth {
                b = b.redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(15));
            } else if reach == Reach::Public {
                b = b.redirect(reach::redirect_policy());
            }
            for root in extra_roots {
                b = b.add_root_certificate(root.clone());
            }
            b.build().map_err(|e| RelayError::Internal(format!("cannot build the upstream HTTP client: {e}")))
        };
        Ok(UpstreamClients {
            any: build(Reach::Any, false)?,
            public: build(Reach::Public, false)?,
            oauth_any: build(Reach::Any, true)?,
            oauth_public: build(Reach::Public, true)?,
            eras: Default::default(),
        })
    }

    /// The client for OAuth requests on behalf of a connection with `reach`.
    pub fn oauth_client(&self, reach: Reach) -> reqwest::Client {
        match reach {
            Reach::Any => self.oauth_any.clone(),
            Reach::Public => self.oauth_public.clone(),
        }
    }

    /// The `server/discover` result of `url` if it speaks the stateless revision, from memory or
    /// from `probe`. Remembered per reach, URL and credentials (one organisation's answer, or an
    /// operator's internal upstream's, is never another's); a yes for five minutes, a no for
    /// thirty seconds (it may have been a passing failure).
    pub async fn era<F>(
        &self,
        reach: Reach,
        url: &url::Url,
        credentials: &[(String, mesh_core::Secret<String>)],
        probe: impl FnOnce() -> F,
    ) -> Option<Arc<serde_json::Value>>
    where
        F: std::future::Future<Output = Option<serde_json::Value>>,
    {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(format!("{reach:?}\n{url}\n").as_bytes());
        for (k, v) in credentials {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.expose().as_bytes());
            h.update([0]);
        }
        let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if let Some(era) = self.remembered(&key, Duration::from_secs(30)) {
            return era;
        }
        let era = probe().await.map(Arc::new);
        self.remember(key, era.clone());
        era
    }

    /// What the upstream known by `key` answered, while it is remembered (a yes for five minutes,
    /// a no for `no_for`): `Some(None)` for "not the stateless revision", `None` when it must be
    /// asked.
    pub(crate) fn remembered(&self, key: &str, no_for: Duration) -> Option<Option<Arc<serde_json::Value>>> {
        let known = self.eras.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned();
        let (era, at) = known?;
        let keep = if era.is_some() { ERA_FOR } else { no_for };
        (at.elapsed() < keep).then_some(era)
    }

    /// Remembers what the upstream known by `key` answered.
    pub(crate) fn remember(&self, key: String, era: Option<Arc<serde_json::Value>>) {
        let mut eras = self.eras.lock().unwrap_or_else(|p| p.into_inner());
        if eras.len() > 10_000 {
            eras.clear();
        }
        eras.insert(key, (era, std::time::Instant::now()));
    }

    /// The client for links of `reach`.
    pub fn for_reach(&self, reach: Reach) -> &reqwest::Client {
        match reach {
            Reach::Any => &self.any,
            Reach::Public => &self.public,
        }
    }
}

impl Default for UpstreamClients {
    /// Both clients with the built-in roots only.
    fn default() -> UpstreamClients {
        UpstreamClients::new(&[]).expect("a client with default settings builds")
    }
}

/// The certificates of a PEM file of extra trusted roots; an error naming the file when it cannot
/// be read or holds no certificate.
pub fn load_roots(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} is not a PEM certificate bundle: {e}", path.display()))?;
    if roots.is_empty() {
        return Err(format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display()));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roots_file_must_be_readable_and_hold_a_certificate() {
        let base = std::env::temp_dir().join(format!("mesh-roots-test-{}", std::process::id()));
        let missing = load_roots(&base.with_extension("missing")).unwrap_err();
        assert!(missing.starts_with("cannot read "), "{missing}");
        let empty = base.with_extension("pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let none = load_roots(&empty).unwrap_err();
        let _ = std::fs::remove_file(&empty);
        assert!(none.contains("no PEM certificate") || none.contains("not a PEM"), "{none}");
    }
}
