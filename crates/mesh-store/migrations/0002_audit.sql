-- The audit trail: one row per request through the mesh (management tools included), hash-chained
-- per organisation. Portable types only (TEXT, BIGINT), like 0001.
--
-- `seq` numbers an organisation's rows 1, 2, 3, … without gaps; `hash` is SHA-256 over `prev_hash`
-- and every other column (the encoding is defined in crates/mesh-audit/src/chain.rs), so editing
-- a row breaks its hash and deleting one leaves a gap. No foreign keys on purpose: the trail
-- outlives the users, keys and connections it names.

CREATE TABLE audit_log (
    org_id               TEXT NOT NULL,
    seq                  BIGINT NOT NULL,
    time_ms              BIGINT NOT NULL,
    user_id              TEXT NOT NULL,
    key_id               TEXT NOT NULL,
    role                 TEXT NOT NULL,
    session_id           TEXT NOT NULL,
    client_name          TEXT,
    client_version       TEXT,
    route_kind           TEXT NOT NULL,
    route                TEXT NOT NULL,
    method               TEXT NOT NULL,
    name                 TEXT,
    -- Redacted, size-capped JSON text; when `arguments_truncated` is 1 it is a cut prefix.
    arguments            TEXT,
    arguments_truncated  BIGINT NOT NULL,
    outcome              TEXT NOT NULL,
    error                TEXT,
    latency_us           BIGINT NOT NULL,
    bytes_in             BIGINT NOT NULL,
    bytes_out            BIGINT NOT NULL,
    request_id           TEXT NOT NULL,
    prev_hash            TEXT NOT NULL,
    hash                 TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);
CREATE INDEX audit_log_by_time ON audit_log (org_id, time_ms);

-- One row per organisation: the head of its chain (what the last append produced) and the
-- retention checkpoint (the last pruned row). Appends and prunes lock this row first, so writers
-- on several replicas take turns; verification walks from the checkpoint to the head.
CREATE TABLE audit_chain (
    org_id       TEXT NOT NULL PRIMARY KEY,
    head_seq     BIGINT NOT NULL,
    head_hash    TEXT NOT NULL,
    pruned_seq   BIGINT NOT NULL,
    pruned_hash  TEXT NOT NULL,
    pruned_at    BIGINT
);
