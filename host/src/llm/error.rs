//! Errors of a model call, and which of them are worth retrying.
//!
//! The rule (matching what Anthropic's and OpenAI's official SDKs do): a
//! server's `x-should-retry: true|false` header decides when present;
//! otherwise connection errors, 408, 409, 429, 5xx and 529 are transient;
//! an error event inside a stream that names overload or a server error is
//! transient; a stream that ends before its message is complete is
//! transient. A 429 that is a spend or quota limit, and every other 4xx,
//! would fail again and is not. Spend limits are recognised by the error's
//! `type` or `code` field (either one), and by a few specific phrases in
//! the message (not the bare word "quota", which rate-limit messages use).

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
    /// A model server on this machine refused the connection: nothing
    /// listens on its port. Retried once (it may be starting), then said.
    #[error("nothing is listening at {url} — is the model server (Ollama, llama.cpp, vLLM…) running?")]
    NotListening { url: String },
    /// The server answered with an error status.
    #[error("{provider} answered HTTP {status}: {message}")]
    Status {
        provider: String,
        status: u16,
        /// The provider's error type (`rate_limit_error`, `insufficient_quota`, …).
        kind: String,
        /// The provider's error code, when it sends one (OpenAI: `insufficient_quota`, `rate_limit_exceeded`).
        code: String,
        message: String,
        /// A usable `retry-after`: positive and in the future (else the computed backoff applies).
        retry_after: Option<Duration>,
        /// The server's `x-should-retry` header, which overrides the status rules.
        should_retry: Option<bool>,
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
            LlmError::Connect { .. } | LlmError::Incomplete { .. } | LlmError::NotListening { .. } => Retry::Yes(None),
            LlmError::Status {
                status,
                kind,
                code,
                message,
                retry_after,
                should_retry,
                ..
            } => {
                let transient = match should_retry {
                    Some(told) => *told,
                    None => {
                        (matches!(status, 408 | 409 | 429 | 529) || (500..600).contains(status))
                            && !is_spend_limit(*status, kind, code, message)
                    }
                };
                if transient { Retry::Yes(*retry_after) } else { Retry::No }
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

/// Error types and codes that mean "out of credit or quota": waiting will not help.
const SPEND_LIMIT_KINDS: &[&str] = &[
    "insufficient_quota",
    "billing_error",
    "billing_hard_limit_reached",
    "billing_not_active",
    "spend_limit_exceeded",
    "credit_balance_too_low",
];

/// A 429 that will not clear by waiting: the account is out of credit or quota.
fn is_spend_limit(status: u16, kind: &str, code: &str, message: &str) -> bool {
    if status != 429 {
        return false;
    }
    if [kind, code].iter().any(|f| SPEND_LIMIT_KINDS.contains(f)) {
        return true;
    }
    // Specific phrases only: "check your quota per minute" is a rate limit.
    let message = message.to_ascii_lowercase();
    [
        "insufficient quota",
        "exceeded your current quota",
        "billing",
        "credit balance",
        "spend limit",
        "spending limit",
    ]
    .iter()
    .any(|w| message.contains(w))
}

/// Reads `retry-after-ms` (milliseconds) or `retry-after` (seconds or an
/// HTTP date). Only a positive wait counts: zero, negative, unparsable or
/// past values give `None`, so the computed backoff applies (as in the
/// official SDKs) instead of an immediate retry storm.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let positive = |secs: f64| (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs));
    if let Some(wait) = text("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|ms| positive(ms / 1000.0))
    {
        return Some(wait);
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return positive(secs);
    }
    let at = humantime::parse_rfc3339_weak(value)
        .ok()
        .or_else(|| httpdate_parse(value))?;
    at.duration_since(std::time::SystemTime::now())
        .ok()
        .filter(|wait| !wait.is_zero())
}

/// The `x-should-retry` header: `true` or `false`, anything else is ignored.
pub fn should_retry(headers: &reqwest::header::HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry")?.to_str().ok()?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
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
        status_with(status, kind, "", message, None)
    }

    fn status_with(status: u16, kind: &str, code: &str, message: &str, should_retry: Option<bool>) -> LlmError {
        LlmError::Status {
            provider: "p".into(),
            status,
            kind: kind.into(),
            code: code.into(),
            message: message.into(),
            retry_after: None,
            should_retry,
        }
    }

    #[test]
    fn spend_limits_are_read_from_type_and_code_before_the_message_issue_15() {
        // OpenAI: the code says quota even though the type says rate limit.
        let quota = status_with(429, "rate_limit_error", "insufficient_quota", "Please slow down", None);
        assert_eq!(quota.retry(), Retry::No);
        // The type says quota, the code says rate limit: still a spend limit.
        let quota = status_with(
            429,
            "insufficient_quota",
            "rate_limit_exceeded",
            "Please slow down",
            None,
        );
        assert_eq!(quota.retry(), Retry::No);
        // A rate limit whose message mentions quota is still a rate limit.
        let rate = status(
            429,
            "rate_limit_error",
            "Resource exhausted: check your quota per minute",
        );
        assert_eq!(rate.retry(), Retry::Yes(None));
        // The message's words still count.
        assert_eq!(status(429, "", "You exceeded your current quota").retry(), Retry::No);
    }

    #[test]
    fn x_should_retry_overrides_the_status_rules_issue_15() {
        assert_eq!(status_with(400, "x", "", "bad", Some(true)).retry(), Retry::Yes(None));
        assert_eq!(status_with(503, "x", "", "busy", Some(false)).retry(), Retry::No);
        assert_eq!(
            status_with(429, "rate_limit_error", "", "busy", Some(false)).retry(),
            Retry::No
        );
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(should_retry(&h), None);
        h.insert("x-should-retry", "false".parse().expect("header"));
        assert_eq!(should_retry(&h), Some(false));
        h.insert("x-should-retry", "true".parse().expect("header"));
        assert_eq!(should_retry(&h), Some(true));
        h.insert("x-should-retry", "maybe".parse().expect("header"));
        assert_eq!(should_retry(&h), None);
    }

    #[test]
    fn a_retry_after_that_is_not_a_positive_future_wait_falls_back_to_backoff_issue_15() {
        for value in [
            "0",
            "-5",
            "soon",
            "NaN",
            "inf",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "2015-10-21T07:28:00Z",
        ] {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert("retry-after", value.parse().expect("header"));
            assert_eq!(retry_after(&h), None, "retry-after: {value}");
        }
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after-ms", "0".parse().expect("header"));
        h.insert("retry-after", "2".parse().expect("header"));
        assert_eq!(
            retry_after(&h),
            Some(Duration::from_secs(2)),
            "a zero -ms falls back to retry-after"
        );
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
    }
}
