//! The on-disk keyring, `<data_dir>/vault-keys.json`: format, validation and atomic writes.
//!
//! ```json
//! {"version":1,"primary":"k_…","keys":[{"id":"k_…","key":"<base64 of 32 bytes>","created_at":<unix ms>}]}
//! ```
//! Writes go to a temporary file in the same directory (mode 0600 from the moment it exists),
//! are fsynced, then renamed over the old file, so a crash leaves either the old keyring or the
//! new one, never half of one. Losing this file means losing every secret sealed under it.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use mesh_core::Secret;
use serde::{Deserialize, Serialize};

use crate::VaultError;

/// File name of the keyring inside the data directory.
pub(crate) const FILE_NAME: &str = "vault-keys.json";
const VERSION: u32 = 1;

/// One key as kept in the file.
pub(crate) struct StoredKey {
    pub id: String,
    pub material: Secret<[u8; 32]>,
    pub created_at: i64,
}

/// The file's content after validation.
pub(crate) struct KeyFile {
    pub primary: String,
    pub keys: Vec<StoredKey>,
}

// The serde shapes deliberately derive no `Debug`: `key` holds key material.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    version: u32,
    primary: String,
    keys: Vec<ReprKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReprKey {
    id: String,
    key: String,
    created_at: i64,
}

/// Reads and validates the key file; `Ok(None)` if it does not exist.
pub(crate) fn read(path: &Path) -> Result<Option<KeyFile>, VaultError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(VaultError::io(path)(e)),
    };
    warn_if_readable_by_others(path);
    let bad = |reason: String| VaultError::KeyFile { path: path.to_path_buf(), reason };
    // Only the position: serde_json's full message may quote the offending value, which in
    // this file can be key material put in the wrong field.
    let repr: Repr = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("not a valid keyring (line {}, column {})", e.line(), e.column())))?;
    if repr.version != VERSION {
        return Err(bad(format!("unsupported version {} (expected {VERSION})", repr.version)));
    }
    let mut keys: Vec<StoredKey> = Vec::with_capacity(repr.keys.len());
    for k in repr.keys {
        if k.id.is_empty() || keys.iter().any(|seen| seen.id == k.id) {
            return Err(bad(format!("key id '{}' is empty or repeated", k.id)));
        }
        let material = B64
            .decode(k.key.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| bad(format!("key '{}' is not 32 bytes of base64", k.id)))?;
        keys.push(StoredKey { id: k.id, material: Secret::new(material), created_at: k.created_at });
    }
    if !keys.iter().any(|k| k.id == repr.primary) {
        return Err(bad(format!("primary key '{}' is not among its keys", repr.primary)));
    }
    Ok(Some(KeyFile { primary: repr.primary, keys }))
}

/// Writes `file` to `path` only if nothing is there yet; `Ok(false)` if another process won.
///
/// Two instances starting at once on an empty data directory must not each invent a key and
/// overwrite each other's: one would then seal secrets nobody can open after a restart. A hard
/// link fails atomically if the target exists, which `rename` does not.
pub(crate) fn create_new(path: &Path, file: &KeyFile) -> Result<bool, VaultError> {
    let tmp = write_temp(path, file)?;
    let linked = match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        // Some filesystems (FAT, a few network mounts) have no hard links: fall back to rename,
        // after a last check, accepting the small race on such filesystems.
        Err(_) if !path.exists() => fs::rename(&tmp, path).map(|()| true),
        Err(e) => Err(e),
    };
    let _ = fs::remove_file(&tmp);
    let created = linked.map_err(VaultError::io(path))?;
    if created {
        sync_dir(path)?;
    }
    Ok(created)
}

/// Replaces the file at `path` atomically (temporary file, fsync, rename, fsync directory).
pub(crate) fn replace(path: &Path, file: &KeyFile) -> Result<(), VaultError> {
    let tmp = write_temp(path, file)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(VaultError::io(path)(e));
    }
    sync_dir(path)
}

/// Creates `dir` (mode 0700, like the secrets it will hold) if it is missing.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), VaultError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(VaultError::io(dir))
}

fn write_temp(path: &Path, file: &KeyFile) -> Result<PathBuf, VaultError> {
    let repr = Repr {
        version: VERSION,
        primary: file.primary.clone(),
        keys: file
            .keys
            .iter()
            .map(|k| ReprKey { id: k.id.clone(), key: B64.encode(k.material.expose()), created_at: k.created_at })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&repr).expect("keyring serialises");
    bytes.push(b'\n');
    let tmp = path.with_file_name(format!(".{FILE_NAME}.{}.tmp", mesh_core::id::random_base62(8)));
    // Mode 0600 at creation: the key must never be readable by others, not even for a moment.
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(VaultError::io(&tmp)(e));
    }
    Ok(tmp)
}

/// Makes the rename itself durable: without it a crash can forget the new directory entry.
fn sync_dir(path: &Path) -> Result<(), VaultError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(VaultError::io(dir))
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "vault key file is accessible to other users; chmod 600 it");
        }
    }
}
