-- The agent registry (#22): agents that join by heartbeat, as the mcp-mesh SDK's agents do.
--
-- One row per agent and organisation (the registration token decides the organisation).
-- A row outlives its agent for a while as 'unhealthy', so that the others learn of the change
-- and so that `mcp-mesh agent list` can say what went away; the sweep purges it later.
CREATE TABLE registry_agents (
    org_id        TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    -- The agent's own id (`{name}-{8 hex}` from the SDK), unique within the organisation.
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    agent_type    TEXT NOT NULL,
    version       TEXT NOT NULL,
    namespace     TEXT NOT NULL,
    runtime       TEXT NOT NULL,
    description   TEXT NOT NULL,
    -- `http://host:port`, as the agent advertised it; its MCP endpoint is `{endpoint}/mcp`.
    endpoint      TEXT NOT NULL,
    -- JSON: the tools it offers, each with capability, version, tags and dependencies.
    tools         TEXT NOT NULL,
    -- 'healthy' or 'unhealthy'.
    status        TEXT NOT NULL,
    -- The connection the mesh made for it (the agent is governed like any connection).
    connection_id TEXT,
    created_at    BIGINT NOT NULL,
    -- Unix milliseconds: the last heartbeat of any kind, the last full one (a POST), and the
    -- last change others must hear of (joined, left, went unhealthy).
    last_seen     BIGINT NOT NULL,
    last_full     BIGINT NOT NULL,
    changed_at    BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE INDEX registry_agents_by_status ON registry_agents (status, last_seen);
