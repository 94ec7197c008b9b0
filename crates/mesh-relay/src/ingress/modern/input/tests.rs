//! The logic of parked calls: digests, bounds, what a retry names.

use super::*;

#[test]
fn the_digest_ignores_the_envelope_and_the_answers_only() {
    let m = |s: &'static str| Message::parse(Bytes::from_static(s.as_bytes())).expect("message");
    let first = m(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":1},"_meta":{"x":1}}}"#,
    );
    let retry = m(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"inputResponses":{"k":{}},"requestState":"s","name":"t","arguments":{"a":1},"_meta":{"x":2}}}"#,
    );
    let other = m(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t","arguments":{"a":2},"requestState":"s"}}"#,
    );
    assert_eq!(digest(&first), digest(&retry));
    assert_ne!(digest(&first), digest(&other));
}

/// Arguments the message's reading lets through but a value cannot hold (a number beyond
/// f64, nesting past serde_json's limit): the call still names its tool, so its retry is
/// checked against the rules again; and its digest fits its own retry, not every one.
#[test]
fn what_a_call_names_is_read_whatever_its_arguments_hold() {
    let m = |s: String| Message::parse(Bytes::from(s)).expect("the message's reading lets it through");
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for pad in ["1e400", deep.as_str()] {
        let call = m(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{{"pad":{pad}}}}}}}"#
        ));
        assert_eq!(named("tools/call", &call), Some(("tool", "t".to_string())), "{pad}");
        let wrapped = m(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"call_tool","arguments":{{"name":"inner","arguments":{{"pad":{pad}}}}}}}}}"#
        ));
        assert_eq!(named("tools/call", &wrapped), Some(("tool", "inner".to_string())), "{pad}");
        let retry = m(format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"t","arguments":{{"pad":{pad}}},"requestState":"s","inputResponses":{{}}}}}}"#
        ));
        let other = m(format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"u","arguments":{{"pad":{pad}}}}}}}"#
        ));
        assert_eq!(digest(&call), digest(&retry), "{pad}: its retry fits");
        assert_ne!(digest(&retry), digest(&other), "{pad}: another call's does not");
    }
}

#[test]
fn parked_calls_are_bounded_per_key_per_organisation_and_in_bytes() {
    let many = |n: usize, org: &'static str, key: &'static str, w: usize| (0..n).map(move |_| (org, key, w));
    assert!(room(std::iter::empty(), ("o", "k"), 10));
    // Per key, within its organisation: the same key id elsewhere is someone else.
    assert!(!room(many(MAX_PARKED_PER_KEY, "o", "anonymous", 1), ("o", "anonymous"), 1));
    assert!(room(many(MAX_PARKED_PER_KEY, "other", "anonymous", 1), ("o", "anonymous"), 1));
    // Per organisation, however many keys it has.
    let keys = (0..MAX_PARKED_PER_ORG).map(|_| ("o", "k1", 1));
    assert!(!room(keys, ("o", "k2"), 1));
    // By the bytes they keep alive.
    assert!(!room(many(1, "o", "k", MAX_PARKED_BYTES_PER_ORG), ("o", "k2"), 1));
    assert!(room(many(1, "other", "k", MAX_PARKED_BYTES_PER_ORG), ("o", "k2"), 1));
    assert!(!room(many(4, "x", "k", MAX_PARKED_BYTES / 4), ("o", "k"), 1));
    assert!(!room(many(MAX_PARKED, "x", "k", 0), ("o", "k"), 0));
}

#[test]
fn a_retrys_progress_token_is_read_as_sent() {
    let m = |s: &'static str| Message::parse(Bytes::from_static(s.as_bytes())).expect("message");
    let with = m(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"_meta":{"progressToken":"p-2"}}}"#);
    assert_eq!(progress_token(&with).as_deref(), Some(r#""p-2""#));
    let number = m(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"_meta":{"progressToken":7}}}"#);
    assert_eq!(progress_token(&number).as_deref(), Some("7"));
    let without = m(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"_meta":{}}}"#);
    assert_eq!(progress_token(&without), None);
}

#[test]
fn log_levels_are_ordered() {
    assert!(level("error") > level("info"));
    assert_eq!(level("loud"), None);
}
