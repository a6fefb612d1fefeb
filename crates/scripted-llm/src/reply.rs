//! One scripted HTTP response and how it misbehaves on the wire.
//!
//! A [`Reply`] is plain data: status, headers, body bytes, plus the knobs that make a response look like a real,
//! imperfect network: how the body is cut into HTTP chunks, delays, truncation, a connection that never ends, or
//! no response at all. The server (`server.rs`) turns it into bytes; this module only describes it.

use std::time::Duration;

use crate::wire::json_string;

/// One scripted HTTP response.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Full body bytes (for SSE: the concatenated event text).
    pub body: Vec<u8>,
    /// How the body is cut into HTTP chunks on the wire.
    pub chunking: Chunking,
    /// Wait before sending the response head.
    pub delay_before: Duration,
    /// Wait between body chunks.
    pub chunk_delay: Duration,
    /// Send only the first N bytes, then abort the connection without the terminating chunk: the client must see an
    /// incomplete body (an error), not a clean end.
    pub truncate_at: Option<usize>,
    /// After the body (or its truncated part), keep the connection open without ending it: for kill/cancel tests.
    pub hang: bool,
    /// Read the request, then drop the connection without any response: a connection error for the client.
    pub close_without_response: bool,
}

/// How a body is cut into HTTP chunks. The cuts are byte offsets, so they may fall inside a line or inside a
/// multi-byte UTF-8 character: real servers and proxies do that too, and a correct client buffers bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// The whole body in one write.
    Whole,
    /// Chunks of this many bytes (the last one may be shorter). 0 means [`Chunking::Whole`].
    EveryBytes(usize),
    /// Split at these byte offsets (unsorted, duplicate or out-of-range offsets are ignored).
    At(Vec<usize>),
}

impl Chunking {
    /// Cuts `body` into the chunks this chunking describes; never yields an empty chunk, since an empty chunk
    /// would read as the end of a chunked body.
    pub fn split(&self, body: &[u8]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = match self {
            Chunking::Whole | Chunking::EveryBytes(0) => Vec::new(),
            Chunking::EveryBytes(n) => (*n..body.len()).step_by(*n).collect(),
            Chunking::At(offsets) => offsets.clone(),
        };
        cuts.retain(|&cut| cut > 0 && cut < body.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut chunks = Vec::with_capacity(cuts.len() + 1);
        let mut start = 0;
        for cut in cuts.into_iter().chain(std::iter::once(body.len())) {
            if cut > start {
                chunks.push(body[start..cut].to_vec());
                start = cut;
            }
        }
        chunks
    }
}

impl Reply {
    /// A response with this status and body, no headers, sent whole and at once.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            chunking: Chunking::Whole,
            delay_before: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            truncate_at: None,
            hang: false,
            close_without_response: false,
        }
    }

    /// A JSON response (`content-type: application/json`). `serde_json` sorts object keys; use
    /// [`Reply::json_text`] when the key order on the wire matters.
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::json_text(status, body.to_string())
    }

    /// A JSON response whose body text is given verbatim.
    pub fn json_text(status: u16, body: String) -> Reply {
        Reply::new(status, body).with_header("content-type", "application/json")
    }

    /// A 200 `text/event-stream` response cut every 7 bytes, so chunk boundaries fall mid-line, mid-event and
    /// sometimes mid-UTF-8 character, as they can behind real proxies.
    pub fn sse(body: String) -> Reply {
        Reply::new(200, body)
            .with_header("content-type", "text/event-stream")
            .with_header("cache-control", "no-cache")
            .chunked(Chunking::EveryBytes(7))
    }

    /// Accepts the request, then drops the connection without any response.
    pub fn connection_drop() -> Reply {
        Reply {
            close_without_response: true,
            ..Reply::new(200, Vec::new())
        }
    }

    /// The 418 the server sends when the script has no reply left. 418 because no client retries it, so a test
    /// that makes more requests than it scripted fails fast with this message instead of looping.
    pub fn script_exhausted(method: &str, path: &str) -> Reply {
        let message = format!("the scripted server has no reply left for {method} {path}");
        let body = format!(
            r#"{{"type":"error","error":{{"type":"script_exhausted","message":{}}}}}"#,
            json_string(&message)
        );
        Reply::json_text(418, body)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn chunked(mut self, chunking: Chunking) -> Reply {
        self.chunking = chunking;
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay_before = delay;
        self
    }

    pub fn chunk_delay(mut self, delay: Duration) -> Reply {
        self.chunk_delay = delay;
        self
    }

    pub fn truncated_at(mut self, bytes: usize) -> Reply {
        self.truncate_at = Some(bytes);
        self
    }

    pub fn hanging(mut self) -> Reply {
        self.hang = true;
        self
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether this reply streams: SSE, cut into several chunks, or misbehaving mid-body. Streaming replies use
    /// chunked transfer encoding like the real APIs; the others are sent with a `content-length`.
    pub(crate) fn is_streaming(&self) -> bool {
        let sse = self
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"));
        sse || self.chunking != Chunking::Whole
            || !self.chunk_delay.is_zero()
            || self.truncate_at.is_some()
            || self.hang
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_cuts_at_byte_offsets_without_empty_chunks() {
        let body = b"abcdefghij";
        assert_eq!(Chunking::Whole.split(body), vec![body.to_vec()]);
        assert_eq!(Chunking::EveryBytes(0).split(body), vec![body.to_vec()]);
        let chunks = Chunking::EveryBytes(4).split(body);
        assert_eq!(chunks, vec![b"abcd".to_vec(), b"efgh".to_vec(), b"ij".to_vec()]);
        let chunks = Chunking::At(vec![7, 0, 3, 3, 99]).split(body);
        assert_eq!(chunks, vec![b"abc".to_vec(), b"defg".to_vec(), b"hij".to_vec()]);
        assert!(Chunking::EveryBytes(3).split(b"").is_empty());
    }

    #[test]
    fn sse_replies_stream_and_json_replies_do_not() {
        assert!(Reply::sse(String::from("data: x\n\n")).is_streaming());
        assert!(!Reply::json(200, serde_json::json!({})).is_streaming());
        assert!(Reply::json(200, serde_json::json!({})).truncated_at(1).is_streaming());
    }
}
