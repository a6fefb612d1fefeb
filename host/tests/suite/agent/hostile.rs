//! A hostile or broken model server (issue 15, part 3): malformed streams
//! give a clear protocol error or are read correctly, never a panic, a
//! stall, unbounded memory, or a tool call run twice.

use super::*;
use boram_host::agent::Stop;
use scripted_llm::Reply;
use scripted_llm::anthropic::AnthropicReply;
use scripted_llm::openai::OpenAiReply;
use serde_json::json;

/// `reply` with its SSE body rewritten by `f` (bytes, so invalid UTF-8 can go in).
fn rewritten(reply: Reply, f: impl FnOnce(Vec<u8>) -> Vec<u8>) -> Reply {
    let mut reply = reply;
    reply.body = f(reply.body);
    reply
}

fn with_line_ends(body: Vec<u8>, end: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in &body {
        if b == b'\n' {
            out.extend_from_slice(end);
        } else {
            out.push(b);
        }
    }
    out
}

fn setup(provider: ProviderKind) -> Setup {
    Setup {
        provider,
        model: if provider == ProviderKind::OpenAi {
            "gpt-4o".into()
        } else {
            "claude-sonnet-4-5".into()
        },
        ..Setup::default()
    }
}

/// One turn of a fresh agent against a server that sends `reply` and then
/// keeps the connection open: the result and how many requests were made.
async fn one_turn(provider: ProviderKind, reply: Reply) -> (boram_host::agent::TurnResult, usize) {
    let server = ScriptedServer::start(vec![reply.hanging()]).await;
    let mut h = Harness::new(&server, setup(provider)).await;
    let result = h.turn("hi").await;
    (result, server.requests().len())
}

fn hello(provider: ProviderKind) -> Reply {
    match provider {
        ProviderKind::OpenAi => OpenAiReply::new().text("Hello there").build(),
        _ => AnthropicReply::new().text("Hello there").build(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bom_and_every_line_end_style_are_read_by_both_providers_issue_15() {
    for provider in [ProviderKind::Anthropic, ProviderKind::OpenAi] {
        for (label, end) in [("LF", &b"\n"[..]), ("CRLF", b"\r\n"), ("CR", b"\r")] {
            let reply = rewritten(hello(provider), |body| {
                let mut out = b"\xEF\xBB\xBF".to_vec();
                out.extend(with_line_ends(body, end));
                out
            });
            // Hanging after the body: the final event must not wait for EOF
            // (a bare CR as the last line end used to drop it).
            let (result, requests) = one_turn(provider, reply).await;
            assert_eq!(result.stop, Stop::Answered, "{provider} {label}: {:?}", result.error);
            assert_eq!(result.text, "Hello there", "{provider} {label}");
            assert_eq!(requests, 1, "{provider} {label}: no retry needed");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_invalid_utf8_byte_becomes_a_replacement_character_and_does_not_stall_issue_15() {
    for provider in [ProviderKind::Anthropic, ProviderKind::OpenAi] {
        let reply = rewritten(hello(provider), |body| {
            let text = String::from_utf8(body).expect("utf8 body");
            // Inside the first text piece, so the JSON stays valid.
            let at = text.find("Hel").expect("text piece") + 3;
            let mut bytes = text.as_bytes()[..at].to_vec();
            bytes.push(0xFF);
            bytes.extend_from_slice(&text.as_bytes()[at..]);
            bytes
        });
        let (result, _) = one_turn(provider, reply).await;
        assert_eq!(result.stop, Stop::Answered, "{provider}: {:?}", result.error);
        assert_eq!(result.text, "Hel\u{FFFD}lo there", "{provider}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_over_the_event_cap_is_a_protocol_error_not_retried_issue_15() {
    for provider in [ProviderKind::Anthropic, ProviderKind::OpenAi] {
        // 8 MiB of one line against a 64 KiB cap, then a hang: the old parser
        // buffered it all and waited for the end of the line.
        let mut body = b"event: message_start\ndata: ".to_vec();
        body.extend(std::iter::repeat_n(b'a', 8 << 20));
        let reply = Reply::new(200, body)
            .with_header("content-type", "text/event-stream")
            .chunked(scripted_llm::Chunking::EveryBytes(64 << 10))
            .hanging();
        let server = ScriptedServer::start(vec![reply]).await;
        let mut h = Harness::new(
            &server,
            Setup {
                max_event_bytes: 64 << 10,
                ..setup(provider)
            },
        )
        .await;
        let result = h.turn("hi").await;
        assert_eq!(result.stop, Stop::Error, "{provider}");
        let error = result.error.expect("error");
        assert!(
            error.contains("longer than 65536 bytes") && error.contains("max_stream_event_kib"),
            "{provider}: {error}"
        );
        assert_eq!(
            server.requests().len(),
            1,
            "{provider}: an oversized event is not retried"
        );
    }
}

/// A raw Anthropic stream from `(event, data)` pairs.
fn anthropic_events(events: &[(&str, serde_json::Value)]) -> Reply {
    let body: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    Reply::sse(body)
}

fn start() -> (&'static str, serde_json::Value) {
    (
        "message_start",
        json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
    )
}

fn tool_block(index: u64, id: &str) -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": id, "name": "write_file", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": "{\"path\":\"/workspace/out.txt\",\"content\":\"x\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ),
    ]
}

fn finish() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicated_block_stop_or_a_delta_after_it_is_a_protocol_error_and_nothing_runs_issue_15() {
    let mut twice = vec![start()];
    twice.extend(tool_block(0, "toolu_1"));
    twice.push(("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    twice.extend(finish());
    let mut late = vec![start()];
    late.extend(tool_block(0, "toolu_1"));
    late.push((
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
    ));
    late.extend(finish());
    for events in [twice, late] {
        let server = ScriptedServer::start(vec![anthropic_events(&events)]).await;
        let mut h = Harness::new(&server, Setup::default()).await;
        let result = h.turn("write it").await;
        assert_eq!(result.stop, Stop::Error);
        let error = result.error.expect("error");
        assert!(error.contains("after it stopped"), "{error}");
        assert!(h.tool_results().is_empty(), "no tool may run");
        assert!(!h.dir.path().join("ws/out.txt").exists());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tool_calls_with_one_id_never_run_and_the_session_goes_on_issue_15() {
    // Anthropic: two blocks with one id.
    let mut events = vec![start()];
    events.extend(tool_block(0, "toolu_dup"));
    events.extend(tool_block(1, "toolu_dup"));
    events.extend(finish());
    let server = ScriptedServer::start(vec![
        anthropic_events(&events),
        AnthropicReply::new().text("Fine.").build(),
    ])
    .await;
    let mut h = Harness::new(&server, Setup::default()).await;
    let result = h.turn("write it").await;
    assert_eq!(result.stop, Stop::Error);
    assert!(
        result
            .error
            .as_deref()
            .is_some_and(|e| e.contains("two tool calls with the id `toolu_dup`")),
        "{:?}",
        result.error
    );
    assert!(h.tool_results().is_empty(), "no tool may run");
    assert!(!h.dir.path().join("ws/out.txt").exists());
    // Not poisoned: the next turn's request carries no half-answered call.
    assert_eq!(h.turn("again").await.stop, Stop::Answered);
    let body = &server.requests()[1].body;
    assert!(!body.to_string().contains("toolu_dup"), "{body}");

    // OpenAI: two calls at different indices with one id.
    let server = ScriptedServer::start(vec![
        OpenAiReply::new()
            .tool_call(
                "call_dup",
                "write_file",
                json!({"path": "/workspace/out.txt", "content": "x"}),
            )
            .tool_call(
                "call_dup",
                "write_file",
                json!({"path": "/workspace/out.txt", "content": "y"}),
            )
            .build(),
    ])
    .await;
    let mut h = Harness::new(&server, setup(ProviderKind::OpenAi)).await;
    let result = h.turn("write it").await;
    assert_eq!(result.stop, Stop::Error);
    assert!(
        result
            .error
            .as_deref()
            .is_some_and(|e| e.contains("two tool calls with the id `call_dup`")),
        "{:?}",
        result.error
    );
    assert!(h.tool_results().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_call_id_reused_from_an_earlier_reply_gets_a_fresh_id_issue_15() {
    let write = json!({"path": "/workspace/out.txt", "content": "first"});
    let again = json!({"path": "/workspace/out.txt", "content": "second"});
    let server = ScriptedServer::start(vec![
        AnthropicReply::new().tool_use("toolu_1", "write_file", write).build(),
        AnthropicReply::new().tool_use("toolu_1", "write_file", again).build(),
        AnthropicReply::new().text("Done.").build(),
    ])
    .await;
    let mut h = Harness::new(&server, Setup::default()).await;
    let result = h.turn("write twice").await;
    assert_eq!(result.stop, Stop::Answered, "{:?}", result.error);
    assert_eq!(h.tool_results().len(), 2, "each call ran once");
    // The last request pairs each call with its own result.
    let body = &server.requests()[2].body;
    let messages = body["messages"].as_array().expect("messages");
    let uses: Vec<&str> = messages
        .iter()
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_use")
        .filter_map(|b| b["id"].as_str())
        .collect();
    let results: Vec<&str> = messages
        .iter()
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_result")
        .filter_map(|b| b["tool_use_id"].as_str())
        .collect();
    assert_eq!(uses, ["toolu_1", "toolu_1_2"]);
    assert_eq!(results, ["toolu_1", "toolu_1_2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_time_limit_covers_a_stream_that_never_ends_issue_15() {
    // A ping every 50 ms, forever: the read timeout never fires.
    let mut body = String::new();
    let (name, data) = start();
    body.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    for _ in 0..10_000 {
        body.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
    }
    let reply = Reply::sse(body)
        .chunked(scripted_llm::Chunking::EveryBytes(40))
        .chunk_delay(Duration::from_millis(50));
    let server = ScriptedServer::start(vec![reply]).await;
    let mut h = Harness::new(
        &server,
        Setup {
            policy: policy("[agent]\ntime_limit_s = 1"),
            ..Setup::default()
        },
    )
    .await;
    let result = h.turn("hi").await;
    assert_eq!(result.stop, Stop::TimeLimit);
}

fn priced(model: &str, input_per_million: f64) -> (String, boram_host::llm::Price) {
    (
        model.to_string(),
        boram_host::llm::Price {
            input: input_per_million,
            output: 0.0,
            cache_read: 0.0,
            cache_write: 0.0,
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_reporting_an_unpriced_model_cannot_switch_the_budget_off_issue_15() {
    // The request names a priced model; the server claims another name.
    let costly = || {
        AnthropicReply::new()
            .model("free-model-honest")
            .tool_use(
                &format!("t{}", fastrand::u32(..)),
                "list_dir",
                json!({"path": "/workspace"}),
            )
            .usage(1000, 0)
            .build()
    };
    let server = ScriptedServer::start(vec![costly(), costly(), costly()]).await;
    let setup = Setup {
        policy: policy("[agent]\nbudget_usd = 1.5"),
        // $1000 per million input tokens: each call costs $1.
        prices: PriceTable::new([priced("priced-model", 1000.0)].into()),
        model: "priced-model".into(),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    let result = h.turn("spend").await;
    assert_eq!(result.stop, Stop::Budget, "{result:?}");
    assert_eq!(server.requests().len(), 2);
    assert!((h.agent.spent_usd() - 2.0).abs() < 1e-9, "{}", h.agent.spent_usd());

    // A reported model dearer than the requested one is what is charged.
    let server = ScriptedServer::start(vec![
        AnthropicReply::new().model("dear").text("hi").usage(1000, 0).build(),
    ])
    .await;
    let setup = Setup {
        prices: PriceTable::new([priced("cheap", 1.0), priced("dear", 1000.0)].into()),
        model: "cheap".into(),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    h.turn("hi").await;
    assert!((h.agent.spent_usd() - 1.0).abs() < 1e-9, "{}", h.agent.spent_usd());
}

#[tokio::test(flavor = "multi_thread")]
async fn x_should_retry_is_obeyed_issue_15() {
    let overloaded = scripted_llm::anthropic::error_reply(529, "overloaded_error", "Overloaded");
    let server = ScriptedServer::start(vec![overloaded.with_header("x-should-retry", "false")]).await;
    let mut h = Harness::new(&server, Setup::default()).await;
    assert_eq!(h.turn("hi").await.stop, Stop::Error);
    assert_eq!(server.requests().len(), 1, "x-should-retry: false is not retried");

    let bad = scripted_llm::anthropic::error_reply(400, "invalid_request_error", "try again");
    let server = ScriptedServer::start(vec![
        bad.with_header("x-should-retry", "true"),
        AnthropicReply::new().text("ok").build(),
    ])
    .await;
    let mut h = Harness::new(&server, Setup::default()).await;
    assert_eq!(h.turn("hi").await.stop, Stop::Answered);
    assert_eq!(server.requests().len(), 2, "x-should-retry: true is retried");

    // A spend limit told by the error's code alone is not retried.
    let quota = scripted_llm::openai::error_reply(429, "requests", Some("insufficient_quota"), "Slow down.");
    let server = ScriptedServer::start(vec![quota]).await;
    let mut h = Harness::new(&server, setup(ProviderKind::OpenAi)).await;
    assert_eq!(h.turn("hi").await.stop, Stop::Error);
    assert_eq!(server.requests().len(), 1);
}
