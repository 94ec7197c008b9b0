//! The stored objects, as plain data. Validation (slugs, roles, transports) is the services' job.

use serde::{Deserialize, Serialize};

/// An organisation: the tenant boundary every other object belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    /// `org_…` id.
    pub id: String,
    /// Unique, URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A person who can belong to organisations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// `user_…` id.
    pub id: String,
    /// Unique; compared exactly, so callers store it normalised (trimmed, lowercase).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Password hash (PHC string) for dashboard login; `None` for key-only users.
    pub password_hash: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A user's role in one organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The organisation.
    pub org_id: String,
    /// The member.
    pub user_id: String,
    /// Stored spelling of `mesh_core::Role` ("owner", "admin", "member", "viewer").
    pub role: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// An API key. Only its hash is stored; the key itself is shown once, at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// `key_…` id.
    pub id: String,
    /// The organisation the key acts in.
    pub org_id: String,
    /// The user the key acts for; must be a member of `org_id`.
    pub user_id: String,
    /// Human label.
    pub name: String,
    /// The first characters of the key, to recognise it in listings.
    pub prefix: String,
    /// Hex SHA-256 of the full key, computed by the caller; unique.
    pub hash: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds after which the key stops working; `None` never expires.
    pub expires_at: Option<i64>,
    /// Unix milliseconds of revocation; `None` while active.
    pub revoked_at: Option<i64>,
    /// Unix milliseconds of the last authenticated use, updated in batches.
    pub last_used_at: Option<i64>,
    /// JSON `{"scope": …, "rules": […]}` narrowing what the key may reach, kept verbatim (the
    /// policy layer parses it); `None` = whatever the user's role allows.
    pub policy: Option<String>,
}

/// An upstream MCP server registered in an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// `conn_…` id.
    pub id: String,
    /// The owning organisation; every query filters on it.
    pub org_id: String,
    /// Unique within the organisation; used in URLs and tool prefixes.
    pub slug: String,
    /// Display name.
    pub title: String,
    /// Free text.
    pub description: Option<String>,
    /// "http" | "sse" | "stdio".
    pub transport: String,
    /// Upstream URL for "http" and "sse".
    pub url: Option<String>,
    /// Program to run for "stdio".
    pub command: Option<String>,
    /// Arguments for `command`; stored as JSON text.
    pub args: Vec<String>,
    /// Working directory for `command`.
    pub cwd: Option<String>,
    /// Per-request upstream timeout, milliseconds.
    pub timeout_ms: i64,
    /// "active" | "disabled".
    pub status: String,
    /// Whether callers without credentials are admitted (off unless an admin turns it on).
    pub anonymous: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
    /// Whether an installation operator set its command or URL (or it predates the trust
    /// tiers): only then may it run its own host command or reach internal networks.
    pub trusted: bool,
    /// The catalogue template a stdio connection was made from.
    pub template: Option<String>,
    /// How the mesh authenticates to the upstream: "headers" (its configured headers, maybe
    /// none) or "oauth" (tokens from the upstream's authorization server).
    pub auth: String,
    /// With "oauth": one grant for the whole connection (a service account) instead of one per
    /// user.
    pub oauth_shared: bool,
    /// For "capability": the selector (JSON `{"capability", "tags", "version"}`) whose healthy
    /// registered providers the connection balances over.
    pub selector: Option<String>,
}

/// A stdio command an installation operator published for organisations to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioTemplate {
    /// Unique name (a slug).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The program.
    pub command: String,
    /// Its fixed arguments.
    pub args: Vec<String>,
    /// Environment variable names an organisation supplies values for.
    pub env: Vec<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// One encrypted header or environment variable of a connection, sealed by `mesh-vault`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRow {
    /// `sec_…` id.
    pub id: String,
    /// Must equal the connection's organisation (a foreign key enforces it).
    pub org_id: String,
    /// The connection the secret belongs to.
    pub connection_id: String,
    /// "header" | "env" | "oauth_grant" (a sealed upstream OAuth grant, named by its subject).
    pub kind: String,
    /// Header or variable name; unique per connection and kind.
    pub name: String,
    /// The vault key that sealed `ciphertext`.
    pub key_id: String,
    /// Vault ciphertext (base64), never plaintext.
    pub ciphertext: String,
}

/// A role of an organisation: a custom role, or the rules attached to a built-in one (then
/// `name` and `base` are both the built-in name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRow {
    /// The owning organisation.
    pub org_id: String,
    /// Unique within the organisation; what `Membership::role` names.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// "admin" | "member" | "viewer" (or the built-in name itself): where management
    /// permissions and the traffic baseline come from.
    pub base: String,
    /// JSON array of rules, kept verbatim (the policy layer parses it).
    pub rules: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// A rate limit of an organisation; at most one per `(scope, target)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitRow {
    /// Id chosen by the caller at first setting; kept when the limit is set again.
    pub id: String,
    /// The owning organisation.
    pub org_id: String,
    /// "key" | "user" | "connection" | "tool".
    pub scope: String,
    /// Key id, user id, connection slug or "connection/tool"; globs allowed.
    pub target: String,
    /// Sustained calls per minute.
    pub per_minute: i64,
    /// Burst allowance (the bucket's capacity); interpreted by the rate limiter, not here.
    pub burst: i64,
    /// Unix milliseconds of the first setting.
    pub created_at: i64,
    /// Unix milliseconds of the latest setting.
    pub updated_at: i64,
}
