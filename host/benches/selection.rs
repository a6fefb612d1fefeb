//! Tool-selection benchmark: over the labeled set in
//! `host/benches/data/selection/` (tool specs and prompts, each with the
//! tools it needs), how many schema characters selection saves and how
//! often every needed tool is offered (recall), for the default settings
//! and a few others — by words alone (BM25) and by words and meaning (with
//! the all-MiniLM-L6-v2 embedding model, installed into `target/models` on
//! the first run). `cargo bench -p boram-host --bench selection`.
//!
//! Schema characters are the JSON of the tool definitions in a request;
//! "sent" includes the built-in `list_tools`, which selection always adds.

use boram_host::agent::select::{MeaningModel, SelectionOptions, Selector, schema_chars};
use boram_host::llm::ToolDef;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Instant;

#[derive(Deserialize)]
struct Item {
    prompt: String,
    needs: Vec<String>,
    split: String,
}

#[tokio::main]
async fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/selection");
    let model_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/models/all-MiniLM-L6-v2");
    if !model_dir.exists() {
        eprintln!("installing the embedding model into {}", model_dir.display());
        boram_host::embed::fetch::fetch(&model_dir, None, &mut |_, _| {})
            .await
            .expect("model fetch");
    }
    let started = Instant::now();
    let meaning = fresh(&model_dir);
    let load_ms = started.elapsed().as_millis();
    let tools: Vec<ToolDef> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tools.json")).expect("tools.json"))
            .expect("tool specs");
    let items: Vec<Item> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("prompts.json")).expect("prompts.json"))
            .expect("prompts");
    let list_tools = schema_chars(&ToolDef {
        name: "list_tools".into(),
        description: "List tools that exist but were not offered to you in this request. Give `query` to find ones \
            for a task; name tools in `load` to have them offered from your next request on."
            .into(),
        input_schema: json!({"type": "object", "properties": {"query": {"type": "string"}, "load": {"type": "array"}}}),
    });
    println!(
        "{} tools, {} prompts ({} needing two tools), all schemas {} characters\n",
        tools.len(),
        items.len(),
        items.iter().filter(|i| i.needs.len() > 1).count(),
        tools.iter().map(schema_chars).sum::<usize>()
    );
    let started = Instant::now();
    Selector::new(
        &tools,
        SelectionOptions {
            meaning: Some(meaning.clone()),
            ..SelectionOptions::default()
        },
    );
    println!(
        "embedding model: loads in {load_ms} ms, embeds the {} tool descriptions in {} ms\n",
        tools.len(),
        started.elapsed().as_millis()
    );
    println!(
        "| ranking | max_tools | min_share | schema chars saved | recall (all needed tools offered) | needed tools offered | µs/selection |"
    );
    println!("|---|---|---|---|---|---|---|");
    let defaults = SelectionOptions::default();
    let mut settings = vec![(None, defaults.max_tools, defaults.min_share)];
    settings.extend([(None, 3, 0.0), (None, 3, 0.5), (None, 5, 0.0), (None, 8, 0.0)]);
    for weight in [0.5, 0.6, 0.7] {
        for (max_tools, min_share) in [(3, 0.0), (3, 0.3), (3, 0.5), (4, 0.5), (4, 0.6)] {
            settings.push((Some(weight), max_tools, min_share));
        }
    }
    for (weight, max_tools, min_share) in settings {
        let options = SelectionOptions {
            max_tools,
            min_share,
            min_tools: 0,
            always: Vec::new(),
            // A fresh model per row: its memory of embedded prompts would
            // make later rows look faster than a first sight of a prompt.
            meaning: weight.map(|_| fresh(&model_dir)),
            meaning_weight: weight.unwrap_or_default(),
        };
        let report = evaluate(&tools, &items, options, list_tools);
        let is_default = (max_tools, min_share) == (defaults.max_tools, defaults.min_share)
            && weight.is_none_or(|w| w == defaults.meaning_weight);
        let marker = if is_default { " (default)" } else { "" };
        let ranking = weight.map_or("words".to_string(), |w| format!("meaning {w} + words"));
        println!(
            "| {ranking} | {max_tools}{marker} | {min_share} | {:.1} % | {:.1} % ({}/{}) | {:.1} % | {:.1} |",
            report.saved * 100.0,
            report.recall * 100.0,
            report.complete,
            items.len(),
            report.tool_recall * 100.0,
            report.micros
        );
    }
    println!("\nmisses with the default settings, with the model:");
    let selector = Selector::new(
        &tools,
        SelectionOptions {
            min_tools: 0,
            meaning: Some(meaning),
            ..SelectionOptions::default()
        },
    );
    for item in &items {
        let names = selector.select(&item.prompt, &BTreeSet::new()).names;
        let missing: Vec<&String> = item.needs.iter().filter(|n| !names.contains(n)).collect();
        if !missing.is_empty() {
            println!(
                "- [{}] {:?}: needs {missing:?}, offered {names:?}",
                item.split,
                item.prompt.replace('\n', " ")
            );
        }
    }
}

fn fresh(model_dir: &std::path::Path) -> MeaningModel {
    MeaningModel::loaded(std::sync::Arc::new(
        boram_host::embed::Embedder::load(model_dir).expect("embedding model"),
    ))
}

struct Report {
    saved: f64,
    recall: f64,
    complete: usize,
    tool_recall: f64,
    micros: f64,
}

fn evaluate(tools: &[ToolDef], items: &[Item], options: SelectionOptions, list_tools_chars: usize) -> Report {
    let selector = Selector::new(tools, options);
    let (mut sent, mut all, mut complete, mut needed, mut offered) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let started = Instant::now();
    for item in items {
        let selection = selector.select(&item.prompt, &BTreeSet::new());
        sent += selection.schema_chars_sent + list_tools_chars;
        all += selection.schema_chars_all;
        let hits = item.needs.iter().filter(|n| selection.names.contains(n)).count();
        needed += item.needs.len();
        offered += hits;
        if hits == item.needs.len() {
            complete += 1;
        }
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / items.len() as f64;
    Report {
        saved: 1.0 - sent as f64 / all as f64,
        recall: complete as f64 / items.len() as f64,
        complete,
        tool_recall: offered as f64 / needed as f64,
        micros,
    }
}
