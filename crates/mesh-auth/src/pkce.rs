//! Proof Key for Code Exchange (RFC 7636), S256 only: OAuth 2.1 and the MCP authorization spec
//! require PKCE, and `plain` protects nothing against an attacker who can read the request.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The only challenge method the mesh accepts (and advertises in its metadata).
pub const METHOD: &str = "S256";

/// Why a PKCE parameter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// `code_challenge_method` other than `S256` (absent counts as `plain`, RFC 7636 §4.3).
    #[error("code_challenge_method must be S256")]
    Method,
    /// A challenge that is not 43 base64url characters (a SHA-256 digest).
    #[error("code_challenge must be the base64url SHA-256 of the verifier (43 characters)")]
    Challenge,
    /// A verifier outside RFC 7636 §4.1: 43 to 128 unreserved characters.
    #[error("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")]
    Verifier,
    /// The verifier does not hash to the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// Checks an authorization request's challenge and method, before a code is issued for it.
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), PkceError> {
    if method != Some(METHOD) {
        return Err(PkceError::Method);
    }
    let digest_len = URL_SAFE_NO_PAD.decode(challenge).map(|d| d.len());
    if challenge.len() != 43 || digest_len != Ok(32) {
        return Err(PkceError::Challenge);
    }
    Ok(())
}

/// The S256 challenge of `verifier`: BASE64URL(SHA-256(verifier)), unpadded (RFC 7636 §4.2).
pub fn challenge_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Checks a token request's verifier against the challenge stored with its code.
pub fn verify(verifier: &str, challenge: &str) -> Result<(), PkceError> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return Err(PkceError::Verifier);
    }
    let computed = challenge_s256(verifier);
    // Both sides are public by the time the token request is made; equal length, so a plain
    // comparison reveals nothing a constant-time one would hide.
    if computed == challenge {
        Ok(())
    } else {
        Err(PkceError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_example_verifies_and_nothing_else_does() {
        assert_eq!(check_challenge(CHALLENGE, Some("S256")), Ok(()));
        assert_eq!(verify(VERIFIER, CHALLENGE), Ok(()));
        let cases: [(&str, &str, PkceError); 5] = [
            (&VERIFIER[..42], CHALLENGE, PkceError::Verifier),
            ("dBjftJeZ4CVP+mB92K27uhbUJU1p1r/wW1gFWFOEjXk", CHALLENGE, PkceError::Verifier),
            (&"a".repeat(129), CHALLENGE, PkceError::Verifier),
            ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK", CHALLENGE, PkceError::Mismatch),
            (VERIFIER, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cm", PkceError::Mismatch),
        ];
        for (verifier, challenge, want) in cases {
            assert_eq!(verify(verifier, challenge), Err(want), "{verifier} / {challenge}");
        }
    }

    #[test]
    fn only_s256_challenges_of_a_digest_are_accepted() {
        for method in [None, Some("plain"), Some("s256"), Some("S512")] {
            assert_eq!(check_challenge(CHALLENGE, method), Err(PkceError::Method), "{method:?}");
        }
        for challenge in ["", &CHALLENGE[..42], "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", &format!("{CHALLENGE}A")]
        {
            assert_eq!(check_challenge(challenge, Some("S256")), Err(PkceError::Challenge), "{challenge}");
        }
    }
}
