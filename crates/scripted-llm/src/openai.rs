//! Replies in the OpenAI Chat Completions API's streaming format (`"stream": true` with
//! `"stream_options": {"include_usage": true}`), and its JSON error body.
//!
//! [`OpenAiReply`] writes `data: {chat.completion.chunk}` lines like the real API: a first chunk with the
//! assistant role, content and `tool_calls` deltas, a chunk with an empty delta and the `finish_reason`, a chunk
//! with empty `choices` and the `usage`, then `data: [DONE]`. As with `include_usage` on the real API, every chunk
//! but the last carries `"usage":null`, which a client must not mistake for a usage report. Each tool call has its
//! own `index`; its first delta carries the id, type and name with empty arguments, the following ones only the
//! index and a piece of the arguments.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::reply::Reply;
use crate::wire::{json_string, split_pieces};

/// Completion and request ids are unique within a test binary, so a test can tell replies apart.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Text and tool arguments are streamed in about this many deltas.
const PIECES: usize = 3;

/// A fixed `created` timestamp keeps replies byte-for-byte reproducible.
const CREATED: u64 = 1_732_000_000;

/// Usage when the test does not set it: small, non-zero numbers, like a real short exchange.
const DEFAULT_PROMPT_TOKENS: u64 = 10;
const DEFAULT_COMPLETION_TOKENS: u64 = 5;

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    ToolCall {
        id: String,
        name: String,
        arguments: serde_json::Value,
    },
}

/// Builds a streaming Chat Completions reply; see the module documentation for the chunk sequence.
#[derive(Clone, Debug)]
pub struct OpenAiReply {
    id: String,
    model: String,
    parts: Vec<Part>,
    prompt_tokens: u64,
    completion_tokens: u64,
    cached_tokens: u64,
    finish_reason: Option<String>,
    error_after: Option<(usize, String)>,
    done: bool,
}

impl Default for OpenAiReply {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenAiReply {
    /// An empty completion from `gpt-4o-mini` with id `chatcmpl-scripted-N`.
    pub fn new() -> Self {
        OpenAiReply {
            id: format!("chatcmpl-scripted-{}", next_id()),
            model: String::from("gpt-4o-mini"),
            parts: Vec::new(),
            prompt_tokens: DEFAULT_PROMPT_TOKENS,
            completion_tokens: DEFAULT_COMPLETION_TOKENS,
            cached_tokens: 0,
            finish_reason: None,
            error_after: None,
            done: true,
        }
    }

    pub fn model(mut self, model: &str) -> Self {
        self.model = model.to_owned();
        self
    }

    /// Appends text, streamed as several `content` deltas.
    pub fn text(mut self, text: &str) -> Self {
        self.parts.push(Part::Text(text.to_owned()));
        self
    }

    /// Appends a function tool call; `arguments` is serialised and streamed in pieces, as the JSON *string* the
    /// real API sends.
    pub fn tool_call(mut self, id: &str, name: &str, arguments: serde_json::Value) -> Self {
        self.parts.push(Part::ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            arguments,
        });
        self
    }

    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.prompt_tokens = prompt_tokens;
        self.completion_tokens = completion_tokens;
        self
    }

    /// Prompt-cache hits: `usage.prompt_tokens_details.cached_tokens`.
    pub fn cached(mut self, cached_tokens: u64) -> Self {
        self.cached_tokens = cached_tokens;
        self
    }

    /// Overrides the finish reason (default: `tool_calls` if there is a tool call, else `stop`).
    pub fn finish_reason(mut self, reason: &str) -> Self {
        self.finish_reason = Some(reason.to_owned());
        self
    }

    /// Ends the stream with a `data: {"error":..}` line after the first `n_chunks` data lines: how the API reports
    /// a failure once the HTTP 200 is already out. The stream then ends cleanly at the HTTP level, without
    /// `[DONE]`.
    pub fn error_after(mut self, n_chunks: usize, message: &str) -> Self {
        self.error_after = Some((n_chunks, message.to_owned()));
        self
    }

    /// Leaves out the finish-reason chunk, the usage chunk and `[DONE]`: the HTTP body ends cleanly but the
    /// completion is incomplete.
    pub fn without_done(mut self) -> Self {
        self.done = false;
        self
    }

    /// The completion id, `chatcmpl-scripted-N`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The SSE reply, with an `x-request-id` header like the real API's.
    pub fn build(self) -> Reply {
        Reply::sse(self.body()).with_header("x-request-id", &format!("req_scripted_{}", next_id()))
    }

    /// The SSE body text.
    pub fn body(&self) -> String {
        // Like the real API: `content` starts as "" when the reply opens with text, null when it opens with a call.
        let opens_with_text = matches!(self.parts.first(), Some(Part::Text(_)));
        let content = if opens_with_text { r#""""# } else { "null" };
        let mut lines = vec![self.chunk(
            &format!(r#"{{"role":"assistant","content":{content},"refusal":null}}"#),
            None,
        )];
        let mut tool_index = 0;
        for part in &self.parts {
            match part {
                Part::Text(text) => {
                    for piece in split_pieces(text, PIECES) {
                        lines.push(self.chunk(&format!(r#"{{"content":{}}}"#, json_string(piece)), None));
                    }
                }
                Part::ToolCall { id, name, arguments } => {
                    let first = format!(
                        r#"{{"tool_calls":[{{"index":{tool_index},"id":{},"type":"function","function":{{"name":{},"arguments":""}}}}]}}"#,
                        json_string(id),
                        json_string(name)
                    );
                    lines.push(self.chunk(&first, None));
                    let json = arguments.to_string();
                    for piece in split_pieces(&json, PIECES) {
                        let delta = format!(
                            r#"{{"tool_calls":[{{"index":{tool_index},"function":{{"arguments":{}}}}}]}}"#,
                            json_string(piece)
                        );
                        lines.push(self.chunk(&delta, None));
                    }
                    tool_index += 1;
                }
            }
        }
        if self.done {
            let finish_reason = self
                .finish_reason
                .clone()
                .unwrap_or_else(|| String::from(if tool_index > 0 { "tool_calls" } else { "stop" }));
            lines.push(self.chunk("{}", Some(&finish_reason)));
            lines.push(self.usage_chunk());
            lines.push(String::from("data: [DONE]\n\n"));
        }
        if let Some((n_chunks, message)) = &self.error_after {
            lines.truncate(*n_chunks);
            lines.push(format!(
                "data: {{\"error\":{{\"message\":{},\"type\":\"server_error\",\"code\":null}}}}\n\n",
                json_string(message)
            ));
        }
        lines.concat()
    }

    /// One `chat.completion.chunk` line with a single choice.
    fn chunk(&self, delta: &str, finish_reason: Option<&str>) -> String {
        let finish_reason = finish_reason.map_or_else(|| String::from("null"), json_string);
        let choices = format!(r#"[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish_reason}}}]"#);
        self.line(&choices, "null")
    }

    /// The last chunk: no choices, the usage of the whole request.
    fn usage_chunk(&self) -> String {
        let usage = format!(
            r#"{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":{}}}}}"#,
            self.prompt_tokens,
            self.completion_tokens,
            self.prompt_tokens + self.completion_tokens,
            self.cached_tokens
        );
        self.line("[]", &usage)
    }

    fn line(&self, choices: &str, usage: &str) -> String {
        format!(
            "data: {{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":{},\"system_fingerprint\":\"fp_scripted\",\"choices\":{choices},\"usage\":{usage}}}\n\n",
            json_string(&self.id),
            json_string(&self.model)
        )
    }
}

/// An OpenAI error body, `{"error":{"message":..,"type":..,"param":null,"code":..}}`, with an `x-request-id`
/// header. Typical: 401 `invalid_request_error` / `invalid_api_key`, 429 `requests` / `rate_limit_exceeded` (add
/// a `retry-after` header with [`Reply::with_header`]), 429 `insufficient_quota`, 500 `server_error`.
pub fn error_reply(status: u16, error_type: &str, code: Option<&str>, message: &str) -> Reply {
    let code = code.map_or_else(|| String::from("null"), json_string);
    let body = format!(
        r#"{{"error":{{"message":{},"type":{},"param":null,"code":{code}}}}}"#,
        json_string(message),
        json_string(error_type)
    );
    Reply::json_text(status, body).with_header("x-request-id", &format!("req_scripted_{}", next_id()))
}
