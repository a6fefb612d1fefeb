//! Tool selection: before each model call, offer only the tools relevant
//! to the conversation instead of every schema. Tools are ranked against
//! the latest prompt plus the recently used tools' names by two measures:
//! BM25 over their name (counted twice), description and input-schema
//! property names and descriptions (shared words), and — when a sentence-
//! embedding model is installed — the cosine similarity of the prompt's and
//! the tool's embeddings (shared meaning: "umbrella" finds the weather
//! tool). The score is `meaning_weight` × similarity + the rest × BM25
//! relative to the best BM25 score (or to a solid match's score, when the
//! best is weaker). A tool is offered when it ranks in the top `max_tools`
//! and scores at least `min_share` of the best score; tools listed as
//! `always`, tools used earlier in the session and tools the model asked
//! for through `list_tools` are always offered. Selections are cached by
//! the prompt's word set, so similar prompts skip the ranking.

use crate::embed::{Embedder, similarity};
use crate::llm::ToolDef;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Most tools offered by ranking (sticky tools come on top).
pub const DEFAULT_MAX_TOOLS: usize = 4;
/// A ranked tool must score at least this share of the best score.
pub const DEFAULT_MIN_SHARE: f64 = 0.5;
/// Selection starts when more tools than this are loaded; below it every
/// tool is offered (a handful of schemas is cheap, and the model sees all).
pub const DEFAULT_MIN_TOOLS: usize = 10;
/// Share of the score that comes from meaning when a model is loaded.
pub const DEFAULT_MEANING_WEIGHT: f64 = 0.6;
/// A BM25 score that means a solid match (about two rare words shared);
/// blended with meaning, words scores are relative to the best score or
/// this, whichever is higher.
const SOLID_BM25: f64 = 6.0;
/// What a near word (misspelling, prefix) counts for against the word itself.
const NEAR_WORD_WEIGHT: f64 = 0.7;
/// Selections remembered.
const CACHE_SIZE: usize = 256;
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// How tools are chosen for each request.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionOptions {
    pub max_tools: usize,
    pub min_share: f64,
    /// Always offered.
    pub always: Vec<String>,
    /// Select only when more tools than this are loaded.
    pub min_tools: usize,
    /// The sentence-embedding model; `None` ranks by words alone.
    pub meaning: Option<MeaningModel>,
    /// Share of the score from meaning (0 to 1) when `meaning` is set.
    pub meaning_weight: f64,
}

impl Default for SelectionOptions {
    fn default() -> Self {
        Self {
            max_tools: DEFAULT_MAX_TOOLS,
            min_share: DEFAULT_MIN_SHARE,
            always: Vec::new(),
            min_tools: DEFAULT_MIN_TOOLS,
            meaning: None,
            meaning_weight: DEFAULT_MEANING_WEIGHT,
        }
    }
}

/// The sentence-embedding model selection ranks by meaning with, loaded on
/// first use — a catalogue at or below `min_tools` never has a selector, so
/// it never pays for reading 90 MB of weights. Two are equal when they name
/// the same directory.
#[derive(Clone)]
pub struct MeaningModel {
    dir: PathBuf,
    loaded: Arc<OnceLock<Option<Arc<Embedder>>>>,
}

impl MeaningModel {
    /// The model in `dir`, loaded when first needed (once per process:
    /// [`crate::embed::shared`]).
    pub fn at(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            loaded: Arc::default(),
        }
    }

    /// A model already loaded.
    pub fn loaded(embedder: Arc<Embedder>) -> Self {
        Self {
            dir: embedder.dir().to_path_buf(),
            loaded: Arc::new(OnceLock::from(Some(embedder))),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model, loaded on the first call; `None` (said once in the log)
    /// when it cannot be loaded, and selection ranks by words.
    pub fn embedder(&self) -> Option<Arc<Embedder>> {
        self.loaded
            .get_or_init(|| match crate::embed::shared(&self.dir) {
                Ok(embedder) => Some(embedder),
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "tool selection ranks by words only (`boram model fetch` reinstalls the model)"
                    );
                    None
                }
            })
            .clone()
    }
}

impl PartialEq for MeaningModel {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir
    }
}

impl std::fmt::Debug for MeaningModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MeaningModel({})", self.dir.display())
    }
}

/// One tool's place in a ranking and what made its score.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Ranked<'a> {
    pub name: &'a str,
    pub score: f64,
    /// BM25 over the tool's words.
    pub words: f64,
    /// Cosine similarity of the prompt's and the tool's embeddings.
    pub meaning: Option<f64>,
}

/// What one selection offered, for the log line and the benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub names: Vec<String>,
    pub cache_hit: bool,
    pub schema_chars_sent: usize,
    pub schema_chars_all: usize,
}

struct Doc {
    name: String,
    terms: HashMap<String, f64>,
    len: f64,
    schema_chars: usize,
}

pub struct Selector {
    docs: Vec<Doc>,
    meaning: Option<ToolVectors>,
    document_frequency: HashMap<String, f64>,
    average_len: f64,
    options: SelectionOptions,
    cache: Mutex<SelectionCache>,
}

/// The embedding model and each tool's vector, in `docs` order.
type ToolVectors = (Arc<Embedder>, Vec<Arc<[f32]>>);

/// Remembered selections by prompt key, and the keys oldest first.
type SelectionCache = (HashMap<String, Vec<String>>, VecDeque<String>);

impl Selector {
    pub fn new(tools: &[ToolDef], options: SelectionOptions) -> Self {
        let docs: Vec<Doc> = tools.iter().map(document).collect();
        let mut document_frequency = HashMap::new();
        for doc in &docs {
            for term in doc.terms.keys() {
                *document_frequency.entry(term.clone()).or_insert(0.0) += 1.0;
            }
        }
        let average_len = docs.iter().map(|d| d.len).sum::<f64>() / docs.len().max(1) as f64;
        let meaning = options
            .meaning
            .as_ref()
            .and_then(MeaningModel::embedder)
            .and_then(|embedder| {
                let texts: Vec<String> = tools.iter().map(meaning_text).collect();
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                match embedder.embed(&texts) {
                    Ok(vectors) => Some((embedder, vectors)),
                    Err(error) => {
                        tracing::warn!(%error, "tool selection: cannot embed the tools; ranking by words only");
                        None
                    }
                }
            });
        Self {
            docs,
            meaning,
            document_frequency,
            average_len,
            options,
            cache: Mutex::default(),
        }
    }

    /// Every tool, best match for `query` first, with its score: BM25
    /// alone, or blended with meaning when a model is loaded.
    pub fn rank(&self, query: &str) -> Vec<(&str, f64)> {
        self.explain(query).into_iter().map(|r| (r.name, r.score)).collect()
    }

    /// [`Self::rank`] with what made each score: the BM25 score and the
    /// similarity (when ranking by meaning).
    pub fn explain(&self, query: &str) -> Vec<Ranked<'_>> {
        let words = self.bm25(query);
        let similarities = self.similarities(query);
        // Relative to the best match, but a weak best (one common word) is
        // not a full score: it must not drown meaning.
        let scale = words.iter().copied().fold(SOLID_BM25, f64::max);
        let weight = self.options.meaning_weight.clamp(0.0, 1.0);
        let mut ranked: Vec<Ranked<'_>> = self
            .docs
            .iter()
            .enumerate()
            .map(|(i, doc)| {
                let meaning = similarities.as_ref().map(|s| s[i]);
                let score = match meaning {
                    Some(similarity) => weight * similarity.max(0.0) + (1.0 - weight) * words[i] / scale,
                    None => words[i],
                };
                Ranked {
                    name: &doc.name,
                    score,
                    words: words[i],
                    meaning,
                }
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.name.cmp(b.name)));
        ranked
    }

    /// Whether tools are also ranked by meaning.
    pub fn by_meaning(&self) -> bool {
        self.meaning.is_some()
    }

    /// Each doc's BM25 score for `query`, in `docs` order. A query word no
    /// tool uses stands for the tool words it is a misspelling or a prefix
    /// of ("calender" → calendar, "wiki" → wikipedia), at a discount.
    fn bm25(&self, query: &str) -> Vec<f64> {
        let terms: Vec<(String, f64)> = tokens(query).into_iter().flat_map(|t| self.expand(t)).collect();
        let n = self.docs.len() as f64;
        self.docs
            .iter()
            .map(|doc| {
                terms
                    .iter()
                    .filter_map(|(t, weight)| {
                        let tf = *doc.terms.get(t)?;
                        let df = self.document_frequency.get(t).copied().unwrap_or(0.0);
                        let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                        Some(weight * idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * doc.len / self.average_len)))
                    })
                    // Not `sum()`: an empty f64 sum is -0.0, shown as "-0.00".
                    .fold(0.0, |total, score| total + score)
            })
            .collect()
    }

    /// `term` itself when some tool uses it; otherwise the tool words it
    /// nearly spells (one edit, for words of 5+ letters) or begins (4+).
    fn expand(&self, term: String) -> Vec<(String, f64)> {
        if self.document_frequency.contains_key(&term) || term.starts_with("__") {
            return vec![(term, 1.0)];
        }
        let len = term.chars().count();
        self.document_frequency
            .keys()
            .filter(|known| {
                (len >= 4 && known.starts_with(term.as_str()))
                    || (len >= 5 && strsim::damerau_levenshtein(&term, known) == 1)
            })
            .map(|known| (known.clone(), NEAR_WORD_WEIGHT))
            .collect()
    }

    /// Each doc's cosine similarity to `query`, or `None` without a model
    /// (or when the model fails, which is logged: words still rank).
    fn similarities(&self, query: &str) -> Option<Vec<f64>> {
        let (embedder, vectors) = self.meaning.as_ref()?;
        if query.trim().is_empty() {
            return None;
        }
        match embedder.embed(&[query]) {
            Ok(q) => Some(vectors.iter().map(|v| f64::from(similarity(&q[0], v))).collect()),
            Err(error) => {
                tracing::warn!(%error, "tool selection: cannot embed the prompt; ranking by words only");
                None
            }
        }
    }

    /// The tools to offer for `query`, plus every name in `sticky`.
    pub fn select(&self, query: &str, sticky: &BTreeSet<String>) -> Selection {
        let key = cache_key(query);
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(&key)
            .cloned();
        let cache_hit = cached.is_some();
        let ranked = cached.unwrap_or_else(|| {
            let ranked = self.ranked_names(query);
            self.remember(key, ranked.clone());
            ranked
        });
        let mut names: Vec<String> = ranked;
        for name in self.options.always.iter().chain(sticky) {
            if !names.contains(name) && self.docs.iter().any(|d| &d.name == name) {
                names.push(name.clone());
            }
        }
        let chars = |wanted: &dyn Fn(&str) -> bool| -> usize {
            self.docs
                .iter()
                .filter(|d| wanted(&d.name))
                .map(|d| d.schema_chars)
                .sum()
        };
        Selection {
            schema_chars_sent: chars(&|n| names.iter().any(|s| s == n)),
            schema_chars_all: chars(&|_| true),
            names,
            cache_hit,
        }
    }

    fn ranked_names(&self, query: &str) -> Vec<String> {
        let ranked = self.rank(query);
        let best = ranked.first().map_or(0.0, |r| r.1);
        if best <= 0.0 {
            return Vec::new();
        }
        ranked
            .into_iter()
            .take(self.options.max_tools)
            .filter(|(_, score)| *score >= best * self.options.min_share)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    fn remember(&self, key: String, names: Vec<String>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *cache;
        if map.insert(key.clone(), names).is_none() {
            order.push_back(key);
        }
        while order.len() > CACHE_SIZE {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }
}

/// What a tool's embedding is made of: its name as words and its
/// description (the schema adds little meaning and would crowd out the
/// description within the model's token limit).
fn meaning_text(tool: &ToolDef) -> String {
    format!("{}: {}", tool.name.replace('_', " "), tool.description)
}

/// A tool as a bag of weighted terms.
fn document(tool: &ToolDef) -> Doc {
    let mut terms: HashMap<String, f64> = HashMap::new();
    let mut add = |text: &str, weight: f64| {
        let words = if text == PATH_TERM || text == URL_TERM {
            vec![text.to_string()]
        } else {
            tokens(text)
        };
        for t in words {
            *terms.entry(t).or_insert(0.0) += weight;
        }
    };
    add(&tool.name.replace('_', " "), 2.0);
    add(&tool.description, 1.0);
    if let Some(props) = tool.input_schema.get("properties").and_then(|p| p.as_object()) {
        for (name, prop) in props {
            add(&name.replace('_', " "), 1.0);
            add(
                prop.get("description").and_then(|d| d.as_str()).unwrap_or_default(),
                0.5,
            );
            if let Some(kind) = argument_kind(name) {
                add(kind, 1.0);
            }
        }
    }
    let len = terms.values().sum();
    Doc {
        name: tool.name.clone(),
        terms,
        len,
        schema_chars: schema_chars(tool),
    }
}

/// A structural term for an input property that takes a file path or a URL,
/// so a prompt that contains one (see [`tokens`]) leans towards tools that
/// take one — whatever words the prompt uses around it.
fn argument_kind(property: &str) -> Option<&'static str> {
    match property {
        "path" | "file" | "dir" | "directory" | "folder" | "source" | "destination" => Some(PATH_TERM),
        "url" | "uri" | "link" => Some(URL_TERM),
        _ => None,
    }
}

const PATH_TERM: &str = "__path__";
const URL_TERM: &str = "__url__";

/// The characters a tool costs in a request: its definition as JSON.
pub fn schema_chars(tool: &ToolDef) -> usize {
    serde_json::to_string(tool).map_or(0, |s| s.len())
}

/// Lowercase word stems without stop words, plus a structural term for
/// each URL or file path in the text.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect();
    for word in text.split_whitespace() {
        let word = word.trim_matches(|c: char| matches!(c, '"' | '\'' | '(' | ')' | ',' | ';' | ':' | '?' | '!'));
        if word.contains("://") || word.starts_with("www.") {
            out.push(URL_TERM.to_string());
        } else if word.starts_with('/') || word.starts_with("./") || word.starts_with("~/") {
            out.push(PATH_TERM.to_string());
        }
    }
    out
}

/// A light suffix stripper: enough to match `files`/`file`, `searching`/`search`.
fn stem(word: &str) -> String {
    for suffix in ["ing", "ies", "es", "ed", "s"] {
        if let Some(base) = word.strip_suffix(suffix)
            && base.len() >= 3
        {
            return if suffix == "ies" {
                format!("{base}y")
            } else {
                base.to_string()
            };
        }
    }
    word.to_string()
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from", "how", "i", "if",
    "in", "is", "it", "its", "me", "my", "of", "on", "or", "please", "so", "that", "the", "their", "them", "then",
    "there", "this", "to", "us", "was", "we", "what", "when", "where", "which", "who", "will", "with", "would", "you",
    "your", "up", "out", "about", "into", "some", "any", "all", "get", "use", "using", "tool", "one",
];

/// Similar prompts (same words, any order or repetition) share a selection.
fn cache_key(query: &str) -> String {
    let set: BTreeSet<String> = tokens(query).into_iter().collect();
    set.into_iter().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, description: &str) -> ToolDef {
        ToolDef {
            name: name.into(),
            description: description.into(),
            input_schema: json!({"type": "object", "properties": {"path": {"type": "string", "description": "a path"}}}),
        }
    }

    fn selector() -> Selector {
        Selector::new(
            &[
                tool("read_file", "Read a text file from a directory the policy grants."),
                tool("send_email", "Send an email message to one or more recipients."),
                tool("weather_forecast", "Get the weather forecast for a city."),
            ],
            SelectionOptions::default(),
        )
    }

    #[test]
    fn the_relevant_tool_ranks_first_and_similar_prompts_hit_the_cache() {
        let s = selector();
        let first = s.select("what's the weather in Seoul tomorrow?", &BTreeSet::new());
        assert_eq!(first.names, ["weather_forecast"]);
        assert!(!first.cache_hit);
        assert!(first.schema_chars_sent < first.schema_chars_all);
        let again = s.select("Tomorrow in Seoul: the weather?", &BTreeSet::new());
        assert!(again.cache_hit);
    }

    #[test]
    fn a_misspelt_or_shortened_word_finds_the_tool_word_it_stands_for() {
        let s = Selector::new(
            &[
                tool("calendar_list_events", "List the events on the user's calendar."),
                tool("wikipedia_search", "Search Wikipedia articles."),
                tool("send_email", "Send an email message."),
            ],
            SelectionOptions::default(),
        );
        assert_eq!(s.rank("what's in my calender")[0].0, "calendar_list_events");
        assert_eq!(s.rank("check wiki for hangul")[0].0, "wikipedia_search");
        assert_eq!(s.rank("check wi for hangul")[0].1, 0.0, "too short to stand for a word");
    }

    #[test]
    fn sticky_tools_are_always_offered() {
        let s = selector();
        let sticky: BTreeSet<String> = ["read_file".to_string()].into();
        let sel = s.select("email the team", &sticky);
        assert_eq!(sel.names, ["send_email", "read_file"]);
        assert!(s.select("", &BTreeSet::new()).names.is_empty());
    }
}
