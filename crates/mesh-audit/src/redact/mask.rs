//! Credentials inside a connection's URL and command line: masked wherever the connection is
//! shown (views, audit rows). Users put tokens there (`https://user:pass@host`, `?token=…`,
//! `--api-key xyz`) although headers and env go to the vault; a viewer must not read them.

use super::{is_secret_key, looks_like_secret, REDACTED};

/// `raw` with a userinfo password and the values of credential-named query parameters masked.
/// Text that is not a URL is returned unchanged.
pub fn mask_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else { return raw.to_string() };
    let mut changed = false;
    // Userinfo is a credential whatever its shape (`https://ghp_…@host` has no password).
    if !url.username().is_empty() {
        changed |= url.set_username(REDACTED).is_ok();
    }
    if url.password().is_some() {
        changed |= url.set_password(Some(REDACTED)).is_ok();
    }
    // A secret in the path (`/api/mcp/s/<token>/mcp`, `/sk-…/`).
    let path_secret = url.path_segments().is_some_and(|mut segs| segs.any(is_secret_segment));
    if path_secret {
        let path: Vec<String> = url
            .path_segments()
            .map(|segs| segs.map(|p| if is_secret_segment(p) { REDACTED.to_string() } else { p.to_string() }).collect())
            .unwrap_or_default();
        url.set_path(&path.join("/"));
        changed = true;
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

/// A path segment that is a credential: secret-shaped, or a long run of token characters with
/// both letters and digits (a capability URL's key), never a plain word or a version.
fn is_secret_segment(seg: &str) -> bool {
    let tokenish = seg.len() >= 24
        && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && seg.bytes().any(|b| b.is_ascii_digit())
        && seg.bytes().any(|b| b.is_ascii_alphabetic());
    tokenish || looks_like_secret(seg)
}

/// A header line (`Authorization: Bearer x`) with its value masked when its name or value is a
/// credential; `None` when it is not a header line.
fn mask_header_line(a: &str) -> Option<String> {
    let (name, value) = a.split_once(':')?;
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (name_ok && (is_secret_key(name) || looks_like_secret(value))).then(|| format!("{name}: {REDACTED}"))
}

/// `args` with credentials masked: `--token=…` and `TOKEN=…` values, the argument after a
/// credential-named flag (`--api-key xyz`), secret-shaped arguments, and URLs' credentials.
pub fn mask_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut next_is_secret = false;
    let mut next_is_header = false;
    for a in args {
        if next_is_secret {
            next_is_secret = false;
            out.push(REDACTED.to_string());
            continue;
        }
        if std::mem::take(&mut next_is_header) {
            // `--header "Authorization: Bearer x"` (mcp-remote and friends): every value of a
            // header flag is a header line; mask it whole when it is not one.
            out.push(mask_header_line(a).unwrap_or_else(|| if a.contains(':') { a.clone() } else { REDACTED.into() }));
            continue;
        }
        if matches!(a.as_str(), "--header" | "-H") {
            next_is_header = true;
            out.push(a.clone());
            continue;
        }
        if let Some(line) = a.strip_prefix("--header=") {
            out.push(format!("--header={}", mask_header_line(line).unwrap_or_else(|| line.to_string())));
            continue;
        }
        if let Some(masked) = mask_header_line(a).filter(|_| !a.contains("://")) {
            out.push(masked);
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
            ("https://bob:hunter2@api.example.com/mcp", "https://%5BREDACTED%5D:%5BREDACTED%5D@api.example.com/mcp"),
            ("https://ghp_abc@api.example.com/mcp", "https://%5BREDACTED%5D@api.example.com/mcp"),
            (
                "https://hooks.example.com/api/mcp/s/a1B2c3D4e5F6g7H8i9J0k1L2m3/mcp",
                "https://hooks.example.com/api/mcp/s/[REDACTED]/mcp",
            ),
            ("https://api.example.com/v1/servers/mcp", "https://api.example.com/v1/servers/mcp"),
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
            "--header",
            "Authorization: Bearer abcdefghijkl",
            "--header=X-Api-Key: k123",
            "-H",
            "Accept: application/json",
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
            "https://%5BREDACTED%5D:%5BREDACTED%5D@h.example/x",
            "/srv/data",
            "--author",
            "ada",
            "--header",
            "Authorization: [REDACTED]",
            "--header=X-Api-Key: [REDACTED]",
            "-H",
            "Accept: application/json",
        ];
        assert_eq!(mask_args(&args), want);
    }
}
