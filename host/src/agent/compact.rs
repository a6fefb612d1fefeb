//! Context compaction: when the conversation nears the model's context
//! window, the messages before the latest prompt are summarised by the
//! model and replaced by that summary. The transcript keeps every original
//! message plus a `compaction` record, so nothing is lost and a resumed
//! session rebuilds the same working conversation.

use super::conversation::as_transcript;
use crate::llm::{ChatRequest, Gateway, LlmError, Message, ToolChoice};

/// Compaction starts when the last call's context reached this share of the window.
pub const COMPACT_AT: f64 = 0.8;

const SUMMARY_SYSTEM: &str = "You compress conversations between a user and an AI agent that uses tools. \
Write a summary that lets the agent continue the work without the original messages: the user's goals and \
constraints, decisions made, facts learned from tool results (file paths, names, numbers, errors), and what \
is still open. Be complete but terse; no preamble.";

/// What the model is asked just before a compaction, with only `memory_save` offered.
pub const SAVE_NOTES_PROMPT: &str = "[The older part of this conversation is about to be summarised to free \
context.] If anything in it should be remembered beyond this session (facts about the user or the project, \
preferences, decisions, what worked or failed), save it now with memory_save, one short note per fact. If \
nothing is worth keeping, reply \"nothing to save\".";

/// Whether a call that used `context_tokens` of a `window`-token context calls for compaction.
pub fn needed(context_tokens: u64, window: u64) -> bool {
    window > 0 && context_tokens as f64 >= COMPACT_AT * window as f64
}

/// Asks the model for a summary of `messages`. The prefix goes in as plain
/// text (tool calls included as lines), so the request needs no tool
/// definitions and fits any provider. Returns the summary and the call's cost.
pub async fn summarise(
    gateway: &Gateway,
    model: &str,
    max_tokens: u32,
    window_tokens: u64,
    messages: &[Message],
    session: &str,
) -> Result<(String, Option<f64>), LlmError> {
    let mut transcript = as_transcript(messages);
    // Keep the request inside the window: about 2 characters per token
    // leaves room for the answer; the newest part matters most.
    let max_chars = (window_tokens as usize).saturating_mul(2).max(4096);
    if transcript.len() > max_chars {
        let mut cut = transcript.len() - max_chars;
        while !transcript.is_char_boundary(cut) {
            cut += 1;
        }
        transcript = format!("[…older part omitted…]\n{}", &transcript[cut..]);
    }
    let request = ChatRequest {
        model: model.to_string(),
        system: SUMMARY_SYSTEM.to_string(),
        messages: vec![Message::user_text(format!(
            "<conversation>\n{transcript}</conversation>\n\nSummarise the conversation above."
        ))],
        tools: Vec::new(),
        tool_choice: ToolChoice::Auto,
        max_tokens,
    };
    let completion = gateway.send(&request, &|_| {}, session).await?;
    Ok((completion.response.message.text(), completion.cost_usd))
}
