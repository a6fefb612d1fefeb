//! The one sanitizer for text shown on a terminal that came from a model,
//! a tool, a file or a server (issues 14 and 15).
//!
//! Such text must never drive the terminal: an `ESC[8m` left the approval
//! prompt invisible, an OSC sequence retitled the window, U+202E reversed
//! what followed it. So every C0 control except `\n` and `\t`, DEL, every C1
//! control (which is where CSI, OSC and DCS start when not spelled with
//! ESC), the bidi embedding/override/isolate controls and the invisible
//! format characters are replaced by a visible escape (`\x1b`, `\u{202e}`).
//! With the introducing byte made visible, the rest of an escape sequence
//! is plain printable text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` safe to print on a terminal: every character that could be
/// interpreted (or hide) shown as a visible escape instead.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        // Bidi embeddings, overrides and isolates; marks.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}' => true,
        // Invisible: zero-width space/joiners, word joiner and invisible
        // operators, soft hyphen, BOM, interlinear annotation, tag characters.
        '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{00ad}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' => true,
        '\u{e0000}'..='\u{e007f}' => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn escape_sequences_bidi_and_invisible_characters_become_visible() {
        assert_eq!(sanitize("done\u{1b}[8m"), "done\\x1b[8m");
        assert_eq!(sanitize("\u{1b}]0;owned\u{7}"), "\\x1b]0;owned\\x07");
        assert_eq!(sanitize("\u{9b}31m"), "\\x9b31m");
        assert_eq!(sanitize("read_fi\u{202e}le"), "read_fi\\u{202e}le");
        assert_eq!(sanitize("a\u{200b}b\rc"), "a\\u{200b}b\\x0dc");
        assert_eq!(sanitize("\u{feff}bom"), "\\u{feff}bom");
    }

    #[test]
    fn ordinary_text_korean_included_is_unchanged_and_borrowed() {
        let text = "안녕하세요, 세계!\n\tline two — ok";
        assert!(matches!(sanitize(text), std::borrow::Cow::Borrowed(_)));
        assert_eq!(sanitize(text), text);
    }
}
