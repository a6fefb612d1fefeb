//! `text_stats`: counts lines, words and characters and lists the most
//! frequent words of a text or a file.

use boram_tool_sdk::prelude::*;
use std::collections::HashMap;

const DEFAULT_TOP: usize = 10;

/// Count the lines, words, characters and bytes of a text, and list its most
/// frequent words (case-insensitive). Give either `text` or `path`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The text to analyse.
    text: Option<String>,
    /// Or: absolute path of a UTF-8 file inside the sandbox to analyse.
    path: Option<String>,
    /// How many of the most frequent words to list (default 10, 0 for none).
    top: Option<usize>,
}

#[derive(Serialize, Debug, PartialEq)]
struct WordCount {
    word: String,
    count: usize,
}

#[derive(Serialize)]
struct Output {
    lines: usize,
    words: usize,
    chars: usize,
    bytes: usize,
    top_words: Vec<WordCount>,
}

fn text_stats(input: Input) -> Result<Output, ToolError> {
    let text = match (input.text, input.path) {
        (Some(text), None) => text,
        (None, Some(path)) => std::fs::read_to_string(&path).context(format!("cannot read {path}"))?,
        _ => return Err(ToolError::invalid_input("give exactly one of `text` or `path`")),
    };
    Ok(Output {
        lines: text.lines().count(),
        words: text.split_whitespace().count(),
        chars: text.chars().count(),
        bytes: text.len(),
        top_words: top_words(&text, input.top.unwrap_or(DEFAULT_TOP)),
    })
}

/// The `n` most frequent words, lowercased; ties sorted alphabetically.
/// A word is a run of letters, digits, `'` or `-`.
fn top_words(text: &str, n: usize) -> Vec<WordCount> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let is_word_char = |c: char| c.is_alphanumeric() || c == '\'' || c == '-';
    for word in text.split(|c: char| !is_word_char(c)) {
        let word = word.trim_matches(|c| c == '\'' || c == '-');
        if !word.is_empty() {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
    }
    let mut sorted: Vec<WordCount> = counts
        .into_iter()
        .map(|(word, count)| WordCount { word, count })
        .collect();
    sorted.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    sorted.truncate(n);
    sorted
}

boram_tool_sdk::export_tools!("text_stats" => text_stats);
