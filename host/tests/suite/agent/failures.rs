//! The gateway under a misbehaving provider: every retryable failure is
//! recovered, every non-retryable one is surfaced after one request,
//! `retry-after` is honoured, errors inside a 200 stream are surfaced, a
//! cut-off message never runs its tool call, and the circuit breaker fails
//! fast.

use super::*;
use boram_host::agent::Stop;
use boram_host::llm::{ChatRequest, LlmError, Message, ToolChoice};
use scripted_llm::anthropic::{self, AnthropicReply};
use scripted_llm::openai::{self, OpenAiReply};
use scripted_llm::{Chunking, Reply};
use serde_json::json;

fn answer() -> Reply {
    AnthropicReply::new().text("recovered").build()
}

fn retry_waits(h: &Harness) -> Vec<u64> {
    h.events()
        .into_iter()
        .filter_map(|e| match e {
            AgentEvent::Retrying { wait_ms, .. } => Some(wait_ms),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_retryable_failure_is_recovered() {
    let failures = vec![
        anthropic::error_reply(408, "timeout_error", "request timeout"),
        anthropic::error_reply(409, "conflict_error", "conflict"),
        anthropic::error_reply(429, "rate_limit_error", "slow down"),
        anthropic::error_reply(500, "api_error", "internal"),
        anthropic::error_reply(503, "api_error", "unavailable"),
        anthropic::error_reply(529, "overloaded_error", "Overloaded"),
        Reply::connection_drop(),
    ];
    for failure in failures {
        let label = format!("HTTP {} {}", failure.status, String::from_utf8_lossy(&failure.body));
        let server = ScriptedServer::start(vec![failure, answer()]).await;
        let mut h = Harness::new(&server, Setup::default()).await;
        let result = h.turn("hi").await;
        assert_eq!(result.stop, Stop::Answered, "{label}: {result:?}");
        assert_eq!(result.text, "recovered", "{label}");
        assert_eq!(server.requests().len(), 2, "{label}");
        assert_eq!(retry_waits(&h).len(), 1, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_honoured_in_both_spellings() {
    let server = ScriptedServer::start(vec![
        anthropic::error_reply(429, "rate_limit_error", "slow down").with_header("retry-after-ms", "120"),
        anthropic::error_reply(529, "overloaded_error", "Overloaded").with_header("retry-after", "1"),
        answer(),
    ])
    .await;
    let mut h = Harness::new(&server, Setup::default()).await;
    let result = h.turn("hi").await;
    assert_eq!(result.stop, Stop::Answered, "{result:?}");
    assert_eq!(retry_waits(&h), [120, 1000]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_beyond_the_bound_is_surfaced_not_waited_for() {
    let server = ScriptedServer::start(vec![
        anthropic::error_reply(429, "rate_limit_error", "come back tomorrow").with_header("retry-after", "86400"),
        answer(),
    ])
    .await;
    let mut h = Harness::new(&server, Setup::default()).await;
    let result = h.turn("hi").await;
    assert_eq!(result.stop, Stop::Error);
    assert!(result.error.expect("error").contains("come back tomorrow"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn non_retryable_failures_are_surfaced_after_one_request() {
    let cases = vec![
        anthropic::error_reply(400, "invalid_request_error", "messages: field required"),
        anthropic::error_reply(401, "authentication_error", "invalid x-api-key"),
        anthropic::error_reply(403, "permission_error", "not allowed"),
        anthropic::error_reply(404, "not_found_error", "model: no-such-model"),
        openai::error_reply(
            429,
            "insufficient_quota",
            Some("insufficient_quota"),
            "You exceeded your current quota",
        ),
    ];
    for reply in cases {
        let status = reply.status;
        let server = ScriptedServer::start(vec![reply, answer()]).await;
        let mut h = Harness::new(&server, Setup::default()).await;
        let result = h.turn("hi").await;
        assert_eq!(result.stop, Stop::Error, "HTTP {status}");
        let error = result.error.expect("error");
        assert!(error.contains(&format!("HTTP {status}")), "{error}");
        assert_eq!(server.requests().len(), 1, "HTTP {status} must not be retried");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_inside_the_stream_is_retried_when_transient_and_surfaced_otherwise() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .text("partial")
            .error_after(4, "overloaded_error", "Overloaded")
            .build(),
        answer(),
    ])
    .await;
    let mut h = Harness::new(&server, Setup::default()).await;
    assert_eq!(h.turn("hi").await.text, "recovered");

    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .text("partial")
            .error_after(4, "invalid_request_error", "prompt is too long")
            .build(),
        answer(),
    ])
    .await;
    let mut h = Harness::new(&server, Setup::default()).await;
    let result = h.turn("hi").await;
    assert_eq!(result.stop, Stop::Error);
    let error = result.error.expect("error");
    assert!(
        error.contains("mid-stream") && error.contains("prompt is too long"),
        "{error}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_call_from_a_cut_off_message_never_runs() {
    let calls =
        || AnthropicReply::new().tool_use("t1", "write_file", json!({"path": "/workspace/x.txt", "content": "x"}));
    let full = calls().build();
    let half = full.body.len() / 2;
    let server = ScriptedServer::start(vec![
        // The connection breaks mid-body…
        calls().build().truncated_at(half),
        // …the stream ends cleanly but without `message_stop`…
        calls().without_message_stop().build(),
        answer(),
    ])
    .await;
    let mut h = Harness::new(&server, Setup::default()).await;
    let result = h.turn("write x").await;
    assert_eq!(result.stop, Stop::Answered, "{result:?}");
    assert_eq!(server.requests().len(), 3);
    assert!(h.tool_results().is_empty(), "no tool ran: {:?}", h.tool_results());
    assert!(!h.dir.path().join("ws/x.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openai_stream_cut_before_its_finish_reason_is_retried() {
    let server = ScriptedServer::start(vec![
        OpenAiReply::new()
            .tool_call("c", "list_dir", json!({"path": "/workspace"}))
            .without_done()
            .build(),
        OpenAiReply::new().text("fine").build(),
    ])
    .await;
    let setup = Setup {
        provider: ProviderKind::OpenAi,
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    let result = h.turn("hi").await;
    assert_eq!(result.text, "fine");
    assert!(h.tool_results().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_split_at_every_byte_still_parses() {
    let text = "Grüße — naïve café ✓";
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .text(text)
            .tool_use("t", "list_dir", json!({"path": "/workspace"}))
            .build()
            .chunked(Chunking::EveryBytes(1)),
        AnthropicReply::new()
            .text("done")
            .build()
            .chunked(Chunking::EveryBytes(3)),
    ])
    .await;
    let mut h = Harness::new(&server, Setup::default()).await;
    let result = h.turn("hi").await;
    assert_eq!(result.stop, Stop::Answered);
    let streamed: String = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            AgentEvent::TextDelta { text } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, format!("{text}done"));
    assert_eq!(h.tool_results().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_circuit_breaker_fails_fast_after_repeated_failures() {
    let server = ScriptedServer::start(vec![Reply::connection_drop(), Reply::connection_drop(), answer()]).await;
    let provider = boram_host::llm::connect(&Endpoint {
        kind: ProviderKind::Anthropic,
        base_url: server.url(),
        api_key: Some("k".into()),
        max_event_bytes: boram_host::llm::DEFAULT_MAX_EVENT_BYTES,
    })
    .expect("provider");
    let options = GatewayOptions {
        max_retries: 0,
        breaker_threshold: 2,
        breaker_cooldown: Duration::from_millis(300),
        ..fast_retries()
    };
    let gateway = Gateway::new(provider, options, PriceTable::default());
    let request = hi();
    for _ in 0..2 {
        let err = gateway.send(&request, &|_| {}, "s").await.expect_err("drop");
        assert!(matches!(err, LlmError::Connect { .. }), "{err}");
    }
    let err = gateway.send(&request, &|_| {}, "s").await.expect_err("open");
    assert!(matches!(err, LlmError::CircuitOpen { .. }), "{err}");
    assert_eq!(server.requests().len(), 2, "an open breaker sends nothing");
    // After the cooldown one trial goes through, and its success closes the breaker.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let ok = gateway.send(&request, &|_| {}, "s").await.expect("half-open trial");
    assert_eq!(ok.response.message.text(), "recovered");
}

fn hi() -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        system: String::new(),
        messages: vec![Message::user_text("hi")],
        tools: Vec::new(),
        tool_choice: ToolChoice::Auto,
        max_tokens: 10,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_beyond_the_concurrency_limit_wait_in_the_queue() {
    let server = ScriptedServer::start(vec![stalled(AnthropicReply::new().text("stuck").build()), answer()]).await;
    let provider = boram_host::llm::connect(&Endpoint {
        kind: ProviderKind::Anthropic,
        base_url: server.url(),
        api_key: Some("k".into()),
        max_event_bytes: boram_host::llm::DEFAULT_MAX_EVENT_BYTES,
    })
    .expect("provider");
    let options = GatewayOptions {
        concurrency: 1,
        ..fast_retries()
    };
    let gateway = Arc::new(Gateway::new(provider, options, PriceTable::default()));
    let first = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.send(&hi(), &|_| {}, "s").await.map(|_| ()) }
    });
    while server.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            gateway
                .send(&hi(), &|_| {}, "s")
                .await
                .map(|c| c.response.message.text())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.requests().len(),
        1,
        "the second call waits while the first holds the only slot"
    );
    first.abort();
    assert_eq!(second.await.expect("join").expect("second call"), "recovered");
    assert_eq!(server.requests().len(), 2);
}
