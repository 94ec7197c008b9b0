-- Usage over time (#20): calls, errors, bytes and latency per organisation, user, key, route,
-- tool and method, summed into buckets of a minute, an hour and a day. Every flush adds to all
-- three (an upsert per bucket), so no job rolls minutes up into hours and a crash between
-- flushes loses at most the unflushed seconds, never a half-made roll-up. Retention deletes
-- each granularity's old buckets on its own schedule (minutes first).
--
-- Like the audit trail it is derived from, it names organisations without a foreign key: what
-- happened stays recorded until retention removes it, even after an organisation is deleted.
CREATE TABLE usage_buckets (
    org_id         TEXT NOT NULL,
    -- 'minute', 'hour' or 'day'.
    span           TEXT NOT NULL,
    -- The bucket's start, unix milliseconds.
    bucket         BIGINT NOT NULL,
    user_id        TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    route_kind     TEXT NOT NULL,
    route          TEXT NOT NULL,
    -- The tool, prompt or resource the requests named ('' for none).
    tool           TEXT NOT NULL,
    method         TEXT NOT NULL,
    calls          BIGINT NOT NULL,
    errors         BIGINT NOT NULL,
    bytes_in       BIGINT NOT NULL,
    bytes_out      BIGINT NOT NULL,
    -- Sum of latencies (the mean is latency_us / calls) and the largest one.
    latency_us     BIGINT NOT NULL,
    latency_max_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, span, bucket, user_id, key_id, route_kind, route, tool, method)
);
CREATE INDEX usage_buckets_span_bucket ON usage_buckets (span, bucket);
