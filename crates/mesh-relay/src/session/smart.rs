//! The `smart` strategy of a virtual MCP: instead of its catalogue, the client lists three
//! meta-tools — search the tools by what it wants done, describe the chosen ones with their input
//! schemas, call one by name — so that a model's context carries three definitions, not
//! hundreds.
//!
//! The catalogue searched is the session's merged tool list: curated, namespaced and filtered
//! by policy when it is built (`Gateway::build`), so a tool the caller may not see is not in the
//! index at all and can never take a place in the results. A call through [`CALL`] is unwrapped
//! into the `tools/call` of the real tool before the session reads it (`Session::request`):
//! routing, policy, rate limits and the audit row are those of a direct call of that tool.
//! The index is built on the first search and again whenever the merged list changes (its
//! fingerprint moves); the ranking is `mesh_core::search` (BM25F).

use super::gateway::{params_of, Gateway, ListKind, Merged};
use super::routing::Routing;
use super::Session;
use crate::RelayError;
use mesh_core::gateway::Strategy;
use mesh_core::search::meta::{meta_tools, CALL, DEFAULT_K, DESCRIBE, MAX_DESCRIBE, MAX_K, SEARCH};
use mesh_core::search::{top_k, Bm25, Doc};
use mesh_protocol::Message;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Characters of a description a search result carries (the full text comes with describe).
const SUMMARY_CHARS: usize = 300;

/// A merged tool list's search index, and which list it was built from.
pub(super) struct Index {
    fingerprint: u64,
    bm25: Bm25,
}

impl Gateway {
    /// The smart strategy's answer to `tools/list` and to a call of its search or describe
    /// tool; `None` for everything else (routed as for any virtual MCP).
    pub(super) fn smart_route(&self, me: &Arc<Session>, msg: &Message) -> Option<Routing> {
        if self.strategy != Strategy::Smart {
            return None;
        }
        let method = msg.method()?;
        if method == ListKind::Tools.method() {
            return Some(super::gateway::tools_listed_as(me, |merged| meta_tools(merged.items.len())));
        }
        if method != "tools/call" {
            return None;
        }
        let params = params_of(msg);
        let name = params.get("name").and_then(Value::as_str)?;
        if name != SEARCH && name != DESCRIBE && name != CALL {
            return None;
        }
        let name = name.to_string();
        let arguments = params.get("arguments").and_then(Value::as_object).cloned().unwrap_or_default();
        let me = me.clone();
        Some(Routing::Local(Box::pin(async move {
            let gw = me.gateway.as_ref().ok_or_else(|| RelayError::Internal("not a gateway".into()))?;
            let merged = gw.merged(&me, ListKind::Tools).await?;
            let answer = match name.as_str() {
                SEARCH => gw.search(&merged, &arguments),
                DESCRIBE => describe(&merged, &arguments),
                // A well-formed call was unwrapped before routing: what reaches here lacks a name.
                _ => Err(format!("{CALL} needs arguments.name, the tool to call, and arguments.arguments")),
            };
            // Wrong arguments are the model's to fix: a tool error it can read, not a protocol one.
            Ok(answer.unwrap_or_else(|why| json!({"content": [{"type": "text", "text": why}], "isError": true})))
        })))
    }

    /// `msg` as the `tools/call` of the tool a [`CALL`] names (same id and `_meta`), when this
    /// is a smart gateway and `msg` such a call with a tool name; `None` otherwise. On the
    /// request path of every call through `call_tool`: the params are read borrowed and the new
    /// ones written from the original bytes of the arguments and `_meta`, not re-serialised.
    pub(super) fn unwrap_call(&self, msg: &Message) -> Option<Message> {
        if self.strategy != Strategy::Smart || msg.method() != Some("tools/call") {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Outer<'a> {
            #[serde(borrow)]
            name: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            arguments: Option<&'a RawValue>,
            #[serde(borrow, rename = "_meta")]
            meta: Option<&'a RawValue>,
        }
        #[derive(serde::Deserialize)]
        struct Inner<'a> {
            #[serde(borrow)]
            name: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            arguments: Option<&'a RawValue>,
        }
        let outer: Outer = msg.params()?;
        if outer.name != CALL {
            return None;
        }
        let inner: Inner = serde_json::from_str(outer.arguments?.get()).ok()?;
        let tool = inner.name.filter(|n| !n.is_empty())?;
        let mut params = format!(
            r#"{{"name":{},"arguments":{}"#,
            serde_json::to_string(&tool).ok()?,
            inner.arguments.map_or("{}", |a| a.get())
        );
        if let Some(meta) = outer.meta {
            params.push_str(r#","_meta":"#);
            let key = format!("\"{}\"", crate::upstream::modern::PARAM_HEADERS);
            if meta.get().contains(&key) {
                // `Mcp-Param-*` headers a stateless client sent were checked against
                // `call_tool`'s arguments, not the real tool's: dropped, so that the link to the
                // upstream mirrors them from the real arguments instead of passing the client's on.
                let mut m: Value = serde_json::from_str(meta.get()).ok()?;
                if let Some(o) = m.as_object_mut() {
                    o.remove(crate::upstream::modern::PARAM_HEADERS);
                }
                params.push_str(&m.to_string());
            } else {
                params.push_str(meta.get());
            }
        }
        params.push('}');
        let id = msg.id().unwrap_or("null");
        Message::parse(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{params}}}"#).into()).ok()
    }

    /// `search_tools`; `Err` is the sentence telling the model what was wrong with its arguments.
    fn search(&self, merged: &Merged, arguments: &Map<String, Value>) -> Result<Value, String> {
        let query = arguments.get("query").and_then(Value::as_str).unwrap_or("").trim();
        if query.is_empty() {
            return Err(format!("{SEARCH} needs arguments.query: what the tool should do, in a few words"));
        }
        let k = match arguments.get("k") {
            None | Some(Value::Null) => DEFAULT_K,
            Some(v) => v
                .as_u64()
                .filter(|k| (1..=MAX_K).contains(k))
                .ok_or_else(|| format!("{SEARCH}: k must be an integer from 1 to {MAX_K}"))?,
        };
        let index = self.index(merged);
        let hits = top_k(&index.bm25, merged.items.len(), query, k as usize, |_| true);
        let found: Vec<Value> = hits
            .iter()
            .filter_map(|h| merged.items.get(h.doc))
            .map(|tool| {
                let mut hit = Map::new();
                for field in ["name", "title"] {
                    if let Some(v) = tool.get(field).filter(|v| v.is_string()) {
                        hit.insert(field.into(), v.clone());
                    }
                }
                let description = tool.get("description").and_then(Value::as_str).unwrap_or("");
                hit.insert("description".into(), Value::String(summary(description)));
                Value::Object(hit)
            })
            .collect();
        let text = match found.is_empty() {
            true => format!("No tool matches \"{query}\". Try other words for what the tool should do."),
            false => found
                .iter()
                .map(|t| format!("- {}: {}", t["name"].as_str().unwrap_or(""), t["description"].as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        Ok(json!({
            "content": [{"type": "text", "text": text}],
            "structuredContent": {"tools": found},
        }))
    }

    /// The index of `merged`, built now if the list changed since the last one.
    fn index(&self, merged: &Merged) -> Arc<Index> {
        if let Some(i) = self.catalog().search.as_ref().filter(|i| i.fingerprint == merged.fingerprint) {
            return i.clone();
        }
        // Built with no lock held: `servers` reads the members, and elsewhere the members are
        // locked before the catalogue (`Gateway::build`), never after.
        let servers = self.servers(merged);
        let docs: Vec<Doc> =
            merged.items.iter().zip(&servers).map(|(tool, server)| Doc::from_tool(tool, server)).collect();
        let index = Arc::new(Index { fingerprint: merged.fingerprint, bm25: Bm25::new(&docs) });
        self.catalog().search = Some(index.clone());
        index
    }

    /// For each tool of `merged`, the text search knows its server by: the member's slug and
    /// the instructions its server gave at the handshake (what it says it is for).
    fn servers(&self, merged: &Merged) -> Vec<String> {
        let members = self.members();
        merged
            .items
            .iter()
            .map(|tool| {
                let name = tool.get("name").and_then(Value::as_str).unwrap_or("");
                let member = merged.index.get(name).map(|(k, _)| *k);
                member
                    .and_then(|k| members.get(k))
                    .map(|m| format!("{} {}", m.slug, m.instructions.as_deref().unwrap_or("")))
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// `describe_tools`: the full definitions of the named tools, in the order asked; `Err` as for
/// search.
fn describe(merged: &Merged, arguments: &Map<String, Value>) -> Result<Value, String> {
    let names: Vec<&str> = arguments
        .get("names")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() || names.len() > MAX_DESCRIBE {
        return Err(format!("{DESCRIBE} needs arguments.names: 1 to {MAX_DESCRIBE} tool names from {SEARCH}"));
    }
    let mut tools = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        match merged.items.iter().find(|t| t.get("name").and_then(Value::as_str) == Some(name)) {
            Some(t) => tools.push(t.clone()),
            None => unknown.push(Value::String(name.to_string())),
        }
    }
    let mut text = serde_json::to_string(&tools).unwrap_or_default();
    if !unknown.is_empty() {
        text.push_str(&format!("\nUnknown tools: {}", serde_json::to_string(&unknown).unwrap_or_default()));
    }
    Ok(json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": {"tools": tools, "unknown": unknown},
    }))
}

/// The first [`SUMMARY_CHARS`] characters of `text`, on a character boundary.
fn summary(text: &str) -> String {
    match text.char_indices().nth(SUMMARY_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ResolvedGateway;

    fn gateway(strategy: Strategy) -> Gateway {
        let def = ResolvedGateway {
            id: "gw_1".into(),
            slug: "g".into(),
            mode: Default::default(),
            page_size: 100,
            strategy,
            members: Vec::new(),
        };
        Gateway::new(&def, false, Default::default())
    }

    fn msg(raw: &str) -> Message {
        Message::parse(bytes::Bytes::from(raw.to_string())).unwrap()
    }

    #[test]
    fn call_tool_becomes_the_named_tools_call_with_its_arguments_and_meta_as_sent() {
        let smart = gateway(Strategy::Smart);
        let call = msg(
            r#"{"jsonrpc":"2.0","id":"x1","method":"tools/call","params":{"name":"call_tool","arguments":{"name":"a_\"b","arguments":{"n":1.50,"s":"é"}},"_meta":{"progressToken":7}}}"#,
        );
        let out = smart.unwrap_call(&call).expect("unwrapped");
        assert_eq!(out.id(), Some("\"x1\""));
        assert_eq!(out.method(), Some("tools/call"));
        assert_eq!(out.progress_token().as_deref(), Some("7"));
        assert!(out.as_str().contains(r#""arguments":{"n":1.50,"s":"é"}"#), "bytes as sent: {}", out.as_str());
        let params: Value = out.params().unwrap();
        assert_eq!(params["name"], "a_\"b");

        // The Mcp-Param headers checked against call_tool's arguments are dropped.
        let stateless = msg(&format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"call_tool","arguments":{{"name":"t"}},"_meta":{{"{}":{{"x":"1"}},"keep":true}}}}}}"#,
            crate::upstream::modern::PARAM_HEADERS
        ));
        let params: Value = smart.unwrap_call(&stateless).unwrap().params().unwrap();
        assert_eq!(params, json!({"name": "t", "arguments": {}, "_meta": {"keep": true}}));

        // Not a call through call_tool, or not a smart gateway: left alone.
        for raw in [
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"call_tool","arguments":{"arguments":{}}}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"call_tool","arguments":"t"}}"#,
        ] {
            assert!(smart.unwrap_call(&msg(raw)).is_none(), "{raw}");
        }
        assert!(gateway(Strategy::Passthrough).unwrap_call(&call).is_none());
    }
}
