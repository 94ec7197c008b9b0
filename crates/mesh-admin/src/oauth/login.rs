//! Who is at the browser: password login with brute-force backoff, and the login sessions of
//! the mesh's own pages (a cookie whose hash is stored, like a key's).

use super::{secret, Event};
use crate::Admin;
use mesh_core::audit::Outcome;
use mesh_store::UserSession;
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a login session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Failures before backoff starts, per account and per address.
const FREE_FAILURES_ACCOUNT: u32 = 5;
const FREE_FAILURES_ADDRESS: u32 = 20;
/// The longest wait backoff imposes.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Entries kept at most (per account and address together).
const MAX_TRACKED: usize = 100_000;

/// Single sign-on through an OpenID Connect provider (settings `MESH_OIDC_*`).
#[derive(Debug, Clone)]
pub struct SsoSettings {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The mesh's client id at the provider.
    pub client_id: String,
    /// The mesh's client secret at the provider (kept sealed in the vault, opened at start).
    pub client_secret: mesh_core::Secret<String>,
    /// The organisation (slug) users without an account are added to; none: they are refused.
    pub org: Option<String>,
    /// E-mail domains that may sign in this way (lower case); empty: any the provider verifies.
    pub domains: Vec<String>,
    /// The role they get there.
    pub role: String,
    /// The button's label on the login page.
    pub label: String,
}

/// SSO logins under way: `state` → what the callback needs.
#[derive(Default)]
pub struct SsoPending(pub(crate) Mutex<HashMap<String, (super::sso::Pending, Instant)>>);

/// Failures per account and per address, with when backoff ends.
#[derive(Default)]
pub struct Throttle(Mutex<HashMap<String, (u32, Instant)>>);

impl Throttle {
    /// How long `key` must still wait, if it is backing off.
    fn wait(&self, key: &str, free: u32, now: Instant) -> Option<Duration> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (failures, last) = *map.get(key)?;
        let until = last + backoff(failures, free);
        (until > now).then(|| until - now)
    }

    fn fail(&self, key: String, now: Instant) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
        }
        let e = map.entry(key).or_insert((0, now));
        if now.duration_since(e.1) >= FORGET_AFTER {
            e.0 = 0;
        }
        *e = (e.0.saturating_add(1), now);
    }

    fn succeed(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Restarts `key`'s wait from `now`: a failure counted before a slow check is dated when the
    /// check ended, so the backoff is not spent while it ran.
    fn restamp(&self, key: &str, now: Instant) {
        if let Some(e) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get_mut(key) {
            e.1 = now;
        }
    }

    /// Takes back one failure counted in advance (a success from an address).
    fn forgive(&self, key: &str) {
        if let Some(e) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get_mut(key) {
            e.0 = e.0.saturating_sub(1);
        }
    }
}

/// The wait after `failures` failures when `free` are allowed: none up to `free`, then five
/// seconds doubling per failure, at most [`MAX_BACKOFF`].
fn backoff(failures: u32, free: u32) -> Duration {
    if failures < free {
        return Duration::ZERO;
    }
    let exp = (failures - free).min(20);
    Duration::from_secs(5u64 << exp).min(MAX_BACKOFF)
}

/// Why a login did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong e-mail or password (never saying which).
    Invalid,
    /// Too many failures: try again after this long.
    Throttled(Duration),
}

/// A new login session: the cookie value (shown once, to the browser) and the stored row.
pub struct NewSession {
    /// The cookie's value.
    pub cookie: String,
    /// The row.
    pub session: UserSession,
}

impl Admin {
    /// Checks an e-mail and password (argon2id, off the async threads) under per-account and
    /// per-address backoff, and starts a login session.
    pub async fn password_login(&self, email: &str, password: &str, ip: IpAddr) -> Result<NewSession, LoginError> {
        let email = email.trim().to_lowercase();
        let now = Instant::now();
        let (account, address) = (format!("a:{email}"), format!("i:{}", super::network_of(ip)));
        let throttle = &self.oauth.throttle;
        let wait =
            [throttle.wait(&account, FREE_FAILURES_ACCOUNT, now), throttle.wait(&address, FREE_FAILURES_ADDRESS, now)]
                .into_iter()
                .flatten()
                .max();
        if let Some(wait) = wait {
            tracing::warn!(%ip, "login refused: backing off after repeated failures");
            return Err(LoginError::Throttled(wait));
        }
        // At most a few argon2 runs at once (each takes 19 MiB and a core for tens of ms): a
        // flood of logins is refused, not queued into memory.
        let Ok(_permit) = self.oauth.hashing.try_acquire() else {
            tracing::warn!(%ip, "login refused: too many password checks under way");
            return Err(LoginError::Throttled(Duration::from_secs(1)));
        };
        // Counted before the check, so that parallel attempts cannot all pass the backoff
        // while the first ones are still hashing; a success takes it back.
        throttle.fail(account.clone(), now);
        throttle.fail(address.clone(), now);
        let user = self.store.get_user_by_email(&email).await.ok().flatten();
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let password = password.to_string();
        // An unknown account costs the same hashing as a known one: the time taken does not
        // tell which e-mails have accounts.
        let ok = tokio::task::spawn_blocking(move || match stored {
            Some(h) => crate::orgs::verify_password(&password, &h),
            None => {
                let _ = crate::orgs::hash_password(&password);
                false
            }
        })
        .await
        .unwrap_or(false);
        let user = match user {
            Some(u) if ok => u,
            known => {
                let after = Instant::now();
                throttle.restamp(&account, after);
                throttle.restamp(&address, after);
                tracing::info!(%ip, "login failed");
                // A known account's failures go to its organisations' trails; what was typed is
                // recorded only if it is an e-mail address (people type passwords into the
                // wrong field).
                let typed =
                    if email.contains('@') && email.len() <= 254 { email.as_str() } else { "(not an e-mail address)" };
                let who = known.as_ref().map(|u| u.id.as_str());
                self.audit_login(who, typed, Outcome::Denied, Some("wrong e-mail or password")).await;
                return Err(LoginError::Invalid);
            }
        };
        throttle.succeed(&account);
        throttle.forgive(&address);
        let session = self.start_session(&user.id, "password").await.map_err(|_| LoginError::Invalid)?;
        self.audit_login(Some(&user.id), &email, Outcome::Ok, None).await;
        tracing::info!(user = %user.id, "logged in with a password");
        Ok(session)
    }

    /// Starts a login session for `user_id`.
    pub(crate) async fn start_session(&self, user_id: &str, method: &str) -> Result<NewSession, crate::AdminError> {
        let cookie = secret("mls_");
        let now = mesh_core::id::now_ms();
        let session = UserSession {
            hash: crate::keys::hash(&cookie),
            user_id: user_id.to_string(),
            csrf: mesh_core::id::random_base62(32),
            method: method.to_string(),
            created_at: now,
            expires_at: now + SESSION_TTL.as_millis() as i64,
        };
        self.store.create_user_session(&session).await?;
        Ok(NewSession { cookie, session })
    }

    /// The live login session a cookie value belongs to.
    pub async fn login_session(&self, cookie: &str) -> Option<UserSession> {
        self.store.get_user_session(&crate::keys::hash(cookie), mesh_core::id::now_ms()).await.ok().flatten()
    }

    /// Ends a login session.
    pub async fn logout(&self, cookie: &str) {
        let _ = self.store.delete_user_session(&crate::keys::hash(cookie)).await;
    }

    /// Ends the login session whose cookie hashes to `hash`.
    pub async fn logout_session(&self, hash: &str) {
        let _ = self.store.delete_user_session(hash).await;
    }

    /// Records a login in the audit trail of each organisation of the user (an unknown account:
    /// the operator organisation's, where someone is trying e-mails).
    pub(crate) async fn audit_login(&self, user_id: Option<&str>, email: &str, outcome: Outcome, error: Option<&str>) {
        let orgs: Vec<String> = match user_id {
            Some(u) => self.store.orgs_of_user(u).await.unwrap_or_default().into_iter().map(|(o, _)| o.id).collect(),
            None => self.store.operator_org().await.ok().flatten().into_iter().collect(),
        };
        for org in orgs {
            self.audit_oauth(Event {
                org_id: &org,
                user_id: user_id.unwrap_or("unknown"),
                family: "",
                method: "oauth/login",
                client_id: None,
                outcome,
                error: error.map(str::to_string),
                details: json!({"email": email}),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_after_the_free_failures_and_doubles_to_a_ceiling() {
        assert_eq!(backoff(4, 5), Duration::ZERO);
        assert_eq!(backoff(5, 5), Duration::from_secs(5));
        assert_eq!(backoff(6, 5), Duration::from_secs(10));
        assert_eq!(backoff(9, 5), Duration::from_secs(80));
        assert_eq!(backoff(40, 5), MAX_BACKOFF);
    }

    #[test]
    fn throttle_counts_per_key_and_a_success_clears_the_account() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..5 {
            t.fail("a:x".into(), now);
        }
        assert!(t.wait("a:x", 5, now).is_some_and(|w| w <= Duration::from_secs(5)));
        assert_eq!(t.wait("a:y", 5, now), None);
        assert_eq!(t.wait("a:x", 5, now + Duration::from_secs(6)), None, "the wait ends");
        t.succeed("a:x");
        assert_eq!(t.wait("a:x", 5, now), None);
    }
}
