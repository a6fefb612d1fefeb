//! The HTTP side shared by the providers: POST a JSON body, turn an error
//! status into an [`LlmError`] with the provider's own message and
//! `retry-after`, and hand back the body as a stream of SSE events parsed
//! by `eventsource-stream` (which buffers across chunk boundaries, however
//! the server cut them).

use super::error::{LlmError, Result, retry_after};
use eventsource_stream::{Event, Eventsource};
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
) -> Result<EventStream> {
    let response = client
        .post(url)
        .headers(headers)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .json(body)
        .send()
        .await
        .map_err(|e| LlmError::Connect {
            url: url.to_string(),
            message: error_text(&e),
        })?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        let (kind, message) = error_fields(&text);
        return Err(LlmError::Status {
            provider: provider.to_string(),
            status: status.as_u16(),
            kind,
            message,
            retry_after,
        });
    }
    let provider = provider.to_string();
    let events = response.bytes_stream().eventsource().map(move |item| {
        item.map_err(|e| LlmError::Incomplete {
            provider: provider.clone(),
            message: format!("the stream broke: {e}"),
        })
    });
    Ok(Box::pin(events))
}

/// `(type or code, message)` from an error body in either provider's shape:
/// `{"type":"error","error":{"type":..,"message":..}}` or
/// `{"error":{"message":..,"type":..,"code":..}}`.
pub fn error_fields(text: &str) -> (String, String) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        let snippet: String = text.chars().take(300).collect();
        return (
            String::new(),
            if snippet.is_empty() {
                "(empty body)".into()
            } else {
                snippet
            },
        );
    };
    let error = value.get("error").unwrap_or(&value);
    let field = |name: &str| error.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let kind = field("code").or_else(|| field("type")).unwrap_or_default();
    let message = field("message").unwrap_or_else(|| error.to_string());
    (kind, message)
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
        message: format!("event `{}` is not JSON ({e}): {}", event.event, event.data),
    })
}
