//! Whether JSON text holds anything [`super::redact`] would replace, read in one pass that keeps
//! nothing: a secret-looking key (whatever its value: the full redaction decides the rest) or a
//! secret-shaped string anywhere.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// `Some(false)`: nothing to redact, `raw` can be stored as it is. `Some(true)`: something may
/// be. `None`: not one JSON value.
pub(super) fn needs_redaction(raw: &str) -> Option<bool> {
    let mut de = serde_json::Deserializer::from_str(raw);
    let found = Scan.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(found)
}

/// Visits any value; says whether it or anything inside it needs redaction.
#[derive(Clone, Copy)]
struct Scan;

impl<'de> DeserializeSeed<'de> for Scan {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(super::looks_like_secret(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(v) = seq.next_element_seed(Scan)? {
            found |= v;
        }
        Ok(found)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(secret_key) = map.next_key_seed(Key)? {
            found |= secret_key;
            found |= map.next_value_seed(Scan)?;
        }
        Ok(found)
    }
}

/// Visits an object key; says whether it names a credential.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(super::is_secret_key(v))
    }
}

#[cfg(test)]
mod tests {
    use super::needs_redaction;

    #[test]
    fn finds_what_redaction_would_replace_and_nothing_else() {
        assert_eq!(needs_redaction(r#"{"q":"weather in Paris","n":3,"tags":["a",{"b":null}]}"#), Some(false));
        assert_eq!(needs_redaction(r#"{"author":"Ann"}"#), Some(false));
        assert_eq!(needs_redaction(r#"{"db_password":"x"}"#), Some(true));
        assert_eq!(needs_redaction(r#"{"max_tokens":100}"#), Some(true), "a secret key; the redaction decides");
        assert_eq!(needs_redaction(r#"{"deep":[{"x":{"apiKey":"k"}}]}"#), Some(true));
        assert_eq!(needs_redaction(r#"{"header":"Bearer abcdefghijkl"}"#), Some(true), "a secret shape");
        assert_eq!(needs_redaction(r#"["ghp_0123456789012345678901234567890123"]"#), Some(true));
        assert_eq!(needs_redaction(r#"{"p\u0061ssword":"x"}"#), Some(true), "escaped key");
        assert_eq!(needs_redaction(r#"{"password":"x","password":"y"}"#), Some(true), "duplicate keys");
        assert_eq!(needs_redaction(r#"{"a":1} trailing"#), None);
        assert_eq!(needs_redaction("{nope"), None);
    }
}
