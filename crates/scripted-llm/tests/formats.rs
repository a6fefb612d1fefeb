//! The Anthropic and OpenAI builders, parsed back event by event: valid JSON everywhere, the real event order, and
//! streamed pieces that join into the text and tool input given to the builder.

use scripted_llm::{anthropic, openai};
use serde_json::{Value, json};

/// Parses an Anthropic SSE body into (event name, data JSON) pairs, checking the framing on the way.
fn anthropic_events(body: &str) -> Vec<(String, Value)> {
    assert!(body.ends_with("\n\n"), "events end with a blank line");
    body.trim_end_matches('\n')
        .split("\n\n")
        .map(|event| {
            let (name_line, data_line) = event.split_once('\n').expect("event and data lines");
            let name = name_line.strip_prefix("event: ").expect("event line");
            let data = data_line.strip_prefix("data: ").expect("data line");
            let data: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("invalid JSON {data}: {e}"));
            assert_eq!(data["type"], name, "the data type repeats the event name");
            (name.to_owned(), data)
        })
        .collect()
}

/// Parses an OpenAI SSE body into data payloads (`[DONE]` kept as a string).
fn openai_lines(body: &str) -> Vec<Value> {
    assert!(body.ends_with("\n\n"), "lines end with a blank line");
    body.trim_end_matches('\n')
        .split("\n\n")
        .map(|line| {
            let data = line.strip_prefix("data: ").expect("data line");
            if data == "[DONE]" {
                return Value::String(data.to_owned());
            }
            serde_json::from_str(data).unwrap_or_else(|e| panic!("invalid JSON {data}: {e}"))
        })
        .collect()
}

#[test]
fn anthropic_stream_follows_the_real_event_sequence() {
    let input = json!({"path": "src/main.rs", "note": "ünïcode ✓", "lines": [1, 2, 3]});
    let reply = anthropic::AnthropicReply::new()
        .text("Let me read that file for you.")
        .tool_use("toolu_01", "read_file", input.clone())
        .usage(120, 42)
        .cache(100, 20);
    let events = anthropic_events(&reply.body());
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let message = &events[0].1["message"];
    assert_eq!(message["id"], reply.id());
    assert_eq!(message["model"], "claude-sonnet-4-5");
    assert_eq!(message["content"], json!([]));
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 120, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 100,
            "output_tokens": 1})
    );

    let text: String = events
        .iter()
        .filter(|(_, data)| data["index"] == 0 && data["delta"]["type"] == "text_delta")
        .map(|(_, data)| data["delta"]["text"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(text, "Let me read that file for you.");

    assert_eq!(
        events[7].1["content_block"],
        json!({"type": "tool_use", "id": "toolu_01", "name": "read_file", "input": {}})
    );
    let pieces: Vec<&str> = events
        .iter()
        .filter(|(_, data)| data["index"] == 1 && data["delta"]["type"] == "input_json_delta")
        .map(|(_, data)| data["delta"]["partial_json"].as_str().expect("partial_json"))
        .collect();
    assert_eq!(pieces[0], "", "the real API opens tool input with an empty piece");
    let joined: Value = serde_json::from_str(&pieces.concat()).expect("joined pieces are JSON");
    assert_eq!(joined, input);

    assert_eq!(
        events[13].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 42}})
    );
}

#[test]
fn anthropic_wire_text_matches_the_real_api_byte_for_byte() {
    let body = anthropic::AnthropicReply::new().text("Hi").body();
    assert!(body.contains(
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n"
    ));
    assert!(body.contains("\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}"));
    assert!(body.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
}

#[test]
fn anthropic_failures_mid_stream() {
    let body = anthropic::AnthropicReply::new()
        .text("partial answer")
        .error_after(4, "overloaded_error", "Overloaded")
        .body();
    let events = anthropic_events(&body);
    assert_eq!(events.len(), 5);
    assert!(body.ends_with(
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
    ));

    let events = anthropic_events(
        &anthropic::AnthropicReply::new()
            .text("cut")
            .without_message_stop()
            .body(),
    );
    let last = &events.last().expect("events").0;
    assert_eq!(last, "content_block_stop");
    assert!(
        events
            .iter()
            .all(|(name, _)| name != "message_delta" && name != "message_stop")
    );

    let events = anthropic_events(
        &anthropic::AnthropicReply::new()
            .text("x")
            .stop_reason("max_tokens")
            .body(),
    );
    assert_eq!(events[events.len() - 2].1["delta"]["stop_reason"], "max_tokens");
}

#[test]
fn anthropic_error_reply_is_the_api_error_body() {
    let reply = anthropic::error_reply(529, "overloaded_error", "Overloaded");
    assert_eq!(reply.status, 529);
    assert!(reply.header("request-id").is_some());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
}

#[test]
fn openai_stream_follows_the_real_chunk_sequence() {
    let weather = json!({"city": "Séoul", "unit": "celsius"});
    let time = json!({"zone": "Asia/Seoul"});
    let reply = openai::OpenAiReply::new()
        .text("Checking both.")
        .tool_call("call_a", "get_weather", weather.clone())
        .tool_call("call_b", "get_time", time.clone())
        .usage(200, 30)
        .cached(128);
    let lines = openai_lines(&reply.body());
    assert_eq!(lines.last(), Some(&Value::String(String::from("[DONE]"))));
    let chunks = &lines[..lines.len() - 1];
    for chunk in chunks {
        assert_eq!(chunk["id"], reply.id());
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-4o-mini");
        assert_eq!(chunk["created"], 1_732_000_000);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "");

    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| &c["delta"])
        .collect();
    let text: String = deltas.iter().filter_map(|d| d["content"].as_str()).collect();
    assert_eq!(text, "Checking both.");
    for (index, (id, name, arguments)) in [("call_a", "get_weather", &weather), ("call_b", "get_time", &time)]
        .into_iter()
        .enumerate()
    {
        let calls: Vec<&Value> = deltas
            .iter()
            .filter_map(|d| d["tool_calls"].get(0))
            .filter(|call| call["index"] == index)
            .collect();
        assert_eq!(calls[0]["id"], id);
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"], json!({"name": name, "arguments": ""}));
        assert!(
            calls[1..]
                .iter()
                .all(|c| c.get("id").is_none() && c["function"].get("name").is_none())
        );
        let joined: String = calls
            .iter()
            .map(|c| c["function"]["arguments"].as_str().expect("a str"))
            .collect();
        assert_eq!(
            &serde_json::from_str::<Value>(&joined).expect("joined arguments are JSON"),
            arguments
        );
    }

    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(finish["usage"], Value::Null);
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 200, "completion_tokens": 30, "total_tokens": 230,
            "prompt_tokens_details": {"cached_tokens": 128}})
    );
}

#[test]
fn openai_failures_mid_stream() {
    let body = openai::OpenAiReply::new()
        .text("partial")
        .error_after(2, "The server had an error")
        .body();
    let lines = openai_lines(&body);
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[2],
        json!({"error": {"message": "The server had an error", "type": "server_error", "code": null}})
    );

    let lines = openai_lines(&openai::OpenAiReply::new().text("cut").without_done().body());
    assert!(
        lines
            .iter()
            .all(|l| l.is_object() && l["choices"][0]["finish_reason"].is_null())
    );

    let lines = openai_lines(&openai::OpenAiReply::new().text("plain").body());
    assert_eq!(lines[lines.len() - 3]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn openai_error_reply_is_the_api_error_body() {
    let reply = openai::error_reply(429, "requests", Some("rate_limit_exceeded"), "Rate limit reached")
        .with_header("retry-after", "1");
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(reply.header("x-request-id").is_some());
    let body: Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!(
        body,
        json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null,
            "code": "rate_limit_exceeded"}})
    );
}
