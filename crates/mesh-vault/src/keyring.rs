//! The keyring: which keys exist, which one seals, and sealing/opening with AES-256-GCM.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use mesh_core::Secret;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::keyfile::{self, KeyFile, StoredKey};
use crate::{env_key, VaultError};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A secret sealed under one key: what a store row holds instead of the plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The id of the key that sealed it; [`Keyring::open`] needs that key.
    pub key_id: String,
    /// base64 of the 12-byte random nonce followed by the AES-GCM ciphertext and 16-byte tag.
    pub ciphertext: String,
}

/// Where a key came from, which decides whether rotation may write it to the key file.
enum Origin {
    File { created_at: i64 },
    Env,
}

struct Entry {
    material: Secret<[u8; 32]>,
    origin: Origin,
}

/// Every key the mesh can open secrets with, and the one it seals new secrets under.
pub struct Keyring {
    keys: BTreeMap<String, Entry>,
    primary: String,
    env_managed: bool,
}

impl fmt::Debug for Keyring {
    // Hand-written so that key material can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.primary)
            .field("key_ids", &self.key_ids())
            .field("env_managed", &self.env_managed)
            .finish()
    }
}

impl Keyring {
    /// Loads `<data_dir>/vault-keys.json`, creating it (mode 0600, directory created if missing)
    /// with one new random key when it is absent, and adds the environment keys.
    ///
    /// `env_key` is `MESH_ENCRYPTION_KEY` (base64 or 64 hex characters of 32 bytes); when given
    /// it becomes the primary key with id `env-<12 hex of sha256>`, and no key file is created
    /// if none exists (an operator who manages keys in the environment wants nothing on disk).
    /// `old_env_keys` are the entries of `MESH_ENCRYPTION_KEYS_OLD`, already split on commas by
    /// the caller: earlier env keys that still open old ciphertexts. Blank entries are ignored.
    pub fn load_or_create(
        data_dir: &Path,
        env_key: Option<&str>,
        old_env_keys: &[String],
    ) -> Result<Keyring, VaultError> {
        let env = env_key.map(|v| env_key::parse(v, "MESH_ENCRYPTION_KEY")).transpose()?;
        let mut olds = Vec::new();
        for (i, value) in old_env_keys.iter().enumerate().filter(|(_, v)| !v.trim().is_empty()) {
            olds.push(env_key::parse(value, &format!("MESH_ENCRYPTION_KEYS_OLD entry {}", i + 1))?);
        }

        let path = data_dir.join(keyfile::FILE_NAME);
        let file = match keyfile::read(&path)? {
            Some(file) => Some(file),
            None if env.is_some() => None,
            None => Some(create_file(data_dir, &path)?),
        };

        let mut keys = BTreeMap::new();
        let mut primary = None;
        if let Some(file) = file {
            primary = Some(file.primary);
            for k in file.keys {
                let origin = Origin::File { created_at: k.created_at };
                keys.insert(k.id, Entry { material: k.material, origin });
            }
        }
        for material in olds {
            let entry = Entry { material: Secret::new(material), origin: Origin::Env };
            keys.entry(env_key::key_id(&material)).or_insert(entry);
        }
        let env_managed = env.is_some();
        if let Some(material) = env {
            let id = env_key::key_id(&material);
            keys.insert(id.clone(), Entry { material: Secret::new(material), origin: Origin::Env });
            primary = Some(id);
        }
        // Either the file or the env key supplied a primary: a missing file without an env key
        // was created above.
        let primary = primary.expect("a key file or MESH_ENCRYPTION_KEY provides the primary key");
        let ring = Keyring { keys, primary, env_managed };
        tracing::info!(primary = %ring.primary, keys = ring.keys.len(), env_managed, "vault keyring loaded");
        Ok(ring)
    }

    /// A keyring from explicit keys, for tests. Panics if `primary` is not among `keys`.
    pub fn from_keys(keys: Vec<(String, [u8; 32])>, primary: &str) -> Keyring {
        let now = mesh_core::id::now_ms();
        let keys: BTreeMap<_, _> = keys
            .into_iter()
            .map(|(id, k)| (id, Entry { material: Secret::new(k), origin: Origin::File { created_at: now } }))
            .collect();
        assert!(keys.contains_key(primary), "primary key '{primary}' is not among the keys");
        Keyring { keys, primary: primary.to_string(), env_managed: false }
    }

    /// The id of the key [`seal`](Self::seal) uses.
    pub fn primary_id(&self) -> &str {
        &self.primary
    }

    /// Every key id this keyring can open, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    /// Whether the primary key comes from `MESH_ENCRYPTION_KEY` (then [`rotate`](Self::rotate)
    /// refuses: the environment, not this process, decides the key).
    pub fn is_env_managed(&self) -> bool {
        self.env_managed
    }

    /// Generates a new random key, persists the key file with it (atomically, mode 0600) and
    /// makes it primary. Old keys stay, so existing ciphertexts still open; re-sealing them
    /// under the new key is the caller's job. Returns the new key id.
    pub fn rotate(&mut self, data_dir: &Path) -> Result<String, VaultError> {
        if self.env_managed {
            return Err(VaultError::EnvManaged);
        }
        keyfile::ensure_dir(data_dir)?;
        let path = data_dir.join(keyfile::FILE_NAME);
        // Another instance may have rotated since we loaded: keep its keys, or secrets it sealed
        // would become unopenable once our file replaces its file.
        if let Some(on_disk) = keyfile::read(&path)? {
            for k in on_disk.keys {
                let origin = Origin::File { created_at: k.created_at };
                self.keys.entry(k.id).or_insert(Entry { material: k.material, origin });
            }
        }
        let (id, material, created_at) = (new_key_id(), random_key(), mesh_core::id::now_ms());
        let mut keys = self.file_keys();
        keys.push(StoredKey { id: id.clone(), material: Secret::new(material), created_at });
        // Persist first: a key that seals anything must already be on disk.
        keyfile::replace(&path, &KeyFile { primary: id.clone(), keys })?;

        let origin = Origin::File { created_at };
        self.keys.insert(id.clone(), Entry { material: Secret::new(material), origin });
        self.primary = id.clone();
        tracing::info!(primary = %self.primary, "vault key rotated");
        Ok(id)
    }

    /// Encrypts `plaintext` under the primary key with a fresh random nonce.
    ///
    /// `aad` binds the ciphertext to its place (e.g. `b"conn_x/header/Authorization"`): opening
    /// it with any other `aad` fails, so rows cannot be swapped between connections or names.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, VaultError> {
        let entry = &self.keys[&self.primary];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher(entry)
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| VaultError::Encrypt)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(Sealed { key_id: self.primary.clone(), ciphertext: B64.encode(out) })
    }

    /// Decrypts a ciphertext sealed under `key_id` with the same `aad`.
    pub fn open(&self, key_id: &str, ciphertext: &str, aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        let entry = self.keys.get(key_id).ok_or_else(|| VaultError::UnknownKey(key_id.to_string()))?;
        // Malformed input is reported exactly like a failed tag: both mean "not what we sealed".
        let raw = B64.decode(ciphertext.trim()).map_err(|_| VaultError::Decrypt)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(VaultError::Decrypt);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        cipher(entry).decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad }).map_err(|_| VaultError::Decrypt)
    }

    fn file_keys(&self) -> Vec<StoredKey> {
        self.keys
            .iter()
            .filter_map(|(id, e)| match e.origin {
                Origin::File { created_at } => {
                    Some(StoredKey { id: id.clone(), material: e.material.clone(), created_at })
                }
                Origin::Env => None,
            })
            .collect()
    }
}

/// Creates the key file with one fresh key, or reads the one a concurrent instance just wrote.
fn create_file(data_dir: &Path, path: &Path) -> Result<KeyFile, VaultError> {
    keyfile::ensure_dir(data_dir)?;
    let key = StoredKey { id: new_key_id(), material: Secret::new(random_key()), created_at: mesh_core::id::now_ms() };
    let fresh = KeyFile { primary: key.id.clone(), keys: vec![key] };
    if keyfile::create_new(path, &fresh)? {
        tracing::info!(path = %path.display(), primary = %fresh.primary, "created vault key file; back it up: secrets are lost without it");
        return Ok(fresh);
    }
    keyfile::read(path)?.ok_or_else(|| VaultError::KeyFile {
        path: path.to_path_buf(),
        reason: "disappeared while being created".into(),
    })
}

fn cipher(entry: &Entry) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(entry.material.expose()))
}

fn new_key_id() -> String {
    format!("k_{}", mesh_core::id::random_base62(12))
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}
