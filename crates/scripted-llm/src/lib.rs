//! A scripted LLM API server for the host's tests and benchmarks.
//!
//! [`ScriptedServer`] listens on 127.0.0.1 and answers each request with the next [`Reply`] of a script, whatever
//! the path. Replies are raw HTTP responses, so a test can exercise the host's real HTTP client, SSE parser and
//! retry logic: bodies can be cut into arbitrary chunks (mid-line, mid-UTF-8 character), delayed, truncated with an
//! aborted connection, left hanging, or replaced by a dropped connection. The [`anthropic`] and [`openai`] modules
//! build streaming replies in the exact wire formats of the Anthropic Messages API and the OpenAI Chat Completions
//! API, plus the JSON error bodies both return.
//!
//! ```no_run
//! # async fn demo() {
//! use scripted_llm::{ScriptedServer, anthropic::AnthropicReply};
//! let server = ScriptedServer::start(vec![AnthropicReply::new().text("Hello!").build()]).await;
//! // point the client at `server.url()`, run it, then inspect `server.requests()`.
//! # }
//! ```

pub mod anthropic;
pub mod openai;
mod reply;
mod server;
mod wire;

pub use reply::{Chunking, Reply};
pub use server::{RecordedRequest, Responder, ScriptedServer};
