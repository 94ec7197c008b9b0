//! Versions and version constraints as the agent SDK's registry reads them.
//!
//! The `semver` crate follows Cargo, where a bare `1.5.0` means `^1.5.0` and `||` does not
//! exist; the SDK's agents were written against a registry with the other common reading
//! (a bare version is exact, partial versions are wildcards, `||` and `,` combine, an
//! unparsable constraint is compared as text). A drop-in must pick the same provider, so the
//! reading is written here, small and table-tested.

use std::cmp::Ordering;

/// A parsed version: `v` prefix allowed, minor and patch optional (filled with 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<Ident>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ident {
    Num(u64),
    Text(String),
}

impl Ord for Ident {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Ident::Num(a), Ident::Num(b)) => a.cmp(b),
            (Ident::Num(_), Ident::Text(_)) => Ordering::Less,
            (Ident::Text(_), Ident::Num(_)) => Ordering::Greater,
            (Ident::Text(a), Ident::Text(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Ident {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch)).then_with(|| {
            // A release outranks its prereleases; prereleases compare identifier by identifier.
            match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            }
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A version as written in a constraint: parts may be missing or wildcards (`1`, `1.x`, `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Vec<Ident>,
}

fn number(part: &str) -> Option<u64> {
    if part.is_empty() || part.len() > 1 && part.starts_with('0') || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

fn prerelease(text: &str) -> Option<Vec<Ident>> {
    text.split('.')
        .map(|id| {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                None
            } else if let Some(n) = number(id) {
                Some(Ident::Num(n))
            } else {
                Some(Ident::Text(id.to_string()))
            }
        })
        .collect()
}

/// Splits `1.2.3-beta+build` into numeric text, prerelease identifiers (build metadata dropped).
fn split(text: &str) -> Option<(&str, Vec<Ident>)> {
    let text = text.trim();
    let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
    let text = text.split_once('+').map_or(text, |(v, _)| v);
    match text.split_once('-') {
        Some((nums, pre)) => Some((nums, prerelease(pre)?)),
        None => Some((text, Vec::new())),
    }
}

impl Version {
    /// Parses leniently: `1`, `1.2`, `v1.2.3`, `1.2.3-rc.1+build`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Version> {
        let (nums, pre) = split(text)?;
        let mut parts = nums.split('.');
        let major = number(parts.next()?)?;
        let minor = parts.next().map(number).unwrap_or(Some(0))?;
        let patch = parts.next().map(number).unwrap_or(Some(0))?;
        if parts.next().is_some() {
            return None;
        }
        Some(Version { major, minor, patch, pre })
    }

    fn triple(major: u64, minor: u64, patch: u64) -> Version {
        Version { major, minor, patch, pre: Vec::new() }
    }
}

impl Partial {
    fn parse(text: &str) -> Option<Partial> {
        let (nums, pre) = split(text)?;
        let wild = |p: &str| matches!(p, "x" | "X" | "*");
        let mut out = Partial { major: None, minor: None, patch: None, pre };
        let mut parts = nums.split('.');
        for slot in [&mut out.major, &mut out.minor, &mut out.patch] {
            match parts.next() {
                None => break,
                Some(p) if wild(p) => break,
                Some(p) => *slot = Some(number(p)?),
            }
        }
        // `1.x.3` and `1.2.3.4` are not versions; wildcards end a version.
        if parts.any(|p| !wild(p)) || out.major.is_none() && out.minor.is_some() {
            return None;
        }
        Some(out)
    }

    /// The lowest version the partial covers (`1.2` → `1.2.0`).
    fn floor(&self) -> Version {
        Version {
            major: self.major.unwrap_or(0),
            minor: self.minor.unwrap_or(0),
            patch: self.patch.unwrap_or(0),
            pre: self.pre.clone(),
        }
    }

    /// The first version past what the partial covers (`1.2` → `1.3.0`); `None` when it is
    /// complete (it covers one version) or covers everything.
    fn ceiling(&self) -> Option<Version> {
        match (self.major, self.minor, self.patch) {
            (Some(m), None, _) => Some(Version::triple(m.saturating_add(1), 0, 0)),
            (Some(m), Some(n), None) => Some(Version::triple(m, n.saturating_add(1), 0)),
            _ => None,
        }
    }

    fn complete(&self) -> bool {
        self.patch.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
    Caret,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    version: Partial,
}

impl Comparator {
    fn parse(text: &str) -> Option<Comparator> {
        let text = text.trim();
        let ops: [(&str, Op); 11] = [
            (">=", Op::Ge),
            ("=>", Op::Ge),
            ("<=", Op::Le),
            ("=<", Op::Le),
            ("!=", Op::Ne),
            ("~>", Op::Tilde),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
            ("~", Op::Tilde),
            ("^", Op::Caret),
        ];
        let (op, rest) =
            ops.iter().find_map(|(p, op)| text.strip_prefix(p).map(|r| (*op, r))).unwrap_or((Op::Eq, text));
        Some(Comparator { op, version: Partial::parse(rest)? })
    }

    fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        if c.major.is_none() {
            // `*`: everything (prereleases are settled by the caller).
            return !matches!(self.op, Op::Ne | Op::Gt | Op::Lt);
        }
        let floor = c.floor();
        let within = |v: &Version| match c.ceiling() {
            Some(ceiling) => *v >= floor && *v < ceiling,
            None => *v == floor,
        };
        match self.op {
            Op::Eq => within(v),
            Op::Ne => !within(v),
            Op::Gt => match c.ceiling() {
                Some(ceiling) => *v >= ceiling,
                None => *v > floor,
            },
            Op::Ge => *v >= floor,
            Op::Lt => *v < floor,
            Op::Le => match c.ceiling() {
                Some(ceiling) => *v < ceiling,
                None => *v <= floor,
            },
            Op::Tilde => {
                let upper = match c.minor {
                    Some(n) => Version::triple(floor.major, n.saturating_add(1), 0),
                    None => Version::triple(floor.major.saturating_add(1), 0, 0),
                };
                *v >= floor && *v < upper
            }
            Op::Caret => {
                let upper = if floor.major > 0 || c.minor.is_none() {
                    Version::triple(floor.major.saturating_add(1), 0, 0)
                } else if floor.minor > 0 || c.patch.is_none() {
                    Version::triple(0, floor.minor.saturating_add(1), 0)
                } else {
                    Version::triple(0, 0, floor.patch.saturating_add(1))
                };
                *v >= floor && *v < upper
            }
        }
    }
}

/// A version constraint: `||` between alternatives, `,` or spaces between the comparators of
/// one alternative, which must all hold; an operator may stand apart from its version
/// (`>= 1.2`), and `1.2 - 1.4` is a range (`>=1.2, <=1.4`).
#[derive(Debug, Clone)]
pub struct Constraint {
    any_of: Vec<Vec<Comparator>>,
}

impl Constraint {
    /// Parses a constraint; `None` when it is not one (the caller then compares text).
    pub fn parse(text: &str) -> Option<Constraint> {
        let any_of = text.split("||").map(alternative).collect::<Option<Vec<_>>>()?;
        Some(Constraint { any_of })
    }

    /// Whether `v` satisfies one alternative. A prerelease satisfies only comparators that name
    /// a prerelease themselves: asking for `>=1.2` is not asking for betas.
    pub fn matches(&self, v: &Version) -> bool {
        self.any_of.iter().any(|all| {
            all.iter().all(|c| (v.pre.is_empty() || !c.version.pre.is_empty() && c.version.complete()) && c.matches(v))
        })
    }
}

/// The comparators of one alternative.
fn alternative(text: &str) -> Option<Vec<Comparator>> {
    let tokens: Vec<&str> = text.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()).collect();
    let is_operator = |t: &str| t.chars().all(|c| "<>=!~^".contains(c));
    let mut all = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        if is_operator(token) {
            all.push(Comparator::parse(&format!("{token}{}", tokens.get(i + 1)?))?);
            i += 2;
        } else if tokens.get(i + 1) == Some(&"-") {
            let upper = tokens.get(i + 2)?;
            all.push(Comparator::parse(&format!(">={token}"))?);
            all.push(Comparator::parse(&format!("<={upper}"))?);
            i += 3;
        } else {
            all.push(Comparator::parse(token)?);
            i += 1;
        }
    }
    (!all.is_empty()).then_some(all)
}

/// Whether a provider's `version` satisfies a dependency's `constraint`, as the SDK expects:
/// an unparsable constraint or version is compared as text, and an unversioned provider
/// satisfies no constraint.
pub fn satisfies(constraint: &str, version: &str) -> bool {
    let constraint = constraint.trim();
    if constraint.is_empty() {
        return true;
    }
    if version.trim().is_empty() {
        return false;
    }
    match (Constraint::parse(constraint), Version::parse(version)) {
        (Some(c), Some(v)) => c.matches(&v),
        _ => constraint == version.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDERS: [&str; 6] = ["1.0.0", "1.2.5", "1.5.0", "2.0.0", "2.1.0", "3.0.0-beta.1"];

    /// The highest provider version satisfying `constraint`, as resolution would pick it.
    fn best(constraint: &str) -> Option<&'static str> {
        PROVIDERS
            .iter()
            .filter(|v| satisfies(constraint, v))
            .max_by(|a, b| Version::parse(a).cmp(&Version::parse(b)))
            .copied()
    }

    #[test]
    fn constraints_pick_what_the_sdk_registry_picks() {
        // Observed against the SDK's reference registry with these six providers.
        for (constraint, expected) in [
            ("", Some("3.0.0-beta.1")),
            (">=1.2", Some("2.1.0")),
            ("~1.2", Some("1.2.5")),
            ("~1", Some("1.5.0")),
            ("^2", Some("2.1.0")),
            ("^1.2", Some("1.5.0")),
            ("1.5.0", Some("1.5.0")),
            ("1.5", Some("1.5.0")),
            ("2", Some("2.1.0")),
            ("=2.0.0", Some("2.0.0")),
            ("!=2.1.0", Some("2.0.0")),
            (">=1.0, <2.0", Some("1.5.0")),
            ("<1.1 || >=2.1", Some("2.1.0")),
            ("1.x", Some("1.5.0")),
            (">=3.0.0-0", Some("3.0.0-beta.1")),
            (">=9", None),
            ("garbage", None),
            ("*", Some("2.1.0")),
            ("<=1.2", Some("1.2.5")),
            (">1.2", Some("2.1.0")),
            (">1", Some("2.1.0")),
            ("<1.2.5", Some("1.0.0")),
            (">= 1.2", Some("2.1.0")),
            (">= 1.0 , < 2", Some("1.5.0")),
            ("1.2 - 1.5", Some("1.5.0")),
            ("1.0 - 1.2", Some("1.2.5")),
        ] {
            assert_eq!(best(constraint), expected, "constraint {constraint:?}");
        }
    }

    #[test]
    fn prereleases_only_for_comparators_that_name_one() {
        assert!(satisfies(">=3.0.0-0", "3.1.0-beta"));
        assert!(!satisfies(">=3.0.0-0, <4", "3.1.0-beta"));
        assert!(!satisfies(">=2", "3.0.0-beta.1"));
        assert!(satisfies("<2 || >=3.0.0-0", "3.0.0-beta.1"));
    }

    #[test]
    fn caret_and_tilde_below_one() {
        assert!(satisfies("^0.2.3", "0.2.9"));
        assert!(!satisfies("^0.2.3", "0.3.0"));
        assert!(satisfies("^0.0.3", "0.0.3"));
        assert!(!satisfies("^0.0.3", "0.0.4"));
        assert!(satisfies("^0", "0.9.9"));
        assert!(!satisfies("^0", "1.0.0"));
        assert!(satisfies("~0.1.2", "0.1.9"));
        assert!(!satisfies("~0.1.2", "0.2.0"));
    }

    #[test]
    fn text_versions_and_unversioned_providers() {
        assert!(satisfies("latest", "latest"));
        assert!(!satisfies(">=1.0", "latest"));
        assert!(!satisfies(">=1.0", ""));
        assert!(satisfies("", ""));
        assert!(satisfies("v1.2", "1.2.0"));
        assert!(Version::parse("1.2.3.4").is_none());
        assert!(Version::parse("01.2").is_none());
        assert!(Constraint::parse("1.x.3").is_none());
        assert!(Constraint::parse(">=").is_none());
        assert!(Constraint::parse("||").is_none());
        for broken in ["1.0 -", "- 1.2", ">=", ">= 1.2 - 1.4"] {
            assert!(Constraint::parse(broken).is_none(), "{broken}");
        }
        assert!(satisfies(">=1.0\n<2.0", "1.5.0"), "any whitespace separates");
        // The largest numbers neither panic nor wrap around to match everything.
        let max = u64::MAX;
        for c in [format!("~{max}"), format!("^{max}"), format!("{max}"), format!("{max}.{max}"), format!(">{max}")] {
            assert!(!satisfies(&c, "1.0.0"), "{c}");
        }
    }

    #[test]
    fn ordering_follows_semver_precedence() {
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for pair in order.windows(2) {
            assert!(Version::parse(pair[0]) < Version::parse(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(Version::parse("1.0.0+build"), Version::parse("1.0.0"));
    }
}
