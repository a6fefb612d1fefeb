//! Secrets the host adds to a tool's requests. A policy names a header and
//! a value template (`Bearer ${env:GITHUB_TOKEN}`) per host; the value is
//! resolved from the host's environment when the sandbox template is built
//! and lives only on the host side: it is added to allowed requests to that
//! host after the tool handed the request over, and every response (headers
//! and body) is scrubbed of it before the tool can read it.

use crate::policy::SecretRule;

/// What replaces a secret value in responses.
pub const REDACTED: &str = "[REDACTED]";

/// Shorter values are not scrubbed from responses: they would match ordinary text.
const MIN_REDACTED_LEN: usize = 6;

#[derive(Clone)]
pub struct Secret {
    /// Lowercase host, or `*.example.com`.
    host: String,
    pub(super) header: http::HeaderName,
    pub(super) value: http::HeaderValue,
    /// The full value and each substituted part: what must never reach the tool.
    needles: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the value.
        f.debug_struct("Secret")
            .field("host", &self.host)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl Secret {
    /// Resolves `${env:NAME}` references; `None` (with a warning) when a
    /// variable is missing or the result is not a valid header.
    pub fn resolve(tool: &str, rule: &SecretRule) -> Option<Self> {
        let mut value = String::new();
        let mut needles = Vec::new();
        let mut rest = rule.value_template.as_str();
        while let Some(start) = rest.find("${env:") {
            value.push_str(&rest[..start]);
            let end = start + rest[start..].find('}')?;
            let name = &rest[start + 6..end];
            let Ok(part) = std::env::var(name) else {
                tracing::warn!(tool, host = %rule.host, variable = name, "secret not added: the variable is not set");
                return None;
            };
            value.push_str(&part);
            needles.push(part.into_bytes());
            rest = &rest[end + 1..];
        }
        value.push_str(rest);
        needles.push(value.clone().into_bytes());
        needles.retain(|n| n.len() >= MIN_REDACTED_LEN);
        // Kept out of logs, transcripts and stores too, not only responses.
        for needle in &needles {
            crate::scrub::register(&String::from_utf8_lossy(needle));
        }
        let header = http::HeaderName::from_bytes(rule.header.as_bytes()).ok()?;
        let mut header_value = http::HeaderValue::from_str(&value).ok()?;
        header_value.set_sensitive(true);
        Some(Self {
            host: rule.host.to_ascii_lowercase(),
            header,
            value: header_value,
            needles,
        })
    }

    /// Whether this secret goes with requests to `host`.
    pub(super) fn applies_to(&self, host: &str) -> bool {
        match self.host.strip_prefix("*.") {
            Some(base) => {
                host.len() > base.len() + 1 && host.ends_with(base) && host[..host.len() - base.len()].ends_with('.')
            }
            None => self.host == host,
        }
    }
}

/// Scrubs every secret of a tool from what comes back.
#[derive(Clone, Default)]
pub(super) struct Redactor {
    needles: Vec<Vec<u8>>,
}

impl Redactor {
    pub fn new(secrets: &[Secret]) -> Self {
        let mut needles: Vec<Vec<u8>> = secrets.iter().flat_map(|s| s.needles.iter().cloned()).collect();
        // Longest first, so a full value is replaced before its parts.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Self { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// Bytes that must be held back at the end of a chunk: a secret may
    /// continue in the next one.
    pub fn overlap(&self) -> usize {
        self.needles.iter().map(Vec::len).max().unwrap_or(1) - 1
    }

    /// `bytes` with every secret replaced.
    pub fn scrub(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for needle in &self.needles {
            out = replace_all(&out, needle, REDACTED.as_bytes());
        }
        out
    }

    pub fn scrub_headers(&self, headers: &mut http::HeaderMap) {
        if self.is_empty() {
            return;
        }
        for value in headers.values_mut() {
            let scrubbed = self.scrub(value.as_bytes());
            if scrubbed != value.as_bytes() {
                // Should the scrubbed bytes not form a header value, the whole value goes.
                *value = http::HeaderValue::from_bytes(&scrubbed)
                    .unwrap_or_else(|_| http::HeaderValue::from_static(REDACTED));
            }
        }
    }
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// Scrubs a body streamed in chunks, holding back a tail that could be the
/// start of a secret split across two chunks.
pub(super) struct StreamScrubber {
    redactor: Redactor,
    pending: Vec<u8>,
}

impl StreamScrubber {
    pub fn new(redactor: Redactor) -> Self {
        Self {
            redactor,
            pending: Vec::new(),
        }
    }

    /// What can be released after `chunk`.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.redactor.is_empty() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let scrubbed = self.redactor.scrub(&self.pending);
        let keep = self.redactor.overlap().min(scrubbed.len());
        let (release, hold) = scrubbed.split_at(scrubbed.len() - keep);
        self.pending = hold.to_vec();
        release.to_vec()
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The held-back tail, at the end of the body (or before its trailers).
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        self.redactor.scrub(&rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(values: &[&str]) -> Redactor {
        Redactor {
            needles: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn a_secret_split_across_chunks_is_still_scrubbed() {
        let mut s = StreamScrubber::new(redactor(&["ghp_SECRET123"]));
        let mut out = Vec::new();
        for chunk in [&b"token=ghp_SE"[..], b"CRET1", b"23 and more"] {
            out.extend(s.push(chunk));
        }
        out.extend(s.finish());
        assert_eq!(String::from_utf8(out).expect("utf8"), "token=[REDACTED] and more");
    }

    #[test]
    fn wildcard_secrets_apply_to_subdomains_only() {
        let secret = Secret {
            host: "*.example.com".into(),
            header: http::header::AUTHORIZATION,
            value: http::HeaderValue::from_static("x"),
            needles: Vec::new(),
        };
        assert!(secret.applies_to("api.example.com"));
        assert!(!secret.applies_to("example.com"));
        assert!(!secret.applies_to("evilexample.com"));
    }
}
