//! The loop's normal work: several rounds with real tools on both wire
//! formats, parallel tool calls, and the limits (identical calls, budget,
//! rounds).

use super::*;
use boram_host::agent::Stop;
use boram_host::llm::Price;
use scripted_llm::anthropic::AnthropicReply;
use scripted_llm::openai::OpenAiReply;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_round_anthropic_session_uses_real_tools() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .text("Let me look at the workspace.")
            .tool_use("toolu_1", "list_dir", json!({"path": "/workspace"}))
            .usage(120, 30)
            .build(),
        AnthropicReply::new()
            .tool_use("toolu_2", "read_file", json!({"path": "/workspace/notes.txt"}))
            .usage(200, 20)
            .build(),
        AnthropicReply::new()
            .text("The meeting moved to Thursday.")
            .usage(300, 10)
            .build(),
    ])
    .await;
    let mut h = Harness::new(&server, Setup::default()).await;
    let result = h.turn("What do my notes say?").await;

    assert_eq!(result.stop, Stop::Answered, "{result:?}");
    assert_eq!(result.rounds, 3);
    assert_eq!(result.text, "The meeting moved to Thursday.");
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let first = &requests[0];
    assert_eq!(first.path, "/v1/messages");
    assert_eq!(first.header("x-api-key"), Some("test-key"));
    assert_eq!(first.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(first.body["stream"], true);
    assert_eq!(first.body["system"][0]["cache_control"]["type"], "ephemeral");
    let tools: Vec<&str> = first.body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"read_file") && tools.contains(&"list_dir"), "{tools:?}");
    // Round 2 carries list_dir's real output; round 3 the file's content.
    let listed = last_tool_results(&requests[1].body);
    assert_eq!(listed[0]["tool_use_id"], "toolu_1");
    assert!(
        listed[0]["content"].as_str().expect("content").contains("notes.txt"),
        "{listed:?}"
    );
    let read = last_tool_results(&requests[2].body);
    assert!(
        read[0]["content"].as_str().expect("content").contains("Thursday"),
        "{read:?}"
    );
    assert_eq!(read[0]["is_error"], false);
    // The newest block carries the cache breakpoint.
    let last_message = requests[2].body["messages"]
        .as_array()
        .expect("messages")
        .last()
        .cloned()
        .expect("last");
    assert_eq!(
        last_message["content"]
            .as_array()
            .expect("blocks")
            .last()
            .expect("block")["cache_control"]["type"],
        "ephemeral"
    );
    // Usage was summed and logged once per call.
    assert_eq!(h.agent.usage().input_tokens, 620);
    let usage_lines = std::fs::read_to_string(h.dir.path().join("usage.jsonl")).expect("usage");
    assert_eq!(usage_lines.lines().count(), 3);
    assert!(usage_lines.contains("\"cost_usd\":"), "{usage_lines}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_round_openai_compatible_session_uses_real_tools() {
    let server = ScriptedServer::start(vec![
        OpenAiReply::new()
            .tool_call("call_a", "read_file", json!({"path": "/workspace/notes.txt"}))
            .usage(100, 10)
            .build(),
        OpenAiReply::new()
            .text("Bring the quarterly numbers.")
            .usage(150, 8)
            .cached(50)
            .build(),
    ])
    .await;
    let setup = Setup {
        provider: ProviderKind::OpenAi,
        model: "llama3.2".into(),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    let result = h.turn("What should I bring?").await;

    assert_eq!(result.stop, Stop::Answered, "{result:?}");
    assert_eq!(result.text, "Bring the quarterly numbers.");
    let requests = server.requests();
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].header("authorization"), Some("Bearer test-key"));
    assert_eq!(requests[0].body["stream_options"]["include_usage"], true);
    assert_eq!(requests[0].body["messages"][0]["role"], "system");
    let messages = requests[1].body["messages"].as_array().expect("messages");
    let assistant = &messages[messages.len() - 2];
    assert_eq!(assistant["tool_calls"][0]["id"], "call_a");
    assert_eq!(assistant["tool_calls"][0]["function"]["name"], "read_file");
    let tool = messages.last().expect("tool message");
    assert_eq!(tool["role"], "tool");
    assert_eq!(tool["tool_call_id"], "call_a");
    assert!(
        tool["content"].as_str().expect("content").contains("quarterly"),
        "{tool}"
    );
    // Cached prompt tokens are split out of the input count.
    let usage = h.agent.usage();
    assert_eq!((usage.input_tokens, usage.cache_read_tokens), (200, 50));
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_tool_calls_run_concurrently_and_answer_in_order() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use("slow", "sleep", json!({"ms": 300}))
            .tool_use("fast", "sleep", json!({"ms": 10}))
            .build(),
        AnthropicReply::new().text("Both done.").build(),
    ])
    .await;
    let setup = Setup {
        components: vec![super::super::hostile_wasm()],
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    let result = h.turn("sleep twice").await;
    assert_eq!(result.stop, Stop::Answered, "{result:?}");

    // Both started before either finished, and the fast one finished first…
    let order: Vec<String> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            AgentEvent::ToolStarted { id, .. } => Some(format!("start {id}")),
            AgentEvent::ToolResult { id, .. } => Some(format!("end {id}")),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["start slow", "start fast", "end fast", "end slow"]);
    // …yet the results go back in the order the model asked.
    let results = last_tool_results(&server.requests()[1].body);
    let ids: Vec<&str> = results.iter().filter_map(|r| r["tool_use_id"].as_str()).collect();
    assert_eq!(ids, ["slow", "fast"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_identical_call_repeated_past_the_limit_is_refused() {
    let same = || {
        AnthropicReply::new()
            .tool_use("t", "read_file", json!({"path": "/workspace/notes.txt"}))
            .build()
    };
    let server = ScriptedServer::start(vec![same(), same(), same(), AnthropicReply::new().text("ok").build()]).await;
    let setup = Setup {
        policy: policy("[agent]\nsame_call_limit = 2"),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    let result = h.turn("read it again and again").await;
    assert_eq!(result.stop, Stop::Answered);

    let outcomes: Vec<String> = h.tool_results().into_iter().map(|r| r.1).collect();
    assert_eq!(outcomes, ["ok", "ok", "refused"]);
    let refused = &last_tool_results(&server.requests()[3].body)[0];
    assert_eq!(refused["is_error"], true);
    assert!(
        refused["content"]
            .as_str()
            .expect("content")
            .contains("already called 2 times"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_stops_at_its_budget() {
    let costly = || {
        AnthropicReply::new()
            .model("priced-model")
            .tool_use("t", "list_dir", json!({"path": "/workspace"}))
            .usage(1000, 0)
            .build()
    };
    let server = ScriptedServer::start(vec![costly(), costly(), costly()]).await;
    // $1000 per million input tokens: each call costs $1.
    let prices = PriceTable::new(
        [(
            "priced-model".to_string(),
            Price {
                input: 1000.0,
                output: 0.0,
                cache_read: 0.0,
                cache_write: 0.0,
            },
        )]
        .into(),
    );
    let setup = Setup {
        policy: policy("[agent]\nbudget_usd = 1.5"),
        prices,
        model: "priced-model".into(),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    let result = h.turn("spend").await;
    assert_eq!(result.stop, Stop::Budget, "{result:?}");
    assert_eq!(server.requests().len(), 2, "no call after the budget is spent");
    assert!((h.agent.spent_usd() - 2.0).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_turn_stops_after_max_rounds() {
    let call = |n: u32| {
        AnthropicReply::new()
            .tool_use(
                &format!("t{n}"),
                "list_dir",
                json!({"path": "/workspace", "max_entries": n}),
            )
            .build()
    };
    let server = ScriptedServer::start((1..=5).map(call).collect()).await;
    let setup = Setup {
        policy: policy("[agent]\nmax_rounds = 3"),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    let result = h.turn("loop").await;
    assert_eq!(result.stop, Stop::MaxRounds);
    assert_eq!(result.rounds, 3);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_past_its_time_limit_stops_and_the_session_goes_on() {
    let server = ScriptedServer::start(vec![stalled(AnthropicReply::new().text("never ends").build())]).await;
    let setup = Setup {
        policy: policy("[agent]\ntime_limit_s = 1"),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    assert_eq!(h.turn("hang").await.stop, Stop::TimeLimit);
    server.push(AnthropicReply::new().text("back").build());
    assert_eq!(h.turn("again").await.text, "back");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_turn_closes_its_tool_calls_and_keeps_the_session() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use("s", "sleep", json!({"ms": 10_000}))
            .build(),
        AnthropicReply::new().text("ok, stopped").build(),
    ])
    .await;
    let setup = Setup {
        components: vec![super::super::hostile_wasm()],
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    let cancel = CancellationToken::new();
    let events = h.events.clone();
    let trigger = cancel.clone();
    // Cancel as soon as the tool starts (what Ctrl-C does).
    let watcher = tokio::spawn(async move {
        loop {
            let started = events
                .lock()
                .expect("events")
                .iter()
                .any(|e| matches!(e, AgentEvent::ToolStarted { .. }));
            if started {
                trigger.cancel();
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let result = h.agent.turn("sleep", &h.sink, &cancel).await;
    watcher.await.expect("watcher");
    assert_eq!(result.stop, Stop::Cancelled);

    assert_eq!(h.turn("never mind").await.text, "ok, stopped");
    let last = &server.requests()[1].body["messages"]
        .as_array()
        .expect("messages")
        .last()
        .cloned()
        .expect("last");
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["is_error"], true);
    assert!(
        last["content"][0]["content"]
            .as_str()
            .expect("content")
            .contains("cancelled")
    );
    assert_eq!(last["content"][1]["text"], "never mind");
}
