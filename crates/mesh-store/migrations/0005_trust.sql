-- Trust tiers (docs/SECURITY.md): what the installation's operators configured, and the catalogue
-- of stdio command templates they publish for organisations. Portable types only, like 0001.

-- 1 when an installation operator last set the connection's command or URL: it may run a host
-- command of its own and reach internal networks. Connections that predate the trust tiers get
-- 1, so an upgrade changes nothing that already runs; only creating or changing them is gated.
ALTER TABLE connections ADD COLUMN trusted BIGINT NOT NULL DEFAULT 1;

-- The catalogue template a stdio connection was made from (its name), or NULL.
ALTER TABLE connections ADD COLUMN template TEXT;

-- Stdio command templates: an operator fixes the program and its arguments, and names the
-- environment variables an organisation supplies (their values go to the vault per connection).
-- Installation-wide, not per organisation: the host they run on is the installation's.
CREATE TABLE stdio_templates (
    name         TEXT NOT NULL PRIMARY KEY,
    description  TEXT,
    command      TEXT NOT NULL,
    -- JSON array of strings.
    args         TEXT NOT NULL,
    -- JSON array of environment variable names the organisation supplies.
    env          TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- Facts about the installation itself, by name. `operator_org` is the organisation whose owners
-- are the installation's operators: recorded once (at first start, or on the first start after
-- this migration, as the oldest organisation), never re-derived from a sort order that a clock
-- set wrong or a restored database could change.
CREATE TABLE installation (
    name   TEXT NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
);
