-- One refresh of an upstream grant at a time across replicas (#19). A replica about to spend a
-- grant's (rotating) refresh token first takes the row's lease: an UPDATE that succeeds only if
-- the row still holds what it read and nobody else's lease is running. Others wait for the new
-- ciphertext instead of refreshing too. The lease ends with the write of the refreshed grant, or
-- by itself (unix ms) if its holder died.
ALTER TABLE connection_secrets ADD COLUMN lease_until BIGINT;
