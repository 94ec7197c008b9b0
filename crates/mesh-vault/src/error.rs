//! The vault's one error type. No variant ever carries key material or plaintext.

use std::path::PathBuf;

use mesh_core::Fault;

/// Why a vault operation failed.
///
/// Messages name key ids, paths and lengths only: an error may end up in a log line or an HTTP
/// response, and neither may leak a key or a secret.
#[derive(thiserror::Error, Debug)]
pub enum VaultError {
    /// A ciphertext names a key this keyring does not hold (a lost key file, or an old env key that
    /// was dropped from `MESH_ENCRYPTION_KEYS_OLD` too early).
    #[error("vault key '{0}' is not in the keyring")]
    UnknownKey(String),
    /// Authentication failed. Deliberately undetailed: the key is wrong, the ciphertext or its
    /// associated data was altered, or the row was moved to another place.
    #[error("cannot decrypt secret: wrong key, or the ciphertext was tampered with")]
    Decrypt,
    /// Encryption failed (AES-GCM refuses plaintexts longer than 64 GiB; nothing else fails).
    #[error("cannot encrypt secret")]
    Encrypt,
    /// A configured key is unusable; the message says which setting and why, never the value.
    #[error("bad encryption key: {0}")]
    BadKey(String),
    /// The key file exists but is not a keyring this version understands.
    #[error("vault key file {path}: {reason}")]
    KeyFile {
        /// The file that failed to parse.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Rotation was asked for while the primary key comes from the environment.
    #[error(
        "the primary key comes from MESH_ENCRYPTION_KEY: rotate by setting a new \
         MESH_ENCRYPTION_KEY and moving the old value into MESH_ENCRYPTION_KEYS_OLD"
    )]
    EnvManaged,
    /// Reading or writing the key file or its directory failed.
    #[error("vault key file {path}: {source}")]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl VaultError {
    /// Whose fault the failure is. Every vault failure is the mesh's own (its keys, its files,
    /// its stored rows); callers never see which, on purpose.
    pub fn fault(&self) -> Fault {
        Fault::Internal
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> VaultError {
        let path = path.into();
        move |source| VaultError::Io { path, source }
    }
}
