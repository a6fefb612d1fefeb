//! What can go wrong with an outgoing request, and how the `wasi:http`
//! error codes the host reports map onto it.
//!
//! The host refuses a request the tool's policy does not allow with
//! `HTTP-request-denied` or `destination-IP-prohibited`; both become
//! [`HttpError::Denied`] with a message that names the policy's `net` list,
//! because that is what a user has to change to let the request through.

use std::fmt;

use url::Url;
use wasi::http::types::ErrorCode;

use crate::ToolError;

/// Why an HTTP exchange produced no [`Response`](super::Response).
///
/// Every variant carries the complete message, written so that it can go to
/// the model as is: lowercase, saying what failed and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The sandbox policy does not let this tool reach the host.
    Denied(String),
    /// Connecting, or waiting for the response or its body, took too long.
    Timeout(String),
    /// A request or response (head or body) is larger than the host allows.
    TooLarge(String),
    /// The URL given to [`send`](super::send) is not an absolute http(s) URL.
    InvalidUrl(String),
    /// Anything else: DNS, TLS, connection or protocol errors, too many
    /// redirects, a body that is not the expected JSON.
    Other(String),
}

impl HttpError {
    /// The message, without the variant.
    pub fn message(&self) -> &str {
        match self {
            Self::Denied(m) | Self::Timeout(m) | Self::TooLarge(m) | Self::InvalidUrl(m) | Self::Other(m) => m,
        }
    }

    /// The error for a request the policy refused; `host` is `name[:port]`.
    pub(crate) fn denied(host: &str) -> Self {
        Self::Denied(format!(
            "the sandbox policy refused the request to {host}: the policy's `net` list decides \
             which hosts this tool may reach, and {host} is not allowed"
        ))
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for ToolError {
    fn from(e: HttpError) -> Self {
        ToolError::failed(e.message())
    }
}

/// `host[:port]` of `url`, the unit the policy's `net` list speaks about.
pub(crate) fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Turns a `wasi:http` error code for a request to `url` into an [`HttpError`].
pub(crate) fn from_error_code(code: &ErrorCode, url: &Url) -> HttpError {
    let host = authority(url);
    let limit = |n: Option<u64>| n.map(|n| format!(" (limit {n} bytes)")).unwrap_or_default();
    match code {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => HttpError::denied(&host),

        ErrorCode::ConnectionLimitReached => HttpError::Denied(format!(
            "the sandbox refused the request to {host}: this call already made as many HTTP requests as the \
             policy allows (`http_requests`)"
        )),
        ErrorCode::DnsTimeout => HttpError::Timeout(format!("looking up {host} timed out")),
        ErrorCode::ConnectionTimeout => HttpError::Timeout(format!("connecting to {host} timed out")),
        ErrorCode::ConnectionReadTimeout => HttpError::Timeout(format!("reading the response from {host} timed out")),
        ErrorCode::ConnectionWriteTimeout => HttpError::Timeout(format!("sending the request to {host} timed out")),
        ErrorCode::HttpResponseTimeout => {
            HttpError::Timeout(format!("{host} did not answer {url} within the time limit"))
        }

        ErrorCode::HttpRequestBodySize(n) => HttpError::TooLarge(format!(
            "the request body for {url} is larger than the sandbox allows{}",
            limit(*n)
        )),
        ErrorCode::HttpResponseBodySize(n) => HttpError::TooLarge(format!(
            "the response from {url} is larger than the sandbox allows{}",
            limit(*n)
        )),
        ErrorCode::HttpRequestHeaderSectionSize(_)
        | ErrorCode::HttpRequestHeaderSize(_)
        | ErrorCode::HttpRequestTrailerSectionSize(_)
        | ErrorCode::HttpRequestTrailerSize(_) => {
            HttpError::TooLarge(format!("the request headers for {url} are larger than allowed"))
        }
        ErrorCode::HttpResponseHeaderSectionSize(_)
        | ErrorCode::HttpResponseHeaderSize(_)
        | ErrorCode::HttpResponseTrailerSectionSize(_)
        | ErrorCode::HttpResponseTrailerSize(_) => {
            HttpError::TooLarge(format!("the response headers from {url} are larger than allowed"))
        }

        // The common failures get a sentence; the rest keep the code's name,
        // which is still more useful to a reader than a generic "failed".
        ErrorCode::DnsError(e) => HttpError::Other(format!(
            "cannot resolve {host} (DNS error{})",
            e.rcode.as_deref().map(|r| format!(" {r}")).unwrap_or_default()
        )),
        ErrorCode::DestinationNotFound => HttpError::Other(format!("{host} was not found")),
        ErrorCode::DestinationUnavailable | ErrorCode::DestinationIpUnroutable => {
            HttpError::Other(format!("{host} cannot be reached"))
        }
        ErrorCode::ConnectionRefused => HttpError::Other(format!("{host} refused the connection")),
        ErrorCode::ConnectionTerminated => HttpError::Other(format!("the connection to {host} closed unexpectedly")),
        ErrorCode::TlsCertificateError => HttpError::Other(format!("the TLS certificate of {host} is not valid")),
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => {
            HttpError::Other(format!("the TLS handshake with {host} failed ({code:?})"))
        }
        ErrorCode::HttpResponseIncomplete => {
            HttpError::Other(format!("the response from {url} ended before it was complete"))
        }
        ErrorCode::InternalError(Some(m)) => HttpError::Other(format!("the request to {url} failed: {m}")),
        other => HttpError::Other(format!("the request to {url} failed: {other:?}")),
    }
}

/// Classifies an I/O error on a body stream that carries no `wasi:http`
/// error code by its wording (`text`), keeping `message` as the message.
/// Hosts may report a limit or timeout hit mid-body this way (the error
/// is then not one `http-error-code` recognises), and a timeout should
/// still read as one to the caller.
pub(crate) fn from_stream_text(message: String, text: &str) -> HttpError {
    let text = text.to_ascii_lowercase();
    if text.contains("timeout") || text.contains("timed out") {
        HttpError::Timeout(message)
    } else if text.contains("exceeds limit") || text.contains("too large") || text.contains("size limit") {
        HttpError::TooLarge(message)
    } else {
        HttpError::Other(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("https://example.com:8443/a?b=1").unwrap()
    }

    #[test]
    fn policy_refusals_are_denied_and_name_the_net_list() {
        for code in [ErrorCode::HttpRequestDenied, ErrorCode::DestinationIpProhibited] {
            let e = from_error_code(&code, &url());
            assert!(matches!(e, HttpError::Denied(_)), "{e:?}");
            let text = e.to_string();
            assert!(text.contains("example.com:8443"), "{text}");
            assert!(text.contains("`net`"), "{text}");
            assert!(text.starts_with("the sandbox policy refused"), "{text}");
        }
    }

    #[test]
    fn timeouts_and_sizes_are_classified() {
        for code in [
            ErrorCode::ConnectionTimeout,
            ErrorCode::ConnectionReadTimeout,
            ErrorCode::HttpResponseTimeout,
        ] {
            assert!(matches!(from_error_code(&code, &url()), HttpError::Timeout(_)));
        }
        let e = from_error_code(&ErrorCode::HttpResponseBodySize(Some(10)), &url());
        assert!(
            matches!(e, HttpError::TooLarge(ref m) if m.contains("limit 10 bytes")),
            "{e:?}"
        );
        let e = from_error_code(&ErrorCode::HttpRequestHeaderSectionSize(None), &url());
        assert!(matches!(e, HttpError::TooLarge(_)));
    }

    #[test]
    fn stream_errors_without_a_code_are_classified_by_wording() {
        let m = || "reading failed".to_string();
        assert_eq!(
            from_stream_text(m(), "connection read timeout"),
            HttpError::Timeout(m())
        );
        assert_eq!(
            from_stream_text(m(), "HTTP response body size exceeds limit: 8050 bytes"),
            HttpError::TooLarge(m())
        );
        assert_eq!(from_stream_text(m(), "connection reset"), HttpError::Other(m()));
    }

    #[test]
    fn other_codes_keep_their_name() {
        let e = from_error_code(&ErrorCode::HttpProtocolError, &url());
        assert_eq!(
            e,
            HttpError::Other(
                "the request to https://example.com:8443/a?b=1 failed: ErrorCode::HttpProtocolError".into()
            )
        );
    }

    #[test]
    fn converts_to_a_failed_tool_error() {
        let e: ToolError = HttpError::Other("boom".into()).into();
        assert_eq!(e, ToolError::failed("boom"));
    }
}
