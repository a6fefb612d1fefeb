//! Bounded capture of a guest's stdout or stderr.
//!
//! wasmtime-wasi's `MemoryOutputPipe` reports "closed" once full, which makes
//! Rust's `println!` panic inside the guest. A tool that prints too much
//! should lose the excess output, not its result: this stream accepts every
//! write, keeps the first `capacity` bytes and counts the rest.

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// A clonable handle to one capture buffer; clone it before handing it to
/// the WASI context and read it after the call.
#[derive(Clone, Debug)]
pub struct Capture {
    inner: Arc<Mutex<Buffer>>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    dropped: u64,
}

/// What a capture holds after a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Captured {
    /// The first bytes written, as (lossy) UTF-8.
    pub text: String,
    /// Bytes written past the capacity and dropped.
    pub dropped_bytes: u64,
}

impl Capture {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::default(),
            capacity,
        }
    }

    /// The captured text so far.
    pub fn snapshot(&self) -> Captured {
        let buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Captured {
            text: String::from_utf8_lossy(&buf.kept).into_owned(),
            dropped_bytes: buf.dropped,
        }
    }

    fn append(&self, bytes: &[u8]) {
        let mut buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity.saturating_sub(buf.kept.len());
        let keep = room.min(bytes.len());
        buf.kept.extend_from_slice(&bytes[..keep]);
        buf.dropped += (bytes.len() - keep) as u64;
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(AsyncCapture(self.clone()))
    }
}

/// Largest write the guest may issue at once; it is always accepted.
const WRITE_BUDGET: usize = 64 * 1024;

#[async_trait::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_BUDGET)
    }
}

#[async_trait::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

/// The same buffer as an `AsyncWrite`, for WASI p3 style consumers.
struct AsyncCapture(Capture);

impl tokio::io::AsyncWrite for AsyncCapture {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let capture = Capture::new(4);
        capture.append(b"abc");
        capture.append(b"defg");
        assert_eq!(
            capture.snapshot(),
            Captured {
                text: "abcd".into(),
                dropped_bytes: 3
            }
        );
    }
}
