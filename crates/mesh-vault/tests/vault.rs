//! The vault's contract, exercised through its public API only.

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use mesh_vault::{Keyring, VaultError};

const AAD: &[u8] = b"conn_x/header/Authorization";

fn ring(id: &str, key: [u8; 32]) -> Keyring {
    Keyring::from_keys(vec![(id.to_string(), key)], id)
}

#[test]
fn sealed_secrets_open_with_the_same_key_and_aad() {
    let ring = ring("k_a", [7; 32]);
    let sealed = ring.seal(b"Bearer hunter2", AAD).unwrap();
    assert_eq!(sealed.key_id, "k_a");
    assert!(!sealed.ciphertext.contains("hunter2"));
    assert_eq!(ring.open(&sealed.key_id, &sealed.ciphertext, AAD).unwrap(), b"Bearer hunter2");
    let empty = ring.seal(b"", AAD).unwrap();
    assert_eq!(ring.open("k_a", &empty.ciphertext, AAD).unwrap(), b"");
}

#[test]
fn each_seal_uses_a_fresh_nonce() {
    let ring = ring("k_a", [7; 32]);
    let a = ring.seal(b"same", AAD).unwrap();
    let b = ring.seal(b"same", AAD).unwrap();
    assert_ne!(a.ciphertext, b.ciphertext);
    let raw = base64::engine::general_purpose::STANDARD.decode(&a.ciphertext).unwrap();
    assert_eq!(raw.len(), 12 + 4 + 16, "nonce || ciphertext || tag");
}

#[test]
fn a_secret_moved_to_another_place_does_not_open() {
    let ring = ring("k_a", [7; 32]);
    let sealed = ring.seal(b"token", AAD).unwrap();
    let err = ring.open("k_a", &sealed.ciphertext, b"conn_y/header/Authorization").unwrap_err();
    assert!(matches!(err, VaultError::Decrypt), "{err:?}");
}

#[test]
fn tampered_or_malformed_ciphertext_does_not_open() {
    let b64 = base64::engine::general_purpose::STANDARD;
    let ring = ring("k_a", [7; 32]);
    let sealed = ring.seal(b"token", AAD).unwrap();
    let mut raw = b64.decode(&sealed.ciphertext).unwrap();
    for i in [0, 12, raw.len() - 1] {
        raw[i] ^= 1;
        let err = ring.open("k_a", &b64.encode(&raw), AAD).unwrap_err();
        assert!(matches!(err, VaultError::Decrypt), "byte {i}: {err:?}");
        raw[i] ^= 1;
    }
    for junk in ["", "not base64!", &b64.encode([0u8; 27])] {
        assert!(matches!(ring.open("k_a", junk, AAD), Err(VaultError::Decrypt)), "{junk:?}");
    }
}

#[test]
fn unknown_key_id_is_named_and_a_different_key_under_the_same_id_fails() {
    let sealed = ring("k_a", [7; 32]).seal(b"token", AAD).unwrap();
    let err = ring("k_b", [7; 32]).open("k_a", &sealed.ciphertext, AAD).unwrap_err();
    assert!(matches!(&err, VaultError::UnknownKey(id) if id == "k_a"), "{err:?}");
    let err = ring("k_a", [8; 32]).open("k_a", &sealed.ciphertext, AAD).unwrap_err();
    assert!(matches!(err, VaultError::Decrypt), "{err:?}");
    assert!(!err.to_string().contains("token"));
}

#[test]
fn key_file_is_created_private_and_reloads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let ring = Keyring::load_or_create(&data, None, &[]).unwrap();
    let file = data.join("vault-keys.json");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(!ring.is_env_managed());
    let id = ring.primary_id().to_string();
    assert!(id.starts_with("k_") && id.len() == 14, "{id}");
    assert_eq!(ring.key_ids(), vec![id.clone()]);

    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["primary"], id.as_str());
    assert_eq!(json["keys"][0]["id"], id.as_str());
    assert!(json["keys"][0]["created_at"].as_i64().unwrap() > 1_600_000_000_000);

    let sealed = ring.seal(b"token", AAD).unwrap();
    let again = Keyring::load_or_create(&data, None, &[]).unwrap();
    assert_eq!(again.primary_id(), id);
    assert_eq!(again.key_ids(), ring.key_ids());
    assert_eq!(again.open(&sealed.key_id, &sealed.ciphertext, AAD).unwrap(), b"token");
    let leftovers: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["vault-keys.json"], "no temporary files left behind");
}

#[test]
fn rotation_seals_with_the_new_key_and_still_opens_old_ciphertexts() {
    let dir = tempfile::tempdir().unwrap();
    let mut ring = Keyring::load_or_create(dir.path(), None, &[]).unwrap();
    let first = ring.primary_id().to_string();
    let old = ring.seal(b"old secret", AAD).unwrap();

    let second = ring.rotate(dir.path()).unwrap();
    assert_ne!(second, first);
    assert_eq!(ring.primary_id(), second);
    let new = ring.seal(b"new secret", AAD).unwrap();
    assert_eq!(new.key_id, second);
    assert_eq!(ring.open(&old.key_id, &old.ciphertext, AAD).unwrap(), b"old secret");

    let file = dir.path().join("vault-keys.json");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let reloaded = Keyring::load_or_create(dir.path(), None, &[]).unwrap();
    assert_eq!(reloaded.primary_id(), second);
    assert_eq!(reloaded.key_ids().len(), 2);
    assert_eq!(reloaded.open(&old.key_id, &old.ciphertext, AAD).unwrap(), b"old secret");
    assert_eq!(reloaded.open(&new.key_id, &new.ciphertext, AAD).unwrap(), b"new secret");
}

#[test]
fn rotating_one_instance_keeps_keys_another_instance_added() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Keyring::load_or_create(dir.path(), None, &[]).unwrap();
    let mut b = Keyring::load_or_create(dir.path(), None, &[]).unwrap();
    let from_a = a.rotate(dir.path()).unwrap();
    let sealed_by_a = a.seal(b"a", AAD).unwrap();
    b.rotate(dir.path()).unwrap();
    let reloaded = Keyring::load_or_create(dir.path(), None, &[]).unwrap();
    assert!(reloaded.key_ids().contains(&from_a));
    assert_eq!(reloaded.open(&sealed_by_a.key_id, &sealed_by_a.ciphertext, AAD).unwrap(), b"a");
}

#[test]
fn env_key_in_base64_or_hex_is_primary_and_no_file_is_created() {
    let key = [42u8; 32];
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let dir = tempfile::tempdir().unwrap();
    let from_b64 = Keyring::load_or_create(dir.path(), Some(&b64), &[]).unwrap();
    let from_hex = Keyring::load_or_create(dir.path(), Some(&hex::encode(key)), &[]).unwrap();
    assert!(from_b64.is_env_managed());
    assert!(from_b64.primary_id().starts_with("env-") && from_b64.primary_id().len() == 16);
    assert_eq!(from_b64.primary_id(), from_hex.primary_id());
    assert_eq!(from_b64.key_ids(), vec![from_b64.primary_id().to_string()]);
    assert!(!dir.path().join("vault-keys.json").exists());

    let sealed = from_b64.seal(b"token", AAD).unwrap();
    assert_eq!(from_hex.open(&sealed.key_id, &sealed.ciphertext, AAD).unwrap(), b"token");
}

#[test]
fn env_key_takes_over_from_an_existing_file_which_still_opens_old_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file_ring = Keyring::load_or_create(dir.path(), None, &[]).unwrap();
    let old = file_ring.seal(b"old", AAD).unwrap();
    let mut ring = Keyring::load_or_create(dir.path(), Some(&hex::encode([1u8; 32])), &[]).unwrap();
    assert!(ring.primary_id().starts_with("env-"));
    assert_eq!(ring.key_ids().len(), 2);
    assert_eq!(ring.open(&old.key_id, &old.ciphertext, AAD).unwrap(), b"old");
    let err = ring.rotate(dir.path()).unwrap_err();
    assert!(matches!(err, VaultError::EnvManaged), "{err:?}");
    assert!(err.to_string().contains("MESH_ENCRYPTION_KEYS_OLD"));
}

#[test]
fn env_rotation_keeps_old_env_keys_for_opening() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (hex::encode([1u8; 32]), hex::encode([2u8; 32]));
    let before = Keyring::load_or_create(dir.path(), Some(&k1), &[]).unwrap();
    let old = before.seal(b"old", AAD).unwrap();
    let olds = vec![String::new(), k1.clone(), " ".to_string()];
    let after = Keyring::load_or_create(dir.path(), Some(&k2), &olds).unwrap();
    assert_ne!(after.primary_id(), before.primary_id());
    assert_eq!(after.seal(b"x", AAD).unwrap().key_id, after.primary_id());
    assert_eq!(after.open(&old.key_id, &old.ciphertext, AAD).unwrap(), b"old");
    let without_old = Keyring::load_or_create(dir.path(), Some(&k2), &[]).unwrap();
    assert!(matches!(without_old.open(&old.key_id, &old.ciphertext, AAD), Err(VaultError::UnknownKey(_))));
}

#[test]
fn bad_env_keys_are_refused_with_a_message_that_names_the_setting_but_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let short = base64::engine::general_purpose::STANDARD.encode([9u8; 16]);
    for (value, expect) in [("s3cr3t-passw0rd!", "neither base64 nor"), (short.as_str(), "decodes to 16 bytes")] {
        let err = Keyring::load_or_create(dir.path(), Some(value), &[]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, VaultError::BadKey(_)), "{err:?}");
        assert!(msg.contains("MESH_ENCRYPTION_KEY") && msg.contains(expect), "{msg}");
        assert!(!msg.contains(value), "{msg}");
    }
    let good = hex::encode([1u8; 32]);
    let err = Keyring::load_or_create(dir.path(), Some(&good), &[good.clone(), "nope".into()]).unwrap_err();
    assert!(err.to_string().contains("MESH_ENCRYPTION_KEYS_OLD entry 2"), "{err}");
    assert!(!dir.path().join("vault-keys.json").exists());
}

#[test]
fn a_corrupt_key_file_is_an_error_not_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault-keys.json");
    for body in [
        "{not json",
        r#"{"version":2,"primary":"k_a","keys":[]}"#,
        r#"{"version":1,"primary":"k_b","keys":[{"id":"k_a","key":"AAAA","created_at":1}]}"#,
        r#"{"version":1,"primary":"k_a","keys":[{"id":"k_a","key":"AAAA","created_at":"S3CR3TKEY"}]}"#,
    ] {
        std::fs::write(&file, body).unwrap();
        let err = Keyring::load_or_create(dir.path(), None, &[]).unwrap_err();
        assert!(matches!(err, VaultError::KeyFile { .. }), "{body}: {err:?}");
        assert!(!err.to_string().contains("S3CR3TKEY"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), body, "file left untouched");
    }
}

#[test]
fn debug_output_shows_ids_but_no_key_material() {
    let key = [0xabu8; 32];
    let ring = ring("k_a", key);
    let debug = format!("{ring:?}");
    assert!(debug.contains("k_a"), "{debug}");
    assert!(!debug.contains("ab, ") && !debug.contains("171") && !debug.contains(&hex::encode(key)), "{debug}");
}
