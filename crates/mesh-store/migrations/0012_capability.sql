-- Capability selectors (#22): a connection that is not one server but every healthy registered
-- provider of a capability, balanced per request. JSON `{"capability", "tags", "version"}`, the
-- shape of an agent's declared dependency; NULL for every other connection.
ALTER TABLE connections ADD COLUMN selector TEXT;
