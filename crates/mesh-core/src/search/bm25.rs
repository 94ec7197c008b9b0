//! BM25F: Okapi BM25 over several fields of a document, each with its own weight and length
//! normalisation (Robertson, Zaragoza and Taylor, "Simple BM25 extension to multiple weighted
//! fields", 2004). Written here rather than taken from a search engine crate: the catalogues are a
//! few thousand short documents held in memory, and an index this size is a few hash maps.

use super::tokens::query_terms;
use super::{tokenize, Doc, Field, Scorer, FIELDS};
use std::collections::HashMap;

/// The ranking's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Term-frequency saturation.
    pub k1: f32,
    /// Each field's weight ([`Field`] order).
    pub weight: [f32; FIELDS],
    /// Each field's length normalisation, 0 (none) to 1 (full).
    pub b: [f32; FIELDS],
}

impl Default for Params {
    /// A tool's name and title say what it does in few words, so a match there counts most; the
    /// description is the bulk of the text; parameter text and the server's name are context.
    fn default() -> Params {
        let mut weight = [0.0; FIELDS];
        let mut b = [0.0; FIELDS];
        // Chosen on LiveMCPBench (crates/mesh-core/tests/search_recall.rs, docs/PERFORMANCE.md):
        // names weigh most and are barely normalised (a tool's name is its summary), parameter text
        // counts less than the description, and saturation comes late because questions are short
        // and each word of one is evidence. Picked on half the tasks, these also lift the other half.
        for (f, w, norm) in [
            (Field::Name, 3.0, 0.3),
            (Field::Title, 3.0, 0.3),
            (Field::Description, 1.0, 0.3),
            (Field::Params, 0.6, 0.75),
            (Field::Server, 1.0, 0.5),
        ] {
            weight[f as usize] = w;
            b[f as usize] = norm;
        }
        Params { k1: 3.0, weight, b }
    }
}

/// One document's occurrences of a term, per field.
#[derive(Debug, Clone)]
struct Posting {
    doc: u32,
    tf: [u16; FIELDS],
}

/// A BM25F index over a fixed list of documents (rebuilt when the list changes).
#[derive(Debug, Clone)]
pub struct Bm25 {
    params: Params,
    terms: HashMap<Box<str>, u32>,
    postings: Vec<Vec<Posting>>,
    /// Each document's field lengths, in terms.
    lengths: Vec<[u16; FIELDS]>,
    /// Each field's mean length over the documents.
    mean: [f32; FIELDS],
}

impl Bm25 {
    /// Indexes `docs` with the default parameters.
    pub fn new(docs: &[Doc]) -> Bm25 {
        Bm25::with_params(docs, Params::default())
    }

    /// Indexes `docs` with `params`.
    pub fn with_params(docs: &[Doc], params: Params) -> Bm25 {
        let mut terms: HashMap<Box<str>, u32> = HashMap::new();
        let mut postings: Vec<Vec<Posting>> = Vec::new();
        let mut lengths = Vec::with_capacity(docs.len());
        let mut total = [0f64; FIELDS];
        for (i, doc) in docs.iter().enumerate() {
            let mut counts: HashMap<u32, [u16; FIELDS]> = HashMap::new();
            let mut length = [0u16; FIELDS];
            for field in Field::ALL {
                let tokens = tokenize(doc.field(field));
                length[field as usize] = u16::try_from(tokens.len()).unwrap_or(u16::MAX);
                total[field as usize] += tokens.len() as f64;
                for token in tokens {
                    let next = terms.len() as u32;
                    let id = *terms.entry(token.into_boxed_str()).or_insert(next);
                    if id == next {
                        postings.push(Vec::new());
                    }
                    let tf = &mut counts.entry(id).or_default()[field as usize];
                    *tf = tf.saturating_add(1);
                }
            }
            let mut counts: Vec<_> = counts.into_iter().collect();
            counts.sort_unstable_by_key(|(id, _)| *id);
            for (id, tf) in counts {
                postings[id as usize].push(Posting { doc: i as u32, tf });
            }
            lengths.push(length);
        }
        let n = docs.len().max(1) as f64;
        let mean = std::array::from_fn(|f| (total[f] / n) as f32);
        Bm25 { params, terms, postings, lengths, mean }
    }

    /// How many documents are indexed.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Whether no document is indexed.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }
}

/// The part of a query that is read: what a model asks for fits many times over, and a query
/// pasted with a document attached must not cost more than this.
const MAX_QUERY_BYTES: usize = 4096;

impl Scorer for Bm25 {
    fn score(&self, query: &str, scores: &mut [f32]) {
        let n = self.lengths.len() as f32;
        let Params { k1, weight, b } = self.params;
        let mut end = query.len().min(MAX_QUERY_BYTES);
        while !query.is_char_boundary(end) {
            end -= 1;
        }
        let mut seen: Vec<u32> = Vec::new();
        for token in query_terms(&query[..end]) {
            let Some(&id) = self.terms.get(token.as_str()) else { continue };
            // A word asked twice is not twice the evidence.
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            let list = &self.postings[id as usize];
            let df = list.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for p in list {
                let length = &self.lengths[p.doc as usize];
                let mut tf = 0.0;
                for f in 0..FIELDS {
                    if p.tf[f] == 0 {
                        continue;
                    }
                    let norm = match self.mean[f] {
                        m if m > 0.0 => 1.0 - b[f] + b[f] * f32::from(length[f]) / m,
                        _ => 1.0,
                    };
                    tf += weight[f] * f32::from(p.tf[f]) / norm;
                }
                if let Some(s) = scores.get_mut(p.doc as usize) {
                    *s += idf * tf * (k1 + 1.0) / (k1 + tf);
                }
            }
        }
    }
}
