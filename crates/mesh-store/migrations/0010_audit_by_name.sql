-- The audit explorer (#21) is searched by tool more than by anything else, and a tool among
-- thousands matches one row in thousands: without an index a newest-first page of one tool's
-- calls scans the whole trail. With it, the page is read in seq order straight from the index.
-- One more B-tree insert per audit row, off the request path in the batched writer.
CREATE INDEX audit_log_by_name ON audit_log (org_id, name, seq);
