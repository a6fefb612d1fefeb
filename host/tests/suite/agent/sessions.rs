//! Transcripts: compaction replaces the working conversation but the
//! transcript keeps everything, a resumed session rebuilds exactly the
//! conversation the model saw, and a turn cut off between the model's tool
//! call and its result is closed properly on resume.

use super::*;
use boram_host::agent::Stop;
use boram_host::agent::conversation::Conversation;
use boram_host::session::{Record, read_records};
use scripted_llm::anthropic::AnthropicReply;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn compaction_summarises_older_turns_and_the_transcript_keeps_them() {
    let server = ScriptedServer::start(vec![
        // Turn 1 fills 90 % of a 1000-token window.
        AnthropicReply::new().text("First answer.").usage(880, 20).build(),
        // Turn 2: the summary request, then the real answer.
        AnthropicReply::new()
            .text("SUMMARY: user asked a first question.")
            .usage(100, 10)
            .build(),
        AnthropicReply::new().text("Second answer.").usage(60, 5).build(),
    ])
    .await;
    let setup = Setup {
        context_tokens: 1000,
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    assert_eq!(h.turn("first question").await.stop, Stop::Answered);
    assert_eq!(h.turn("second question").await.text, "Second answer.");

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let summary_request = &requests[1].body;
    assert!(
        summary_request.get("tools").is_none(),
        "the summary request offers no tools"
    );
    let transcript_text = summary_request["messages"][0]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert!(transcript_text.contains("first question") && transcript_text.contains("First answer."));
    // The next request starts with the summary, joined with the new prompt.
    let messages = requests[2].body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{messages:?}");
    let text = messages[0]["content"].to_string();
    assert!(
        text.contains("SUMMARY: user asked") && text.contains("second question"),
        "{text}"
    );
    assert!(h.events().iter().any(|e| matches!(
        e,
        AgentEvent::Compacted {
            replaced_messages: 2,
            ..
        }
    )));

    // The transcript still has every message, plus the compaction record,
    // and rebuilding from it gives the conversation the model saw.
    let records = read_records(h.agent.session().file_path().expect("a file session")).expect("records");
    let texts: Vec<String> = records
        .iter()
        .filter_map(|r| match r {
            Record::Message { message, .. } => Some(message.text()),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        ["first question", "First answer.", "second question", "Second answer."]
    );
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Compaction { replaced: 2, .. }))
    );
    assert_eq!(Conversation::from_records(&records).messages, h.agent.messages());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_cut_between_tool_call_and_result_resumes_cleanly() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use("slow", "sleep", json!({"ms": 5000}))
            .build(),
    ])
    .await;
    let setup = Setup {
        components: vec![super::super::hostile_wasm()],
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    // The turn is dropped while the tool runs, as when the process dies.
    let cut = tokio::time::timeout(Duration::from_millis(500), h.turn("sleep long")).await;
    assert!(cut.is_err(), "the turn was still running");
    let sessions = h.dir.path().join("sessions");
    let id = h.agent.session().id().to_string();
    // The "dead process" lets go of its transcript (one writer at a time).
    let Harness { agent, dir: _dead, .. } = h;
    drop(agent);

    // Resume in a "new process": a new agent from the transcript.
    server.push(AnthropicReply::new().text("It did not finish; shall I retry?").build());
    let fresh = Harness::new(
        &server,
        Setup {
            components: vec![super::super::hostile_wasm()],
            ..Setup::default()
        },
    )
    .await;
    let (session, records) = boram_host::session::Session::open(&sessions, &id).expect("open");
    let Harness {
        agent: template,
        sink,
        dir: _keep,
        ..
    } = fresh;
    let mut resumed = rebuild(template, session).resume(&records);
    let result = resumed.turn("what happened?", &sink, &CancellationToken::new()).await;
    assert_eq!(result.stop, Stop::Answered);

    let body = &server.requests()[1].body;
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages[0]["content"][0]["text"], "sleep long");
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    let closing = &messages[2]["content"];
    assert_eq!(closing[0]["type"], "tool_result");
    assert_eq!(closing[0]["tool_use_id"], "slow");
    assert_eq!(closing[0]["is_error"], true);
    // The call had started: it may have run (issue 15), never "not run".
    let content = closing[0]["content"].as_str().expect("content");
    assert!(
        content.starts_with("interrupted:") && content.contains("it may have run, and its side effects are unknown"),
        "{content}"
    );
    assert!(!content.contains("not run"), "{content}");
    assert_eq!(closing[1]["text"], "what happened?");
}

/// The same agent parts, continuing `session`.
fn rebuild(template: boram_host::agent::Agent, session: boram_host::session::Session) -> boram_host::agent::Agent {
    template.with_session(session)
}
