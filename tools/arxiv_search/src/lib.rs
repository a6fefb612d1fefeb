//! `arxiv_search`: searches arXiv through its public query API
//! (`/api/query`, an Atom feed) and returns the matching papers.
//!
//! The request goes through the SDK's HTTP client, so the policy's `net`
//! list must allow the API host (https://export.arxiv.org by default).

mod atom;
mod query;

use boram_tool_sdk::http::{self, HttpError, Options, Request};
use boram_tool_sdk::prelude::*;

const DEFAULT_API_BASE: &str = "https://export.arxiv.org";
const DEFAULT_MAX_RESULTS: u32 = 5;
const LIMIT_MAX_RESULTS: u32 = 50;
/// A feed of 50 entries with long abstracts is about 150 KB; this leaves room.
const MAX_FEED_BYTES: usize = 4 * 1024 * 1024;

/// Search arXiv for papers and return their ids, titles, authors, dates,
/// abstracts and links, most relevant first. Plain words are all required
/// (`sparse attention` finds papers mentioning both); arXiv's own syntax
/// also works: `ti:transformer AND au:varga`, `cat:cs.CL`, `abs:"phrase"`,
/// with AND, OR and ANDNOT.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// What to search for, e.g. `block sparse attention` or `ti:diffusion AND cat:cs.CV`.
    query: String,
    /// How many papers to return (default 5, at most 50).
    max_results: Option<u32>,
    /// API server to ask (default `https://export.arxiv.org`); for mirrors and tests.
    api_base: Option<String>,
}

fn arxiv_search(input: Input) -> Result<atom::SearchResult, ToolError> {
    let max_results = input.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
    if !(1..=LIMIT_MAX_RESULTS).contains(&max_results) {
        return Err(ToolError::invalid_input(format!(
            "max_results must be between 1 and {LIMIT_MAX_RESULTS}, got {max_results}"
        )));
    }
    let search_query = query::search_query(&input.query)?;
    let api_base = query::api_base(input.api_base.as_deref().unwrap_or(DEFAULT_API_BASE))?;
    let url = format!(
        "{api_base}/api/query?search_query={}&start=0&max_results={max_results}&sortBy=relevance",
        http::encode_component(&search_query)
    );
    log::debug(&format!("querying {url}"));

    let options = Options {
        max_body_bytes: MAX_FEED_BYTES,
        ..Options::default()
    };
    let response =
        http::send(&Request::get(&url).header("Accept", "application/atom+xml"), &options).map_err(|e| match e {
            HttpError::InvalidUrl(m) => ToolError::invalid_input(format!("api_base: {m}")),
            other => other.into(),
        })?;
    if !response.is_success() {
        // arXiv explains a bad query in an Atom error feed; anything else
        // (a proxy's error page) is shown in part.
        let body = response.text();
        let detail = atom::api_error(&body).unwrap_or_else(|| body.chars().take(300).collect());
        return Err(ToolError::failed(format!(
            "arXiv answered {} for {}: {}",
            response.status,
            response.url,
            detail.trim()
        )));
    }
    if response.truncated {
        return Err(ToolError::failed(format!(
            "the arXiv feed from {} is larger than {MAX_FEED_BYTES} bytes; ask for fewer results",
            response.url
        )));
    }
    atom::parse_feed(&response.text()).map_err(ToolError::failed)
}

boram_tool_sdk::export_tools!("arxiv_search" => arxiv_search);
