//! Replies in the Anthropic Messages API's streaming format (`"stream": true`), and its JSON error body.
//!
//! [`AnthropicReply`] writes the same event sequence, with the same JSON key order, as the real API:
//! `message_start`, then per content block `content_block_start` / `content_block_delta`s / `content_block_stop`
//! (with one `ping` after the first block start), then `message_delta` with the stop reason and output tokens, then
//! `message_stop`. Text and tool input are streamed in several pieces, as a real model would, so the client must
//! join deltas. The same builder can also produce the two ways a stream goes wrong after the HTTP 200: an
//! `event: error` mid-stream, and a stream that ends without `message_stop`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::reply::Reply;
use crate::wire::{json_string, split_pieces};

/// Message and request ids are unique within a test binary, so a test can tell replies apart.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Text is streamed in about this many `text_delta`s, tool input in about this many `input_json_delta`s.
const PIECES: usize = 3;

/// Usage when the test does not set it: small, non-zero numbers, like a real short exchange.
const DEFAULT_INPUT_TOKENS: u64 = 10;
const DEFAULT_OUTPUT_TOKENS: u64 = 5;

#[derive(Clone, Debug)]
enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
}

/// Builds a streaming Messages API reply; see the module documentation for the event sequence.
#[derive(Clone, Debug)]
pub struct AnthropicReply {
    id: String,
    model: String,
    blocks: Vec<Block>,
    input_tokens: u64,
    output_tokens: u64,
    cache_read: u64,
    cache_write: u64,
    stop_reason: Option<String>,
    error_after: Option<(usize, String, String)>,
    message_stop: bool,
}

impl Default for AnthropicReply {
    fn default() -> Self {
        Self::new()
    }
}

impl AnthropicReply {
    /// An empty message from `claude-sonnet-4-5` with id `msg_scripted_N`.
    pub fn new() -> Self {
        AnthropicReply {
            id: format!("msg_scripted_{}", next_id()),
            model: String::from("claude-sonnet-4-5"),
            blocks: Vec::new(),
            input_tokens: DEFAULT_INPUT_TOKENS,
            output_tokens: DEFAULT_OUTPUT_TOKENS,
            cache_read: 0,
            cache_write: 0,
            stop_reason: None,
            error_after: None,
            message_stop: true,
        }
    }

    pub fn model(mut self, model: &str) -> Self {
        self.model = model.to_owned();
        self
    }

    /// Appends a text block, streamed as several `text_delta`s.
    pub fn text(mut self, text: &str) -> Self {
        self.blocks.push(Block::Text(text.to_owned()));
        self
    }

    /// Appends a `tool_use` block; its input is streamed as `input_json_delta` pieces of the serialised JSON.
    pub fn tool_use(mut self, id: &str, name: &str, input: serde_json::Value) -> Self {
        self.blocks.push(Block::ToolUse {
            id: id.to_owned(),
            name: name.to_owned(),
            input,
        });
        self
    }

    /// `input_tokens` goes in `message_start`, `output_tokens` in `message_delta`, as the real API reports them.
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.input_tokens = input_tokens;
        self.output_tokens = output_tokens;
        self
    }

    /// Prompt-cache tokens: `cache_read_input_tokens` and `cache_creation_input_tokens`.
    pub fn cache(mut self, cache_read: u64, cache_write: u64) -> Self {
        self.cache_read = cache_read;
        self.cache_write = cache_write;
        self
    }

    /// Overrides the stop reason (default: `tool_use` if there is a tool_use block, else `end_turn`).
    pub fn stop_reason(mut self, reason: &str) -> Self {
        self.stop_reason = Some(reason.to_owned());
        self
    }

    /// Ends the stream with an `event: error` after the first `n_events` events: how the real API reports
    /// `overloaded_error` once the HTTP 200 is already out. The stream then ends cleanly at the HTTP level.
    pub fn error_after(mut self, n_events: usize, error_type: &str, message: &str) -> Self {
        self.error_after = Some((n_events, error_type.to_owned(), message.to_owned()));
        self
    }

    /// Leaves out `message_delta` and `message_stop`: the HTTP body ends cleanly but the message is incomplete.
    pub fn without_message_stop(mut self) -> Self {
        self.message_stop = false;
        self
    }

    /// The message id, `msg_scripted_N`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The SSE reply, with a `request-id` header like the real API's.
    pub fn build(self) -> Reply {
        Reply::sse(self.body()).with_header("request-id", &format!("req_scripted_{}", next_id()))
    }

    /// The SSE body text.
    pub fn body(&self) -> String {
        let mut events = vec![self.message_start()];
        for (index, block) in self.blocks.iter().enumerate() {
            match block {
                Block::Text(text) => {
                    let start = r#"{"type":"text","text":""}"#;
                    events.push(block_start(index, start));
                    push_first_ping(&mut events, index);
                    for piece in split_pieces(text, PIECES) {
                        let delta = format!(r#"{{"type":"text_delta","text":{}}}"#, json_string(piece));
                        events.push(block_delta(index, &delta));
                    }
                }
                Block::ToolUse { id, name, input } => {
                    let start = format!(
                        r#"{{"type":"tool_use","id":{},"name":{},"input":{{}}}}"#,
                        json_string(id),
                        json_string(name)
                    );
                    events.push(block_start(index, &start));
                    push_first_ping(&mut events, index);
                    // The real API opens every tool input with an empty piece; a client must not choke on it.
                    let json = input.to_string();
                    for piece in std::iter::once("").chain(split_pieces(&json, PIECES)) {
                        let delta = format!(r#"{{"type":"input_json_delta","partial_json":{}}}"#, json_string(piece));
                        events.push(block_delta(index, &delta));
                    }
                }
            }
            events.push(event(
                "content_block_stop",
                &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
            ));
        }
        if self.blocks.is_empty() {
            events.push(ping());
        }
        if self.message_stop {
            let stop_reason = self.stop_reason.clone().unwrap_or_else(|| self.default_stop_reason());
            let data = format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":{},"stop_sequence":null}},"usage":{{"output_tokens":{}}}}}"#,
                json_string(&stop_reason),
                self.output_tokens
            );
            events.push(event("message_delta", &data));
            events.push(event("message_stop", r#"{"type":"message_stop"}"#));
        }
        if let Some((n_events, error_type, message)) = &self.error_after {
            events.truncate(*n_events);
            let data = format!(
                r#"{{"type":"error","error":{{"type":{},"message":{}}}}}"#,
                json_string(error_type),
                json_string(message)
            );
            events.push(event("error", &data));
        }
        events.concat()
    }

    fn message_start(&self) -> String {
        let data = format!(
            concat!(
                r#"{{"type":"message_start","message":{{"id":{},"type":"message","role":"assistant","model":{},"#,
                r#""content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{},"#,
                r#""cache_creation_input_tokens":{},"cache_read_input_tokens":{},"output_tokens":1}}}}}}"#
            ),
            json_string(&self.id),
            json_string(&self.model),
            self.input_tokens,
            self.cache_write,
            self.cache_read
        );
        event("message_start", &data)
    }

    fn default_stop_reason(&self) -> String {
        let uses_tools = self.blocks.iter().any(|b| matches!(b, Block::ToolUse { .. }));
        String::from(if uses_tools { "tool_use" } else { "end_turn" })
    }
}

/// An Anthropic error body, `{"type":"error","error":{"type":..,"message":..}}`, with a `request-id` header.
/// Typical pairs: 400 `invalid_request_error`, 401 `authentication_error`, 429 `rate_limit_error` (add a
/// `retry-after` header with [`Reply::with_header`]), 500 `api_error`, 529 `overloaded_error`.
pub fn error_reply(status: u16, error_type: &str, message: &str) -> Reply {
    let body = format!(
        r#"{{"type":"error","error":{{"type":{},"message":{}}}}}"#,
        json_string(error_type),
        json_string(message)
    );
    Reply::json_text(status, body).with_header("request-id", &format!("req_scripted_{}", next_id()))
}

/// One SSE event: `event: NAME`, `data: JSON`, blank line.
fn event(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn block_start(index: usize, content_block: &str) -> String {
    let data = format!(r#"{{"type":"content_block_start","index":{index},"content_block":{content_block}}}"#);
    event("content_block_start", &data)
}

fn block_delta(index: usize, delta: &str) -> String {
    let data = format!(r#"{{"type":"content_block_delta","index":{index},"delta":{delta}}}"#);
    event("content_block_delta", &data)
}

/// The real API's ping, space included.
fn ping() -> String {
    event("ping", r#"{"type": "ping"}"#)
}

/// The real API sends one ping, right after the first `content_block_start`.
fn push_first_ping(events: &mut Vec<String>, block_index: usize) {
    if block_index == 0 {
        events.push(ping());
    }
}
