//! Keys handed in through the environment (`MESH_ENCRYPTION_KEY`, `MESH_ENCRYPTION_KEYS_OLD`).

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::VaultError;

/// Accepts padded and unpadded base64: operators paste keys from many tools (`openssl rand
/// -base64 32` pads, others do not), and the padding carries no information.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes a 32-byte key given as 64 hex characters or as base64 (standard or URL-safe).
///
/// `setting` names where the value came from, so the error can say which variable to fix; the
/// message reports only the value's length, never its characters.
pub(crate) fn parse(value: &str, setting: &str) -> Result<[u8; 32], VaultError> {
    let value = value.trim();
    // Hex first: 64 hex characters are also valid base64 (of 48 bytes), so order matters.
    let decoded = if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(value).ok()
    } else {
        STANDARD.decode(value).or_else(|_| URL_SAFE.decode(value)).ok()
    };
    match decoded {
        Some(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            VaultError::BadKey(format!(
                "{setting} decodes to {} bytes; it must be exactly 32 bytes, given as base64 \
                 (44 characters) or hex (64 characters), e.g. from `openssl rand -base64 32`",
                bytes.len()
            ))
        }),
        None => Err(VaultError::BadKey(format!(
            "{setting} ({} characters) is neither base64 nor 64 hex characters; it must be 32 \
             random bytes, e.g. from `openssl rand -base64 32`",
            value.chars().count()
        ))),
    }
}

/// The stable id of an environment key: `env-` and 12 hex characters of its SHA-256.
///
/// Derived rather than configured so that the same key always gets the same id on every
/// instance, and so that a ciphertext says which of the env keys sealed it. A hash prefix of a
/// 256-bit random key reveals nothing usable about the key.
pub(crate) fn key_id(key: &[u8; 32]) -> String {
    let digest = Sha256::digest(key);
    format!("env-{}", &hex::encode(digest)[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hex_and_both_base64_alphabets_with_or_without_padding() {
        let key = [0xfbu8; 32];
        let forms = [
            hex::encode(key),
            hex::encode(key).to_uppercase(),
            base64::engine::general_purpose::STANDARD.encode(key),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(key),
            base64::engine::general_purpose::URL_SAFE.encode(key),
            format!("  {}\n", hex::encode(key)),
        ];
        for form in forms {
            assert_eq!(parse(&form, "K").unwrap(), key, "{form}");
        }
    }

    #[test]
    fn ids_are_stable_and_prefixed() {
        let id = key_id(&[1u8; 32]);
        assert!(id.starts_with("env-") && id.len() == 16, "{id}");
        assert_eq!(id, key_id(&[1u8; 32]));
        assert_ne!(id, key_id(&[2u8; 32]));
    }
}
