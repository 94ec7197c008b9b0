//! Plain tables and `key: value` blocks for people (scripts use `--json`).

use serde_json::Value;

/// Prints rows under headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", parts.join("   ").trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Prints a value as pretty JSON: what `--json` shows.
pub fn json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// A JSON value as a table cell: strings bare, absent as `-`, anything else as JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A timestamp in ms since the epoch as RFC 3339 (UTC); absent as `-`.
pub fn time_ms(v: &Value) -> String {
    let Some(ms) = v.as_i64() else { return "-".into() };
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Prints `key: value` lines for the listed fields of an item, skipping absent ones; fields named
/// `…At` are timestamps.
pub fn fields(item: &Value, keys: &[&str]) {
    for key in keys {
        let v = &item[*key];
        if v.is_null() {
            continue;
        }
        let shown = if key.ends_with("At") { time_ms(v) } else { cell(v) };
        println!("{:<12} {shown}", format!("{key}:"));
    }
}

/// Prints `items` (a JSON array of objects) as a table of `columns` (header, field), or `empty`
/// when there are none.
pub fn items(items: &Value, columns: &[(&str, &str)], empty: &str) {
    let rows: Vec<Vec<String>> = items
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| columns.iter().map(|(_, field)| cell(&item[*field])).collect())
        .collect();
    if rows.is_empty() && !empty.is_empty() {
        println!("{empty}");
        return;
    }
    let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    table(&headers, &rows);
}
