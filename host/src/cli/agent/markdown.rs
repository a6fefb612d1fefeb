//! Markdown in the model's answers, shown on a terminal: headings bold,
//! `**bold**` and `*emphasis*` as such, `code` and fenced blocks in their
//! own colour, list bullets as `•`, quotes with a bar. A pipe or a file
//! gets the text as the model wrote it (the renderer is only used on a
//! terminal).
//!
//! Answers stream, so rendering is by line: a line is shown once it is
//! complete (block structure such as a fence is known from the lines
//! before), and inline spans within it are parsed by pulldown-cmark. Every
//! line passes the terminal sanitizer first, so the escape codes in the
//! output are ours alone.

use crate::terminal::sanitize;
use pulldown_cmark::{Event, Parser, Tag, TagEnd};

const BOLD: &str = "\x1b[1m";
const BOLD_OFF: &str = "\x1b[22m";
const ITALIC: &str = "\x1b[3m";
const ITALIC_OFF: &str = "\x1b[23m";
const UNDERLINE: &str = "\x1b[4m";
const UNDERLINE_OFF: &str = "\x1b[24m";
const CODE: &str = "\x1b[36m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Streamed Markdown in, terminal text out, one complete line at a time.
#[derive(Default)]
pub struct MarkdownStream {
    /// The line being streamed (not complete yet).
    partial: String,
    /// Inside a fenced code block.
    in_fence: bool,
}

impl MarkdownStream {
    /// What can be shown after `text`: every line it completed, rendered.
    pub fn push(&mut self, text: &str) -> String {
        self.partial.push_str(text);
        let Some(end) = self.partial.rfind('\n') else {
            return String::new();
        };
        let complete: String = self.partial.drain(..=end).collect();
        let mut out = String::new();
        for line in complete.split_inclusive('\n') {
            out.push_str(&self.line(line.trim_end_matches('\n')));
            out.push('\n');
        }
        out
    }

    /// The last line, when the answer ends without a newline.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.partial);
        let out = if rest.is_empty() {
            String::new()
        } else {
            self.line(&rest)
        };
        self.in_fence = false;
        out
    }

    /// Forgets a partial line (its model call is being retried).
    pub fn discard(&mut self) {
        self.partial.clear();
        self.in_fence = false;
    }

    fn line(&mut self, raw: &str) -> String {
        let line = sanitize(raw);
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            self.in_fence = !self.in_fence;
            return format!("{DIM}{}{RESET}", "─".repeat(3));
        }
        if self.in_fence {
            return format!("{CODE}  {line}{RESET}");
        }
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(level) = heading_level(trimmed) {
            let text = trimmed[level..].trim();
            return format!("{BOLD}{UNDERLINE}{}{RESET}", inline(text));
        }
        if let Some(item) = ["- ", "* ", "+ "].iter().find_map(|b| trimmed.strip_prefix(b)) {
            return format!("{indent}• {}", inline(item));
        }
        if let Some(quoted) = trimmed.strip_prefix('>') {
            return format!("{indent}{DIM}│{RESET} {}", inline(quoted.trim_start()));
        }
        if let Some((number, item)) = numbered(trimmed) {
            return format!("{indent}{number} {}", inline(item));
        }
        format!("{indent}{}", inline(trimmed))
    }
}

/// `#`…`######` followed by a space: the number of `#`.
fn heading_level(line: &str) -> Option<usize> {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    ((1..=6).contains(&hashes) && line[hashes..].starts_with(' ')).then_some(hashes)
}

/// `12. item` → (`12.`, `item`).
fn numbered(line: &str) -> Option<(&str, &str)> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    let rest = line[digits..].strip_prefix(". ")?;
    Some((&line[..digits + 1], rest))
}

/// Inline spans of one line: strong, emphasis, code, links.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut links = Vec::new();
    for event in Parser::new(text) {
        match event {
            Event::Text(t) => out.push_str(&t),
            Event::Code(c) => {
                out.push_str(CODE);
                out.push_str(&c);
                out.push_str("\x1b[39m");
            }
            Event::Start(Tag::Strong) => out.push_str(BOLD),
            Event::End(TagEnd::Strong) => out.push_str(BOLD_OFF),
            Event::Start(Tag::Emphasis) => out.push_str(ITALIC),
            Event::End(TagEnd::Emphasis) => out.push_str(ITALIC_OFF),
            Event::Start(Tag::Link { dest_url, .. }) => {
                links.push(dest_url.to_string());
                out.push_str(UNDERLINE);
            }
            Event::End(TagEnd::Link) => {
                out.push_str(UNDERLINE_OFF);
                if let Some(url) = links.pop() {
                    out.push_str(&format!(" ({url})"));
                }
            }
            Event::SoftBreak | Event::HardBreak => out.push(' '),
            // Raw HTML is shown as the text it is.
            Event::Html(h) | Event::InlineHtml(h) => out.push_str(&h),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(text: &str) -> String {
        let mut md = MarkdownStream::default();
        let mut out = md.push(text);
        out.push_str(&md.finish());
        out
    }

    #[test]
    fn headings_emphasis_code_and_lists_are_rendered_issue_17() {
        let out = rendered("# Plan\n**Step one** uses `grep`.\n- first\n2. second\n> quoted\n");
        assert!(out.contains(&format!("{BOLD}{UNDERLINE}Plan{RESET}")), "{out:?}");
        assert!(
            out.contains(&format!("{BOLD}Step one{BOLD_OFF} uses {CODE}grep")),
            "{out:?}"
        );
        assert!(
            out.contains("• first") && out.contains("2. second") && out.contains("│"),
            "{out:?}"
        );
        assert!(!out.contains("**") && !out.contains('`'), "{out:?}");
    }

    #[test]
    fn a_fenced_block_is_shown_as_code_and_not_parsed() {
        let out = rendered("```rust\nlet x = **not bold**;\n```\nafter\n");
        assert!(
            out.contains(&format!("{CODE}  let x = **not bold**;{RESET}")),
            "{out:?}"
        );
        assert!(out.ends_with("after\n"), "{out:?}");
    }

    #[test]
    fn a_line_is_shown_once_complete_however_it_was_streamed() {
        let text = "Hello **wor";
        let mut md = MarkdownStream::default();
        assert_eq!(md.push(text), "");
        let out = md.push("ld**!\nnext");
        assert_eq!(out, format!("Hello {BOLD}world{BOLD_OFF}!\n"));
        assert_eq!(md.finish(), "next");
    }

    #[test]
    fn escape_sequences_from_the_model_stay_visible() {
        let out = rendered("**a**\u{1b}[8m b\n");
        assert!(out.contains(r"\x1b[8m"), "{out:?}");
        assert!(!out.contains("\u{1b}[8m"), "{out:?}");
    }
}
