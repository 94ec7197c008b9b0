-- Virtual MCPs (gateways): many connections behind one endpoint, `/mcp/gateway/{slug}`.
--
-- Members live in `config` as JSON (`{"members": [MemberConfig…], "pageSize": N}`, see
-- `mesh_core::gateway`), each naming its connection by id: a member is a curation of a
-- connection, read whole with its gateway and never queried on its own, so a child table would
-- buy joins and nothing else. A member whose connection was deleted or disabled is skipped when
-- the gateway is resolved.
--
-- `all_connections` = 1 marks a gateway whose members are every active connection of the
-- organisation, computed when it is resolved (the default gateway); its `members` are empty.

CREATE TABLE gateways (
    id               TEXT NOT NULL PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    slug             TEXT NOT NULL,
    title            TEXT NOT NULL,
    description      TEXT,
    -- 'degrade' (serve the healthy members) or 'strict' (fail if any member fails).
    mode             TEXT NOT NULL,
    config           TEXT NOT NULL,
    all_connections  BIGINT NOT NULL DEFAULT 0,
    -- 'active' or 'disabled' (a disabled gateway answers 404).
    status           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    CONSTRAINT gateways_slug_per_org UNIQUE (org_id, slug)
);

-- Organisations that existed before gateways get their default gateway here, as first start
-- does for new ones (`mesh_admin::bootstrap`). `||` concatenates in both SQLite and PostgreSQL.
INSERT INTO gateways (id, org_id, slug, title, description, mode, config, all_connections, status, created_at, updated_at)
SELECT 'gw_default_' || id, id, 'default', 'Default', 'Every active connection of the organisation.', 'degrade',
       '{"members":[],"pageSize":100}', 1, 'active', created_at, created_at
FROM orgs;
