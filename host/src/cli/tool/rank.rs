//! `boram tool rank PROMPT`: how tool selection ranks the loaded tools for
//! a prompt, and which it would offer, with the `[selection]` settings of
//! the config file — for finding out why a tool was (not) offered and for
//! tuning `max_tools`, `min_share` and `meaning_weight`.

use crate::agent::select::Selector;
use crate::agent::tool_def;
use crate::cli::context::GlobalArgs;
use crate::config::model as model_config;
use crate::llm::ToolDef;
use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct RankCommand {
    /// The prompt, as a user would type it.
    prompt: String,
    /// Config file with the `[selection]` settings (default: the user config).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Show every tool, not only the first ten.
    #[arg(long)]
    all: bool,
    /// Print JSON: the ranking (name, score, words, meaning, offered).
    #[arg(long)]
    json: bool,
}

impl RankCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let file = model_config::ConfigToml::load_or_default(self.config.as_deref())
            .map_err(|e| super::super::UsageError(format!("{e:#}")))?;
        let data_dir = global.data_dir();
        let meaning_dir = file.selection.model_dir(&data_dir);
        // Ranked as if selection were on, whatever `enabled` says.
        let mut options = model_config::SelectionToml {
            enabled: None,
            ..file.selection
        }
        .options()
        .unwrap_or_default();
        if let Some((dir, named)) = meaning_dir {
            options.meaning = crate::app::agents::load_meaning(&dir, named)?;
        }
        let registry = global.app(None).registry().await?;
        let tools: Vec<ToolDef> = registry.tools().map(|(spec, _)| tool_def(spec)).collect();
        if tools.is_empty() {
            println!("no tools loaded from {}", global.tools_dir().display());
            return Ok(ExitCode::SUCCESS);
        }
        let model_dir = options.meaning.as_ref().map(|m| m.dir().display().to_string());
        let selector = Selector::new(&tools, options);
        let by_meaning = model_dir.filter(|_| selector.by_meaning());
        let offered = selector.select(&self.prompt, &BTreeSet::new()).names;
        let ranking = selector.explain(&self.prompt);
        if self.json {
            let rows: Vec<serde_json::Value> = ranking
                .iter()
                .map(|r| {
                    let mut row = serde_json::to_value(r).unwrap_or_default();
                    row["offered"] = offered.iter().any(|o| o == r.name).into();
                    row
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(ExitCode::SUCCESS);
        }
        match &by_meaning {
            Some(dir) => println!("ranked by meaning and words (model {dir})"),
            None => println!("ranked by words only (`boram model fetch` adds ranking by meaning)"),
        }
        println!(
            "{:>3}  {:<28} {:>6} {:>6} {:>8}  OFFERED",
            "#", "TOOL", "SCORE", "WORDS", "MEANING"
        );
        let shown = if self.all { ranking.len() } else { ranking.len().min(10) };
        for (i, r) in ranking.iter().take(shown).enumerate() {
            println!(
                "{:>3}  {:<28} {:>6.3} {:>6.2} {:>8}  {}",
                i + 1,
                r.name,
                r.score,
                r.words,
                r.meaning.map_or("-".to_string(), |m| format!("{m:.3}")),
                if offered.iter().any(|o| o == r.name) { "yes" } else { "" }
            );
        }
        if shown < ranking.len() {
            println!("({} more; --all shows them)", ranking.len() - shown);
        }
        Ok(ExitCode::SUCCESS)
    }
}
