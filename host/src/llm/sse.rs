//! Server-Sent Events (`text/event-stream`) parsing for the streaming LLM APIs (Anthropic, OpenAI).
//!
//! [`SseParser`] turns raw body bytes, cut into chunks anywhere, into [`Event`]s following the WHATWG HTML
//! "event stream interpretation" rules: one leading UTF-8 BOM is stripped, lines end in CRLF, LF or a bare CR,
//! `:` lines are comments, and a blank line dispatches the event built from the `event`, `data`, `id` and
//! `retry` fields before it. [`events`] wraps it around a stream of byte chunks such as reqwest's
//! `bytes_stream()`. We frame the stream ourselves because the `eventsource-stream` crate we used before
//! panicked on a UTF-8 BOM, went quadratic on a 100 MB line, dropped the final event when the last line ended
//! in a bare CR, and stalled on invalid UTF-8. Here every byte is looked at a bounded number of times, lines
//! and events are capped, a CR ends its line the moment it arrives (only a following LF is resolved later),
//! and each complete line is decoded lossily, so a bad byte becomes U+FFFD instead of blocking the stream.
//! As the spec says, an event not terminated by a blank line when the stream ends is discarded.

use bytes::Bytes;
use futures::{Stream, StreamExt};

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event` field; `"message"` when the block gave none (or an empty one), per spec.
    pub event: String,
    /// The `data` lines of the block joined with `\n`.
    pub data: String,
    /// The stream's last event ID: an `id` field persists into later events until another one replaces it.
    pub id: String,
    /// The `retry` field (milliseconds) given in this event's block, if it was a valid decimal integer.
    pub retry: Option<u64>,
}

/// Why the parser gave up: a cap was exceeded, after which the stream cannot be parsed further.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    #[error("an event-stream line is longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("an event is larger than {limit} bytes")]
    EventTooLarge { limit: usize },
}

/// An error from the [`events`] adapter: either the byte stream failed or the parser hit a cap.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E> {
    #[error(transparent)]
    Transport(E),
    #[error(transparent)]
    Sse(#[from] SseError),
}

/// Incremental parser: feed byte chunks cut anywhere (mid-line, mid-CRLF, mid-UTF-8 char).
pub struct SseParser {
    max: usize,
    /// The unterminated start of the current line. Only bytes after the last line end of a chunk land here,
    /// and they are never scanned again, so parsing stays linear however the input is chunked.
    line: Vec<u8>,
    /// The previous chunk ended in CR. That CR already ended its line; an LF opening the next chunk is the
    /// rest of the same CRLF and must not count as a second (blank) line.
    after_cr: bool,
    /// The first line has been parsed (a BOM is only stripped from that one).
    past_start: bool,
    block: Block,
    /// A cap error hit after events of the same chunk had completed: those are returned first, and the error
    /// is returned by every later call, since the stream can't be resynchronised.
    failed: Option<SseError>,
}

/// The buffers of the event being built.
#[derive(Default)]
struct Block {
    event: String,
    data: String,
    id: String,
    retry: Option<u64>,
}

impl SseParser {
    /// `max_event_bytes` caps one line (without its line end) and one event's accumulated data.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max: max_event_bytes,
            line: Vec::new(),
            after_cr: false,
            past_start: false,
            block: Block::default(),
            failed: None,
        }
    }

    /// Feeds a chunk; returns the events completed by it (in order), or an error once a cap is exceeded.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        match self.feed_into(chunk, &mut out) {
            Ok(()) => Ok(out),
            Err(e) => {
                self.failed = Some(e.clone());
                if out.is_empty() { Err(e) } else { Ok(out) }
            }
        }
    }

    /// End of stream. A trailing CR has already ended its line when it arrived (so `data: x\r\r` was
    /// dispatched by `feed`); what may remain is an unterminated line and an event without its closing blank
    /// line, which are DISCARDED per spec ("If the file ends in the middle of an event, before the final empty
    /// line, the incomplete event is not dispatched"). Returns no events, or the error a cap raised earlier;
    /// the parser is then reset for a new stream.
    pub fn finish(&mut self) -> Result<Vec<Event>, SseError> {
        let failed = self.failed.take();
        *self = Self::new(self.max);
        failed.map_or(Ok(Vec::new()), Err)
    }

    fn feed_into(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        // An LF is skipped only when this chunk has a first byte, so an empty chunk can't lose the pending CR.
        if !chunk.is_empty() && std::mem::take(&mut self.after_cr) && chunk[0] == b'\n' {
            chunk = &chunk[1..];
        }
        let mut start = 0;
        while let Some(pos) = memchr::memchr2(b'\r', b'\n', &chunk[start..]) {
            let end = start + pos;
            self.end_line(&chunk[start..end], out)?;
            start = end + 1;
            if chunk[end] == b'\r' {
                match chunk.get(start) {
                    Some(b'\n') => start += 1,
                    Some(_) => {}
                    // Whether an LF follows is unknown until the next chunk, but the line has ended either way,
                    // so it is processed now and only the possible LF is left to swallow.
                    None => self.after_cr = true,
                }
            }
        }
        let tail = &chunk[start..];
        // Checked before buffering, so an endless line fails as soon as it passes the cap.
        self.check_line(tail.len())?;
        self.line.extend_from_slice(tail);
        Ok(())
    }

    fn check_line(&self, more: usize) -> Result<(), SseError> {
        let limit = self.max;
        (self.line.len() + more <= limit)
            .then_some(())
            .ok_or(SseError::LineTooLong { limit })
    }

    fn end_line(&mut self, rest: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        self.check_line(rest.len())?;
        // The common case, a line wholly inside this chunk, is parsed in place without copying.
        let line = if self.line.is_empty() {
            rest
        } else {
            self.line.extend_from_slice(rest);
            &self.line
        };
        // The BOM holds no CR or LF, so framing treats it as the start of the first line; stripping it from
        // that complete line is exactly "once, at the start of the stream", even when it was split across chunks.
        let mut line = line;
        if !std::mem::replace(&mut self.past_start, true) && line.starts_with(&BOM) {
            line = &line[BOM.len()..];
        }
        let result = self.block.line(line, self.max, out);
        self.line.clear();
        result
    }
}

impl Block {
    /// Interprets one complete line (without its line end).
    fn line(&mut self, line: &[u8], max: usize, out: &mut Vec<Event>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        // Splitting the raw bytes at ASCII ':' and ' ' and then decoding each part lossily gives the same text
        // as decoding the whole line first: UTF-8 never uses ASCII bytes inside a multi-byte sequence.
        let (name, value) = match memchr::memchr(b':', line) {
            Some(0) => return Ok(()), // a comment
            Some(i) => (&line[..i], line[i + 1..].strip_prefix(b" ").unwrap_or(&line[i + 1..])),
            None => (line, &[][..]),
        };
        let text = || String::from_utf8_lossy(value);
        match name {
            b"event" => self.event = text().into_owned(),
            b"data" => {
                self.data.push_str(&text());
                self.data.push('\n');
                // Counted after decoding, newlines included: that is what the caller ends up holding.
                if self.data.len() > max {
                    return Err(SseError::EventTooLarge { limit: max });
                }
            }
            b"id" if !value.contains(&0) => self.id = text().into_owned(),
            // Only digits, so parsing fails only on u64 overflow; such a value is ignored like any invalid one.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = text().parse().ok().or(self.retry);
            }
            _ => {} // unknown fields are ignored
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        // `retry` belongs to this block only; a block without data yields no event, so its retry is dropped
        // (we never reconnect, the caller just sees it on the event it came with).
        let retry = self.retry.take();
        if self.data.is_empty() {
            self.event.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the "\n" appended after the last data line
        let event = match std::mem::take(&mut self.event) {
            e if e.is_empty() => "message".to_owned(),
            e => e,
        };
        out.push(Event {
            event,
            data,
            id: self.id.clone(),
            retry,
        });
    }
}

/// Adapts a stream of byte chunks (e.g. reqwest's bytes_stream) into a stream of events. The stream ends after
/// the first error, whether from the transport or from a cap; an unterminated final event is discarded.
pub fn events<S, E>(chunks: S, max_event_bytes: usize) -> impl Stream<Item = Result<Event, StreamError<E>>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let parser = SseParser::new(max_event_bytes);
    let state = (Box::pin(chunks), parser, Vec::new().into_iter(), false);
    futures::stream::unfold(state, |(mut chunks, mut parser, mut ready, mut done)| async move {
        loop {
            if let Some(event) = ready.next() {
                return Some((Ok(event), (chunks, parser, ready, done)));
            }
            if done {
                return None;
            }
            let fed = match chunks.next().await {
                Some(Ok(bytes)) => parser.feed(&bytes).map_err(StreamError::Sse),
                Some(Err(e)) => Err(StreamError::Transport(e)),
                None => {
                    done = true;
                    parser.finish().map_err(StreamError::Sse)
                }
            };
            match fed {
                Ok(events) => ready = events.into_iter(),
                Err(e) => return Some((Err(e), (chunks, parser, ready, true))),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    const CAP: usize = 1 << 20;

    fn parse(chunks: &[&[u8]]) -> Vec<Event> {
        let mut parser = SseParser::new(CAP);
        let mut out: Vec<Event> = chunks.iter().flat_map(|c| parser.feed(c).expect("feed")).collect();
        out.extend(parser.finish().expect("finish"));
        out
    }

    fn one(body: &str) -> Vec<Event> {
        parse(&[body.as_bytes()])
    }

    fn ev(event: &str, data: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
            ..Event::default()
        }
    }

    fn msg(data: &str) -> Event {
        ev("message", data)
    }

    #[test]
    fn every_line_ending_style() {
        let want = vec![ev("a", "1\n2"), msg("3")];
        for body in [
            "event: a\ndata: 1\ndata: 2\n\ndata: 3\n\n",
            "event: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\n\r\n",
            "event: a\rdata: 1\rdata: 2\r\rdata: 3\r\r",
            "event: a\rdata: 1\r\ndata: 2\n\r\ndata: 3\r\n\r",
        ] {
            assert_eq!(one(body), want, "{body:?}");
        }
    }

    #[test]
    fn bom_stripped_once_at_start_only() {
        let want = vec![msg("x")];
        assert_eq!(parse(&[b"\xEF\xBB\xBFdata: x\n\n"]), want);
        assert_eq!(parse(&[b"\xEF", b"\xBB", b"\xBF", b"data: x\n\n"]), want);
        assert_eq!(parse(&[b"\xEF\xBB", b"\xBFdata: x\n\n"]), want);
        assert_eq!(parse(&[b"\xEF", b"", b"\xBB\xBFdata: x\n\n"]), want);
        // Elsewhere a BOM is content: in a value it is kept, before a field name it makes the field unknown.
        assert_eq!(one("data: \u{FEFF}x\n\n"), vec![msg("\u{FEFF}x")]);
        assert_eq!(one("\u{FEFF}\u{FEFF}data: x\n\ndata: y\n\n"), vec![msg("y")]);
        // A BOM prefix that turns out not to be one is kept (here it spoils the field name), not dropped.
        assert_eq!(parse(&[b"\xEF", b"data: x\n\ndata: y\n\n"]), vec![msg("y")]);
    }

    #[test]
    fn comments_fields_and_colons() {
        let body = ": comment\n:\ndata:no space\ndata:  two spaces\ndata\nunknown: z\n\n";
        assert_eq!(one(body), vec![msg("no space\n two spaces\n")]);
        // A lone `data` line is a data field with an empty value, which still dispatches.
        assert_eq!(one("data\n\n"), vec![msg("")]);
        assert_eq!(one("data:\n\ndata: \n\n"), vec![msg(""), msg("")]);
        assert_eq!(one("data: a:b: c\n\n"), vec![msg("a:b: c")]);
    }

    #[test]
    fn event_type_defaults_and_resets() {
        let body = "event: first\ndata: 1\n\ndata: 2\n\nevent\ndata: 3\n\nevent: lost\n\ndata: 4\n\n";
        assert_eq!(one(body), vec![ev("first", "1"), msg("2"), msg("3"), msg("4")]);
        // Blank lines with an empty data buffer dispatch nothing.
        assert_eq!(one("\n\n\r\n\revent: x\nid: 1\nretry: 5\n\n\n"), vec![]);
    }

    #[test]
    fn id_and_retry_rules() {
        let body = "id: 1\ndata: a\n\ndata: b\n\nid: 2\0x\ndata: c\n\nid\ndata: d\n\nid: \u{D55C}\ndata: e\n\n";
        let ids: Vec<String> = one(body).into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["1", "1", "1", "", "\u{D55C}"]);
        let body = "retry: 1500\ndata: a\n\ndata: b\n\nretry: 12a\ndata: c\n\nretry:\ndata: d\n\n\
                    retry: -1\nretry: 99999999999999999999999\ndata: e\n\nretry: 7\nretry: x\ndata: f\n\n";
        let retries: Vec<Option<u64>> = one(body).into_iter().map(|e| e.retry).collect();
        assert_eq!(retries, [Some(1500), None, None, None, None, Some(7)]);
    }

    #[test]
    fn cr_at_chunk_end_then_lf_is_one_line_end() {
        // Were the LF a second line end, "a" would be dispatched alone.
        let want = vec![msg("a\nb")];
        assert_eq!(parse(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]), want);
        assert_eq!(parse(&[b"data: a\r", b"", b"\ndata: b\n\n"]), want);
    }

    #[test]
    fn bare_cr_at_eof_dispatches_and_unterminated_event_is_discarded() {
        let mut parser = SseParser::new(CAP);
        assert_eq!(parser.feed(b"data: x\r\r").expect("feed"), vec![msg("x")]);
        assert_eq!(parser.finish().expect("finish"), vec![]);
        assert_eq!(parse(&[b"data: x\r", b"\r"]), vec![msg("x")]);
        assert_eq!(one("data: x\n\ndata: y\n"), vec![msg("x")]);
        assert_eq!(one("data: x\n\ndata: y"), vec![msg("x")]);
    }

    #[test]
    fn realistic_stream_split_anywhere() {
        let body = "\u{FEFF}event: message_start\r\n\
            data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"content\":[]}}\r\n\r\n\
            event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n\
            : keep-alive\r\n\
            event: content_block_delta\r\n\
            data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"안녕하세요\"}}\r\n\r\n\
            event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";
        let bytes = body.as_bytes();
        let whole = parse(&[bytes]);
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[0].event, "message_start");
        assert!(whole[2].data.contains("\"text\":\"안녕하세요\""), "{:?}", whole[2]);
        assert_eq!(whole[3], ev("message_stop", "{\"type\":\"message_stop\"}"));
        for split in 0..=bytes.len() {
            assert_eq!(parse(&[&bytes[..split], &bytes[split..]]), whole, "split at {split}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse(&singles), whole);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_parsing_goes_on() {
        let events = parse(&[b"data: a\xFFb\xE2\x82\n\n", b"event: \xC3\n", b"data: ok\n\n"]);
        assert_eq!(events, vec![msg("a\u{FFFD}b\u{FFFD}"), ev("\u{FFFD}", "ok")]);
    }

    #[test]
    fn line_over_cap() {
        let too_long = Err(SseError::LineTooLong { limit: 8 });
        let mut parser = SseParser::new(8);
        assert_eq!(parser.feed(b"data: 12").expect("exactly the cap"), vec![]);
        assert_eq!(parser.feed(b"3"), too_long);
        assert_eq!(parser.feed(b"\n\n"), too_long, "the error sticks");
        assert_eq!(SseParser::new(8).feed(b"data: 123\n"), too_long);
        // Events completed before the error in the same chunk are returned first; the error comes next.
        let mut parser = SseParser::new(16);
        let events = parser
            .feed(b"data: a\n\ndata: 0123456789abcdef\n")
            .expect("deferred error");
        assert_eq!(events, vec![msg("a")]);
        assert_eq!(parser.feed(b"\n"), Err(SseError::LineTooLong { limit: 16 }));
    }

    #[test]
    fn event_over_cap() {
        let mut parser = SseParser::new(64);
        let first_err = (0..20).map(|_| parser.feed(b"data: 0123456789\n")).find(Result::is_err);
        assert_eq!(first_err, Some(Err(SseError::EventTooLarge { limit: 64 })));
        assert_eq!(parser.finish(), Err(SseError::EventTooLarge { limit: 64 }));
    }

    #[test]
    fn huge_line_fails_early() {
        let chunk = vec![b'a'; 64 * 1024];
        let mut parser = SseParser::new(CAP);
        // 1600 chunks are 100 MB; count how many bytes went in before the first error.
        let fed = (1..=1600)
            .map(|n| n * chunk.len())
            .find(|_| parser.feed(&chunk).is_err());
        let fed = fed.expect("LineTooLong within 100 MB");
        assert!(fed <= CAP + chunk.len(), "fed {fed} bytes");
        assert_eq!(parser.feed(b"\n"), Err(SseError::LineTooLong { limit: CAP }));
    }

    /// Runs the adapter, rendering errors as "transport: ..." or "sse: ..." to check which kind surfaced.
    async fn run(chunks: Vec<Result<Bytes, io::Error>>, cap: usize) -> Vec<Result<Event, String>> {
        let results: Vec<_> = events(futures::stream::iter(chunks), cap).collect().await;
        let render = |e| match e {
            StreamError::Transport(e) => format!("transport: {e}"),
            StreamError::Sse(e) => format!("sse: {e}"),
        };
        results.into_iter().map(|r| r.map_err(render)).collect()
    }

    fn ok(s: &'static str) -> Result<Bytes, io::Error> {
        Ok(Bytes::from_static(s.as_bytes()))
    }

    #[tokio::test]
    async fn stream_adapter() {
        let got = run(vec![ok("data: a\r"), ok("\ndata: b\r\r"), ok("data: lost")], CAP).await;
        assert_eq!(got, [Ok(msg("a\nb"))]);
        let reset = Err(io::Error::other("reset"));
        let got = run(vec![ok("data: 1\n\n"), reset, ok("data: 2\n\n")], CAP).await;
        assert_eq!(got, [Ok(msg("1")), Err("transport: reset".into())]);
        let got = run(vec![ok("data: 1\n\ndata: 0123456789\n")], 12).await;
        assert_eq!(
            got,
            [
                Ok(msg("1")),
                Err("sse: an event-stream line is longer than 12 bytes".into())
            ]
        );
        let got = run(vec![ok("data: 1234\ndata: 1234\ndata: 1234\n")], 12).await;
        assert_eq!(got, [Err("sse: an event is larger than 12 bytes".into())]);
    }
}
