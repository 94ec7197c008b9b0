//! Policy rules on the command line: `--allow`/`--deny SPEC` into rule JSON, and back into a line.
//!
//! A SPEC is comma-separated `key=value` with the keys of a rule (access spec, "Roles"):
//! `connection=crm,name=get_*`. It is checked here, before anything is sent, so a typo such as
//! `conection=crm` fails loudly instead of becoming a rule that matches every connection.

use anyhow::bail;
use serde_json::{Map, Value};

/// The fields a rule may narrow by, in the order they are printed.
const KEYS: [&str; 4] = ["connection", "gateway", "kind", "name"];

/// What `kind` may be.
const KINDS: [&str; 3] = ["tool", "prompt", "resource"];

/// Whether a rule lets matching traffic through or stops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// `{"effect": "allow"}`.
    Allow,
    /// `{"effect": "deny"}`.
    Deny,
}

impl Effect {
    fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// Parses one SPEC into a rule object, `{"effect": …, "connection": …, …}` with only the keys given.
pub fn parse(effect: Effect, spec: &str) -> anyhow::Result<Value> {
    let flag = format!("--{}", effect.as_str());
    let mut rule = Map::new();
    rule.insert("effect".into(), Value::String(effect.as_str().into()));
    if spec.trim().is_empty() {
        // An empty rule would match all traffic; make that explicit rather than an accident.
        bail!("{flag} '': empty rule; give key=value pairs of {} (e.g. name=* for everything)", KEYS.join(", "));
    }
    for part in spec.split(',') {
        if part.trim().is_empty() {
            bail!("{flag} '{spec}': an empty item (a stray comma?)");
        }
        let Some((key, value)) = part.split_once('=') else {
            bail!("{flag} '{spec}': '{}' is not key=value (keys: {})", part.trim(), KEYS.join(", "));
        };
        let (key, value) = (key.trim(), value.trim());
        if !KEYS.contains(&key) {
            bail!("{flag} '{spec}': unknown key '{key}' (keys: {})", KEYS.join(", "));
        }
        if value.is_empty() {
            bail!("{flag} '{spec}': '{key}' has an empty value");
        }
        if key == "kind" && !KINDS.contains(&value) {
            bail!("{flag} '{spec}': kind '{value}' is not one of {}", KINDS.join(", "));
        }
        if rule.insert(key.into(), Value::String(value.into())).is_some() {
            bail!("{flag} '{spec}': '{key}' is given twice");
        }
    }
    Ok(Value::Object(rule))
}

/// The rules of `--allow` and `--deny` flags: allows first, then denies (order does not change
/// the outcome, a matching deny always wins, but it keeps `role show` predictable).
pub fn from_flags(allow: &[String], deny: &[String]) -> anyhow::Result<Vec<Value>> {
    let allows = allow.iter().map(|s| parse(Effect::Allow, s));
    let denies = deny.iter().map(|s| parse(Effect::Deny, s));
    allows.chain(denies).collect()
}

/// A rule as one readable line: `deny  connection=crm name=delete_*` (`(any)` for no fields).
pub fn describe(rule: &Value) -> String {
    let effect = rule["effect"].as_str().unwrap_or("?");
    let mut parts: Vec<String> = Vec::new();
    for key in KEYS {
        if let Some(v) = rule[key].as_str() {
            parts.push(format!("{key}={v}"));
        }
    }
    // Fields a newer server may add are shown rather than silently dropped.
    if let Some(obj) = rule.as_object() {
        for (k, v) in obj.iter().filter(|(k, v)| k.as_str() != "effect" && !KEYS.contains(&k.as_str()) && !v.is_null())
        {
            parts.push(format!("{k}={}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())));
        }
    }
    let fields = if parts.is_empty() { "(any)".to_string() } else { parts.join(" ") };
    format!("{effect:<5} {fields}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn specs_become_rules_with_only_the_given_keys() {
        let cases = [
            (
                Effect::Allow,
                "connection=crm,name=get_*",
                json!({"effect": "allow", "connection": "crm", "name": "get_*"}),
            ),
            (Effect::Deny, " kind = prompt ", json!({"effect": "deny", "kind": "prompt"})),
            (
                Effect::Deny,
                "gateway=dev-*,connection=fs,kind=resource,name=file:///etc/*",
                json!({"effect": "deny", "gateway": "dev-*", "connection": "fs", "kind": "resource", "name": "file:///etc/*"}),
            ),
            // Only the first '=' splits: values such as resource URIs may hold more.
            (Effect::Allow, "name=db://x?a=b", json!({"effect": "allow", "name": "db://x?a=b"})),
        ];
        for (effect, spec, want) in cases {
            assert_eq!(parse(effect, spec).unwrap(), want, "{spec}");
        }
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let cases = [
            ("colour=red", "unknown key 'colour'"),
            ("conection=crm", "unknown key 'conection'"),
            ("connection=", "'connection' has an empty value"),
            ("name=  ", "'name' has an empty value"),
            ("kind=tools", "kind 'tools' is not one of tool, prompt, resource"),
            ("connection", "'connection' is not key=value"),
            ("connection=crm,", "an empty item (a stray comma?)"),
            ("name=a,name=b", "'name' is given twice"),
            ("", "empty rule"),
        ];
        for (spec, want) in cases {
            let err = parse(Effect::Allow, spec).unwrap_err().to_string();
            assert!(err.starts_with("--allow '"), "{spec}: {err}");
            assert!(err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn flags_give_allows_then_denies() {
        let rules = from_flags(&["name=get_*".into()], &["name=delete_*".into(), "kind=prompt".into()]).unwrap();
        let effects: Vec<&str> = rules.iter().map(|r| r["effect"].as_str().unwrap()).collect();
        assert_eq!(effects, ["allow", "deny", "deny"]);
        assert!(from_flags(&[], &["bogus=1".into()]).unwrap_err().to_string().starts_with("--deny 'bogus=1'"));
    }

    #[test]
    fn rules_read_back_as_lines() {
        let deny = json!({"effect": "deny", "name": "delete_*", "connection": "crm", "gateway": null});
        assert_eq!(describe(&deny), "deny  connection=crm name=delete_*");
        assert_eq!(describe(&json!({"effect": "allow"})), "allow (any)");
        assert_eq!(describe(&json!({"effect": "allow", "kind": "tool", "extra": 1})), "allow kind=tool extra=1");
    }
}
