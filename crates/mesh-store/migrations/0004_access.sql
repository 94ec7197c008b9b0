-- Access control: custom roles, per-key policy, rate limits. Portable types only, like 0001.
--
-- Rules are stored as JSON text and never queried piecewise: the mesh loads every role and limit
-- into an in-memory policy cache and evaluates there (mesh-core policy), so the database only
-- has to keep them. The store does not interpret the JSON; the services validate it on write.
--
-- `roles` holds custom roles and the rules of built-in ones (a row named 'admin' with base
-- 'admin'). No foreign key from `memberships.role` to it on purpose: built-in roles need no row,
-- and the service refuses to delete a role while members hold it.

CREATE TABLE roles (
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT,
    -- 'admin' | 'member' | 'viewer' for custom roles (or the built-in name itself): where
    -- management permissions and the traffic baseline come from.
    base         TEXT NOT NULL,
    -- JSON array of rules, `[{"effect":"allow"|"deny", "connection":…, "gateway":…, "kind":…, "name":…}]`.
    rules        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (org_id, name)
);

-- JSON `{"scope": {...}, "rules": [...]}` narrowing what the key may reach; NULL = everything its
-- role allows. Existing keys stay unrestricted.
ALTER TABLE api_keys ADD COLUMN policy TEXT;

-- One limit per (scope, target) in an organisation: setting it again updates it in place (and
-- keeps its id), so the unique constraint is the upsert's conflict target.
CREATE TABLE rate_limits (
    id          TEXT NOT NULL PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- 'key' | 'user' | 'connection' | 'tool'.
    scope       TEXT NOT NULL,
    -- Key id, user id, connection slug or 'connection/tool'; globs allowed.
    target      TEXT NOT NULL,
    per_minute  BIGINT NOT NULL,
    burst       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT rate_limits_target UNIQUE (org_id, scope, target)
);
