//! Vault rotation: a new primary key, then every secret re-encrypted under it, while serving.
//!
//! Safe to run on a live mesh: the new key is persisted before it is used, old keys stay in the
//! keyring, and each secret is rewritten in its own statement, so a reader at any moment opens
//! either the old or the new ciphertext with a key it has. Interrupted, it can simply run again.

use crate::{Admin, AdminError};
use mesh_core::Principal;
use serde_json::{json, Value};

impl Admin {
    /// Makes a new primary key (unless keys come from the environment) and re-encrypts every
    /// secret not yet under the primary. Installation operators only.
    pub async fn rotate_vault(&self, p: &Principal) -> Result<Value, AdminError> {
        // The vault is the installation's, not one organisation's.
        if !p.is_operator() {
            return Err(AdminError::Forbidden("rotating the vault key is for the installation's operators"));
        }
        let (primary, generated) = {
            let mut ring = self.keyring.write().unwrap_or_else(|p| p.into_inner());
            if ring.is_env_managed() {
                (ring.primary_id().to_string(), false)
            } else {
                (ring.rotate(&self.data_dir)?, true)
            }
        };
        let mut reencrypted = 0usize;
        for row in self.store.all_secrets().await? {
            if row.key_id == primary {
                continue;
            }
            let aad = format!("{}/{}/{}", row.connection_id, row.kind, row.name).into_bytes();
            let sealed = {
                let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
                let plain = ring.open(&row.key_id, &row.ciphertext, &aad)?;
                ring.seal(&plain, &aad)?
            };
            self.store.update_secret_ciphertext(&row.id, &sealed.key_id, &sealed.ciphertext).await?;
            reencrypted += 1;
        }
        tracing::info!(primary = %primary, reencrypted, "vault rotated");
        Ok(json!({"primaryKeyId": primary, "newKeyGenerated": generated, "reencrypted": reencrypted}))
    }
}
