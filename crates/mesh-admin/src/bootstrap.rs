//! First start: a default organisation with its default gateway (every active connection, at
//! `/mcp/gateway/default`), an owner, and an owner API key for the local CLI.

use crate::keys;
use crate::AdminError;
use mesh_core::{id, Secret};
use mesh_store::{Membership, Org, Store, User};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The e-mail of the owner made on the first start: how they log in once they set a password.
pub const OWNER_EMAIL: &str = "owner@localhost";

/// Where the owner key is saved for the CLI on the same machine.
pub fn owner_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("owner.key")
}

/// Creates the default organisation, owner and owner key if the database has no organisation.
/// Returns the key on the start that created it (the only time it can be shown).
pub async fn ensure_owner(store: &Store, data_dir: &Path) -> Result<Option<Secret<String>>, AdminError> {
    if !store.list_orgs().await?.is_empty() {
        return Ok(None);
    }
    let now = id::now_ms();
    let org = Org { id: id::new_id("org"), slug: "default".into(), name: "Default".into(), created_at: now };
    let user = User {
        id: id::new_id("usr"),
        email: OWNER_EMAIL.into(),
        name: "Owner".into(),
        password_hash: None,
        created_at: now,
    };
    store.create_org(&org).await?;
    // Its owners are the installation's operators (docs/SECURITY.md).
    store.set_operator_org(&org.id).await?;
    store.create_gateway(&crate::gateways::default_gateway(&org.id, now)).await?;
    store.create_user(&user).await?;
    store
        .add_member(&Membership {
            org_id: org.id.clone(),
            user_id: user.id.clone(),
            role: "owner".into(),
            created_at: now,
        })
        .await?;
    let (row, key) = keys::issue(&org.id, &user.id, "owner", now, None);
    store.create_api_key(&row).await?;
    write_private(&owner_key_path(data_dir), key.full.expose())
        .map_err(|e| AdminError::Invalid(format!("cannot save the owner key in {}: {e}", data_dir.display())))?;
    Ok(Some(key.full))
}

/// Writes a file readable only by its owner (0600), atomically.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
