//! Builds the arXiv `search_query` value and checks the API base URL.
//!
//! arXiv's query language combines space-separated words with OR, so
//! `all:sparse attention` would also match papers that only mention
//! "attention"; plain words therefore become `all:sparse AND all:attention`
//! (every word required, as a search box user expects). A query that
//! already uses arXiv's field prefixes or boolean operators is the caller's
//! own syntax and is passed through untouched.

use boram_tool_sdk::ToolError;

/// arXiv's field prefixes (`ti:`, `au:`, ...), per the API user manual.
const FIELDS: [&str; 9] = ["ti", "au", "abs", "co", "jr", "cat", "rn", "id", "all"];
const OPERATORS: [&str; 3] = ["AND", "OR", "ANDNOT"];

/// The `search_query` for `query`, before URL encoding.
pub fn search_query(query: &str) -> Result<String, ToolError> {
    let query = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if query.is_empty() {
        return Err(ToolError::invalid_input(
            "query is empty; give words to search for, e.g. `sparse attention`",
        ));
    }
    if query.chars().count() > 1000 {
        return Err(ToolError::invalid_input(
            "query is longer than 1000 characters; shorten it",
        ));
    }
    if uses_arxiv_syntax(&query) {
        return Ok(query);
    }
    let terms: Vec<String> = query
        .split(' ')
        // A colon would read as a field prefix; arXiv has no escape for it.
        .map(|word| word.replace(':', " "))
        .map(|word| word.trim().to_string())
        .filter(|word| !word.is_empty())
        .map(|word| {
            if word.contains(' ') {
                format!("all:\"{word}\"")
            } else {
                format!("all:{word}")
            }
        })
        .collect();
    if terms.is_empty() {
        return Err(ToolError::invalid_input("query has no words to search for"));
    }
    Ok(terms.join(" AND "))
}

fn uses_arxiv_syntax(query: &str) -> bool {
    query.split(' ').any(|word| {
        OPERATORS.contains(&word)
            || word
                .trim_start_matches('(')
                .split_once(':')
                .is_some_and(|(field, _)| FIELDS.contains(&field))
    })
}

/// `api_base` without a trailing slash, once it looks like `http(s)://host[:port][/path]`.
pub fn api_base(base: &str) -> Result<String, ToolError> {
    let base = base.trim().trim_end_matches('/');
    let rest = base.strip_prefix("https://").or_else(|| base.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains(['?', '#', ' ']) => Ok(base.to_string()),
        _ => Err(ToolError::invalid_input(format!(
            "api_base must be an http(s) URL without query, such as https://export.arxiv.org; got `{base}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_are_all_required() {
        assert_eq!(
            search_query("  sparse   attention ").unwrap(),
            "all:sparse AND all:attention"
        );
        assert_eq!(search_query("transformers").unwrap(), "all:transformers");
        assert_eq!(search_query("time: series").unwrap(), "all:time AND all:series");
        assert_eq!(search_query("a:b").unwrap(), "all:\"a b\"");
    }

    #[test]
    fn arxiv_syntax_passes_through() {
        assert_eq!(
            search_query("ti:transformer AND au:varga").unwrap(),
            "ti:transformer AND au:varga"
        );
        assert_eq!(search_query("cat:cs.CL").unwrap(), "cat:cs.CL");
        assert_eq!(
            search_query("(ti:a OR ti:b) ANDNOT cat:cs.CV").unwrap(),
            "(ti:a OR ti:b) ANDNOT cat:cs.CV"
        );
        assert_eq!(search_query("cats OR dogs").unwrap(), "cats OR dogs");
    }

    #[test]
    fn empty_queries_are_refused() {
        for q in ["", "   ", ":"] {
            assert!(matches!(search_query(q), Err(ToolError::InvalidInput(_))), "{q:?}");
        }
    }

    #[test]
    fn api_base_is_checked() {
        assert_eq!(
            api_base("https://export.arxiv.org/").unwrap(),
            "https://export.arxiv.org"
        );
        assert_eq!(api_base("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        for bad in ["export.arxiv.org", "ftp://x", "https://", "https://x/?a=1"] {
            assert!(api_base(bad).is_err(), "{bad}");
        }
    }
}
