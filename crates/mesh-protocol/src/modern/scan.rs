//! Reading JSON text by its bytes: where members and values start and end, found without
//! deserialising anything. The stateless path crosses every request's `params` and every
//! result the mesh relays with these; serde reads what they cannot vouch for.

use std::ops::Range;

/// Where the value of the top-level member `key` sits in the JSON object `json`, found without
/// deserialising anything (a reply's result may be megabytes; this stops at its first byte).
/// `None` when `json` is not an object or has no such member.
pub fn member_span(json: &[u8], key: &str) -> Option<Range<usize>> {
    let start = member_start(json, key)?;
    Some(start..value_end(json, start)?)
}

/// Where the value of the top-level member `key` of the object `json` starts; the members before
/// it are walked, the value itself is not.
pub(super) fn member_start(json: &[u8], key: &str) -> Option<usize> {
    let mut found = None;
    walk_members(json, |_, name, at| {
        // Escaped names are compared as written: a peer spelling a member name with escapes
        // is not served the fast path, and nothing is spliced into it.
        if name.raw == key.as_bytes() {
            found = Some(at);
            return None;
        }
        value_end(json, at)
    });
    found
}

/// Walks the members of the object `obj`: for each, `f(at, name, value_at)` gets where the member
/// starts (its name's opening quote), its name as written (no quotes, escapes kept, with whether
/// it has any) and where its value starts, and answers where the value ends, or `None` to stop.
/// The index just past the object; `None` when it is not a well-formed object or `f` stopped.
pub(crate) fn walk_members<'a>(
    obj: &'a [u8],
    mut f: impl FnMut(usize, Name<'a>, usize) -> Option<usize>,
) -> Option<usize> {
    let mut i = skip_ws(obj, 0);
    if obj.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(obj, i + 1);
    if obj.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        if obj.get(i) != Some(&b'"') {
            return None;
        }
        // Whether the name has escapes comes with its end: nobody searches it again.
        let (name_end, escaped) = string_scan(obj, i)?;
        let colon = skip_ws(obj, name_end);
        if obj.get(colon) != Some(&b':') {
            return None;
        }
        let end = f(i, Name { raw: &obj[i + 1..name_end - 1], escaped }, skip_ws(obj, colon + 1))?;
        i = skip_ws(obj, end);
        match obj.get(i) {
            Some(b',') => i = skip_ws(obj, i + 1),
            Some(b'}') => return Some(i + 1),
            _ => return None,
        }
    }
}

/// A member's name as [`walk_members`] found it.
#[derive(Clone, Copy)]
pub(crate) struct Name<'a> {
    /// As written, without the quotes.
    pub raw: &'a [u8],
    /// Whether it has escapes (then `raw` is not the name a parser reads).
    pub escaped: bool,
}

/// The JSON object `obj` with only the members whose (raw) name `keep` accepts, in order; the
/// kept members' bytes are copied as they are. `None` when `obj` is not a well-formed object.
pub fn keep_members(obj: &[u8], keep: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let mut out = Kept::new(obj.len());
    walk_members(obj, |at, name, value_at| {
        let end = value_end(obj, value_at)?;
        if keep(name.raw) {
            out.push(&obj[at..end]);
        }
        Some(end)
    })?;
    Some(out.done())
}

/// An object written from members copied as they are ([`keep_members`], [`super::MetaMembers::kept`]).
pub(super) struct Kept(Vec<u8>);

impl Kept {
    pub(super) fn new(capacity: usize) -> Kept {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        Kept(out)
    }

    /// One member, name to value.
    pub(super) fn push(&mut self, member: &[u8]) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        self.0.extend_from_slice(member);
    }

    pub(super) fn done(mut self) -> Vec<u8> {
        self.0.push(b'}');
        self.0
    }
}

pub(crate) fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while matches!(json.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index just past the string starting at `i` (which is a `"`), found with `memchr` (under
/// callgrind it costs fewer instructions than a byte loop even for short strings).
fn string_end(json: &[u8], i: usize) -> Option<usize> {
    string_scan(json, i).map(|(end, _)| end)
}

/// [`string_end`], and whether the string has escapes.
fn string_scan(json: &[u8], mut i: usize) -> Option<(usize, bool)> {
    i += 1;
    let mut escaped = false;
    loop {
        let at = i + memchr::memchr2(b'"', b'\\', json.get(i..)?)?;
        if json[at] == b'"' {
            return Some((at + 1, escaped));
        }
        escaped = true;
        i = at + 2;
    }
}

/// The bytes `value_end` stops at inside an object or array.
static STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// Whether the object `obj` has the member `key` (written without escapes). Most objects the
/// mesh asks this of do not, and most of those do not hold the name anywhere: a `memmem` search
/// answers them without walking the object's members.
pub fn has_member(obj: &[u8], key: &str) -> bool {
    present_member(obj, key).is_some()
}

/// [`member_span`], for a member that is usually absent (see [`has_member`]).
pub(super) fn present_member(obj: &[u8], key: &str) -> Option<Range<usize>> {
    memchr::memmem::find(obj, key.as_bytes())?;
    member_span(obj, key)
}

/// The index just past the JSON value starting at `i`.
pub(super) fn value_end(json: &[u8], mut i: usize) -> Option<usize> {
    match json.get(i)? {
        b'"' => string_end(json, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                // To the next byte that matters, without a match per byte: the scans of the
                // stateless path cross every result the mesh relays.
                i += json.get(i..)?.iter().position(|b| STRUCTURAL[usize::from(*b)])?;
                match json[i] {
                    b'"' => {
                        i = string_end(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    _ => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                }
                i += 1;
            }
        }
        _ => {
            while !matches!(json.get(i), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                i += 1;
            }
            Some(i)
        }
    }
}

/// The span to cut out of the JSON text `json` to remove the member named `name` whose value
/// sits at `value`, with the comma that joins it to a neighbour, so that what is left is the
/// same object without it. `None` when the name before the value is not written plainly as
/// `name` (then the caller keeps the member).
pub fn member_cut(json: &[u8], name: &str, value: Range<usize>) -> Option<Range<usize>> {
    let before = |i: usize| json.get(..i)?.iter().rposition(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    let colon = before(value.start)?;
    if json[colon] != b':' {
        return None;
    }
    let quote = before(colon)?;
    let start = quote.checked_sub(name.len() + 1)?;
    if json[start] != b'"' || &json[start + 1..quote] != name.as_bytes() || json[quote] != b'"' {
        return None;
    }
    // What comes before the name's opening quote says it opens a member, not that it is an
    // escaped quote inside another string.
    let prev = before(start)?;
    let next = skip_ws(json, value.end);
    match (json[prev], json.get(next)?) {
        (b',' | b'{', b',') => Some(start..skip_ws(json, next + 1)),
        (b',', b'}') => Some(prev..value.end),
        (b'{', b'}') => Some(start..value.end),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_cut_with_one_comma_and_plain_names_only() {
        let cut = |json: &str| {
            let at = member_span(json.as_bytes(), "_meta").expect("member");
            member_cut(json.as_bytes(), "_meta", at).map(|r| format!("{}{}", &json[..r.start], &json[r.end..]))
        };
        assert_eq!(cut(r#"{"_meta":{},"name":"t"}"#).as_deref(), Some(r#"{"name":"t"}"#));
        assert_eq!(cut(r#"{"name":"t","_meta":{}}"#).as_deref(), Some(r#"{"name":"t"}"#));
        assert_eq!(cut(r#"{"a":1,"_meta":{},"b":2}"#).as_deref(), Some(r#"{"a":1,"b":2}"#));
        assert_eq!(cut(r#"{"_meta":{}}"#).as_deref(), Some("{}"));
        assert_eq!(cut(r#"{ "a" : 1 , "_meta" : { } , "b" : 2 }"#).as_deref(), Some(r#"{ "a" : 1 , "b" : 2 }"#));
        assert_eq!(cut(r#"{ "a" : 1 , "_meta" : { } }"#).as_deref(), Some(r#"{ "a" : 1  }"#));
        assert_eq!(cut("{\n  \"_meta\": {}\n}").as_deref(), Some("{\n  \n}"));
        // A name written with escapes is kept.
        let escaped = r#"{"\u005fmeta":{},"name":"t"}"#;
        assert_eq!(member_cut(escaped.as_bytes(), "_meta", 14..16), None);
        // So is a span that no member's value starts at.
        let json = r#"{"x":"a\"_meta\":{}"}"#;
        let inner = json.find("{}").expect("braces");
        assert_eq!(member_cut(json.as_bytes(), "_meta", inner..inner + 2), None);
    }
}
