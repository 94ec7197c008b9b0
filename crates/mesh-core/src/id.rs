//! Random identifiers and tokens.
//!
//! Object ids are 20 base62 characters with a short type prefix (`conn_…`, `org_…`) so that a
//! human reading a log line knows what kind of object an id names. Tokens (session ids, API keys)
//! use the OS CSPRNG through `rand::rngs::OsRng`-seeded `thread_rng`.

use rand::Rng;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` characters of cryptographically random base62.
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char).collect()
}

/// A new object id such as `conn_3kP…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_base62(20))
}

/// The current time in milliseconds since the Unix epoch, the unit every stored timestamp uses.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_are_distinct() {
        let a = new_id("conn");
        let b = new_id("conn");
        assert!(a.starts_with("conn_") && a.len() == 25);
        assert_ne!(a, b);
        assert!(random_base62(64).bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
