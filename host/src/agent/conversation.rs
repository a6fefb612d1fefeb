//! The working conversation the model sees, and the rules that keep it
//! valid for both APIs: roles alternate (a new prompt after tool results
//! joins that user message), every `tool_use` has its `tool_result`, and
//! compaction replaces a prefix with a summary. Resuming a session replays
//! its transcript records through the same functions.

use crate::llm::{Block, Message, Role};
use crate::session::Record;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    pub messages: Vec<Message>,
}

impl Conversation {
    /// Adds a user message, merged into the last one if that is also the user's.
    pub fn push_user(&mut self, message: Message) {
        match self.messages.last_mut() {
            Some(last) if last.role == Role::User => last.content.extend(message.content),
            _ => self.messages.push(message),
        }
    }

    /// Whether a tool call with this id is already in the conversation.
    pub fn has_tool_use(&self, id: &str) -> bool {
        self.messages
            .iter()
            .any(|m| m.tool_uses().any(|(other, _, _)| other == id))
    }

    pub fn push(&mut self, message: Message) {
        match message.role {
            Role::User => self.push_user(message),
            Role::Assistant => self.messages.push(message),
        }
    }

    /// Replaces the first `replaced` messages with a summary of them.
    pub fn compact(&mut self, replaced: usize, summary: &str) {
        let kept = self.messages.split_off(replaced.min(self.messages.len()));
        self.messages = vec![summary_message(summary)];
        for message in kept {
            self.push(message);
        }
    }

    /// Where a compaction may cut: the start of the latest prompt typed by
    /// the user, so the current turn stays whole and tool calls stay paired.
    /// `None` when there is nothing before it to summarise.
    pub fn compaction_point(&self) -> Option<usize> {
        let start = self
            .messages
            .iter()
            .rposition(|m| m.role == Role::User && !m.is_tool_results())?;
        (start > 0).then_some(start)
    }

    /// Tool calls of the last assistant message that have no result (the
    /// session stopped between the model's reply and the tools' results).
    pub fn dangling_tool_uses(&self) -> Vec<String> {
        match self.messages.last() {
            Some(last) if last.role == Role::Assistant => last.tool_uses().map(|(id, _, _)| id.to_string()).collect(),
            _ => Vec::new(),
        }
    }

    /// Rebuilds the conversation from a transcript.
    pub fn from_records(records: &[Record]) -> Self {
        let mut conversation = Self::default();
        for record in records {
            match record {
                Record::Message { message, .. } => conversation.push(message.clone()),
                Record::Compaction { replaced, summary, .. } => conversation.compact(*replaced, summary),
                _ => {}
            }
        }
        conversation
    }
}

/// The message that stands for a summarised prefix.
fn summary_message(summary: &str) -> Message {
    Message::user_text(format!(
        "[Summary of the earlier conversation, written when it was compacted]\n{summary}"
    ))
}

/// Results for calls that never ran, so the conversation stays valid.
pub fn interrupted_results(ids: &[String], why: &str) -> Message {
    Message {
        role: Role::User,
        content: ids
            .iter()
            .map(|id| Block::ToolResult {
                tool_use_id: id.clone(),
                content: why.to_string(),
                is_error: true,
            })
            .collect(),
    }
}

/// Results for the tool calls of `dangling` (in that order) from what the
/// transcript `records` say about them: a finished call's recorded result
/// (it is not run again); "interrupted, it may have run" for one that
/// started; "not run" for one that never did.
pub fn closing_results(records: &[Record], dangling: &[String]) -> Vec<Block> {
    let started = |id: &str| {
        records
            .iter()
            .any(|r| matches!(r, Record::ToolStarted { id: other, .. } if other == id))
    };
    let finished = |id: &str| {
        records.iter().rev().find_map(|r| match r {
            Record::ToolFinished {
                id: other,
                content,
                is_error,
                ..
            } if other == id => Some((content.clone(), *is_error)),
            _ => None,
        })
    };
    dangling
        .iter()
        .map(|id| {
            let (content, is_error) = match finished(id) {
                Some(result) => result,
                None if started(id) => (
                    "interrupted: the session ended while this tool call was running; it may have run, \
                     and its side effects are unknown — check before repeating it"
                        .to_string(),
                    true,
                ),
                None => (
                    "not run: the session ended before this tool call started".to_string(),
                    true,
                ),
            };
            Block::ToolResult {
                tool_use_id: id.clone(),
                content,
                is_error,
            }
        })
        .collect()
}

/// The conversation as plain text, for the summariser.
pub fn as_transcript(messages: &[Message]) -> String {
    let mut out = String::new();
    for message in messages {
        for block in &message.content {
            let line = match block {
                Block::Text { text } => format!("{}: {text}", role_name(message.role)),
                Block::ToolUse { name, input, .. } => format!("assistant called {name} with {input}"),
                Block::ToolResult { content, is_error, .. } => {
                    let content: String = content.chars().take(2000).collect();
                    format!("tool {}: {content}", if *is_error { "error" } else { "result" })
                }
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assistant_calling(id: &str) -> Message {
        Message {
            role: Role::Assistant,
            content: vec![Block::ToolUse {
                id: id.into(),
                name: "t".into(),
                input: serde_json::json!({}),
            }],
        }
    }

    #[test]
    fn a_prompt_after_tool_results_joins_that_user_message() {
        let mut c = Conversation::default();
        c.push(Message::user_text("one"));
        c.push(assistant_calling("a"));
        c.push(interrupted_results(&["a".into()], "x"));
        c.push(Message::user_text("two"));
        assert_eq!(c.messages.len(), 3);
        assert_eq!(c.messages[2].content.len(), 2);
    }

    #[test]
    fn compaction_keeps_the_latest_prompt_and_what_follows() {
        let mut c = Conversation::default();
        c.push(Message::user_text("first"));
        c.push(Message {
            role: Role::Assistant,
            content: vec![Block::Text { text: "ok".into() }],
        });
        c.push(Message::user_text("second"));
        c.push(assistant_calling("b"));
        assert_eq!(c.compaction_point(), Some(2));
        c.compact(2, "they said first");
        assert_eq!(c.messages.len(), 2);
        assert!(c.messages[0].text().contains("they said first") && c.messages[0].text().contains("second"));
        assert_eq!(c.dangling_tool_uses(), vec!["b".to_string()]);
    }
}
