//! Governance of MCP traffic, as the data plane sees it: what a principal may see and use, and
//! whether a call fits its rate limits. Both are answered from memory on every call; the
//! control plane keeps the answers current and tells the relay when they change.

use mesh_core::policy::Access;
use mesh_core::Principal;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// A call refused by a rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// Which limit, for the client and the audit trail ("key limit of 60/min").
    pub limit: String,
    /// When a call would next be accepted.
    pub retry_after: Duration,
}

/// Decides access and rate limits; implemented by the control plane.
pub trait Governor: Send + Sync + 'static {
    /// What `principal` may see and use.
    fn access(&self, principal: &Principal) -> Arc<Access>;

    /// Takes one call of `principal` to `tool` (or a prompt or resource when `None`) on
    /// `connection` from every limit that applies, or refuses it without taking anything.
    fn admit(&self, principal: &Principal, connection: &str, tool: Option<&str>) -> Result<(), Limited>;
}

/// No policy and no limits (the relay on its own, tests).
pub struct Ungoverned;

static UNRESTRICTED: LazyLock<Arc<Access>> = LazyLock::new(|| Arc::new(Access::unrestricted()));

/// The shared "no restriction" access (no allocation per use).
pub fn unrestricted() -> Arc<Access> {
    UNRESTRICTED.clone()
}

impl Governor for Ungoverned {
    fn access(&self, _: &Principal) -> Arc<Access> {
        unrestricted()
    }

    fn admit(&self, _: &Principal, _: &str, _: Option<&str>) -> Result<(), Limited> {
        Ok(())
    }
}
