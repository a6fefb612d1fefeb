//! Tool selection: the labeled set's test examples (the rest of the set is
//! the benchmark, `cargo bench --bench selection`) pick the tools they
//! need — by words alone most of them, by words and meaning more — and a
//! tool left out is loaded through `list_tools`.

use super::*;
use boram_host::agent::Stop;
use boram_host::agent::select::{MeaningModel, Selector};
use boram_host::llm::ToolDef;
use scripted_llm::anthropic::AnthropicReply;
use serde_json::{Value, json};

fn dataset(file: &str) -> Value {
    let path = super::super::workspace_dir()
        .join("host/benches/data/selection")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("dataset")).expect("dataset JSON")
}

fn meaning() -> MeaningModel {
    MeaningModel::at(&super::super::embedding_model())
}

/// The test split's prompts the selector misses, after checking that each
/// selection sends under a fifth of all schema characters.
fn misses(options: SelectionOptions) -> (Vec<String>, usize) {
    let tools: Vec<ToolDef> = serde_json::from_value(dataset("tools.json")).expect("tool specs");
    let selector = Selector::new(&tools, options);
    let prompts = dataset("prompts.json");
    let tests: Vec<&Value> = prompts
        .as_array()
        .expect("prompts")
        .iter()
        .filter(|p| p["split"] == "test")
        .collect();
    assert!(tests.len() >= 5);
    let mut misses = Vec::new();
    for item in &tests {
        let prompt = item["prompt"].as_str().expect("prompt");
        let selection = selector.select(prompt, &Default::default());
        let needs: Vec<&str> = item["needs"]
            .as_array()
            .expect("needs")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if !needs.iter().all(|n| selection.names.iter().any(|s| s == n)) {
            misses.push(format!("{prompt:?} needs {needs:?}, got {:?}", selection.names));
        }
        assert!(
            selection.schema_chars_sent * 5 < selection.schema_chars_all,
            "{prompt:?} sent too much: {:?}",
            selection.names
        );
    }
    (misses, tests.len())
}

/// Words alone cannot bridge every vocabulary gap ("do I need an
/// umbrella?" shares no word with `weather_forecast`): this guards the
/// share they get right, for machines without the model.
#[test]
fn by_words_selection_picks_most_needed_tools_of_the_labeled_test_examples() {
    let (misses, total) = misses(SelectionOptions::default());
    assert!(misses.len() * 4 <= total, "too many misses:\n{}", misses.join("\n"));
}

/// Meaning bridges gaps words cannot: fewer misses than by words alone,
/// and the umbrella question finds the weather tool.
#[test]
fn by_meaning_and_words_selection_misses_fewer_of_the_labeled_test_examples() {
    let (by_words, _) = misses(SelectionOptions::default());
    let (by_meaning, _) = misses(SelectionOptions {
        meaning: Some(meaning()),
        ..SelectionOptions::default()
    });
    assert!(
        by_meaning.len() < by_words.len(),
        "by meaning:\n{}\nby words:\n{}",
        by_meaning.join("\n"),
        by_words.join("\n")
    );
    assert!(by_words.iter().any(|m| m.contains("umbrella")), "{by_words:?}");
    assert!(!by_meaning.iter().any(|m| m.contains("umbrella")), "{by_meaning:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_left_out_by_selection_is_loaded_through_list_tools() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use(
                "l",
                "list_tools",
                json!({"query": "count words", "load": ["text_stats"]}),
            )
            .build(),
        AnthropicReply::new().text("text_stats is available now").build(),
    ])
    .await;
    let setup = Setup {
        components: super::super::FIRST_PARTY_TOOLS
            .iter()
            .map(|t| super::super::tools_dir().join(format!("{t}.wasm")))
            .collect(),
        selection: Some(SelectionOptions {
            min_tools: 0,
            ..SelectionOptions::default()
        }),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    assert_eq!(
        h.turn("show me what is in /workspace/notes.txt").await.stop,
        Stop::Answered
    );

    let requests = server.requests();
    let first = offered(&requests[0].body);
    assert!(first.contains(&"read_file".to_string()), "{first:?}");
    assert!(first.contains(&"list_tools".to_string()), "{first:?}");
    assert!(!first.contains(&"text_stats".to_string()), "{first:?}");
    assert!(first.len() < super::super::FIRST_PARTY_TOOLS.len(), "{first:?}");
    let listing = &last_tool_results(&requests[1].body)[0];
    assert!(
        listing["content"].as_str().expect("content").contains("text_stats"),
        "{listing}"
    );
    let second = offered(&requests[1].body);
    assert!(
        second.contains(&"text_stats".to_string()),
        "loaded for the next request: {second:?}"
    );
}
