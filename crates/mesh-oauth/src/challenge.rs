//! The `WWW-Authenticate` challenge of a protected MCP server (RFC 6750 §3, RFC 9728 §5.1): where
//! its protected resource metadata lives, the scopes a request needs, and why it was refused.
//!
//! Parsed by hand: the header's grammar (RFC 9110 §11.6.1) allows several challenges in one
//! value and commas inside quoted strings, which a split on `,` gets wrong, and no maintained
//! crate parses auth-params without pulling an HTTP client framework with it.

/// What a `Bearer` challenge said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    /// `resource_metadata`: the URL of the protected resource metadata (RFC 9728).
    pub resource_metadata: Option<String>,
    /// `scope`: the scopes the request needs, space-separated.
    pub scope: Option<String>,
    /// `error`: `invalid_token`, `insufficient_scope`, …
    pub error: Option<String>,
}

impl Challenge {
    /// Whether the server refused the token for its scopes (a step-up is due, RFC 6750 §3.1).
    pub fn insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// The `Bearer` challenge among `values` (each a `WWW-Authenticate` header value), if any.
pub fn bearer<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    values
        .into_iter()
        .find_map(|v| challenges(v).into_iter().find(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")))
        .map(|(_, params)| {
            let mut c = Challenge::default();
            for (name, value) in params {
                let slot = match name.to_ascii_lowercase().as_str() {
                    "resource_metadata" => &mut c.resource_metadata,
                    "scope" => &mut c.scope,
                    "error" => &mut c.error,
                    _ => continue,
                };
                // The first occurrence wins: a repeated parameter is invalid (RFC 9110 §11.2).
                if slot.is_none() {
                    *slot = Some(value);
                }
            }
            c
        })
}

/// The `Bearer` challenge among a response's `WWW-Authenticate` headers, if any.
pub fn of_response(headers: &reqwest::header::HeaderMap) -> Option<Challenge> {
    bearer(headers.get_all(reqwest::header::WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()))
}

/// The challenges of one header value: (scheme, auth-params). A token68 is skipped.
fn challenges(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut p = Parser { s: value.as_bytes(), at: 0 };
    loop {
        p.skip(|b| b == b' ' || b == b'\t' || b == b',');
        let Some(word) = p.token() else { break };
        p.skip(|b| b == b' ' || b == b'\t');
        if p.peek() == Some(b'=') {
            // `name=value` after a scheme: a parameter of the current challenge.
            p.at += 1;
            p.skip(|b| b == b' ' || b == b'\t');
            let value = match p.peek() {
                Some(b'"') => p.quoted(),
                _ => p.token().unwrap_or_default(),
            };
            match out.last_mut() {
                Some((_, params)) => params.push((word, value)),
                None => return out,
            }
        } else {
            // A new challenge; a token68 right after it (no `=` pairs) carries nothing we use.
            out.push((word, Vec::new()));
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.at += 1;
        }
    }

    /// A token (RFC 9110 tchar), also taking token68's `/`, `+` and trailing `=` padding only
    /// where no `=` pair follows — good enough to step over it.
    fn token(&mut self) -> Option<String> {
        let start = self.at;
        self.skip(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b));
        (self.at > start).then(|| String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    /// A quoted string with `\` escapes; an unterminated one ends at the end of the value.
    fn quoted(&mut self) -> String {
        self.at += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.at += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bearer_challenge_among_others() {
        let c = bearer([
            r#"Basic realm="x", Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp""#,
        ])
        .expect("a bearer challenge");
        assert_eq!(c.error.as_deref(), Some("insufficient_scope"));
        assert!(c.insufficient_scope());
        assert_eq!(c.scope.as_deref(), Some("files:read files:write"));
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://mcp.example/.well-known/oauth-protected-resource/mcp")
        );
    }

    #[test]
    fn quoted_commas_escapes_case_and_bare_values() {
        let c = bearer([r#"bearer Scope="a,b \"c\"", error=invalid_token, realm="r""#]).expect("bearer");
        assert_eq!(c.scope.as_deref(), Some(r#"a,b "c""#));
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
        assert_eq!(c.resource_metadata, None);
    }

    #[test]
    fn no_bearer_no_challenge_and_a_bare_scheme_is_empty() {
        assert_eq!(bearer([r#"Basic realm="x""#]), None);
        assert_eq!(bearer(Vec::<&str>::new()), None);
        assert_eq!(bearer(["Bearer"]), Some(Challenge::default()));
        // Across several header values, the first Bearer one.
        let c = bearer(["Basic realm=x", r#"Bearer scope="s""#]).expect("bearer");
        assert_eq!(c.scope.as_deref(), Some("s"));
    }

    #[test]
    fn a_repeated_parameter_keeps_the_first() {
        let c = bearer([r#"Bearer scope="one", scope="two""#]).expect("bearer");
        assert_eq!(c.scope.as_deref(), Some("one"));
    }

    #[test]
    fn garbage_never_panics() {
        for v in ["", "=", "Bearer =", "Bearer scope=\"", "Bearer ,,, ,", "\"\"\"", "Bearer a=b=c", "Bearer x\u{7f}"] {
            let _ = bearer([v]);
        }
    }
}
