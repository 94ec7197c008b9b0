//! Ranked search over a virtual MCP's tools, for clients that should not carry the whole
//! catalogue in their context (the `smart` strategy: a search meta-tool instead of the list).
//!
//! A tool is a [`Doc`] of a few fields; a [`Scorer`] ranks them for a free-text query. The one
//! scorer today is [`Bm25`] (BM25F over the fields, with identifiers split and words stemmed by
//! [`tokenize`]); another, such as one asking an embeddings endpoint, plugs in behind the same
//! trait and can be blended with it. [`top_k`] applies what the caller may see *before* choosing
//! the best: a hidden tool never takes a place in the results, or shows in them.

mod bm25;
pub mod code;
pub mod meta;
mod tokens;

pub use bm25::{Bm25, Params};
pub use tokens::tokenize;

/// How many fields a [`Doc`] has.
pub const FIELDS: usize = 5;

/// The fields of a tool that search reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The name it is called by (as exposed, with any prefix).
    Name = 0,
    /// Its human title.
    Title = 1,
    /// Its description.
    Description = 2,
    /// Its parameters' names and descriptions.
    Params = 3,
    /// The member it comes from: its name and what it says of itself.
    Server = 4,
}

impl Field {
    /// Every field, in index order.
    pub const ALL: [Field; FIELDS] = [Field::Name, Field::Title, Field::Description, Field::Params, Field::Server];
}

/// One searchable tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doc {
    /// See [`Field::Name`].
    pub name: String,
    /// See [`Field::Title`].
    pub title: String,
    /// See [`Field::Description`].
    pub description: String,
    /// See [`Field::Params`].
    pub params: String,
    /// See [`Field::Server`].
    pub server: String,
}

impl Doc {
    /// A tool as MCP lists it (`name`, `title` or `annotations.title`, `description`,
    /// `inputSchema`), served by `server`.
    pub fn from_tool(tool: &serde_json::Value, server: &str) -> Doc {
        let text = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_str).unwrap_or("").to_string();
        let title = match tool.get("title") {
            Some(t) => text(Some(t)),
            None => text(tool.pointer("/annotations/title")),
        };
        let mut params = String::new();
        if let Some(props) = tool.pointer("/inputSchema/properties").and_then(serde_json::Value::as_object) {
            for (name, schema) in props {
                params.push_str(name);
                params.push(' ');
                if let Some(d) = schema.get("description").and_then(serde_json::Value::as_str) {
                    params.push_str(d);
                    params.push(' ');
                }
            }
        }
        Doc {
            name: text(tool.get("name")),
            title,
            description: text(tool.get("description")),
            params,
            server: server.to_string(),
        }
    }

    /// The text of `field`.
    pub fn field(&self, field: Field) -> &str {
        match field {
            Field::Name => &self.name,
            Field::Title => &self.title,
            Field::Description => &self.description,
            Field::Params => &self.params,
            Field::Server => &self.server,
        }
    }
}

/// A ranking of a fixed list of documents for a query.
pub trait Scorer: Send + Sync {
    /// Adds each document's score for `query` to `scores` (one slot per document, in the order
    /// the scorer was built with); a document that does not match gets nothing.
    fn score(&self, query: &str, scores: &mut [f32]);
}

/// A search result: which document, and how well it matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Its index in the scorer's documents.
    pub doc: usize,
    /// Its score (only comparable within one query).
    pub score: f32,
}

/// The `k` best of `docs` documents for `query` among those `visible` admits, best first; equal
/// scores keep catalogue order, and documents that match nothing are not returned.
pub fn top_k(scorer: &dyn Scorer, docs: usize, query: &str, k: usize, visible: impl Fn(usize) -> bool) -> Vec<Hit> {
    let mut scores = vec![0.0f32; docs];
    scorer.score(query, &mut scores);
    let mut hits: Vec<Hit> = scores
        .into_iter()
        .enumerate()
        .filter(|&(doc, score)| score > 0.0 && visible(doc))
        .map(|(doc, score)| Hit { doc, score })
        .collect();
    let order = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc));
    if hits.len() > k && k > 0 {
        hits.select_nth_unstable_by(k - 1, order);
        hits.truncate(k);
    }
    hits.truncate(k);
    hits.sort_unstable_by(order);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalogue() -> Vec<Doc> {
        [
            (json!({"name": "get_weather", "description": "Current weather for a city.", "inputSchema": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}}}), "weather"),
            (json!({"name": "forecast", "title": "Weather forecast", "description": "Five-day forecast.", "inputSchema": {"type": "object", "properties": {"lat": {"type": "number"}}}}), "weather"),
            (json!({"name": "search_issues", "description": "Search GitHub issues by text.", "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}}}), "github"),
            (json!({"name": "createPullRequest", "description": "Open a pull request.", "inputSchema": {"type": "object", "properties": {"repo": {"type": "string", "description": "owner/name of the repository"}}}}), "github"),
            (json!({"name": "read_file", "description": "Read a file from disk.", "annotations": {"title": "Read file"}}), "filesystem"),
        ]
        .iter()
        .map(|(tool, server)| Doc::from_tool(tool, server))
        .collect()
    }

    fn names(docs: &[Doc], hits: &[Hit]) -> Vec<String> {
        hits.iter().map(|h| docs[h.doc].name.clone()).collect()
    }

    #[test]
    fn the_tool_that_fits_the_question_comes_first() {
        let docs = catalogue();
        let index = Bm25::new(&docs);
        let search = |q: &str, k: usize| names(&docs, &top_k(&index, docs.len(), q, k, |_| true));
        assert_eq!(search("what's the weather in Paris right now", 1), ["get_weather"]);
        assert_eq!(search("weather forecast for next days", 1), ["forecast"]);
        assert_eq!(search("open a pull request on my repository", 1), ["createPullRequest"]);
        assert_eq!(search("find issues mentioning a crash", 1), ["search_issues"]);
        assert_eq!(search("read the contents of a file", 1), ["read_file"]);
        // Nothing matches: nothing is returned, rather than arbitrary tools.
        assert!(search("zzzz qqqq", 5).is_empty());
        // Only the first 4 KiB of a query is read (a pasted document costs no more than that).
        let long = format!("{} weather", "lorem ".repeat(1000));
        assert!(search(&long, 5).is_empty());
        assert_eq!(search(&format!("weather {}", "lorem ".repeat(1000)), 1), ["get_weather"]);
        assert!(search("weather", 0).is_empty());
    }

    #[test]
    fn hidden_tools_never_take_a_place() {
        let docs = catalogue();
        let index = Bm25::new(&docs);
        let hidden = docs.iter().position(|d| d.name == "get_weather").expect("listed");
        let hits = top_k(&index, docs.len(), "weather", 1, |d| d != hidden);
        assert_eq!(names(&docs, &hits), ["forecast"]);
        let all = top_k(&index, docs.len(), "weather city forecast", 10, |d| d != hidden);
        assert!(all.iter().all(|h| h.doc != hidden));
    }

    #[test]
    fn results_are_ordered_and_ties_keep_catalogue_order() {
        let docs = vec![
            Doc { name: "alpha_tool".into(), description: "Sends mail.".into(), ..Doc::default() },
            Doc { name: "beta_tool".into(), description: "Sends mail.".into(), ..Doc::default() },
            Doc { name: "gamma_tool".into(), description: "Sends mail. Mail mail.".into(), ..Doc::default() },
        ];
        let index = Bm25::new(&docs);
        let hits = top_k(&index, docs.len(), "mail", 3, |_| true);
        assert_eq!(hits.iter().map(|h| h.doc).collect::<Vec<_>>(), [2, 0, 1]);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        let first_two = top_k(&index, docs.len(), "mail", 2, |_| true);
        assert_eq!(first_two.iter().map(|h| h.doc).collect::<Vec<_>>(), [2, 0]);
    }

    #[test]
    fn parameter_text_and_titles_are_searched() {
        let docs = catalogue();
        let index = Bm25::new(&docs);
        let hits = top_k(&index, docs.len(), "repository owner", 1, |_| true);
        assert_eq!(names(&docs, &hits), ["createPullRequest"]);
        assert_eq!(docs[4].title, "Read file");
        assert_eq!(Bm25::new(&[]).len(), 0);
        assert!(top_k(&Bm25::new(&[]), 0, "anything", 5, |_| true).is_empty());
    }
}
