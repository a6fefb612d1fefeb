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

    /// Rebuilds the conversation from a transcript, repairing what a
    /// damaged transcript (a skipped line) broke: see [`Self::repair`].
    pub fn from_records(records: &[Record]) -> Self {
        let mut conversation = Self::default();
        for record in records {
            match record {
                Record::Message { message, .. } => conversation.push(message.clone()),
                Record::Compaction { replaced, summary, .. } => conversation.compact(*replaced, summary),
                _ => {}
            }
        }
        let repaired = conversation.repair();
        if repaired > 0 {
            tracing::warn!(
                repaired,
                "the transcript was damaged: tool results without their call were dropped and calls without a result closed"
            );
        }
        conversation
    }

    /// Pairs every tool call with exactly one result again, as both APIs
    /// require (one unpaired id makes every later request fail with 400):
    /// a result whose call is not in the message before it is dropped; a
    /// call whose result was lost (its line skipped) gets an error result
    /// saying so. The last message's calls stay open for
    /// [`closing_results`]. Returns how many blocks were dropped or added.
    pub fn repair(&mut self) -> usize {
        const LOST: &str = "lost: the transcript line holding this result was damaged; it may have run";
        let mut changed = 0;
        let mut out: Vec<Message> = Vec::with_capacity(self.messages.len());
        for mut message in std::mem::take(&mut self.messages) {
            let open: Vec<String> = match out.last() {
                Some(prev) if prev.role == Role::Assistant => {
                    prev.tool_uses().map(|(id, _, _)| id.to_string()).collect()
                }
                _ => Vec::new(),
            };
            match message.role {
                Role::User => {
                    let mut answered = Vec::new();
                    message.content.retain(|block| match block {
                        Block::ToolResult { tool_use_id, .. } => {
                            let keep = open.contains(tool_use_id) && !answered.contains(tool_use_id);
                            if keep {
                                answered.push(tool_use_id.clone());
                            } else {
                                changed += 1;
                            }
                            keep
                        }
                        _ => true,
                    });
                    let missing: Vec<String> = open.iter().filter(|id| !answered.contains(id)).cloned().collect();
                    changed += missing.len();
                    let mut content = interrupted_results(&missing, LOST).content;
                    content.append(&mut message.content);
                    message.content = content;
                    if !message.content.is_empty() {
                        out.push(message);
                    }
                }
                Role::Assistant => {
                    if !open.is_empty() {
                        // The results message between two replies was lost whole.
                        changed += open.len();
                        out.push(interrupted_results(&open, LOST));
                    }
                    out.push(message);
                }
            }
        }
        self.messages = out;
        changed
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

    fn result_for(id: &str) -> Message {
        Message {
            role: Role::User,
            content: vec![Block::ToolResult {
                tool_use_id: id.into(),
                content: "r".into(),
                is_error: false,
            }],
        }
    }

    fn reply(text: &str) -> Message {
        Message {
            role: Role::Assistant,
            content: vec![Block::Text { text: text.into() }],
        }
    }

    /// Every tool_result pairs with a tool_use in the message right before it, and back.
    fn assert_paired(c: &Conversation) {
        for (i, m) in c.messages.iter().enumerate() {
            let results: Vec<&str> = m
                .content
                .iter()
                .filter_map(|b| match b {
                    Block::ToolResult { tool_use_id, .. } => Some(tool_use_id.as_str()),
                    _ => None,
                })
                .collect();
            let calls: Vec<&str> = match i.checked_sub(1).map(|p| &c.messages[p]) {
                Some(prev) if prev.role == Role::Assistant => prev.tool_uses().map(|(id, _, _)| id).collect(),
                _ => Vec::new(),
            };
            if m.role == Role::User {
                assert_eq!(results, calls, "message {i}: {:?}", c.messages);
            }
        }
    }

    #[test]
    fn a_result_whose_call_line_was_lost_is_dropped_issue_17() {
        let records: Vec<Record> = [
            Message::user_text("q"),
            // (the assistant's tool_use line was damaged and skipped)
            result_for("t1"),
            reply("done"),
            Message::user_text("next"),
        ]
        .into_iter()
        .map(|message| Record::Message {
            time: String::new(),
            message,
        })
        .collect();
        let c = Conversation::from_records(&records);
        assert_paired(&c);
        assert_eq!(c.messages.len(), 3, "{:?}", c.messages);
        assert_eq!(c.messages[0].text(), "q");
    }

    #[test]
    fn a_call_whose_result_line_was_lost_gets_a_lost_result_issue_17() {
        let mut c = Conversation {
            messages: vec![
                Message::user_text("q"),
                assistant_calling("t1"),
                reply("after"),
                Message::user_text("next"),
            ],
        };
        assert_eq!(c.repair(), 1);
        assert_paired(&c);
        assert_eq!(c.messages.len(), 5);
        assert!(
            matches!(&c.messages[2].content[0], Block::ToolResult { content, is_error: true, .. } if content.starts_with("lost:"))
        );
        // A call still open at the end is left for closing_results.
        let mut open = Conversation {
            messages: vec![Message::user_text("q"), assistant_calling("t2")],
        };
        assert_eq!(open.repair(), 0);
        assert_eq!(open.dangling_tool_uses(), vec!["t2".to_string()]);
    }
}
