//! Reading a reply's `result` while `Message::parse` passes over it anyway: only whether it is
//! there and its `isError`, with nothing allocated and no value refused.
//!
//! Why not a derived struct: `parse` must accept any JSON value as a result (a derived struct
//! refuses non-objects and mistyped fields), and the audit trail would otherwise read every tool
//! reply a second time just for this flag.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// A `result` that was present, and its `isError` when that is a boolean given once.
pub(super) struct ResultProbe {
    pub is_error: Option<bool>,
}

impl<'de> Deserialize<'de> for ResultProbe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ResultProbe { is_error: d.deserialize_any(Probe::Result)? })
    }
}

/// What one probe reads: a result (its `isError` member) or the value of `isError` (a boolean).
/// Anything else is skipped without being kept.
#[derive(Clone, Copy)]
enum Probe {
    Result,
    Flag,
}

/// The value a probe found: for `Result` and `Flag`, the flag.
type Found = Option<bool>;

impl<'de> Visitor<'de> for Probe {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Found, E> {
        Ok(matches!(self, Probe::Flag).then_some(v))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Found, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Found, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Found, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Found, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Found, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut flag = None;
        let mut seen = false;
        while let Some(IsErrorKey(is_flag)) = map.next_key()? {
            if is_flag && matches!(self, Probe::Result) {
                let v = map.next_value_seed(FlagSeed)?;
                // Given twice, it is not known which one the client reads: neither counts.
                flag = if seen { None } else { v };
                seen = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(flag)
    }
}

/// Reads `isError`'s value through `Probe::Flag`.
struct FlagSeed;

impl<'de> de::DeserializeSeed<'de> for FlagSeed {
    type Value = Found;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
        d.deserialize_any(Probe::Flag)
    }
}

/// A map key, compared with `isError` where it lies (escapes decoded by the parser).
struct IsErrorKey(bool);

impl<'de> Deserialize<'de> for IsErrorKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = IsErrorKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IsErrorKey, E> {
                Ok(IsErrorKey(v == "isError"))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}
