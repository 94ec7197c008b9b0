//! Envelope encryption of secrets at rest: AES-256-GCM, key ids, rotation.
//!
//! This is the only crate that turns stored ciphertext back into plaintext (upstream headers,
//! environment variables of stdio servers). The design:
//!
//! - **AES-256-GCM with a random 96-bit nonce per seal.** Authenticated, so a flipped bit fails
//!   loudly instead of yielding a wrong header. Random nonces are safe for far more secrets
//!   than a mesh stores (the bound is about 2^32 seals per key; rotation resets it).
//! - **Associated data binds a ciphertext to its place** (`conn_x/header/Authorization`), so
//!   someone who can write the database still cannot move a secret to another connection.
//! - **Every ciphertext names its key.** Rotation adds a key and makes it primary; old keys stay
//!   in the keyring, so old rows open until they are re-sealed, and nothing needs a flag day.
//! - **Keys come from a file or from the environment.** By default a key file in the data
//!   directory (created on first start, mode 0600). Operators with a secret manager instead set
//!   `MESH_ENCRYPTION_KEY` and rotate by moving the old value to `MESH_ENCRYPTION_KEYS_OLD`;
//!   env keys are never written to disk.
//! - **Nothing prints key material or plaintext**: not `Debug`, not error messages.
#![forbid(unsafe_code)]

mod env_key;
mod error;
mod keyfile;
mod keyring;

pub use error::VaultError;
pub use keyring::{Keyring, Sealed};
