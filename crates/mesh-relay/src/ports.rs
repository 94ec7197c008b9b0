//! The ports of the data plane: what the relay asks of the rest of the mesh. The control plane
//! plugs into them (`mesh-admin`: the key cache is the [`Authenticator`], the connection and
//! gateway services the [`RouteResolver`], the policy snapshot the [`Governor`], the management
//! server the [`LocalService`]; `mesh-audit` is the [`AuditSink`]), and tests plug in their own.
//!
//! They sit in neither `ingress/` nor `session/`, which both use them, so that neither imports
//! the other for them: the core of the relay does not depend on its edge.

use crate::{RelayError, UpstreamSpec};
use mesh_core::policy::Access;
use mesh_core::Principal;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// The management server at `/mcp`, called in-process; defined beside the link that calls it.
pub use crate::upstream::local::LocalService;
/// Receives one audit record per request; defined with the record in `mesh-core`, so that the
/// audit crate implements it without depending on the relay.
pub use mesh_core::audit::AuditSink;

/// Decides who a bearer token belongs to. Runs on every request, so it must answer from memory.
pub trait Authenticator: Send + Sync + 'static {
    /// The principal for `token`, or `None` if it is unknown, revoked or expired.
    fn authenticate(&self, token: &str) -> Option<Principal>;

    /// The anonymous principal for a request *without* credentials to `route` (a connection
    /// slug or id, or `gateway/{slug}`), if an admin opened that route to anonymous callers.
    /// Off unless configured; never for management.
    fn anonymous(&self, route: &str) -> Option<Principal> {
        let _ = route;
        None
    }
}

/// Resolves a route name in a URL to the upstream behind it, for one principal.
#[async_trait::async_trait]
pub trait RouteResolver: Send + Sync + 'static {
    /// The upstream for `route` (slug or id) as visible to `principal`; `RouteNotFound` otherwise.
    async fn resolve(&self, principal: &Principal, route: &str) -> Result<ResolvedRoute, RelayError>;

    /// The virtual MCP `gateway` (slug or id) with its members' upstreams; `RouteNotFound` otherwise.
    async fn resolve_gateway(&self, principal: &Principal, gateway: &str) -> Result<ResolvedGateway, RelayError> {
        let _ = principal;
        Err(RelayError::RouteNotFound(gateway.chars().take(64).collect()))
    }

    /// The upstream of connection `connection_id` refused the credentials `resolve` gave for
    /// `principal` (HTTP 401): a control plane that holds renewable credentials (an OAuth grant)
    /// stops handing these out, so that the next `resolve` renews them or asks the user.
    async fn refused(&self, principal: &Principal, connection_id: &str) {
        let _ = (principal, connection_id);
    }

    /// The upstream of connection `connection_id` refused one of `principal`'s requests for
    /// want of scope, with `challenge` (its `WWW-Authenticate`): the error to answer with
    /// instead — an authorization request for the wider scope — or `None` to pass the refusal on.
    async fn step_up(&self, principal: &Principal, connection_id: &str, challenge: &str) -> Option<RelayError> {
        let _ = (principal, connection_id, challenge);
        None
    }

    /// Waits (bounded) until `principal` has completed the authorization the client was sent to
    /// with `elicitation_id` (the id of an [`RelayError::AuthorizationRequired`] link): whether
    /// they did.
    async fn authorized(&self, principal: &Principal, elicitation_id: &str) -> bool {
        let _ = (principal, elicitation_id);
        false
    }
}

/// A route resolved to a concrete upstream.
#[derive(Debug, Clone)]
pub struct ResolvedRoute {
    /// The connection id.
    pub id: String,
    /// The connection slug.
    pub slug: String,
    /// How to reach it, with credentials.
    pub spec: UpstreamSpec,
}

/// A virtual MCP resolved to its members.
#[derive(Debug, Clone)]
pub struct ResolvedGateway {
    /// The gateway id.
    pub id: String,
    /// The gateway slug.
    pub slug: String,
    /// What happens when a member fails.
    pub mode: mesh_core::gateway::FailureMode,
    /// Items per page of merged lists.
    pub page_size: usize,
    /// What clients are shown of the tools.
    pub strategy: mesh_core::gateway::Strategy,
    /// The members, in order (earlier members list first).
    pub members: Vec<ResolvedMember>,
}

/// One member of a virtual MCP.
#[derive(Debug, Clone)]
pub struct ResolvedMember {
    /// The connection id.
    pub connection_id: String,
    /// The connection slug (the default prefix).
    pub slug: String,
    /// What to expose, and how.
    pub config: mesh_core::gateway::MemberConfig,
    /// How to reach it, with credentials.
    pub spec: UpstreamSpec,
}

/// Decides access and rate limits; implemented by the control plane. Both are answered from
/// memory on every call; the control plane keeps the answers current and tells the relay when
/// they change.
pub trait Governor: Send + Sync + 'static {
    /// What `principal` may see and use.
    fn access(&self, principal: &Principal) -> Arc<Access>;

    /// Takes one call of `principal` to `tool` (or a prompt or resource when `None`) on
    /// `connection` from every limit that applies, or refuses it without taking anything.
    fn admit(&self, principal: &Principal, connection: &str, tool: Option<&str>) -> Result<(), Limited>;
}

/// A call refused by a rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// Which limit, for the client and the audit trail ("key limit of 60/min").
    pub limit: String,
    /// When a call would next be accepted.
    pub retry_after: Duration,
}

impl From<Limited> for crate::RelayError {
    fn from(l: Limited) -> Self {
        crate::RelayError::RateLimited { limit: l.limit, retry_after: l.retry_after }
    }
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
