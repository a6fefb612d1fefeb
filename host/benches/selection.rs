//! Tool-selection benchmark: over the labeled set in
//! `host/benches/data/selection/` (tool specs and prompts, each with the
//! tools it needs), how many schema characters selection saves and how
//! often every needed tool is offered (recall), for the default settings
//! and a few others. `cargo bench -p boram-host --bench selection`.
//!
//! Schema characters are the JSON of the tool definitions in a request;
//! "sent" includes the built-in `list_tools`, which selection always adds.

use boram_host::agent::select::{SelectionOptions, Selector, schema_chars};
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

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/selection");
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
    println!(
        "| max_tools | min_share | schema chars saved | recall (all needed tools offered) | needed tools offered | µs/selection |"
    );
    println!("|---|---|---|---|---|---|");
    let defaults = SelectionOptions::default();
    let mut settings = vec![(defaults.max_tools, defaults.min_share)];
    settings.extend([
        (1, 0.0),
        (2, 0.0),
        (3, 0.0),
        (4, 0.0),
        (5, 0.0),
        (6, 0.0),
        (8, 0.0),
        (4, 0.5),
        (5, 0.3),
    ]);
    for (max_tools, min_share) in settings {
        let options = SelectionOptions {
            max_tools,
            min_share,
            min_tools: 0,
            always: Vec::new(),
        };
        let report = evaluate(&tools, &items, options, list_tools);
        let marker = if (max_tools, min_share) == (defaults.max_tools, defaults.min_share) {
            " (default)"
        } else {
            ""
        };
        println!(
            "| {max_tools}{marker} | {min_share} | {:.1} % | {:.1} % ({}/{}) | {:.1} % | {:.1} |",
            report.saved * 100.0,
            report.recall * 100.0,
            report.complete,
            items.len(),
            report.tool_recall * 100.0,
            report.micros
        );
    }
    println!("\nmisses with the default settings:");
    let selector = Selector::new(
        &tools,
        SelectionOptions {
            min_tools: 0,
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
