//! The HTTP/1.1 server that plays a script of [`Reply`]s back, one per request, on 127.0.0.1.
//!
//! It is plain hyper over a tokio `TcpListener` rather than a web framework, because one scripted reply is "read the
//! request, then drop the connection without any response", which a handler that must return a response cannot
//! express: here the service returns an error and hyper closes the socket without writing a byte. Streaming replies
//! go out with chunked transfer encoding, one HTTP chunk per [`crate::Chunking`] piece; a truncated reply ends with
//! a body error, which makes hyper abort the connection before the terminating zero-length chunk.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, future, stream};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::reply::Reply;

/// How long a truncated reply waits after its last byte before aborting the connection. hyper only flushes its
/// write buffer when the body stream is pending, so erroring straight after the last chunk could lose the bytes
/// that were meant to arrive; the pause also lets the client read them before the connection dies.
const ABORT_GRACE: Duration = Duration::from_millis(20);

type ResponseBody = UnsyncBoxBody<Bytes, io::Error>;

/// One request the server received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Lowercase names, in the order received.
    pub headers: Vec<(String, String)>,
    /// The parsed JSON body, or `Value::Null` if the body is not JSON.
    pub body: serde_json::Value,
}

impl RecordedRequest {
    /// The value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Chooses the reply to a request from what it asks, for tests where
/// requests arrive in no fixed order (many agents at once).
pub type Responder = Box<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

/// The state the connections share with the test.
#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Answers requests once the script is used up.
    responder: Option<Responder>,
}

/// A server on 127.0.0.1 that answers the N-th request with the N-th scripted reply. Dropping it stops the server
/// and cuts every open connection, hanging ones included.
pub struct ScriptedServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl ScriptedServer {
    /// Binds 127.0.0.1 on a free port and serves in a background tokio task. Replies are served in order, one per
    /// request, whatever the method and path.
    pub async fn start(script: Vec<Reply>) -> ScriptedServer {
        Self::serve(script, None).await
    }

    /// A server that answers every request with `responder`'s reply to it
    /// (each request is still recorded).
    pub async fn responding(responder: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static) -> ScriptedServer {
        Self::serve(Vec::new(), Some(Box::new(responder))).await
    }

    async fn serve(script: Vec<Reply>, responder: Option<Responder>) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 for the scripted server");
        let addr = listener.local_addr().expect("a bound listener has a local address");
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            requests: Mutex::default(),
            responder,
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        ScriptedServer {
            addr,
            shared,
            accept_task,
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends a reply to the script.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.script).push_back(reply);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Number of replies not yet served.
    pub fn remaining(&self) -> usize {
        lock(&self.shared.script).len()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        // The connections live in the accept task's JoinSet, so aborting the task aborts them too.
        self.accept_task.abort();
    }
}

/// A test that panics while holding a lock must not turn every later call into a second, misleading panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // A failed accept (the client gave up, or a file-descriptor limit) concerns one connection only.
                let Ok((stream, _)) = accepted else { continue };
                // Without Nagle each HTTP chunk leaves as soon as it is written, so the client sees the scripted cuts.
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |request| respond(Arc::clone(&shared), request));
                    // Errors are the scripted ones (truncation, dropped connection) or the client leaving: the
                    // connection is over either way and the test observes the outcome on the client side.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow over a long benchmark.
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Records the request, takes the next reply and turns it into a response. An `Err` makes hyper close the
/// connection without writing anything, which is exactly what [`Reply::connection_drop`] asks for.
async fn respond(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<ResponseBody>, io::Error> {
    let (parts, body) = request.into_parts();
    // Read the whole request first, like a real API, so the recorded body is complete.
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let recorded = RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    };
    // Recording and popping under one lock keeps the N-th recorded request paired with the N-th reply even when
    // requests arrive concurrently.
    let reply = {
        let mut requests = lock(&shared.requests);
        let scripted = lock(&shared.script).pop_front();
        let reply = scripted.or_else(|| shared.responder.as_ref().map(|respond| respond(&recorded)));
        requests.push(recorded);
        reply
    };
    let reply = reply.unwrap_or_else(|| Reply::script_exhausted(&method, &path));

    if !reply.delay_before.is_zero() {
        tokio::time::sleep(reply.delay_before).await;
    }
    if reply.close_without_response {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "scripted connection drop",
        ));
    }
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let body = if reply.is_streaming() {
        streaming_body(reply)
    } else {
        Full::new(Bytes::from(reply.body))
            .map_err(|never| match never {})
            .boxed_unsync()
    };
    // An invalid status or header in the script is a bug in the test; dropping the connection makes it loud.
    response.body(body).map_err(io::Error::other)
}

/// How a streaming body ends once its chunks are out.
enum Ending {
    /// The terminating chunk: a complete response.
    Clean,
    /// A body error, so hyper aborts the connection without the terminating chunk.
    Abort,
    /// Never: the connection stays open until the client or the server goes away.
    Hang,
}

impl Ending {
    async fn arrive(self) -> Option<Result<Frame<Bytes>, io::Error>> {
        match self {
            Ending::Clean => None,
            Ending::Hang => future::pending().await,
            Ending::Abort => {
                tokio::time::sleep(ABORT_GRACE).await;
                Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "scripted truncation",
                )))
            }
        }
    }
}

/// The body as a stream of HTTP chunks, paced by `chunk_delay`, ending as the reply says.
fn streaming_body(reply: Reply) -> ResponseBody {
    let ending = match (reply.hang, reply.truncate_at) {
        (true, _) => Ending::Hang,
        (false, Some(_)) => Ending::Abort,
        (false, None) => Ending::Clean,
    };
    let sent = match reply.truncate_at {
        Some(bytes) => &reply.body[..bytes.min(reply.body.len())],
        None => &reply.body[..],
    };
    let delay = reply.chunk_delay;
    let chunks = reply.chunking.split(sent).into_iter().enumerate();
    let data = stream::iter(chunks).then(move |(index, chunk)| async move {
        if index > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, io::Error>(Frame::data(Bytes::from(chunk)))
    });
    let tail = stream::once(ending.arrive()).filter_map(future::ready);
    StreamBody::new(data.chain(tail)).boxed_unsync()
}
