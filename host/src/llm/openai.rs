//! OpenAI-compatible Chat Completions, streamed — the dialect spoken by
//! OpenAI and by local servers (Ollama, vLLM, llama.cpp server, LM Studio).
//! Translates our block messages to `system`/`user`/`assistant`+`tool_calls`
//! /`tool` messages, and assembles `chat.completion.chunk` deltas (text and
//! `tool_calls` arguments streamed in pieces per index) back into one
//! [`ChatResponse`]. A reply without a `finish_reason` is incomplete and
//! never yields a tool call.

use super::error::{LlmError, Result};
use super::http::post_sse;
use super::types::*;
use super::{Provider, ProviderKind};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Where requests go unless `--base-url` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

pub struct OpenAi {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    max_event_bytes: usize,
}

impl OpenAi {
    /// `base_url` ends in the API version (`…/v1`), as OpenAI-compatible servers document it.
    pub fn new(client: reqwest::Client, base_url: &str, api_key: Option<String>) -> Self {
        Self {
            client,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
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
impl Provider for OpenAi {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    async fn send(&self, request: &ChatRequest, deltas: DeltaSink<'_>) -> Result<ChatResponse> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = &self.api_key {
            let value = format!("Bearer {key}")
                .parse()
                .map_err(|_| LlmError::NotConfigured("the OpenAI API key is not a valid header value".into()))?;
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let body = request_body(request);
        let mut events = post_sse(&self.client, "openai", &self.url, headers, &body, self.max_event_bytes).await?;
        let mut reply = Assembler::default();
        while let Some(event) = events.next().await {
            let event = event?;
            if event.data.trim() == "[DONE]" {
                return reply.finish();
            }
            let data: Value = serde_json::from_str(&event.data).map_err(|e| LlmError::Decode {
                provider: "openai".into(),
                message: crate::scrub::scrub(&format!(
                    "a chunk is not JSON ({e}): {}",
                    super::http::snippet(&event.data)
                ))
                .into_owned(),
            })?;
            reply.apply(&data, deltas)?;
        }
        // Some servers end the stream without `[DONE]`; a finish reason is enough.
        reply.finish()
    }
}

/// The JSON body of a streaming Chat Completions request.
pub fn request_body(request: &ChatRequest) -> Value {
    let mut messages = Vec::new();
    if !request.system.is_empty() {
        messages.push(json!({"role": "system", "content": request.system}));
    }
    for message in &request.messages {
        push_messages(&mut messages, message);
    }
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": messages,
    });
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.input_schema}})
            })
            .collect();
        body["tools"] = Value::Array(tools);
        body["tool_choice"] = match &request.tool_choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Any => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
    }
    body
}

/// One of our messages becomes one or more chat messages: tool results are
/// separate `tool` messages and must directly follow the assistant's call.
fn push_messages(out: &mut Vec<Value>, message: &Message) {
    let text = message.text();
    match message.role {
        Role::Assistant => {
            let calls: Vec<Value> = message
                .tool_uses()
                .map(|(id, name, input)| {
                    json!({"id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}})
                })
                .collect();
            let mut m =
                json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                m["tool_calls"] = Value::Array(calls);
            }
            out.push(m);
        }
        Role::User => {
            for block in &message.content {
                if let Block::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } = block
                {
                    // The format has no error flag; say it in the content.
                    let content = if *is_error {
                        format!("ERROR: {content}")
                    } else {
                        content.clone()
                    };
                    out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}));
                }
            }
            if !text.is_empty() {
                out.push(json!({"role": "user", "content": text}));
            }
        }
    }
}

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct Assembler {
    model: String,
    text: String,
    calls: BTreeMap<u64, PartialCall>,
    finish_reason: Option<String>,
    usage: Usage,
}

impl Assembler {
    fn apply(&mut self, chunk: &Value, deltas: DeltaSink<'_>) -> Result<()> {
        if let Some(error) = chunk.get("error") {
            return Err(LlmError::Stream {
                provider: "openai".into(),
                kind: error["type"]
                    .as_str()
                    .or(error["code"].as_str())
                    .unwrap_or("error")
                    .to_string(),
                message: error["message"].as_str().unwrap_or("(no message)").to_string(),
            });
        }
        if let Some(model) = chunk["model"].as_str() {
            self.model = model.to_string();
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let cached = usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0);
            let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
            self.usage = Usage {
                input_tokens: prompt.saturating_sub(cached),
                output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
                cache_read_tokens: cached,
                cache_write_tokens: 0,
            };
        }
        let Some(choice) = chunk["choices"].as_array().and_then(|c| c.first()) else {
            return Ok(());
        };
        let delta = &choice["delta"];
        if let Some(piece) = delta["content"].as_str().filter(|p| !p.is_empty()) {
            self.text.push_str(piece);
            deltas(Delta::Text(piece.to_string()));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(self.calls.len() as u64);
            let partial = self.calls.entry(index).or_default();
            if let Some(id) = call["id"].as_str() {
                partial.id = id.to_string();
            }
            if let Some(name) = call["function"]["name"].as_str().filter(|n| !n.is_empty()) {
                partial.name = name.to_string();
                deltas(Delta::ToolUseStarted { name: name.to_string() });
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                partial.arguments.push_str(args);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_string());
        }
        Ok(())
    }

    fn finish(self) -> Result<ChatResponse> {
        let reason = self.finish_reason.ok_or_else(|| LlmError::Incomplete {
            provider: "openai".into(),
            message: "the stream ended without a finish reason".into(),
        })?;
        let mut content = Vec::new();
        if !self.text.is_empty() {
            content.push(Block::Text { text: self.text });
        }
        let mut ids = std::collections::HashSet::new();
        for (index, call) in self.calls {
            let input = if call.arguments.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(&call.arguments)
                    .map_err(|e| super::error::cut_tool_call(&call.name, &reason, &e.to_string(), "openai"))?
            };
            let id = if call.id.is_empty() {
                format!("call_{index}")
            } else {
                call.id
            };
            // Two calls with one id would get one result between them.
            if !ids.insert(id.clone()) {
                return Err(LlmError::Decode {
                    provider: "openai".into(),
                    message: format!("two tool calls with the id `{id}` in one reply"),
                });
            }
            content.push(Block::ToolUse {
                id,
                name: call.name,
                input,
            });
        }
        Ok(ChatResponse {
            message: Message {
                role: Role::Assistant,
                content,
            },
            stop_reason: StopReason::parse(&reason),
            usage: self.usage,
            model: self.model,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_become_tool_messages_before_the_next_prompt() {
        let request = ChatRequest {
            model: "m".into(),
            system: String::new(),
            messages: vec![
                Message {
                    role: Role::Assistant,
                    content: vec![Block::ToolUse {
                        id: "c1".into(),
                        name: "t".into(),
                        input: json!({"a": 1}),
                    }],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        Block::ToolResult {
                            tool_use_id: "c1".into(),
                            content: "no such file".into(),
                            is_error: true,
                        },
                        Block::Text { text: "next".into() },
                    ],
                },
            ],
            tools: Vec::new(),
            tool_choice: ToolChoice::Any,
            max_tokens: 10,
        };
        let body = request_body(&request);
        let messages = body["messages"].as_array().expect("messages");
        assert_eq!(messages[0]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(messages[0]["content"], Value::Null);
        assert_eq!(
            messages[1],
            json!({"role": "tool", "tool_call_id": "c1", "content": "ERROR: no such file"})
        );
        assert_eq!(messages[2], json!({"role": "user", "content": "next"}));
        assert!(body.get("tool_choice").is_none(), "no tools, no tool_choice");
    }

    #[test]
    fn tool_choice_maps_to_chat_completions() {
        let mut request = ChatRequest {
            model: "m".into(),
            system: String::new(),
            messages: Vec::new(),
            tools: vec![ToolDef {
                name: "t".into(),
                description: "d".into(),
                input_schema: json!({"type": "object"}),
            }],
            tool_choice: ToolChoice::Any,
            max_tokens: 10,
        };
        assert_eq!(request_body(&request)["tool_choice"], "required");
        request.tool_choice = ToolChoice::Tool("t".into());
        assert_eq!(
            request_body(&request)["tool_choice"],
            json!({"type": "function", "function": {"name": "t"}})
        );
    }
}
