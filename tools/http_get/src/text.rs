//! Turns a response body into text for the model: HTML through
//! `html2text` (a real HTML5 parser, so scripts, comments and broken markup
//! are handled as a browser would), other text decoded by its charset, and
//! binary content replaced by a short note.

/// Width given to the renderer. Wide enough that paragraphs stay on one
/// line: the model reads lines, not a terminal, and hard wraps only cost
/// tokens.
const RENDER_WIDTH: usize = 10_000;

/// The text of `body` given its `Content-Type`, HTML reduced unless `raw`.
pub fn body_text(body: &[u8], content_type: Option<&str>, raw: bool) -> String {
    let mime = content_type.map(mime_type).unwrap_or_default();
    let html = is_html(&mime) || (mime.is_empty() && looks_like_html(body));
    if !html && !mime.is_empty() && !is_textual(&mime) && std::str::from_utf8(body).is_err() {
        return format!("[{} bytes of binary content ({mime}), not shown]", body.len());
    }
    let decoded = decode(body, content_type.and_then(charset).as_deref());
    if html && !raw { html_to_text(&decoded) } else { decoded }
}

/// Readable text of an HTML document: no script, style or head; headings
/// (`# Title`), paragraphs and list items (`* item`) on their own lines;
/// link text kept in brackets (`[text]`, targets dropped); entities
/// decoded; runs of spaces collapsed.
pub fn html_to_text(html: &str) -> String {
    let rendered = html2text::config::plain_no_decorate()
        .link_footnotes(false)
        .no_table_borders()
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), RENDER_WIDTH)
        // The parser never fails on bad markup; this only guards the
        // renderer's own limits, and the markup is better than nothing.
        .unwrap_or_else(|_| html.to_string());
    tidy(&rendered)
}

/// Trims each line, collapses inner runs of spaces (which the renderer
/// keeps for layout) and blank-line runs to one blank line.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = true;
    for line in text.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
        } else {
            out.push_str(&line);
            out.push('\n');
            blank = false;
        }
    }
    out.trim_end().to_string()
}

/// `text/html; charset=utf-8` -> `text/html`.
fn mime_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn charset(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
    })
}

fn is_html(mime: &str) -> bool {
    mime == "text/html" || mime == "application/xhtml+xml"
}

fn is_textual(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || matches!(
            mime,
            "application/json" | "application/xml" | "application/javascript" | "application/x-www-form-urlencoded"
        )
}

/// For a server that sends HTML without a Content-Type.
fn looks_like_html(body: &[u8]) -> bool {
    let start: Vec<u8> = body
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(15)
        .copied()
        .collect();
    let start = String::from_utf8_lossy(&start).to_ascii_lowercase();
    start.starts_with("<!doctype html") || start.starts_with("<html")
}

/// Decodes UTF-8 (the default) or Latin-1; anything else is read as UTF-8
/// with invalid bytes replaced, which keeps ASCII intact.
fn decode(body: &[u8], charset: Option<&str>) -> String {
    match charset {
        // Every byte of ISO-8859-1 is the Unicode code point of the same value.
        Some("iso-8859-1" | "latin1" | "latin-1") => body.iter().map(|&b| b as char).collect(),
        _ => String::from_utf8_lossy(without_cut_char(body)).into_owned(),
    }
}

/// `body` without a UTF-8 sequence cut off at its end: a body cut at
/// `max_bytes` may stop mid-character, which would decode as U+FFFD.
fn without_cut_char(body: &[u8]) -> &[u8] {
    // The last character starts at most 3 bytes from the end.
    for i in (body.len().saturating_sub(3)..body.len()).rev() {
        let byte = body[i];
        if byte & 0xC0 != 0x80 {
            let len = match byte {
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
            return if body.len() - i < len { &body[..i] } else { body };
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = include_str!("../../../tests/fixtures/http/page.html");

    #[test]
    fn fixture_page_becomes_readable_text() {
        let text = body_text(PAGE.as_bytes(), Some("text/html; charset=utf-8"), false);
        assert!(!text.contains("font-family"), "style kept:\n{text}");
        assert!(
            !text.contains("analytics") && !text.contains("Injected"),
            "script kept:\n{text}"
        );
        assert!(!text.contains("Tide Tables"), "head kept:\n{text}");
        assert!(!text.contains("<p>") && !text.contains("<a "), "markup kept:\n{text}");
        let lines: Vec<&str> = text.lines().collect();
        // Markdown-like markers survive: `#` headings, `*` items, `[link text]`.
        assert!(
            lines.contains(&"# Harbour Notes"),
            "heading not on its own line:\n{text}"
        );
        assert!(lines.contains(&"## Safety"), "heading not on its own line:\n{text}");
        assert!(
            lines.contains(&"Tides & currents change twice a day. Check the [tide table] before you sail — it's free — and costs <nothing>."),
            "paragraph:\n{text}"
        );
        assert!(lines.contains(&"* Wear a life jacket."), "{text}");
        assert!(lines.contains(&"* Tell someone your route."), "{text}");
        assert!(lines.contains(&"Café opens at 7 am."), "{text}");
        assert!(!text.contains("https://example.org"), "link target kept:\n{text}");
    }

    #[test]
    fn raw_returns_the_markup() {
        let text = body_text(PAGE.as_bytes(), Some("text/html"), true);
        assert_eq!(text, PAGE);
    }

    #[test]
    fn html_is_recognised_without_a_content_type() {
        let text = body_text(b"  <!DOCTYPE html><p>a &amp; b</p>", None, false);
        assert_eq!(text, "a & b");
        assert_eq!(body_text(b"<p>x</p>", Some("text/plain"), false), "<p>x</p>");
    }

    #[test]
    fn other_types_and_charsets() {
        assert_eq!(
            body_text(br#"{"a": 1}"#, Some("application/json"), false),
            r#"{"a": 1}"#
        );
        assert_eq!(
            body_text(b"caf\xe9", Some("text/plain; charset=ISO-8859-1"), false),
            "café"
        );
        assert_eq!(body_text(b"caf\xe9!", Some("text/plain"), false), "caf\u{fffd}!");
        assert_eq!(
            body_text(&[0x89, b'P', b'N', b'G', 0xff], Some("image/png"), false),
            "[5 bytes of binary content (image/png), not shown]"
        );
    }

    #[test]
    fn a_character_cut_at_the_end_is_dropped() {
        let text = "naïve 😀";
        for cut in 1..=text.len() {
            let decoded = body_text(&text.as_bytes()[..cut], Some("text/plain; charset=utf-8"), false);
            assert!(
                !decoded.contains('\u{fffd}') && text.starts_with(&decoded),
                "{cut}: {decoded:?}"
            );
        }
    }

    #[test]
    fn tidy_collapses_spaces_and_blank_runs() {
        assert_eq!(tidy("  a   b  \n\n\n\nc\n  \n"), "a b\n\nc");
    }
}
