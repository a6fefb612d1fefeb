//! Errors of a model call, and which of them are worth retrying.
//!
//! The rule (matching what Anthropic and OpenAI document): connection
//! errors, 408, 409, 429, 5xx and 529 are transient; an error event inside
//! a stream that names overload or a server error is transient; a stream
//! that ends before its message is complete is transient. A 429 that is a
//! spend or quota limit, and every other 4xx, would fail again and is not.

use std::time::Duration;

pub type Result<T, E = LlmError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// No provider could be chosen from flags, environment and config.
    #[error("{0}")]
    NotConfigured(String),
    /// The request never got an HTTP response.
    #[error("cannot reach {url}: {message}")]
    Connect { url: String, message: String },
    /// The server answered with an error status.
    #[error("{provider} answered HTTP {status}: {message}")]
    Status {
        provider: String,
        status: u16,
        /// The provider's error type or code (`rate_limit_error`, `insufficient_quota`, …).
        kind: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The stream carried an error after HTTP 200.
    #[error("{provider} reported an error mid-stream ({kind}): {message}")]
    Stream {
        provider: String,
        kind: String,
        message: String,
    },
    /// The stream ended (or broke) before the message was complete.
    #[error("the reply from {provider} was cut off: {message}")]
    Incomplete { provider: String, message: String },
    /// The reply could not be understood.
    #[error("cannot understand the reply from {provider}: {message}")]
    Decode { provider: String, message: String },
    /// Too many recent failures: calls fail fast until the breaker half-opens.
    #[error("{provider} failed {failures} times in a row; not calling it again for {}s", .retry_in.as_secs_f64().ceil())]
    CircuitOpen {
        provider: String,
        failures: u32,
        retry_in: Duration,
    },
    /// A recording being replayed has no response left.
    #[error("{0}")]
    Replay(String),
    #[error("the call was cancelled")]
    Cancelled,
}

/// Whether and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    No,
    /// Yes; after the server's requested delay if it gave one.
    Yes(Option<Duration>),
}

impl LlmError {
    pub fn retry(&self) -> Retry {
        match self {
            LlmError::Connect { .. } | LlmError::Incomplete { .. } => Retry::Yes(None),
            LlmError::Status {
                status,
                kind,
                message,
                retry_after,
                ..
            } => {
                let transient = matches!(status, 408 | 409 | 429 | 529) || (500..600).contains(status);
                if transient && !is_spend_limit(*status, kind, message) {
                    Retry::Yes(*retry_after)
                } else {
                    Retry::No
                }
            }
            LlmError::Stream { kind, .. } => {
                if matches!(
                    kind.as_str(),
                    "overloaded_error" | "api_error" | "server_error" | "timeout"
                ) {
                    Retry::Yes(None)
                } else {
                    Retry::No
                }
            }
            _ => Retry::No,
        }
    }

    /// A failure that says something about the provider's health (for the circuit breaker).
    pub fn counts_as_outage(&self) -> bool {
        matches!(self.retry(), Retry::Yes(_))
    }
}

/// A tool call whose JSON input did not parse: the model ran out of tokens
/// (asking again would end the same way) or the message was otherwise cut.
/// Either way the call is never run.
pub fn cut_tool_call(tool: &str, stop_reason: &str, parse_error: &str, provider: &str) -> LlmError {
    if matches!(stop_reason, "max_tokens" | "length") {
        LlmError::Decode {
            provider: provider.to_string(),
            message: format!(
                "the reply hit the token limit inside the input of tool call `{tool}`; raise max_tokens ({parse_error})"
            ),
        }
    } else {
        LlmError::Incomplete {
            provider: provider.to_string(),
            message: format!("the input of tool call `{tool}` is not complete JSON ({parse_error})"),
        }
    }
}

/// A 429 that will not clear by waiting: the account is out of credit or quota.
fn is_spend_limit(status: u16, kind: &str, message: &str) -> bool {
    if status != 429 {
        return false;
    }
    let message = message.to_ascii_lowercase();
    matches!(
        kind,
        "insufficient_quota" | "billing_error" | "billing_hard_limit_reached"
    ) || ["quota", "billing", "credit balance", "spend limit", "spending limit"]
        .iter()
        .any(|w| message.contains(w))
}

/// Reads `retry-after-ms` (milliseconds) or `retry-after` (seconds or an HTTP date).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = humantime::parse_rfc3339_weak(value)
        .ok()
        .or_else(|| httpdate_parse(value))?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// HTTP dates (`Wed, 21 Oct 2026 07:28:00 GMT`) are rare in practice; we
/// accept them through humantime's RFC 3339 parser after rearranging.
fn httpdate_parse(value: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| m == month)? + 1;
    humantime::parse_rfc3339(&format!("{year}-{month:02}-{day:0>2}T{time}Z")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, kind: &str, message: &str) -> LlmError {
        LlmError::Status {
            provider: "p".into(),
            status,
            kind: kind.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    #[test]
    fn transient_statuses_are_retried_and_the_rest_are_not() {
        for code in [408, 409, 429, 500, 502, 503, 529] {
            assert_eq!(status(code, "x", "busy").retry(), Retry::Yes(None), "{code}");
        }
        for code in [400, 401, 403, 404, 413, 422] {
            assert_eq!(status(code, "x", "bad").retry(), Retry::No, "{code}");
        }
    }

    #[test]
    fn a_spend_limit_429_is_not_retried() {
        assert_eq!(status(429, "insufficient_quota", "x").retry(), Retry::No);
        assert_eq!(
            status(429, "rate_limit_error", "You have reached your spend limit").retry(),
            Retry::No
        );
    }

    #[test]
    fn retry_after_headers_are_read() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "3".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", "250".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past means now");
    }
}
