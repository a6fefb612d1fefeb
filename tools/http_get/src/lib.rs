//! `http_get`: fetches one URL over HTTP(S) with the SDK's client and
//! returns the body as text, with HTML pages reduced to readable text.
//!
//! Which hosts the tool may reach is the policy's business (`net` list);
//! a refusal comes back as a `failed` error that says so. A non-2xx status
//! is an answer, not an error: the model gets the status and the body.

mod text;

use boram_tool_sdk::http::{self, HttpError, Options, Request};
use boram_tool_sdk::prelude::*;

const DEFAULT_MAX_BYTES: usize = 200_000;
const LIMIT_MAX_BYTES: usize = 5_000_000;

/// Fetch a URL with HTTP GET and return its content as text. HTML pages are
/// reduced to readable text (scripts, styles and markup removed) unless
/// `raw` is true; JSON, XML and plain text come back as they are. Redirects
/// are followed. Only hosts the sandbox policy allows can be reached. A
/// non-2xx status is returned, not treated as an error.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Absolute http:// or https:// URL, e.g. `https://en.wikipedia.org/wiki/Tide`.
    url: String,
    /// Most bytes of the response body to read (default 200000, at most
    /// 5000000). A longer body is cut and `truncated` is set. The sandbox's
    /// output limit still applies to the text returned.
    max_bytes: Option<usize>,
    /// Return HTML as it is instead of reducing it to text (default false).
    #[serde(default)]
    raw: bool,
}

#[derive(Serialize)]
struct Output {
    /// The URL that answered, after redirects.
    url: String,
    status: u16,
    content_type: Option<String>,
    text: String,
    /// True when the body was longer than `max_bytes` and was cut.
    truncated: bool,
}

fn http_get(input: Input) -> Result<Output, ToolError> {
    let max_bytes = input.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if !(1..=LIMIT_MAX_BYTES).contains(&max_bytes) {
        return Err(ToolError::invalid_input(format!(
            "max_bytes must be between 1 and {LIMIT_MAX_BYTES}, got {max_bytes}"
        )));
    }
    let options = Options {
        max_body_bytes: max_bytes,
        ..Options::default()
    };
    let request = Request::get(input.url.trim()).header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");
    let response = http::send(&request, &options).map_err(|e| match e {
        // The URL the model wrote is the problem: let it fix and retry.
        HttpError::InvalidUrl(m) => ToolError::invalid_input(m),
        other => other.into(),
    })?;
    log::debug(&format!(
        "{} answered {} ({} bytes)",
        response.url,
        response.status,
        response.body.len()
    ));

    let content_type = response.header("content-type").map(str::to_string);
    let text = text::body_text(&response.body, content_type.as_deref(), input.raw);
    Ok(Output {
        url: response.url,
        status: response.status,
        content_type,
        text,
        truncated: response.truncated,
    })
}

boram_tool_sdk::export_tools!("http_get" => http_get);
