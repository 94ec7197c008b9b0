//! What of a request may be stored: secret-looking argument values are replaced, and every text
//! is capped in size.
//!
//! Two tests decide that a value is a secret, and either is enough:
//! - **its key** names a credential: after lowercasing and dropping separators it contains one of
//!   [`SECRET_FRAGMENTS`] (`db_password`, `clientSecret`, `X-Api-Key`, `refresh_token`), or one of
//!   its words is in [`SECRET_WORDS`] (`auth`, `session_id` — but not `author`);
//! - **its shape** is a credential whatever the key: `Bearer …`/`Basic …`, a JWT, a PEM private
//!   key, or one of the mesh's own API keys.
//!
//! A matching key hides its whole value, objects and arrays included (`"auth": {"user": …}`), but
//! not numbers, booleans or null: `max_tokens: 100` holds no secret and is worth keeping.
//! Over-redaction is the accepted failure mode; the audit trail must never become the place
//! credentials leak from.

use serde_json::Value;

mod mask;
mod scan;

pub use mask::{mask_args, mask_url};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Key fragments that mark a credential wherever they appear in a key.
const SECRET_FRAGMENTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "privatekey",
    "accesskey",
    "cookie",
];

/// Words that mark a credential only as a whole word of the key (`auth` but not `author`).
const SECRET_WORDS: &[&str] = &["auth", "session", "pwd", "pass"];

/// Top-level arguments of management tools whose every value is a secret by construction: the
/// headers and environment of a connection go to the vault, whatever their names.
const MANAGEMENT_SECRET_MAPS: &[&str] = &["headers", "env"];

/// Redacts `raw` (JSON text) and caps the result at `max` bytes. Returns the text to store and
/// whether it is incomplete (cut, or omitted because it was not JSON).
pub fn arguments(raw: &str, max: usize) -> (Option<String>, bool) {
    arguments_of(raw, max, false)
}

/// [`arguments`] for a management tool call: also every value of `headers` and `env`.
pub fn management_arguments(raw: &str, max: usize) -> (Option<String>, bool) {
    arguments_of(raw, max, true)
}

fn arguments_of(raw: &str, max: usize, management: bool) -> (Option<String>, bool) {
    // Most arguments hold nothing to redact: a scan that builds nothing proves it, and the text
    // is stored as the client sent it (valid JSON: the scan parsed it). Every audited call pays
    // for this, so it must not cost a `Value` tree, its re-serialisation and a dozen allocations.
    if !management && scan::needs_redaction(raw) == Some(false) {
        let (text, cut) = cap(raw.to_string(), max);
        return (Some(text), cut);
    }
    let Ok(mut v) = serde_json::from_str::<Value>(raw) else {
        // The relay only passes JSON; anything else is not stored at all rather than stored
        // unredacted.
        return (None, true);
    };
    if management {
        for key in MANAGEMENT_SECRET_MAPS {
            match v.get_mut(*key) {
                Some(Value::Object(map)) => map.values_mut().for_each(|x| *x = Value::String(REDACTED.into())),
                // Not the shape the tools take (a list of pairs, a string): still all secret.
                Some(other) if !other.is_null() => *other = Value::String(REDACTED.into()),
                _ => {}
            }
        }
        // A connection's URL and command line may carry credentials of their own.
        if let Some(Value::String(url)) = v.get_mut("url") {
            *url = mask_url(url);
        }
        if let Some(Value::Array(items)) = v.get_mut("args") {
            let args: Vec<String> = items.iter().filter_map(|a| a.as_str().map(String::from)).collect();
            if args.len() == items.len() {
                *items = mask_args(&args).into_iter().map(Value::String).collect();
            }
        }
    }
    redact(&mut v);
    let text = v.to_string();
    let (text, cut) = cap(text, max);
    (Some(text), cut)
}

/// Replaces secret-looking values inside `v`, in place.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if is_secret_key(k) && !matches!(child, Value::Number(_) | Value::Bool(_) | Value::Null) {
                    *child = Value::String(REDACTED.into());
                } else {
                    redact(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(s) if looks_like_secret(s) => *s = REDACTED.into(),
        _ => {}
    }
}

/// Whether an object key names a credential.
pub fn is_secret_key(key: &str) -> bool {
    // Every key of every audited call passes here: short ASCII keys (nearly all) are checked
    // without allocating. Anything else takes the general path, whose Unicode lowercasing can
    // turn a non-ASCII character into an ASCII one (the Kelvin sign becomes `k`).
    if key.len() <= ASCII_KEY_MAX && key.is_ascii() {
        return is_secret_ascii_key(key.as_bytes());
    }
    is_secret_key_general(key)
}

fn is_secret_key_general(key: &str) -> bool {
    let joined: String = key.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    SECRET_FRAGMENTS.iter().any(|f| joined.contains(f)) || words(key).iter().any(|w| SECRET_WORDS.contains(&w.as_str()))
}

/// The longest key [`is_secret_ascii_key`] checks on the stack.
const ASCII_KEY_MAX: usize = 128;

/// [`is_secret_key`] for an ASCII key of at most [`ASCII_KEY_MAX`] bytes, with the same rules.
fn is_secret_ascii_key(key: &[u8]) -> bool {
    let mut joined = [0u8; ASCII_KEY_MAX];
    let mut n = 0;
    for &b in key.iter().filter(|b| b.is_ascii_alphanumeric()) {
        joined[n] = b.to_ascii_lowercase();
        n += 1;
    }
    let joined = &joined[..n];
    if SECRET_FRAGMENTS.iter().any(|f| joined.windows(f.len()).any(|w| w == f.as_bytes())) {
        return true;
    }
    // Words: split at separators and at lower→upper camel-case steps, as `words` does.
    let is_word = |w: &[u8]| !w.is_empty() && SECRET_WORDS.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(w));
    let mut start = 0;
    let mut prev_lower = false;
    for (i, &b) in key.iter().enumerate() {
        if !b.is_ascii_alphanumeric() {
            if is_word(&key[start..i]) {
                return true;
            }
            start = i + 1;
            prev_lower = false;
            continue;
        }
        if b.is_ascii_uppercase() && prev_lower {
            if is_word(&key[start..i]) {
                return true;
            }
            start = i;
        }
        prev_lower = b.is_ascii_lowercase() || b.is_ascii_digit();
    }
    is_word(&key[start..])
}

/// The lowercase words of a key: split at separators and at lower→upper camel-case steps.
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            out.extend((!cur.is_empty()).then(|| std::mem::take(&mut cur)));
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    out.extend((!cur.is_empty()).then_some(cur));
    out
}

/// Whether a string value is a credential by its shape alone.
pub fn looks_like_secret(s: &str) -> bool {
    let t = s.trim();
    // An HTTP credential: a scheme, one space, one token (RFC 9110 token68 characters).
    if let Some((scheme, cred)) = t.split_once(' ') {
        let token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
        if (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("basic"))
            && cred.len() >= 8
            && cred.bytes().all(token68)
        {
            return true;
        }
    }
    if t.contains("-----BEGIN") && t.contains("PRIVATE KEY") {
        return true;
    }
    // The mesh's own API keys: `mesh_` + 40 base62.
    if t.len() == 45 && t.starts_with("mesh_") && t[5..].bytes().all(|b| b.is_ascii_alphanumeric()) {
        return true;
    }
    // The mesh's own OAuth secrets (`mesh-admin` `oauth::secret`): a client secret, a code, an
    // access or refresh token, a login session — a four-character prefix and 43 base62.
    if t.len() == 47
        && ["mcs_", "mac_", "mat_", "mrt_", "mls_"].iter().any(|p| t.starts_with(p))
        && t[4..].bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return true;
    }
    // Well-known token prefixes (GitHub, OpenAI-style, Slack, AWS access key ids), followed by a
    // long unbroken token.
    let tokenish = |rest: &str, min: usize| {
        rest.len() >= min && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    for (prefix, min) in [
        ("ghp_", 30),
        ("gho_", 30),
        ("ghs_", 30),
        ("github_pat_", 30),
        ("sk-", 20),
        ("xoxb-", 20),
        ("xoxp-", 20),
        ("AKIA", 16),
    ] {
        if let Some(rest) = t.strip_prefix(prefix) {
            if tokenish(rest, min) {
                return true;
            }
        }
    }
    is_jwt(t)
}

/// Three base64url parts, the first a JSON header (`eyJ` = `{"`). Checked on every string value
/// of every call: cheap rejections first, nothing allocated.
fn is_jwt(t: &str) -> bool {
    t.starts_with("eyJ")
        && t.len() >= 30
        && t.split('.').count() == 3
        && t.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// Cuts `s` to at most `max` bytes on a character boundary; returns whether it was cut.
pub fn cap(mut s: String, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    (s, true)
}

/// Caps free text (error messages, names) and marks a cut with `…`. Takes the string by value:
/// the common case (short, no NUL) stores it as it came, without a copy.
pub fn cap_text(s: String, max: usize) -> String {
    let (mut t, cut) = cap(clean(s), max);
    if cut {
        t.push('…');
    }
    t
}

/// Replaces NUL characters, which PostgreSQL refuses in TEXT: one such character must not make
/// a whole batch unwritable.
pub fn clean(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_ascii_key_check_agrees_with_the_general_one() {
        let pieces = [
            "",
            "auth",
            "Auth",
            "author",
            "session",
            "SessionId",
            "id",
            "_",
            "-",
            " ",
            "X",
            "pass",
            "word",
            "Pwd",
            "token",
            "api",
            "Key",
            "9",
            "ab",
            "PASS",
            "se",
            "cret",
            "Bearer",
        ];
        let mut checked = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let key = format!("{a}{b}{c}");
                    assert_eq!(is_secret_ascii_key(key.as_bytes()), is_secret_key_general(&key), "key {key:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, pieces.len().pow(3));
        // Long and non-ASCII keys take the general path.
        assert!(is_secret_key(&format!("{}_password", "x".repeat(200))));
        assert!(is_secret_key("\u{212A}ey_secret"));
        assert!(!is_secret_key("d\u{E9}tails"));
    }

    #[test]
    fn secret_keys() {
        for k in [
            "password",
            "PASSWORD",
            "db_password",
            "passwd",
            "clientSecret",
            "client_secret",
            "token",
            "accessToken",
            "refresh-token",
            "api_key",
            "apiKey",
            "X-Api-Key",
            "apikey",
            "Authorization",
            "auth",
            "x-auth",
            "authHeader",
            "credentials",
            "private_key",
            "privateKey",
            "aws_access_key_id",
            "session",
            "sessionId",
            "session_id",
            "Cookie",
            "set-cookie",
            "pwd",
        ] {
            assert!(is_secret_key(k), "{k} should be redacted");
        }
        for k in ["author", "authority", "query", "path", "name", "sessions", "message", "compass", "passenger"] {
            assert!(!is_secret_key(k), "{k} should be kept");
        }
    }

    #[test]
    fn secret_values_by_shape() {
        for v in [
            "Bearer abcdefghijklmnop",
            "bearer abcdefghijkl",
            "Basic dXNlcjpwYXNz",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE…",
            "mesh_0123456789abcdefghijABCDEFGHIJ0123456789",
            "mat_0123456789abcdefghijABCDEFGHIJ0123456789abc",
            "mrt_0123456789abcdefghijABCDEFGHIJ0123456789abc",
            "mcs_0123456789abcdefghijABCDEFGHIJ0123456789abc",
            "ghp_0123456789abcdefghijABCDEFGHIJ0123",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
            "xoxb-1234567890-abcdefghijkl",
            "AKIAIOSFODNN7EXAMPLE",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ] {
            assert!(looks_like_secret(v), "{v} should be redacted");
        }
        for v in [
            "hello",
            "Bearer",
            "basic usage of the API",
            "mesh_short",
            "mat_short",
            "a.b.c",
            "https://example.com/x.y.z",
            "sk-short",
            "ghp_",
        ] {
            assert!(!looks_like_secret(v), "{v} should be kept");
        }
    }

    #[test]
    fn nested_objects_and_arrays_are_redacted() {
        let mut v = json!({
            "query": "select 1",
            "password": "hunter2",
            "max_tokens": 100,
            "token": null,
            "auth": {"user": "bob", "pass": "x"},
            "headers": [{"name": "X", "Authorization": "Bearer abcdefghijkl"}, "Bearer zyxwvutsrqpo"],
            "deep": {"deeper": {"api_key": ["k1", "k2"], "note": "fine"}},
            "author": "Ada"
        });
        redact(&mut v);
        assert_eq!(
            v,
            json!({
                "query": "select 1",
                "password": REDACTED,
                "max_tokens": 100,
                "token": null,
                "auth": REDACTED,
                "headers": [{"name": "X", "Authorization": REDACTED}, REDACTED],
                "deep": {"deeper": {"api_key": REDACTED, "note": "fine"}},
                "author": "Ada"
            })
        );
    }

    #[test]
    fn arguments_are_redacted_then_capped() {
        let (text, cut) = arguments(r#"{"password":"hunter2","q":"ok"}"#, 4096);
        assert_eq!(text.as_deref(), Some(r#"{"password":"[REDACTED]","q":"ok"}"#));
        assert!(!cut);

        let big = json!({"password": "hunter2", "blob": "é".repeat(5000)}).to_string();
        let (text, cut) = arguments(&big, 4096);
        let text = text.unwrap();
        assert!(cut && text.len() <= 4096 && text.len() > 4090, "{}", text.len());
        assert!(!text.contains("hunter2"), "redaction happens before the cut");

        assert_eq!(arguments("not json", 4096), (None, true), "never stored unredacted");

        // A connection's headers and env are secrets whatever they are called.
        let create =
            r#"{"slug":"gh","env":{"GITHUB_PAT_X":"plain-looking"},"headers":{"X-Custom":"v"},"args":["--verbose"]}"#;
        let (text, _) = management_arguments(create, 4096);
        assert_eq!(
            text.as_deref(),
            Some(
                r#"{"slug":"gh","env":{"GITHUB_PAT_X":"[REDACTED]"},"headers":{"X-Custom":"[REDACTED]"},"args":["--verbose"]}"#
            )
        );
        assert!(arguments(create, 4096).0.unwrap().contains("plain-looking"), "only for management calls");
    }

    #[test]
    fn oauth_management_arguments_keep_passwords_and_client_secrets_out() {
        // USER_PASSWORD_SET, and PUT /api/v1/users/me/password's body as REST records it.
        for raw in [
            r#"{"password":"correct horse battery","user":"ada@example.test"}"#,
            r#"{"password":"correct horse battery"}"#,
        ] {
            let (text, _) = management_arguments(raw, 4096);
            let text = text.unwrap();
            assert!(!text.contains("correct horse") && text.contains(r#""password":"[REDACTED]""#), "{text}");
            assert_eq!(text.contains("ada@example.test"), raw.contains("ada@example.test"), "the target is kept");
        }
        // A client's secret under any spelling; the rest of a client's registration is kept.
        let create = r#"{"name":"Claude","redirectUris":["http://127.0.0.1/cb"],"confidential":true,"clientId":"claude","clientSecret":"mcs_abc","client_secret":"mcs_def"}"#;
        let (text, _) = management_arguments(create, 4096);
        assert_eq!(
            text.as_deref(),
            Some(
                r#"{"name":"Claude","redirectUris":["http://127.0.0.1/cb"],"confidential":true,"clientId":"claude","clientSecret":"[REDACTED]","client_secret":"[REDACTED]"}"#
            )
        );
    }

    #[test]
    fn caps_respect_character_boundaries() {
        assert_eq!(cap("abc".into(), 3), ("abc".into(), false));
        assert_eq!(cap("aé".into(), 2), ("a".into(), true));
        assert_eq!(cap_text("abcdef".into(), 3), "abc…");
        assert_eq!(cap_text("a\0b".into(), 10), "a\u{FFFD}b");
    }
}
