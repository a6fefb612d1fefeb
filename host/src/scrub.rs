//! Keeps configured secrets out of everything the host persists or prints.
//!
//! A provider that echoes the API key in an error body, a model server that
//! streams it back, or a tool error quoting a policy secret must not put it
//! into `memory.db`, a transcript, the audit log, usage records or stderr.
//! Secrets are registered once, where the host learns them (the provider
//! key when a provider is built, policy secrets when they are resolved, the
//! host's own key variables at start), and every sink calls [`scrub`]:
//! `JsonlFile::append` (audit, usage, transcripts), the memory and failure
//! stores, the tracing writer, error messages printed by the CLI, and the
//! providers' reply assembly (model text and tool inputs).
//!
//! Besides the plain value, the base64 forms (standard and URL-safe, at all
//! three byte alignments, so a key inside `Basic base64(user:key)` is found)
//! and the URL-encoded form are scrubbed. The set is process-wide because
//! secrets are: one process has one set of keys, and every sink must see
//! all of them.

use base64::Engine as _;
use std::borrow::Cow;
use std::sync::RwLock;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Shorter values are not registered: they would match ordinary text.
const MIN_SECRET_LEN: usize = 8;
/// Encoded fragments shorter than this are not scrubbed, for the same reason.
const MIN_NEEDLE_LEN: usize = 8;

/// Every form of every registered secret, longest first.
static NEEDLES: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds `secret` (and its encoded forms) to what is scrubbed. Values shorter
/// than 8 bytes are ignored.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut needles = NEEDLES.write().unwrap_or_else(|e| e.into_inner());
    if needles.iter().any(|n| n == secret) {
        return;
    }
    for form in forms(secret) {
        if form.len() >= MIN_NEEDLE_LEN && !needles.contains(&form) {
            needles.push(form);
        }
    }
    // Longest first, so a full form is replaced before a shorter one inside it.
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
}

/// Registers the values of the host's own secret variables that are set.
pub fn register_host_env() {
    for key in crate::policy::HOST_SECRET_ENV_KEYS {
        if let Ok(value) = std::env::var(key) {
            register(&value);
        }
    }
}

/// `text` with every registered secret replaced by `[REDACTED]`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let needles = NEEDLES.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for needle in needles.iter() {
        if out.contains(needle.as_str()) {
            out = Cow::Owned(out.replace(needle.as_str(), REDACTED));
        }
    }
    out
}

/// The longest registered form: how much streamed text must be held back
/// before it can be shown (a secret may continue in the next piece).
pub fn longest() -> usize {
    NEEDLES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .first()
        .map_or(0, String::len)
}

/// What URL encoding leaves alone (RFC 3986 unreserved characters).
const URL_ENCODED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The plain value, its URL encodings (upper- and lowercase hex) and its base64 cores.
fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    let encoded = percent_encoding::utf8_percent_encode(secret, URL_ENCODED).to_string();
    if encoded != secret {
        forms.push(encoded.to_ascii_lowercase());
        forms.push(encoded);
    }
    // The whole encoding (with its padding) first, then the cores that
    // also match inside a longer encoded value.
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        forms.push(engine.encode(secret));
    }
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        forms.extend(base64_cores(engine, secret.as_bytes()));
    }
    forms
}

/// The base64 characters that depend only on `secret`'s bytes, for each of
/// the three positions it can start at inside a longer encoded value: with
/// `o` bytes before it, the first `ceil(8o/6)` characters mix in those
/// bytes and the characters past bit `8(o+len)` mix in what follows.
fn base64_cores(engine: &base64::engine::GeneralPurpose, secret: &[u8]) -> Vec<String> {
    (0..3)
        .map(|o| {
            let mut padded = vec![0u8; o];
            padded.extend_from_slice(secret);
            let text = engine.encode(&padded);
            let start = (8 * o).div_ceil(6);
            let end = (8 * (o + secret.len()) / 6).min(text.len());
            text[start..end].to_string()
        })
        .collect()
}

/// Standard error with secrets scrubbed: the tracing writer. The formatter
/// hands over one whole event per write, so a secret is never split.
pub struct ScrubbedStderr;

impl std::io::Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Streamed text (model deltas) scrubbed before it is shown: holds back a
/// tail as long as the longest secret form, since a secret may be split
/// across pieces.
#[derive(Default)]
pub struct StreamScrubber {
    pending: String,
}

impl StreamScrubber {
    /// What can be shown after `piece`.
    pub fn push(&mut self, piece: &str) -> String {
        let hold = longest();
        if hold == 0 {
            return piece.to_string();
        }
        self.pending.push_str(piece);
        let scrubbed = scrub(&self.pending).into_owned();
        let mut cut = scrubbed.len().saturating_sub(hold.saturating_sub(1));
        while !scrubbed.is_char_boundary(cut) {
            cut -= 1;
        }
        self.pending = scrubbed[cut..].to_string();
        scrubbed[..cut].to_string()
    }

    /// The held-back tail, at the end of the stream.
    pub fn finish(&mut self) -> String {
        scrub(&std::mem::take(&mut self.pending)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-ant-canary-0123456789abcdef";

    #[test]
    fn every_form_of_a_registered_secret_is_scrubbed_issue_15() {
        register(KEY);
        let b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{KEY}"));
        let url = base64::engine::general_purpose::URL_SAFE.encode(format!("xy{KEY}"));
        let odd = "canary/key+with=signs42";
        register(odd);
        let pct = "key=canary%2Fkey%2Bwith%3Dsigns42&b=canary%2fkey%2bwith%3dsigns42".to_string();
        for text in [
            format!("invalid x-api-key: {KEY}"),
            format!("echo {b64}"),
            format!("Authorization: Basic {basic}"),
            format!("u={url}"),
            pct,
        ] {
            let out = scrub(&text);
            assert!(out.contains(REDACTED), "{text} -> {out}");
            assert!(!out.contains(KEY) && !out.contains("canary%2"), "{out}");
        }
        assert_eq!(scrub("nothing secret here"), "nothing secret here");
    }

    #[test]
    fn short_values_are_not_registered() {
        register("abc");
        assert_eq!(scrub("abc abc"), "abc abc");
    }

    #[test]
    fn a_secret_split_across_streamed_pieces_never_shows() {
        register(KEY);
        let text = format!("before {KEY} after");
        for cut in 0..text.len() {
            if !text.is_char_boundary(cut) {
                continue;
            }
            let mut s = StreamScrubber::default();
            let mut shown = s.push(&text[..cut]);
            shown += &s.push(&text[cut..]);
            shown += &s.finish();
            assert_eq!(shown, format!("before {REDACTED} after"), "cut at {cut}");
        }
    }
}
