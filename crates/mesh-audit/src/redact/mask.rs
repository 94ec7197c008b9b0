//! Credentials inside a connection's URL and command line: masked wherever the connection is
//! shown (views, audit rows). Users put tokens there (`https://user:pass@host`, `?token=…`,
//! `--api-key xyz`) although headers and env go to the vault; a viewer must not read them.

use super::{is_secret_key, looks_like_secret, REDACTED};

/// `raw` with a userinfo password and the values of credential-named query parameters masked.
/// Text that is not a URL is returned unchanged.
pub fn mask_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else { return raw.to_string() };
    let mut changed = false;
    if url.password().is_some() {
        changed |= url.set_password(Some(REDACTED)).is_ok();
    }
    let secret_query = url.query_pairs().any(|(k, v)| is_secret_key(&k) || looks_like_secret(&v));
    if secret_query {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let masked = is_secret_key(&k) || looks_like_secret(&v);
                (k.into_owned(), if masked { REDACTED.to_string() } else { v.into_owned() })
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        url.to_string()
    } else {
        raw.to_string()
    }
}

/// `args` with credentials masked: `--token=…` and `TOKEN=…` values, the argument after a
/// credential-named flag (`--api-key xyz`), secret-shaped arguments, and URLs' credentials.
pub fn mask_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut next_is_secret = false;
    for a in args {
        if next_is_secret {
            next_is_secret = false;
            out.push(REDACTED.to_string());
            continue;
        }
        let flag = a.trim_start_matches('-');
        if let Some((name, _)) = flag.split_once('=') {
            if is_secret_key(name) {
                out.push(format!("{}={REDACTED}", &a[..a.len() - flag.len() + name.len()]));
                continue;
            }
        }
        if a.starts_with('-') && !a.contains('=') && is_secret_key(flag) {
            next_is_secret = true;
            out.push(a.clone());
            continue;
        }
        if looks_like_secret(a) {
            out.push(REDACTED.to_string());
        } else if a.contains("://") {
            out.push(mask_url(a));
        } else {
            out.push(a.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_and_token_parameters() {
        let cases = [
            ("https://api.example.com/mcp", "https://api.example.com/mcp"),
            ("https://bob:hunter2@api.example.com/mcp", "https://bob:%5BREDACTED%5D@api.example.com/mcp"),
            (
                "https://api.example.com/mcp?token=abc&region=eu",
                "https://api.example.com/mcp?token=%5BREDACTED%5D&region=eu",
            ),
            (
                "https://api.example.com/mcp?access_key=1&x=Bearer+abcdefghij",
                "https://api.example.com/mcp?access_key=%5BREDACTED%5D&x=%5BREDACTED%5D",
            ),
            ("not a url", "not a url"),
        ];
        for (raw, want) in cases {
            assert_eq!(mask_url(raw), want, "{raw}");
        }
    }

    #[test]
    fn command_lines_lose_credentials() {
        let args: Vec<String> = [
            "-y",
            "@scope/server",
            "--api-key",
            "plain-value",
            "--token=abc123",
            "GITHUB_TOKEN=ghp_x",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "https://u:p@h.example/x",
            "/srv/data",
            "--author",
            "ada",
        ]
        .map(String::from)
        .to_vec();
        let want = [
            "-y",
            "@scope/server",
            "--api-key",
            "[REDACTED]",
            "--token=[REDACTED]",
            "GITHUB_TOKEN=[REDACTED]",
            "[REDACTED]",
            "https://u:%5BREDACTED%5D@h.example/x",
            "/srv/data",
            "--author",
            "ada",
        ];
        assert_eq!(mask_args(&args), want);
    }
}
