-- The mesh as an OAuth client of upstream MCP servers (#19, docs/OAUTH.md "Upstream OAuth").
--
-- How the mesh authenticates to a connection's server: 'headers' (configured headers, possibly
-- none) or 'oauth' (tokens from the server's authorization server, per user unless
-- `oauth_shared`). Grants themselves are sealed rows of connection_secrets (kind 'oauth_grant',
-- named by their subject), so that vault rotation re-seals them and deleting the connection
-- deletes them.
ALTER TABLE connections ADD COLUMN auth TEXT NOT NULL DEFAULT 'headers';
ALTER TABLE connections ADD COLUMN oauth_shared BIGINT NOT NULL DEFAULT 0;

-- Authorizations under way, ten minutes at most. `id` is the mesh's own link (what the user
-- opens); `state_hash` the SHA-256 of the OAuth state the authorization server sends back. The
-- sealed payload holds the PKCE verifier and the grant being completed.
CREATE TABLE upstream_logins (
    id             TEXT NOT NULL PRIMARY KEY,
    state_hash     TEXT NOT NULL,
    org_id         TEXT NOT NULL,
    connection_id  TEXT NOT NULL,
    -- Whose grant it completes: 'user:<id>' or 'shared'.
    subject        TEXT NOT NULL,
    -- The user who must complete it in the browser.
    user_id        TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    ciphertext     TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    -- Set once the grant is stored, for the one who waits (`mcp-mesh connection login`).
    done_at        BIGINT,
    CONSTRAINT upstream_logins_connection FOREIGN KEY (connection_id, org_id)
        REFERENCES connections (id, org_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX upstream_logins_by_state ON upstream_logins (state_hash);
