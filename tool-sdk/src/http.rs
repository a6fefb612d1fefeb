//! A small blocking HTTP client for tools, over the standard
//! `wasi:http/outgoing-handler` interface (wasi:http 0.2).
//!
//! The host decides what a tool may reach: it checks every request against
//! the `net` list of the tool's policy, adds credentials (such as an
//! `Authorization` header) from the policy's `secrets` itself, and enforces
//! size and time limits. A tool never sees or sets credentials. The host
//! does not follow redirects; this client does, sending each hop as a new
//! request, so the host checks every hop against the policy too (a hop
//! to a host the policy does not name fails as [`HttpError::Denied`]).
//!
//! ```no_run
//! use boram_tool_sdk::http::{self, Method, Options, Request};
//! use boram_tool_sdk::prelude::*;
//! use boram_tool_sdk::serde_json::Value;
//!
//! fn fetch_title(url: &str) -> Result<String, ToolError> {
//!     // `get` follows up to 5 redirects and reads at most 1 MiB of body.
//!     let page = http::get(url)?;
//!     if !page.is_success() {
//!         return Err(ToolError::failed(format!("{} answered {}", page.url, page.status)));
//!     }
//!     Ok(page.text().lines().next().unwrap_or_default().to_string())
//! }
//!
//! fn create_item(api: &str) -> Result<Value, ToolError> {
//!     let request = Request::new(Method::Post, format!("{api}/items"))
//!         .header("Content-Type", "application/json")
//!         .body(br#"{"name":"x"}"#.to_vec());
//!     let options = Options { max_body_bytes: 64 * 1024, ..Options::default() };
//!     let response = http::send(&request, &options)?;
//!     Ok(response.json()?)
//! }
//! ```
//!
//! A request the policy does not allow fails with [`HttpError::Denied`],
//! whose message tells the model (and the user) that the policy's `net`
//! list decides what the tool may reach. `?` turns any [`HttpError`] into a
//! [`ToolError::Failed`](crate::ToolError::Failed) with the same message.

mod error;
mod redirect;
mod transport;

use std::time::Duration;

use serde::de::DeserializeOwned;

pub use error::HttpError;

/// The User-Agent sent when a request names none: several public APIs
/// (GitHub's among them) refuse requests without one.
pub const DEFAULT_USER_AGENT: &str = concat!("boram-tool-sdk/", env!("CARGO_PKG_VERSION"));

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
    Head,
    Patch,
}

/// One HTTP request: method, absolute `http(s)` URL, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    /// Header names and values. Credentials are not set here: the host adds
    /// them from the policy's `secrets`.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A GET request for `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body (`Content-Length` is added when not given).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// How [`send`] treats the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Most body bytes kept; the rest is not read and
    /// [`Response::truncated`] is set. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Most redirects followed before giving up with an error. 0 turns
    /// following off: a 3xx response is returned as it is. Default 5.
    pub max_redirects: u32,
    /// Gives up on each request (each redirect hop) when its response head
    /// and body have not both arrived within this time, with
    /// [`HttpError::Timeout`]. The host's own limits apply either way;
    /// `None` (the default) leaves only those.
    pub timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_redirects: 5,
            timeout: None,
        }
    }
}

/// A response, after redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names (lowercase, as the host gives them) and values (decoded
    /// as UTF-8, invalid bytes replaced).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The URL that gave this response, after redirects, without fragment.
    pub url: String,
    /// True when the body was cut at [`Options::max_body_bytes`].
    pub truncated: bool,
}

impl Response {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text; invalid UTF-8 is replaced with U+FFFD.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let cut = if self.truncated {
                format!(" (the body was cut at {} bytes)", self.body.len())
            } else {
                String::new()
            };
            HttpError::Other(format!(
                "the response from {} is not the expected JSON{cut}: {e}",
                self.url
            ))
        })
    }

    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Percent-encodes `text` for use as one query value or one path segment:
/// everything but the RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// becomes `%XX`, so `a b&c/d` gives `a%20b%26c%2Fd`.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// GETs `url` with the default [`Options`].
pub fn get(url: &str) -> Result<Response, HttpError> {
    send(&Request::get(url), &Options::default())
}

/// Sends `request`, follows redirects as [`Options::max_redirects`] allows,
/// and reads the final body up to [`Options::max_body_bytes`].
///
/// Any status is a response, not an error: check [`Response::is_success`].
/// Errors are for requests that got no response (refused by the policy,
/// timed out, network failure), an invalid URL and endless redirects.
pub fn send(request: &Request, options: &Options) -> Result<Response, HttpError> {
    let start = redirect::parse_request_url(&request.url)?;
    let mut url = start.clone();
    let mut method = request.method;
    let mut headers = request.headers.clone();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("user-agent")) {
        headers.push(("user-agent".to_string(), DEFAULT_USER_AGENT.to_string()));
    }
    let mut body = request.body.as_deref();
    let mut redirects = 0;
    loop {
        let deadline = transport::Deadline::after(options.timeout);
        let head = transport::send_once(method, &url, &headers, body, &deadline)?;
        let location = head
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.as_str());
        let hop = match options.max_redirects {
            0 => None,
            _ => redirect::next_hop(head.status, location, &url, method)?,
        };
        let Some(hop) = hop else {
            let status = head.status;
            let response_headers = head.headers.clone();
            let (bytes, truncated) = transport::read_body(head, options.max_body_bytes, &url, &deadline)?;
            return Ok(Response {
                status,
                headers: response_headers,
                body: bytes,
                url: url.into(),
                truncated,
            });
        };
        if redirects == options.max_redirects {
            return Err(redirect::too_many(options.max_redirects, &start, &hop.url));
        }
        redirects += 1;
        drop(head);
        if !hop.keep_body {
            body = None;
            // The headers that described the dropped body no longer apply.
            headers.retain(|(n, _)| !n.to_ascii_lowercase().starts_with("content-"));
        }
        if !redirect::same_origin(&url, &hop.url) {
            headers.retain(|(n, _)| !redirect::is_credential_header(n));
        }
        url = hop.url;
        method = hop.method;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status: 200,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
            url: "https://example.com/".into(),
            truncated: false,
        }
    }

    #[test]
    fn encodes_components() {
        assert_eq!(encode_component("a b&c/d"), "a%20b%26c%2Fd");
        assert_eq!(encode_component("ok-._~09AZaz"), "ok-._~09AZaz");
        assert_eq!(encode_component("é:"), "%C3%A9%3A");
    }

    #[test]
    fn response_helpers() {
        let r = response(
            &[("content-type", "application/json"), ("X-Two", "a"), ("x-two", "b")],
            r#"{"a":1}"#,
        );
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.header("x-two"), Some("a"));
        assert_eq!(r.header("missing"), None);
        assert!(r.is_success());
        assert_eq!(r.json::<serde_json::Value>().unwrap()["a"], 1);
        let bad = Response {
            truncated: true,
            ..response(&[], "{\"a\":")
        };
        let e = bad.json::<serde_json::Value>().unwrap_err().to_string();
        assert!(e.contains("not the expected JSON (the body was cut at 5 bytes)"), "{e}");
        assert_eq!(response(&[], "caf\u{e9}").text(), "caf\u{e9}");
        assert!(
            !Response {
                status: 304,
                ..response(&[], "")
            }
            .is_success()
        );
    }

    #[test]
    fn request_builder() {
        let r = Request::new(Method::Post, "https://x.test/")
            .header("A", "1")
            .body(b"hi".to_vec());
        assert_eq!(r.headers, vec![("A".to_string(), "1".to_string())]);
        assert_eq!(r.body.as_deref(), Some(&b"hi"[..]));
        assert_eq!(
            Options::default(),
            Options {
                max_body_bytes: 1 << 20,
                max_redirects: 5,
                timeout: None
            }
        );
    }
}
