//! Turning agent events into terminal output. Human mode: the model's text
//! streams to stdout; tool calls, outcomes, retries and a spinner go to
//! stderr, one compact line each. JSON mode: every event is one JSON line
//! on stdout, for scripts.
//!
//! On a terminal, Markdown in the model's text is rendered line by line
//! ([`super::markdown`]); a pipe or a file gets it as written.
//!
//! When stdout is not a terminal (a pipe, a file), a reply's text is held
//! until its model call completes: a call retried mid-stream discards its
//! partial text, and what a script reads must be the answer only. On a
//! terminal the text streams as it comes, and a retry says on stderr that
//! the partial reply above was discarded.

use crate::agent::{AgentEvent, EventSink, Stop};
use crate::terminal::sanitize;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Prints every event as a JSON line on stdout.
pub fn json_sink() -> EventSink {
    Arc::new(|event: &AgentEvent| {
        if let Ok(line) = serde_json::to_string(event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    })
}

/// State of the human renderer.
#[derive(Default)]
struct Screen {
    spinner: Option<ProgressBar>,
    /// The cursor is after streamed text on stdout (a newline is due before stderr lines).
    mid_line: bool,
    /// Text of the model call in progress, held when stdout is not a terminal.
    held: String,
    /// Text of the model call in progress was shown on the terminal.
    shown_partial: bool,
    /// Markdown of the answer being streamed to the terminal.
    markdown: super::markdown::MarkdownStream,
}

impl Screen {
    fn stop_spinner(&mut self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
    }

    fn start_spinner(&mut self, message: &str) {
        self.stop_spinner();
        // indicatif draws nothing when stderr is not a terminal.
        let spinner = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            spinner.set_style(style);
        }
        spinner.set_message(message.to_string());
        spinner.enable_steady_tick(Duration::from_millis(100));
        self.spinner = Some(spinner);
    }

    /// Writes the held text of a completed model call (on a terminal: the
    /// last, unfinished line of its Markdown).
    fn release(&mut self) {
        self.shown_partial = false;
        let rest = self.markdown.finish();
        if !rest.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(rest.as_bytes());
            let _ = out.flush();
            self.mid_line = true;
        }
        if self.held.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.held);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        self.mid_line = !text.ends_with('\n');
    }

    /// Ends streamed text with a newline before a status line.
    fn end_text(&mut self) {
        self.release();
        if self.mid_line {
            println!();
            self.mid_line = false;
        }
    }
}

/// Streams text to stdout and shows tool activity compactly on stderr.
pub fn human_sink() -> EventSink {
    let screen = Mutex::new(Screen::default());
    Arc::new(move |event: &AgentEvent| {
        let mut screen = screen.lock().unwrap_or_else(|e| e.into_inner());
        render(&mut screen, event);
    })
}

fn render(screen: &mut Screen, event: &AgentEvent) {
    match event {
        AgentEvent::TurnStarted { .. } => screen.start_spinner("thinking"),
        AgentEvent::TextDelta { text } => {
            screen.stop_spinner();
            let mut out = std::io::stdout().lock();
            if !out.is_terminal() {
                // A pipe gets the text unchanged, once its call completed.
                screen.held.push_str(text);
                return;
            }
            // Model text must not drive the terminal: the renderer sanitizes
            // each line before adding its own styles.
            let shown = screen.markdown.push(text);
            let _ = out.write_all(shown.as_bytes());
            let _ = out.flush();
            if !shown.is_empty() {
                screen.mid_line = false;
            }
            screen.shown_partial = true;
        }
        AgentEvent::Retrying {
            attempt,
            wait_ms,
            reason,
        } => {
            screen.stop_spinner();
            // That attempt's text is void: drop what was held, say so for what was shown.
            screen.held.clear();
            screen.markdown.discard();
            if screen.mid_line {
                println!();
                screen.mid_line = false;
            }
            if std::mem::take(&mut screen.shown_partial) {
                eprintln!("  (the partial reply above is discarded)");
            }
            eprintln!(
                "  ↻ retry {attempt} in {:.1}s: {}",
                *wait_ms as f64 / 1000.0,
                sanitize(reason)
            );
        }
        AgentEvent::ToolCall { name, input, .. } => {
            screen.stop_spinner();
            screen.end_text();
            eprintln!("  ⏺ {} {}", sanitize(name), shorten(&input.to_string(), 100));
        }
        AgentEvent::ToolStarted { name, .. } => screen.start_spinner(&format!("running {}", sanitize(name))),
        AgentEvent::Approval { name, decision, .. }
            if !decision.ends_with("(policy)") || decision.starts_with("deny") =>
        {
            screen.stop_spinner();
            eprintln!("  ⚑ {}: {}", sanitize(name), sanitize(decision));
        }
        // Usage comes when a model call completed: its text is final.
        AgentEvent::Usage { .. } => screen.release(),
        AgentEvent::Approval { .. } => {}
        AgentEvent::ToolResult {
            name,
            outcome,
            is_error,
            content,
            duration_ms,
            ..
        } => {
            screen.stop_spinner();
            if *is_error {
                eprintln!(
                    "  ✗ {} {outcome} ({duration_ms} ms): {}",
                    sanitize(name),
                    shorten(content, 160)
                );
            } else {
                eprintln!("  ✓ {} ok ({duration_ms} ms, {} bytes)", sanitize(name), content.len());
            }
        }
        AgentEvent::Compacted { replaced_messages, .. } => {
            screen.stop_spinner();
            eprintln!("  (compacted: {replaced_messages} earlier messages replaced by a summary)");
        }
        AgentEvent::Done { stop, error, .. } => {
            screen.stop_spinner();
            // Completed calls were released at their usage; what is left
            // belongs to a call that failed, timed out or was cancelled.
            screen.held.clear();
            screen.end_text();
            if let Some(message) = stopped_message(*stop, error.as_deref()) {
                eprintln!("{message}");
            }
        }
        // A sub-agent's tool lines, indented under its `delegate` call; its
        // text is the delegate result, not the answer.
        AgentEvent::Delegated { profile, event } => match event.as_ref() {
            AgentEvent::ToolCall { name, input, .. } => {
                screen.stop_spinner();
                screen.end_text();
                eprintln!(
                    "    [{}] ⏺ {} {}",
                    sanitize(profile),
                    sanitize(name),
                    shorten(&input.to_string(), 90)
                );
            }
            AgentEvent::ToolResult {
                name,
                outcome,
                is_error,
                ..
            } => {
                let mark = if *is_error { "✗" } else { "✓" };
                eprintln!("    [{}] {mark} {} {outcome}", sanitize(profile), sanitize(name));
            }
            _ => {}
        },
    }
}

/// Why a turn stopped without an answer, in words.
fn stopped_message(stop: Stop, error: Option<&str>) -> Option<String> {
    Some(match stop {
        Stop::Answered => return None,
        Stop::MaxRounds => "stopped: the round limit ([agent] max_rounds) was reached before an answer".into(),
        Stop::Budget => "stopped: the session's spend reached [agent] budget_usd".into(),
        Stop::TimeLimit => "stopped: the turn ran past [agent] time_limit_s".into(),
        Stop::Cancelled => "cancelled".into(),
        Stop::Error => format!("error: {}", sanitize(error.unwrap_or("the model call failed"))),
    })
}

/// One line, at most `max` characters, safe for the terminal.
pub fn shorten(text: &str, max: usize) -> String {
    let flat: String = sanitize(text)
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}
