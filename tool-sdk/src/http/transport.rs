//! One request/response exchange over `wasi:http/outgoing-handler`, with
//! blocking waits on the pollables. Redirects are handled a level up.
//!
//! A timeout is enforced here, in the tool, by waiting on the response (or
//! the body stream) and a clock at once: a host may ignore the timeouts in
//! `request-options`, and the caller should not have to care whether it does.
//!
//! Resource order matters here: `wasi:http` child resources (a body's
//! stream, a response's header fields) must be dropped before their parent,
//! or the host traps the component, so every child is dropped explicitly.

use std::time::Duration;

use url::Url;
use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    self as wt, Fields, HeaderError, IncomingBody, IncomingResponse, OutgoingBody, OutgoingRequest, RequestOptions,
    Scheme,
};
use wasi::io::poll::{self, Pollable};
use wasi::io::streams::StreamError;

use super::error::{authority, from_error_code, from_stream_text};
use super::{HttpError, Method};

/// Most bytes passed to one `blocking-write-and-flush` (the WASI limit).
const WRITE_CHUNK: usize = 4096;
/// Most bytes asked of one `read`.
const READ_CHUNK: u64 = 64 * 1024;

/// When one exchange (response head and body) must be over.
pub(crate) struct Deadline {
    /// Monotonic clock instant, in nanoseconds; `None` waits as long as the host lets it.
    at: Option<u64>,
    timeout: Duration,
}

impl Deadline {
    /// A deadline `timeout` from now, or none.
    pub fn after(timeout: Option<Duration>) -> Self {
        match timeout {
            Some(timeout) => Self {
                at: Some(monotonic_clock::now().saturating_add(nanos(timeout))),
                timeout,
            },
            None => Self {
                at: None,
                timeout: Duration::ZERO,
            },
        }
    }

    /// Waits until `ready` is ready (true) or the deadline passes (false).
    fn wait(&self, ready: &Pollable) -> bool {
        let Some(at) = self.at else {
            ready.block();
            return true;
        };
        if ready.ready() {
            return true;
        }
        let timer = monotonic_clock::subscribe_instant(at);
        poll::poll(&[ready, &timer]).contains(&0)
    }
}

/// A response whose body has not been read yet.
pub(crate) struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    response: IncomingResponse,
}

/// Sends one request and waits for the response head.
pub(crate) fn send_once(
    method: Method,
    url: &Url,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    deadline: &Deadline,
) -> Result<Head, HttpError> {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| header_error(name, e))?;
    }
    if let Some(body) = body {
        // A known length avoids chunked uploads, which some servers refuse.
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
            fields
                .append("content-length", body.len().to_string().as_bytes())
                .map_err(|e| header_error("content-length", e))?;
        }
    }
    let request = OutgoingRequest::new(fields);
    let invalid = |what: &str| HttpError::InvalidUrl(format!("the host rejected the {what} of {url}"));
    request
        .set_method(&wasi_method(method))
        .map_err(|()| invalid("method"))?;
    let scheme = if url.scheme() == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request.set_scheme(Some(&scheme)).map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(&authority(url)))
        .map_err(|()| invalid("host"))?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    request.set_path_with_query(Some(&path)).map_err(|()| invalid("path"))?;

    // Without a call to `body` the host sends an empty body, which is what
    // GET and HEAD want; only requests that carry one open it.
    let outgoing_body = match body {
        Some(_) => Some(
            request
                .body()
                .map_err(|()| HttpError::Other(format!("cannot open the request body for {url}")))?,
        ),
        None => None,
    };
    let options = deadline.at.map(|_| request_options(deadline.timeout));
    let future = outgoing_handler::handle(request, options).map_err(|code| from_error_code(&code, url))?;
    if let (Some(outgoing_body), Some(bytes)) = (outgoing_body, body) {
        write_body(outgoing_body, bytes, url)?;
    }

    let response = loop {
        match future.get() {
            Some(Ok(Ok(response))) => break response,
            Some(Ok(Err(code))) => return Err(from_error_code(&code, url)),
            Some(Err(())) => return Err(HttpError::Other(format!("the response to {url} was already taken"))),
            None => {
                if !deadline.wait(&future.subscribe()) {
                    return Err(HttpError::Timeout(format!(
                        "no response from {} within {} ms",
                        authority(url),
                        deadline.timeout.as_millis()
                    )));
                }
            }
        }
    };
    let status = response.status();
    let header_fields = response.headers();
    let headers = header_fields
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    drop(header_fields);
    Ok(Head {
        status,
        headers,
        response,
    })
}

/// Reads the body of `head` up to `max` bytes; the flag is true when more
/// followed and was left unread.
pub(crate) fn read_body(head: Head, max: usize, url: &Url, deadline: &Deadline) -> Result<(Vec<u8>, bool), HttpError> {
    let Head { response, .. } = head;
    let body: IncomingBody = response
        .consume()
        .map_err(|()| HttpError::Other(format!("the body of the response from {url} was already taken")))?;
    let stream = body
        .stream()
        .map_err(|()| HttpError::Other(format!("cannot open the body of the response from {url}")))?;
    let mut bytes = Vec::new();
    let mut truncated = false;
    loop {
        // Ask for one byte past the limit, so a body of exactly `max` bytes
        // is not reported as cut.
        let want = max.saturating_add(1).saturating_sub(bytes.len()) as u64;
        match stream.read(want.min(READ_CHUNK)) {
            // Nothing buffered yet: wait for more (the pollable, a child of
            // the stream, is dropped at the end of this statement).
            Ok(chunk) if chunk.is_empty() => {
                if !deadline.wait(&stream.subscribe()) {
                    return Err(HttpError::Timeout(format!(
                        "the body of the response from {url} did not arrive within {} ms",
                        deadline.timeout.as_millis()
                    )));
                }
            }
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                let error = match wt::http_error_code(&e) {
                    Some(code) => from_error_code(&code, url),
                    None => {
                        let text = io_error_text(&e);
                        from_stream_text(format!("reading the response from {url} failed: {text}"), &text)
                    }
                };
                return Err(error);
            }
        }
        if bytes.len() > max {
            bytes.truncate(max);
            truncated = true;
            break;
        }
    }
    drop(stream);
    drop(body);
    drop(response);
    Ok((bytes, truncated))
}

/// Writes the whole request body and marks it complete.
fn write_body(outgoing_body: OutgoingBody, bytes: &[u8], url: &Url) -> Result<(), HttpError> {
    let stream = outgoing_body
        .write()
        .map_err(|()| HttpError::Other(format!("cannot write the request body for {url}")))?;
    for chunk in bytes.chunks(WRITE_CHUNK) {
        if let Err(e) = stream.blocking_write_and_flush(chunk) {
            let why = match e {
                StreamError::Closed => "the connection closed".to_string(),
                StreamError::LastOperationFailed(e) => match wt::http_error_code(&e) {
                    Some(code) => return Err(from_error_code(&code, url)),
                    None => io_error_text(&e),
                },
            };
            return Err(from_stream_text(
                format!("sending the request body to {url} failed: {why}"),
                &why,
            ));
        }
    }
    drop(stream);
    OutgoingBody::finish(outgoing_body, None).map_err(|code| from_error_code(&code, url))
}

/// The first line of an I/O error's text: hosts may append a backtrace,
/// which is noise to the model.
fn io_error_text(e: &wt::IoError) -> String {
    e.to_debug_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The same timeout, offered to the host so it can give up early too.
fn request_options(timeout: Duration) -> RequestOptions {
    let nanos = nanos(timeout);
    let options = RequestOptions::new();
    // A host that does not support an option keeps its own limit, which is
    // fine: `Deadline` enforces the timeout either way.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));
    options
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn wasi_method(method: Method) -> wt::Method {
    match method {
        Method::Get => wt::Method::Get,
        Method::Head => wt::Method::Head,
        Method::Post => wt::Method::Post,
        Method::Put => wt::Method::Put,
        Method::Delete => wt::Method::Delete,
        Method::Patch => wt::Method::Patch,
    }
}

fn header_error(name: &str, e: HeaderError) -> HttpError {
    match e {
        HeaderError::Forbidden if name.eq_ignore_ascii_case("authorization") => HttpError::Other(format!(
            "the sandbox does not let tools set the `{name}` header: credentials come from the policy's `secrets`, \
             which the host adds itself"
        )),
        HeaderError::Forbidden => HttpError::Other(format!("the sandbox does not let tools set the `{name}` header")),
        HeaderError::InvalidSyntax => HttpError::Other(format!("`{name}` is not a valid header name or value")),
        HeaderError::Immutable => {
            HttpError::Other(format!("cannot set the `{name}` header: the headers are read-only"))
        }
    }
}
