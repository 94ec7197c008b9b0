//! Text to search terms: identifiers split where people split them, common words dropped, words
//! reduced to their stems, so that `get_weather_forecast`, `getWeatherForecast` and "weather
//! forecasts" meet on the same terms.

use rust_stemmers::{Algorithm, Stemmer};
use std::sync::LazyLock;

/// The English Snowball stemmer (the catalogues and the questions asked of them are English).
static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// Words too common in tool descriptions and questions to tell tools apart. BM25's idf already
/// discounts them; dropping them also keeps them from matching on their own.
const STOP: &[&str] = &[
    "a", "about", "all", "an", "and", "any", "are", "as", "at", "be", "been", "by", "can", "could", "do", "does",
    "for", "from", "give", "has", "have", "help", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my",
    "need", "of", "on", "or", "our", "please", "should", "so", "some", "that", "the", "their", "them", "then", "there",
    "these", "this", "those", "to", "tool", "tools", "us", "use", "using", "want", "was", "we", "were", "what", "when",
    "where", "which", "who", "will", "with", "would", "you", "your",
];

/// The terms of `text`, in order (repeats kept: they are term frequencies).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for run in text.split(|c: char| !c.is_alphanumeric()) {
        split_identifier(run, |word| {
            let lower = word.to_lowercase();
            if lower.chars().count() < 2 && !lower.chars().all(|c| c.is_ascii_digit()) {
                return;
            }
            if STOP.binary_search(&lower.as_str()).is_ok() {
                return;
            }
            let stem = STEMMER.stem(&lower);
            out.push(canonical(&stem).map_or_else(|| stem.into_owned(), str::to_string));
        });
    }
    out
}

/// The terms of a query: its words as [`tokenize`] makes them, and `file` when it names a file
/// by path. A question that says where the result goes ("save it to /root/notes/plan.md") asks
/// for a tool that writes files without saying "file", and the path's own words (`root`, `md`)
/// match nothing useful.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut terms = tokenize(text);
    if text.split_whitespace().any(is_path) {
        terms.extend(tokenize("file"));
    }
    terms
}

/// Whether a word of a query names a file: an absolute, home- or dot-relative path (`/srv/x`,
/// `~/x`, `./x`), a Windows one (`C:\x`), a relative path that ends in an extension
/// (`reports/q3.csv`, not `example.com/post.html`, whose first part is a host), or a bare name
/// with a document's extension (`notes.md`; not `node.js`). URLs are not.
fn is_path(word: &str) -> bool {
    let word = word.trim_matches(|c: char| {
        matches!(c, '"' | '\'' | '`' | '(' | ')' | '[' | ']' | '<' | '>' | '*' | ',' | ';' | ':' | '?' | '!')
            || (!c.is_ascii() && !c.is_alphanumeric())
    });
    let word = word.strip_suffix('.').unwrap_or(word);
    if word.contains("://") {
        return false;
    }
    let rooted = ["/", "~/", "./", "../"].iter().any(|p| word.starts_with(p))
        && word.len() > 2
        && word[1..].chars().any(char::is_alphanumeric);
    let bytes = word.as_bytes();
    let windows =
        bytes.len() > 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && matches!(bytes[2], b'\\' | b'/');

    let relative = match word.split_once('/') {
        Some((first, rest)) => !first.contains('.') && rest.rsplit('/').next().and_then(extension).is_some(),
        None => false,
    };
    let document = !word.contains('/')
        && extension(word).is_some_and(|ext| DOCUMENT_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()));
    rooted || windows || relative || document
}

/// The extension of a file name (`q3.csv` → `csv`): 1 to 5 letters or digits after a dot that
/// follows something.
fn extension(name: &str) -> Option<&str> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty() && (1..=5).contains(&ext.len()) && ext.chars().all(|c| c.is_ascii_alphanumeric())).then_some(ext)
}

/// Extensions that make a bare word a file name: documents, data, media and archives. Not
/// languages' (`node.js`, `main.py` read as names of things as often as of files) and not
/// domains' (`.com`, `.io`).
const DOCUMENT_EXTENSIONS: &[&str] = &[
    "7z", "csv", "doc", "docx", "gif", "gz", "htm", "html", "jpeg", "jpg", "json", "log", "md", "mp3", "mp4", "odt",
    "pdf", "png", "ppt", "pptx", "svg", "tar", "tsv", "txt", "wav", "webp", "xls", "xlsx", "xml", "yaml", "yml", "zip",
];

/// Stems that mean the same to someone looking for a tool, and the one they are indexed under:
/// questions say "find", "look up" or "retrieve" where descriptions say "search" or "get".
const SAME: &[(&str, &str)] = &[
    ("fetch", "get"),
    ("obtain", "get"),
    ("retriev", "get"),
    ("find", "search"),
    ("lookup", "search"),
    ("queri", "search"),
    ("seek", "search"),
    ("look", "search"),
    ("remov", "delet"),
    ("eras", "delet"),
    ("modifi", "updat"),
    ("edit", "updat"),
    ("chang", "updat"),
    ("make", "creat"),
    ("generat", "creat"),
    ("build", "creat"),
    ("save", "write"),
];

/// The stem `stem` is indexed under, if another.
fn canonical(stem: &str) -> Option<&'static str> {
    SAME.iter().find(|(from, _)| *from == stem).map(|(_, to)| *to)
}

/// Calls `each` with the words of one alphanumeric run: split where the case turns upper after
/// lower (`getWeather`), before the last capital of an acronym that a word follows
/// (`HTTPServer` → `HTTP`, `Server`), and between letters and digits (`utf8` → `utf`, `8`).
fn split_identifier(run: &str, mut each: impl FnMut(&str)) {
    let chars: Vec<(usize, char)> = run.char_indices().collect();
    let mut start = 0;
    for i in 1..chars.len() {
        let (prev, cur) = (chars[i - 1].1, chars[i].1);
        let next = chars.get(i + 1).map(|c| c.1);
        let boundary = (prev.is_lowercase() && cur.is_uppercase())
            || (prev.is_uppercase() && cur.is_uppercase() && next.is_some_and(char::is_lowercase))
            || (prev.is_alphabetic() && cur.is_numeric())
            || (prev.is_numeric() && cur.is_alphabetic());
        if boundary {
            each(&run[start..chars[i].0]);
            start = chars[i].0;
        }
    }
    if start < run.len() {
        each(&run[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_for_the_same_action_meet() {
        for (a, b) in [
            ("find", "search"),
            ("look", "search"),
            ("lookup", "search"),
            ("queries", "search"),
            ("retrieve", "get"),
            ("fetched", "get"),
            ("remove", "delete"),
            ("modify", "update"),
            ("generate", "create"),
        ] {
            assert_eq!(tokenize(a).last(), tokenize(b).last(), "{a} / {b}");
        }
        assert_ne!(tokenize("find"), tokenize("delete"));
    }

    #[test]
    fn a_query_naming_a_path_asks_for_files() {
        let file = tokenize("file");
        for q in [
            "Generate a report and save it in /root/markdown/bitcoin.md",
            "write notes to ~/notes.txt",
            "read ./data/people.xlsx, please",
            "summarise reports/q3.csv",
            "open \"/var/log/syslog\".",
            "save as notes.md",
            "open C:\\Users\\me\\plan.docx",
            "put it in [/root/a.md]",
            "写入 /root/报告.md。",
        ] {
            assert!(query_terms(q).ends_with(&file), "{q}");
        }
        for q in [
            "see https://example.com/a/b.html",
            "and/or the 3/4 rule",
            "a / b",
            "weather in Paris",
            "read example.com/post.html",
            "learn node.js basics",
            "the github.com/o/r.git repository",
        ] {
            assert_eq!(query_terms(q), tokenize(q), "{q}");
        }
        assert_eq!(tokenize("saved").last(), tokenize("write").last());
    }

    #[test]
    fn identifiers_split_the_way_people_write_them() {
        for (text, want) in [
            ("get_weather_forecast", vec!["weather", "forecast"]),
            ("getWeatherForecast", vec!["weather", "forecast"]),
            ("get-weather-forecast", vec!["weather", "forecast"]),
            ("parseHTTPServerLogs", vec!["pars", "http", "server", "log"]),
            ("utf8Decode", vec!["utf", "8", "decod"]),
            ("Search the Web for news articles", vec!["search", "web", "news", "articl"]),
        ] {
            let mut got = tokenize(text);
            // `get` is a stop word nowhere; compare what follows it where it leads.
            if got.first().is_some_and(|t| t == "get") {
                got.remove(0);
            }
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn stop_words_are_sorted_and_dropped() {
        assert!(STOP.windows(2).all(|w| w[0] < w[1]), "STOP must stay sorted for binary_search");
        assert!(tokenize("what is the weather in Paris").iter().all(|t| t == "weather" || t == "pari"));
        assert!(tokenize("").is_empty());
        assert!(tokenize("a I x").is_empty());
    }

    #[test]
    fn inflections_meet_on_one_stem() {
        assert_eq!(tokenize("searching"), tokenize("searches"));
        assert_eq!(tokenize("files"), tokenize("file"));
        assert_eq!(tokenize("created"), tokenize("creating"));
    }
}
