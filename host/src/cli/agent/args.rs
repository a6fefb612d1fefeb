//! Options shared by `boram run`, `chat`, `serve` and `schedule run-now`:
//! which model (config file < environment < flags, or a recording to
//! replay), the profile, the workspace and the approval mode. The agent
//! itself is built by [`crate::app`].

use crate::agent::approval::LinePrompter;
use crate::agent::{Agent, PromptMode};
use crate::app::{AgentKit, AgentPlace, App, ModelChoice};
use crate::cli::context::GlobalArgs;
use crate::config::model as model_config;
use crate::llm::ProviderKind;
use crate::llm::record::Recorder;
use anyhow::Context as _;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Model API: `anthropic` or `openai` (any OpenAI-compatible server).
    /// Default: from the config file, `BORAM_PROVIDER`, or whichever API key is set.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<ProviderKind>,

    /// Model name, e.g. `claude-sonnet-4-5`, `gpt-4o-mini`, `llama3.2`. Env: `BORAM_MODEL`.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,

    /// API base URL, e.g. `http://localhost:11434/v1` for Ollama. Alone, it
    /// selects the OpenAI-compatible API.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Config file (model, gateway, prices, system prompt). Default:
    /// ~/.config/boram/config.toml when it exists.
    #[arg(long, env = model_config::CONFIG_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Save every model response to FILE (JSONL) for `--replay`.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    pub record: Option<PathBuf>,

    /// Serve model responses from a recording instead of calling a model:
    /// offline and deterministic. Tools still run for real.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,

    /// Approve tools whose policy says `prompt` without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Run as this agent profile: its system prompt, model, tools and limits
    /// (`general`, `research`, `ops`, `builder`, or `[profiles.NAME]` in the config).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// The directory the agent works on, seen by tools as /workspace: what
    /// `${workspace}` in the policy stands for. For chat and run without
    /// --policy, the built-in workspace policy grants it (read tools read
    /// it, write_file writes after asking, no network); default: the
    /// current directory. For serve: the single user's workspace when
    /// `[[serve.users]]` is not configured.
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

impl AgentArgs {
    /// The model these flags choose.
    pub fn choice(&self) -> ModelChoice {
        ModelChoice {
            provider: self.provider,
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            config: self.config.clone(),
            replay: self.replay.clone(),
            profile: self.profile.clone(),
        }
    }

    /// The app of this command (its `--config`).
    pub fn app(&self, global: &GlobalArgs) -> App {
        global.app(self.config.as_deref())
    }

    /// Builds the agent with a new session, or resumes `resume` (`last` or an id).
    pub async fn agent(&self, global: &GlobalArgs, resume: Option<&str>) -> anyhow::Result<Agent> {
        let app = self.app(global);
        let tools = app.agent_tools(self.workspace.as_deref()).await?;
        eprintln!("{}", tools.place_line);
        let host = Arc::new(tools.host);
        // `cli::main` lets these finish before the process exits.
        crate::registry::background::spawn(host.clone(), tools.deferred);
        let kit = self.kit(&app.data_dir)?;
        let recorder = match &self.record {
            Some(path) => Some(
                Recorder::create(path).with_context(|| format!("cannot create the recording {}", path.display()))?,
            ),
            None => None,
        };
        let mode = if self.yes {
            PromptMode::Unattended { yes: true }
        } else if std::io::stdin().is_terminal() {
            PromptMode::Ask(Arc::new(LinePrompter::terminal()))
        } else {
            PromptMode::Unattended { yes: false }
        };
        let here = std::env::current_dir().ok();
        let workspace = self.workspace.clone().or(here);
        let place = AgentPlace {
            host,
            data_dir: &app.data_dir,
            tools_dir: &app.tools_dir,
            workspace: workspace.as_deref(),
            shared: None,
        };
        kit.agent(place, mode, resume, recorder, None)
    }

    /// The model this command talks to, ready to build agents with.
    pub fn kit(&self, data_dir: &std::path::Path) -> anyhow::Result<AgentKit> {
        AgentKit::open(&self.choice(), data_dir)
    }

    /// The config file named by `--config`, or the default one if it exists.
    pub fn config_file(&self) -> anyhow::Result<model_config::ConfigToml> {
        self.choice().config_file()
    }
}
