-- The mesh as an OAuth 2.1 authorization server for MCP clients (#17, docs/OAUTH.md).
-- Portable types only, like 0001. Every secret (client secret, code, token, login session) is
-- stored as its hex SHA-256, like API keys: they are random, so there is nothing to brute-force.

-- Clients the mesh knows by id: pre-registered by an operator ('static') or registered through
-- RFC 7591 ('dynamic'). Clients identified by a metadata document URL are not stored: their
-- document is fetched and cached in memory.
CREATE TABLE oauth_clients (
    id             TEXT NOT NULL PRIMARY KEY,
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    client_uri     TEXT,
    -- JSON array of strings.
    redirect_uris  TEXT NOT NULL,
    -- NULL for a public client (PKCE only).
    secret_hash    TEXT,
    -- JSON array of strings.
    grant_types    TEXT NOT NULL,
    -- Who made it: a user id, or `register` for RFC 7591.
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- A user's consent: this client may act for them in this organisation at this resource, with
-- this scope. Tokens hang off it, so revoking (deleting) it ends them, and so does removing the
-- member.
CREATE TABLE oauth_grants (
    id           TEXT NOT NULL PRIMARY KEY,
    org_id       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    -- As shown on the consent page (a metadata-document client is not in oauth_clients).
    client_name  TEXT NOT NULL,
    -- The canonical resource URI, and the route it names ('' = management, a connection slug,
    -- or 'gateway/{slug}').
    resource     TEXT NOT NULL,
    route        TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX oauth_grants_one ON oauth_grants (org_id, user_id, client_id, resource);

-- Authorization codes: single use, a minute long. `used_at` is kept so that a second use can
-- be recognised and the tokens of the first revoked (OAuth 2.1 §4.1.3).
CREATE TABLE oauth_codes (
    hash          TEXT NOT NULL PRIMARY KEY,
    grant_id      TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    client_id     TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    challenge     TEXT NOT NULL,
    scope         TEXT NOT NULL,
    -- The token family the exchange starts (so that a replay can revoke it).
    family        TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);

-- Access and refresh tokens. A family is one authorization and its chain of refreshes: its id
-- is the principal's key id (MCP sessions survive a refresh), and reusing a rotated refresh
-- token revokes the whole family.
CREATE TABLE oauth_tokens (
    hash        TEXT NOT NULL PRIMARY KEY,
    kind        TEXT NOT NULL,
    family      TEXT NOT NULL,
    grant_id    TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    -- A refresh token's single use.
    rotated_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX oauth_tokens_family ON oauth_tokens (family);
CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id);

-- Browser login sessions of the mesh's own pages (login, consent; later the dashboard).
CREATE TABLE user_sessions (
    hash        TEXT NOT NULL PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The anti-CSRF value every form of this session carries.
    csrf        TEXT NOT NULL,
    -- 'password' or 'sso'.
    method      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Who chose a user's password: NULL for the user themselves (or an installation operator), else
-- the organisation whose admin gave it when adding them. Such a password is cleared when the
-- person joins another organisation, so that one organisation's admin cannot log in as them
-- where they govern nothing.
ALTER TABLE users ADD COLUMN password_set_by TEXT;
