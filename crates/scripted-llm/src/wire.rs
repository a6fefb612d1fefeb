//! Small text helpers shared by the Anthropic and OpenAI builders.
//!
//! The builders write their JSON by hand rather than through `serde_json::Value`: the workspace's `serde_json`
//! sorts object keys, and the point of this crate is to put on the wire the same bytes, in the same key order, as
//! the real APIs.

/// `s` as a JSON string literal, quotes included.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("serialising a str cannot fail")
}

/// Cuts `text` into about `n` non-empty pieces of similar length, at char boundaries (the pieces end up inside JSON
/// strings, which must stay valid UTF-8). Real models stream tokens, so a client must join pieces, never assume one.
pub(crate) fn split_pieces(text: &str, n: usize) -> Vec<&str> {
    let chars = text.chars().count();
    if chars == 0 {
        return Vec::new();
    }
    let per_piece = chars.div_ceil(n.max(1));
    let mut pieces = Vec::new();
    let mut start = 0;
    for (count, (offset, _)) in text.char_indices().enumerate() {
        if count > 0 && count % per_piece == 0 {
            pieces.push(&text[start..offset]);
            start = offset;
        }
    }
    pieces.push(&text[start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_text_at_char_boundaries() {
        assert_eq!(split_pieces("", 3), Vec::<&str>::new());
        assert_eq!(split_pieces("ab", 3), vec!["a", "b"]);
        assert_eq!(split_pieces("Hello, world", 3), vec!["Hell", "o, w", "orld"]);
        let text = "héllo wörld ✓ done";
        let pieces = split_pieces(text, 3);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\n"), r#""a\"b\n""#);
    }
}
