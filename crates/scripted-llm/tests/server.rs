//! The server's wire behaviour, seen from a real HTTP client (reqwest, on hyper) and from a raw TCP socket: replies
//! in order, recorded requests, chunking, truncation, dropped connections, hanging bodies and the exhausted script.

use std::time::{Duration, Instant};

use futures::StreamExt;
use scripted_llm::anthropic::AnthropicReply;
use scripted_llm::{Chunking, Reply, ScriptedServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client that never goes through a proxy from the environment: the server is on 127.0.0.1.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("building a reqwest client")
}

#[tokio::test]
async fn replies_are_served_in_order_and_requests_recorded() {
    let server = ScriptedServer::start(vec![
        Reply::json(200, json!({"n": 1})),
        Reply::json(201, json!({"n": 2})).with_header("x-scripted", "yes"),
    ])
    .await;
    assert!(server.url().starts_with("http://127.0.0.1:"));
    assert!(!server.url().ends_with('/'));
    assert_eq!(server.remaining(), 2);
    let client = client();

    let first = client
        .post(format!("{}/v1/messages", server.url()))
        .header("x-api-key", "sk-test")
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .expect("first request");
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.content_length(),
        Some(7),
        "plain JSON replies carry a content-length"
    );
    assert_eq!(
        first.json::<serde_json::Value>().await.expect("first body"),
        json!({"n": 1})
    );

    let second = client
        .get(format!("{}/anything/else", server.url()))
        .send()
        .await
        .expect("second request");
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["x-scripted"], "yes");
    assert_eq!(
        second.json::<serde_json::Value>().await.expect("second body"),
        json!({"n": 2})
    );
    assert_eq!(server.remaining(), 0);

    server.push(Reply::json(202, json!({"n": 3})));
    assert_eq!(server.remaining(), 1);
    let third = client
        .post(format!("{}/v1/chat/completions", server.url()))
        .body("not json")
        .send()
        .await
        .expect("third request");
    assert_eq!(third.status(), 202);

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(requests[0].header("X-Api-Key"), Some("sk-test"));
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert!(requests[0].headers.iter().all(|(name, _)| *name == name.to_lowercase()));
    assert_eq!(requests[0].body, json!({"model": "m", "messages": []}));
    assert_eq!(
        (requests[1].method.as_str(), requests[1].path.as_str()),
        ("GET", "/anything/else")
    );
    assert_eq!(requests[2].path, "/v1/chat/completions");
    assert_eq!(requests[2].body, serde_json::Value::Null);
}

#[tokio::test]
async fn sse_reply_arrives_in_several_chunks_that_concatenate_to_the_body() {
    let reply = AnthropicReply::new().text("Héllo ✓ wörld, in pieces");
    let body = reply.body();
    let server = ScriptedServer::start(vec![
        reply
            .build()
            .chunked(Chunking::EveryBytes(5))
            .chunk_delay(Duration::from_millis(2)),
    ])
    .await;

    let response = client()
        .post(format!("{}/v1/messages", server.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    assert!(response.headers().contains_key("request-id"));
    let mut chunks = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk.expect("a clean chunk"));
    }
    assert!(chunks.len() > 1, "expected several chunks, got {}", chunks.len());
    assert!(chunks.iter().all(|c| c.len() <= 5 * 4), "chunks should stay small");
    assert_eq!(chunks.concat(), body.as_bytes());
}

#[tokio::test]
async fn truncated_reply_fails_the_body_read() {
    let body = AnthropicReply::new().text("a long enough answer").body();
    let server = ScriptedServer::start(vec![Reply::sse(body).truncated_at(60)]).await;
    let response = client()
        .post(format!("{}/v1/messages", server.url()))
        .send()
        .await
        .expect("the head arrives");
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let mut stream = response.bytes_stream();
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "a truncated body must end in an error, not cleanly");
    assert_eq!(received.len(), 60, "the bytes before the cut still arrive");
}

#[tokio::test]
async fn truncated_reply_has_no_terminating_chunk_on_the_wire() {
    let body = "data: 0123456789\n\n".repeat(4);
    let server = ScriptedServer::start(vec![Reply::sse(body.clone()).truncated_at(30)]).await;
    let mut socket = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    // `connection: close` so that a clean (wrong) ending also closes the socket and the test fails instead of hanging.
    let request = "POST /v1/messages HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}";
    socket.write_all(request.as_bytes()).await.expect("send request");
    let mut wire = Vec::new();
    // The server closes the socket after the cut; a reset instead of an EOF is fine too.
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut wire)).await;
    assert!(read.is_ok(), "the server must close the connection after the cut");
    let wire = String::from_utf8(wire).expect("ASCII response");
    assert!(wire.starts_with("HTTP/1.1 200 OK\r\n"), "{wire}");
    assert!(wire.contains("transfer-encoding: chunked\r\n"), "{wire}");
    // The 7-byte chunks hex-encode as "7\r\n", the last partial one as "2\r\n".
    let payload: String = wire
        .split_once("\r\n\r\n")
        .expect("head and body")
        .1
        .split("\r\n")
        .skip(1)
        .step_by(2)
        .collect();
    assert_eq!(payload, body[..30]);
    assert!(!wire.ends_with("0\r\n\r\n"), "no terminating chunk: {wire:?}");
}

#[tokio::test]
async fn connection_drop_is_a_connection_error_and_the_script_goes_on() {
    let server = ScriptedServer::start(vec![Reply::connection_drop(), Reply::json(200, json!({"ok": true}))]).await;
    let client = client();
    let error = client
        .post(format!("{}/v1/messages", server.url()))
        .json(&json!({}))
        .send()
        .await
        .expect_err("no response at all");
    assert!(error.status().is_none());
    let retry = client
        .post(format!("{}/v1/messages", server.url()))
        .json(&json!({}))
        .send()
        .await
        .expect("the next reply");
    assert_eq!(retry.status(), 200);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn exhausted_script_answers_418() {
    let server = ScriptedServer::start(Vec::new()).await;
    let response = client()
        .post(format!("{}/v1/messages", server.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 418);
    assert_eq!(
        response.json::<serde_json::Value>().await.expect("JSON body"),
        json!({"type": "error", "error": {"type": "script_exhausted",
            "message": "the scripted server has no reply left for POST /v1/messages"}})
    );
}

#[tokio::test]
async fn delayed_reply_waits_before_the_head() {
    let server = ScriptedServer::start(vec![Reply::json(200, json!({})).delayed(Duration::from_millis(150))]).await;
    let started = Instant::now();
    let response = client().get(server.url()).send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn hanging_reply_never_ends_until_the_server_is_dropped() {
    let server = ScriptedServer::start(vec![Reply::sse(String::from("data: first\n\n")).hanging()]).await;
    let response = client().get(server.url()).send().await.expect("request");
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    while received.len() < "data: first\n\n".len() {
        received.extend_from_slice(&stream.next().await.expect("a chunk").expect("a clean chunk"));
    }
    let waited = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
    assert!(waited.is_err(), "the body must stay open");

    drop(server);
    let after_drop = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("dropping the server ends the connection");
    assert!(
        matches!(after_drop, Some(Err(_))),
        "an unfinished body is an error: {after_drop:?}"
    );
}
