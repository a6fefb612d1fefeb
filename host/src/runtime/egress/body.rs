//! Request and response bodies as they cross the sandbox edge. The request
//! body is counted and cut at `http_request_kb`; the response body is
//! counted and cut at `http_response_kb`, stopped at the request's deadline,
//! scrubbed of secret values, and finishes the request's audit record when
//! it ends or is dropped.

use super::record::{HttpActivity, HttpRecord};
use super::secrets::{Redactor, StreamScrubber};
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use wasmtime_wasi_http::{Error, WasiBody};

/// The tool's request body, counted as it streams out.
pub(super) struct LimitedRequestBody {
    inner: WasiBody,
    limit: u64,
    sent: Arc<AtomicU64>,
}

impl LimitedRequestBody {
    pub fn wrap(inner: WasiBody, limit: u64, sent: Arc<AtomicU64>) -> WasiBody {
        Self { inner, limit, sent }.boxed_unsync()
    }
}

impl Body for LimitedRequestBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let total = this.sent.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
                    if total > this.limit {
                        return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(total)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The response body handed to the tool.
pub(super) struct ResponseBody {
    inner: hyper::body::Incoming,
    limit: u64,
    received: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    scrubber: StreamScrubber,
    /// Taken when the record is finished (end, error or drop).
    record: Option<HttpRecord>,
    started: Instant,
    activity: Arc<HttpActivity>,
    ended: bool,
    /// Trailers that arrived while a scrubbed tail was still held back:
    /// the tail goes out first, then these.
    trailers: Option<http::HeaderMap>,
}

impl ResponseBody {
    pub fn new(
        inner: hyper::body::Incoming,
        limit: u64,
        deadline: tokio::time::Instant,
        redactor: Redactor,
        record: HttpRecord,
        started: Instant,
        activity: Arc<HttpActivity>,
    ) -> Self {
        Self {
            inner,
            limit,
            received: 0,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            scrubber: StreamScrubber::new(redactor),
            record: Some(record),
            started,
            activity,
            ended: false,
            trailers: None,
        }
    }

    pub fn boxed(self) -> WasiBody {
        self.boxed_unsync()
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some(mut record) = self.record.take() {
            record.bytes_in = self.received;
            record.duration_ms = self.started.elapsed().as_millis() as u64;
            record.error = error;
            self.activity.push(record);
        }
    }

    fn fail(&mut self, reason: String, error: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.ended = true;
        self.finish(Some(reason));
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(trailers) = this.trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.received += data.len() as u64;
                        if this.received > this.limit {
                            let reason =
                                format!("response body over the {} byte limit (`http_response_kb`)", this.limit);
                            return this.fail(reason, Error::HttpResponseBodySize(Some(this.received)));
                        }
                        let released = this.scrubber.push(&data);
                        if !released.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(released)))));
                        }
                    }
                    // Trailers are headers too: scrubbed like them, after
                    // the body's held-back tail (which would be lost otherwise).
                    Err(frame) => {
                        let Ok(mut trailers) = frame.into_trailers() else {
                            continue;
                        };
                        this.scrubber.redactor().scrub_headers(&mut trailers);
                        let rest = this.scrubber.finish();
                        if rest.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                        this.trailers = Some(trailers);
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    let reason = format!("the response broke off: {e}");
                    return this.fail(reason, Error::from(e));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    this.finish(None);
                    let rest = this.scrubber.finish();
                    return Poll::Ready((!rest.is_empty()).then(|| Ok(Frame::data(Bytes::from(rest)))));
                }
                Poll::Pending => {
                    if this.deadline.as_mut().poll(cx).is_ready() {
                        let reason = "the response did not finish within `http_timeout_ms`".to_string();
                        return this.fail(reason, Error::ConnectionReadTimeout);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Drop for ResponseBody {
    /// A body the tool stopped reading (a redirect's, say) still gets its
    /// record, with the bytes that did arrive.
    fn drop(&mut self) {
        self.finish(None);
    }
}
