//! Long-term memory and the failure store, through the agent loop with a
//! scripted model: notes survive a restart and bad input is refused; notes
//! are saved before a compaction; a repeated failure brings its earlier
//! record and fix back.

use super::*;
use boram_host::memory::MemoryStore;
use boram_host::memory::failures::FailureStore;
use scripted_llm::anthropic::AnthropicReply;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn notes_survive_a_restart_and_bad_input_is_refused() {
    let memory = tempfile::tempdir().expect("tempdir");
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use(
                "s1",
                "memory_save",
                json!({"text": "The user prefers metric units.", "tags": ["prefs"]}),
            )
            .tool_use("s2", "memory_save", json!({"text": "   "}))
            .tool_use("s3", "memory_save", json!({"text": "x", "tags": ["not a tag"]}))
            .tool_use("s4", "memory_search", json!({"query": "units", "limit": 0}))
            .build(),
        AnthropicReply::new().text("noted").build(),
    ])
    .await;
    let setup = || Setup {
        memory_dir: Some(memory.path().to_path_buf()),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup()).await;
    h.turn("remember that I like metric units").await;
    let outcomes: Vec<(String, bool)> = h.tool_results().into_iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        outcomes,
        [
            ("ok".into(), false),
            ("invalid_input".into(), true),
            ("invalid_input".into(), true),
            ("invalid_input".into(), true)
        ]
    );
    let results = last_tool_results(&server.requests()[1].body);
    assert!(
        results[1]["content"].as_str().expect("c").contains("empty"),
        "{results:?}"
    );
    assert!(
        results[2]["content"].as_str().expect("c").contains("not valid"),
        "{results:?}"
    );
    assert!(
        results[3]["content"].as_str().expect("c").contains("limit"),
        "{results:?}"
    );

    // A new process, the same data directory.
    server.push(
        AnthropicReply::new()
            .tool_use("q", "memory_search", json!({"query": "which units does the user like"}))
            .build(),
    );
    server.push(AnthropicReply::new().text("metric").build());
    let mut h = Harness::new(&server, setup()).await;
    h.turn("what units do I like?").await;
    let found = &last_tool_results(&server.requests()[3].body)[0];
    assert!(
        found["content"].as_str().expect("c").contains("metric units"),
        "{found}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notes_are_saved_before_a_compaction() {
    let memory = tempfile::tempdir().expect("tempdir");
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .text("Deploys happen on Thursdays.")
            .usage(900, 20)
            .build(),
        // Turn 2 starts with the note-saving request…
        AnthropicReply::new()
            .tool_use(
                "n",
                "memory_save",
                json!({"text": "Deploys happen on Thursdays.", "tags": ["ops"]}),
            )
            .build(),
        // …then the summary, then the answer.
        AnthropicReply::new().text("SUMMARY: deploy day discussed.").build(),
        AnthropicReply::new().text("ok").build(),
    ])
    .await;
    let setup = Setup {
        context_tokens: 1000,
        memory_dir: Some(memory.path().to_path_buf()),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    h.turn("when do we deploy?").await;
    assert_eq!(h.turn("and what about hotfixes?").await.text, "ok");
    let requests = server.requests();
    assert_eq!(offered(&requests[1].body), ["memory_save"]);
    let store = MemoryStore::open(memory.path()).expect("memory");
    assert_eq!(store.search("deploy", 5).expect("search")[0].tags, ["ops"]);
    assert!(
        requests[3].body["messages"][0]["content"]
            .to_string()
            .contains("SUMMARY")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_failure_brings_back_its_earlier_record_and_fix() {
    let memory = tempfile::tempdir().expect("tempdir");
    let bad = json!({"path": "/workspace/notes.md"});
    let good = json!({"path": "/workspace/notes.txt"});
    let server = ScriptedServer::start(vec![
        AnthropicReply::new().tool_use("a", "read_file", bad.clone()).build(),
        AnthropicReply::new().tool_use("b", "read_file", good.clone()).build(),
        AnthropicReply::new().text("done").build(),
    ])
    .await;
    let setup = || Setup {
        memory_dir: Some(memory.path().to_path_buf()),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup()).await;
    h.turn("read my notes").await;
    let first = &last_tool_results(&server.requests()[1].body)[0];
    assert!(
        !first["content"].as_str().expect("c").contains("Earlier failures"),
        "nothing to recall yet"
    );

    // Another session makes the same mistake.
    server.push(AnthropicReply::new().tool_use("c", "read_file", bad).build());
    server.push(AnthropicReply::new().text("done").build());
    let mut h = Harness::new(&server, setup()).await;
    h.turn("read my notes again").await;
    let again = &last_tool_results(&server.requests()[4].body)[0];
    let content = again["content"].as_str().expect("content");
    assert!(
        content.contains("Earlier failures of this tool with similar input"),
        "{content}"
    );
    assert!(content.contains("notes.txt"), "the fix is named: {content}");
    let failures = FailureStore::open(memory.path())
        .expect("failures")
        .list(Some("read_file"), 10)
        .expect("list");
    assert_eq!(failures.len(), 2);
    assert!(failures[1].fixed_by.as_deref().is_some_and(|f| f.contains("notes.txt")));
}
