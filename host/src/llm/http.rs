//! The HTTP side shared by the providers: POST a JSON body, turn an error
//! status into an [`LlmError`] with the provider's own message and
//! `retry-after`, and hand back the body as a stream of SSE events framed
//! by [`super::sse`] (bytes buffered across chunk boundaries however the
//! server cut them; one event at most `max_event_bytes`).

use super::error::{LlmError, Result, retry_after, should_retry};
use super::sse::{Event, StreamError};
use futures::{Stream, StreamExt};
use std::pin::Pin;

pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// POSTs `body` to `url` and returns its event stream when the status is 2xx.
pub async fn post_sse(
    client: &reqwest::Client,
    provider: &str,
    url: &str,
    headers: reqwest::header::HeaderMap,
    body: &serde_json::Value,
    max_event_bytes: usize,
) -> Result<EventStream> {
    let response = client
        .post(url)
        .headers(headers)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .json(body)
        .send()
        .await
        .map_err(|e| connect_error(url, &e))?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = retry_after(response.headers());
        let should_retry = should_retry(response.headers());
        let text = response.text().await.unwrap_or_default();
        let fields = error_fields(&text);
        return Err(LlmError::Status {
            provider: provider.to_string(),
            status: status.as_u16(),
            kind: fields.kind,
            code: fields.code,
            message: fields.message,
            retry_after,
            should_retry,
        });
    }
    let provider = provider.to_string();
    let events = super::sse::events(response.bytes_stream(), max_event_bytes).map(move |item| {
        item.map_err(|e| match e {
            StreamError::Transport(e) => LlmError::Incomplete {
                provider: provider.clone(),
                message: format!("the stream broke: {}", error_text(&e)),
            },
            // Not transient: the same server would send the same oversized event again.
            StreamError::Sse(e) => LlmError::Decode {
                provider: provider.clone(),
                message: format!("{e} (raise [model] max_stream_event_kib if this server needs it)"),
            },
        })
    });
    Ok(Box::pin(events))
}

/// What an error body says, in either provider's shape:
/// `{"type":"error","error":{"type":..,"message":..}}` or
/// `{"error":{"message":..,"type":..,"code":..}}`.
#[derive(Debug, PartialEq, Eq)]
pub struct ErrorFields {
    pub kind: String,
    pub code: String,
    pub message: String,
}

pub fn error_fields(text: &str) -> ErrorFields {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        let snippet: String = crate::scrub::scrub(text).chars().take(300).collect();
        return ErrorFields {
            kind: String::new(),
            code: String::new(),
            message: if snippet.is_empty() {
                "(empty body)".into()
            } else {
                snippet
            },
        };
    };
    let error = value.get("error").unwrap_or(&value);
    // A code may be a number (some servers send the HTTP status again).
    let field = |name: &str| match error.get(name) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    ErrorFields {
        kind: field("type").unwrap_or_default(),
        code: field("code").unwrap_or_default(),
        message: crate::scrub::scrub(&field("message").unwrap_or_else(|| error.to_string())).into_owned(),
    }
}

/// The start of a long payload, for an error message.
pub fn snippet(text: &str) -> String {
    const SHOWN: usize = 300;
    if text.chars().count() <= SHOWN {
        return text.to_string();
    }
    let head: String = text.chars().take(SHOWN).collect();
    format!("{head}… ({} bytes)", text.len())
}

/// A connection that failed: "nothing is listening" for a refused local
/// port, reqwest's chain of reasons otherwise.
fn connect_error(url: &str, e: &reqwest::Error) -> LlmError {
    let text = error_text(e);
    if super::is_local(url) && e.is_connect() && text.contains("Connection refused") {
        let base = url::Url::parse(url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| url.to_string());
        return LlmError::NotListening { url: base };
    }
    LlmError::Connect {
        url: url.to_string(),
        message: text,
    }
}

/// reqwest's error plus its sources, which hold the useful part ("connection refused").
fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Parses one SSE data payload as JSON.
pub fn parse_data(provider: &str, event: &Event) -> Result<serde_json::Value> {
    serde_json::from_str(&event.data).map_err(|e| LlmError::Decode {
        provider: provider.to_string(),
        message: crate::scrub::scrub(&format!(
            "event `{}` is not JSON ({e}): {}",
            event.event,
            snippet(&event.data)
        ))
        .into_owned(),
    })
}
