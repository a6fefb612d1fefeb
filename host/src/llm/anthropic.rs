//! The Anthropic Messages API, streamed: builds the request (with
//! `cache_control` breakpoints on the system prompt, the tool definitions
//! and the latest turn, so a long session re-reads its prefix from the
//! prompt cache) and assembles the SSE events (`message_start`,
//! `content_block_start/delta/stop` with `text_delta` and
//! `input_json_delta`, `message_delta`, `message_stop`, `ping`, `error`)
//! into one [`ChatResponse`]. A reply counts only once `message_stop`
//! arrived: anything shorter is [`LlmError::Incomplete`], so a tool call
//! from a cut-off message is never run. The event order is checked, since
//! the server may be hostile: a block started twice, a delta or a stop for
//! a block that is not open, a second `message_start`, or two tool calls
//! with one id are protocol errors, never silently merged.

use super::error::{LlmError, Result, cut_tool_call};
use super::http::{parse_data, post_sse};
use super::types::*;
use super::{Provider, ProviderKind};
use futures::StreamExt;
use serde_json::{Value, json};

/// The API version this client speaks.
pub const API_VERSION: &str = "2023-06-01";
/// Where requests go unless `--base-url` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

pub struct Anthropic {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    max_event_bytes: usize,
}

impl Anthropic {
    pub fn new(client: reqwest::Client, base_url: &str, api_key: Option<String>) -> Self {
        Self {
            client,
            url: format!("{}/v1/messages", base_url.trim_end_matches('/')),
            api_key,
            max_event_bytes: super::DEFAULT_MAX_EVENT_BYTES,
        }
    }

    /// Refuses SSE lines or events larger than this.
    pub fn with_max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes.max(1024);
        self
    }
}

#[async_trait::async_trait]
impl Provider for Anthropic {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    async fn send(&self, request: &ChatRequest, deltas: DeltaSink<'_>) -> Result<ChatResponse> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "anthropic-version",
            reqwest::header::HeaderValue::from_static(API_VERSION),
        );
        if let Some(key) = &self.api_key {
            let value = key
                .parse()
                .map_err(|_| LlmError::NotConfigured("the Anthropic API key is not a valid header value".into()))?;
            headers.insert("x-api-key", value);
        }
        let body = request_body(request);
        let mut events = post_sse(
            &self.client,
            "anthropic",
            &self.url,
            headers,
            &body,
            self.max_event_bytes,
        )
        .await?;
        let mut reply = Assembler::default();
        while let Some(event) = events.next().await {
            let event = event?;
            if reply.apply(&event.event, &parse_data("anthropic", &event)?, deltas)? {
                return reply.finish();
            }
        }
        Err(incomplete("the stream ended before `message_stop`"))
    }
}

/// The JSON body of a streaming Messages request.
pub fn request_body(request: &ChatRequest) -> Value {
    let ephemeral = json!({"type": "ephemeral"});
    let mut messages: Vec<Value> = request.messages.iter().map(message_json).collect();
    // Cache breakpoint on the newest block: the next round re-reads all of
    // this turn from the cache.
    if let Some(last) = messages
        .last_mut()
        .and_then(|m| m["content"].as_array_mut())
        .and_then(|c| c.last_mut())
    {
        last["cache_control"] = ephemeral.clone();
    }
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "stream": true,
        "messages": messages,
    });
    if !request.system.is_empty() {
        body["system"] = json!([{"type": "text", "text": request.system, "cache_control": ephemeral}]);
    }
    if !request.tools.is_empty() {
        let mut tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
            .collect();
        if let Some(last) = tools.last_mut() {
            last["cache_control"] = ephemeral;
        }
        body["tools"] = Value::Array(tools);
        body["tool_choice"] = match &request.tool_choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::Any => json!({"type": "any"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
        };
    }
    body
}

fn message_json(message: &Message) -> Value {
    let content: Vec<Value> = message
        .content
        .iter()
        .map(|block| match block {
            Block::Text { text } => json!({"type": "text", "text": text}),
            Block::ToolUse { id, name, input } => json!({"type": "tool_use", "id": id, "name": name, "input": input}),
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content, "is_error": is_error}),
        })
        .collect();
    json!({"role": message.role, "content": content})
}

/// A content block being streamed.
enum Partial {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    /// A block type we do not use (e.g. thinking); dropped.
    Other,
}

#[derive(Default)]
struct Assembler {
    started: bool,
    model: String,
    /// `(index, block, stopped)` in the order they started.
    blocks: Vec<(usize, Partial, bool)>,
    usage: Usage,
    stop_reason: Option<String>,
}

impl Assembler {
    /// Applies one event; true when the message is complete.
    fn apply(&mut self, name: &str, data: &Value, deltas: DeltaSink<'_>) -> Result<bool> {
        let kind = data["type"].as_str().unwrap_or(name);
        match kind {
            "message_start" => {
                if std::mem::replace(&mut self.started, true) {
                    return Err(decode("a second `message_start` in one reply".into()));
                }
                let message = &data["message"];
                self.model = message["model"].as_str().unwrap_or_default().to_string();
                self.read_usage(&message["usage"]);
            }
            "content_block_start" => {
                let index = index_of(data)?;
                if self.blocks.iter().any(|(i, _, _)| *i == index) {
                    return Err(decode(format!("block {index} started twice")));
                }
                let block = &data["content_block"];
                let partial = match block["type"].as_str() {
                    Some("text") => Partial::Text(block["text"].as_str().unwrap_or_default().to_string()),
                    Some("tool_use") => {
                        let name = str_field(block, "name")?;
                        let id = str_field(block, "id")?;
                        if id.is_empty() || self.has_tool_id(&id) {
                            return Err(decode(format!("two tool calls with the id `{id}` in one reply")));
                        }
                        deltas(Delta::ToolUseStarted { name: name.clone() });
                        Partial::ToolUse {
                            id,
                            name,
                            json: String::new(),
                        }
                    }
                    _ => Partial::Other,
                };
                self.blocks.push((index, partial, false));
            }
            "content_block_delta" => {
                let index = index_of(data)?;
                let delta = &data["delta"];
                match (&mut self.open_block(index)?.1, delta["type"].as_str()) {
                    (Partial::Text(text), Some("text_delta")) => {
                        let piece = delta["text"].as_str().unwrap_or_default();
                        text.push_str(piece);
                        deltas(Delta::Text(piece.to_string()));
                    }
                    (Partial::ToolUse { json, .. }, Some("input_json_delta")) => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = index_of(data)?;
                let (_, _, stopped) = self.open_block(index)?;
                *stopped = true;
            }
            "ping" => {}
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(reason.to_string());
                }
                self.read_usage(&data["usage"]);
            }
            "message_stop" => {
                if !self.started {
                    return Err(decode("`message_stop` without `message_start`".into()));
                }
                return Ok(true);
            }
            "error" => {
                let error = &data["error"];
                return Err(LlmError::Stream {
                    provider: "anthropic".into(),
                    kind: error["type"].as_str().unwrap_or("error").to_string(),
                    message: error["message"].as_str().unwrap_or("(no message)").to_string(),
                });
            }
            other => tracing::debug!(event = other, "ignoring an unknown stream event"),
        }
        Ok(false)
    }

    /// Usage fields are cumulative; a later event repeats or raises them.
    fn read_usage(&mut self, usage: &Value) {
        let get = |name: &str| usage[name].as_u64();
        if let Some(n) = get("input_tokens") {
            self.usage.input_tokens = n;
        }
        if let Some(n) = get("output_tokens") {
            self.usage.output_tokens = n;
        }
        if let Some(n) = get("cache_read_input_tokens") {
            self.usage.cache_read_tokens = n;
        }
        if let Some(n) = get("cache_creation_input_tokens") {
            self.usage.cache_write_tokens = n;
        }
    }

    /// Block `index`, which must have started and not stopped yet.
    fn open_block(&mut self, index: usize) -> Result<&mut (usize, Partial, bool)> {
        match self.blocks.iter_mut().find(|(i, _, _)| *i == index) {
            None => Err(decode(format!("an event for block {index}, which never started"))),
            Some((_, _, true)) => Err(decode(format!("an event for block {index} after it stopped"))),
            Some(block) => Ok(block),
        }
    }

    fn has_tool_id(&self, id: &str) -> bool {
        self.blocks
            .iter()
            .any(|(_, b, _)| matches!(b, Partial::ToolUse { id: other, .. } if other == id))
    }

    fn finish(self) -> Result<ChatResponse> {
        let stop_reason = self
            .stop_reason
            .ok_or_else(|| incomplete("`message_stop` came without a stop reason"))?;
        let mut content = Vec::new();
        for (_, block, _) in self.blocks {
            match block {
                Partial::Text(text) if !text.is_empty() => content.push(Block::Text { text }),
                Partial::ToolUse { id, name, json } => {
                    let input = if json.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&json)
                            .map_err(|e| cut_tool_call(&name, &stop_reason, &e.to_string(), "anthropic"))?
                    };
                    content.push(Block::ToolUse { id, name, input });
                }
                _ => {}
            }
        }
        Ok(ChatResponse {
            message: Message {
                role: Role::Assistant,
                content,
            },
            stop_reason: StopReason::parse(&stop_reason),
            usage: self.usage,
            model: self.model,
        })
    }
}

fn index_of(data: &Value) -> Result<usize> {
    data["index"]
        .as_u64()
        .map(|i| i as usize)
        .ok_or_else(|| decode(format!("event without an index: {data}")))
}

fn str_field(value: &Value, name: &str) -> Result<String> {
    value[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| decode(format!("`{name}` missing in {value}")))
}

fn decode(message: String) -> LlmError {
    LlmError::Decode {
        provider: "anthropic".into(),
        message,
    }
}

fn incomplete(message: &str) -> LlmError {
    LlmError::Incomplete {
        provider: "anthropic".into(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tool_choice: ToolChoice) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            system: "sys".into(),
            messages: vec![Message::user_text("hi")],
            tools: vec![ToolDef {
                name: "t".into(),
                description: "d".into(),
                input_schema: json!({"type": "object"}),
            }],
            tool_choice,
            max_tokens: 10,
        }
    }

    #[test]
    fn tool_choice_maps_to_the_messages_api() {
        assert_eq!(
            request_body(&request(ToolChoice::Auto))["tool_choice"],
            json!({"type": "auto"})
        );
        assert_eq!(
            request_body(&request(ToolChoice::Any))["tool_choice"],
            json!({"type": "any"})
        );
        assert_eq!(
            request_body(&request(ToolChoice::Tool("t".into())))["tool_choice"],
            json!({"type": "tool", "name": "t"})
        );
    }

    #[test]
    fn cache_breakpoints_sit_on_system_tools_and_the_newest_block() {
        let body = request_body(&request(ToolChoice::Auto));
        assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(body["tools"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(body["messages"][0]["content"][0]["cache_control"]["type"], "ephemeral");
    }

    #[test]
    fn a_tool_call_cut_by_max_tokens_is_not_retried_and_never_runs() {
        let mut reply = Assembler::default();
        let sink = |_: Delta| {};
        let events = [
            json!({"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 5}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "x", "name": "t", "input": {}}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"pa"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 10}}),
        ];
        for event in &events {
            assert!(!reply.apply("", event, &sink).expect("apply"));
        }
        let err = reply.finish().expect_err("cut tool call");
        assert_eq!(err.retry(), crate::llm::Retry::No);
        assert!(err.to_string().contains("raise max_tokens"), "{err}");
    }
}
