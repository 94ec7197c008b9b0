-- One refresh of an upstream grant at a time across replicas (#19). A replica about to spend a
-- grant's (rotating) refresh token first takes the row's lease: an UPDATE that succeeds only if
-- the row still holds what it read and nobody else's lease is running. Others wait for the new
-- ciphertext instead of refreshing too. The lease ends with the write of the refreshed grant, or
-- by itself (unix ms) if its holder died.
ALTER TABLE connection_secrets ADD COLUMN lease_until BIGINT;

-- An authorization under way is claimed (`done_at`) before its code is exchanged, so that a
-- replayed callback finds it used; it is granted (`granted_at`) once the grant is stored — what
-- someone waiting for it (the CLI, an in-band step-up) waits for. A failed exchange is deleted.
ALTER TABLE upstream_logins ADD COLUMN granted_at BIGINT;
