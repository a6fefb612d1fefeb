//! Options shared by `boram run` and `boram chat`, and building an
//! [`Agent`] from them: the tool host (policy, tools, audit), the model
//! (config file < environment < flags, or a recording to replay), the
//! gateway with its usage log and recorder, and the approval mode.

use crate::agent::approval::LinePrompter;
use crate::agent::delegate::Delegator;
use crate::agent::profiles::{Profile, Profiles};
use crate::agent::{Agent, AgentOptions, Approvals, DEFAULT_SYSTEM_PROMPT, PromptMode};
use crate::audit::JsonlFile;
use crate::cli::UsageError;
use crate::cli::context::GlobalArgs;
use crate::config::{self, model as model_config};
use crate::llm::record::{Recorder, Replay};
use crate::llm::{Gateway, GatewayOptions, PriceTable, Provider, ProviderKind, UsageObserver};
use crate::memory::{MemoryStore, Notes};
use crate::registry::ToolHost;
use crate::session::Session;
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
    /// Builds the agent with a new session, or resumes `resume` (`last` or an id).
    pub async fn agent(&self, global: &GlobalArgs, resume: Option<&str>) -> anyhow::Result<Agent> {
        let (host, place_line, deferred) = global
            .agent_tool_host(self.config.as_deref(), self.workspace.as_deref())
            .await?;
        eprintln!("{place_line}");
        let host = Arc::new(host);
        // `cli::main` lets these finish before the process exits.
        crate::registry::background::spawn(host.clone(), deferred);
        let data_dir = global.data_dir();
        let kit = self.kit(&data_dir)?;
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
            data_dir: &data_dir,
            tools_dir: &global.tools_dir(),
            workspace: workspace.as_deref(),
            shared: None,
        };
        kit.agent(place, mode, resume, recorder, None)
    }

    /// The model this command talks to, ready to build agents with.
    pub fn kit(&self, data_dir: &std::path::Path) -> anyhow::Result<AgentKit> {
        let mut file = self.config_file()?;
        let profiles = Profiles::new(&std::mem::take(&mut file.profiles));
        let meaning_dir = file.selection.model_dir(data_dir);
        let (provider, model, mut settings) = self.model(file, data_dir)?;
        match (&mut settings.selection, meaning_dir) {
            (Some(selection), Some((dir, named))) => selection.meaning = load_meaning(&dir, named)?,
            (Some(_), None) => {
                tracing::info!("tool selection ranks by words only (`boram model fetch` adds ranking by meaning)")
            }
            (None, _) => {}
        }
        let profile = match &self.profile {
            Some(name) => Some(profiles.require(name).map_err(UsageError)?.clone()),
            None => None,
        };
        let gateway = Gateway::new(provider, settings.gateway.clone(), settings.prices.clone());
        Ok(AgentKit {
            gateway,
            model,
            settings,
            profiles,
            profile,
        })
    }

    /// The config file named by `--config`, or the default one if it exists.
    pub fn config_file(&self) -> anyhow::Result<model_config::ConfigToml> {
        Ok(model_config::ConfigToml::load_or_default(self.config.as_deref())
            .map_err(|e| UsageError(format!("{e:#}")))?)
    }

    /// The provider, the model name, and the rest of the model settings.
    fn model(
        &self,
        file: model_config::ConfigToml,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<(Arc<dyn Provider>, String, model_config::ModelConfig)> {
        if let Some(path) = &self.replay {
            let replay = Replay::open(path).map_err(|e| UsageError(e.to_string()))?;
            let settings = model_config::ModelConfig {
                endpoint: crate::llm::Endpoint {
                    kind: ProviderKind::Replay,
                    base_url: String::new(),
                    api_key: None,
                    max_event_bytes: crate::llm::DEFAULT_MAX_EVENT_BYTES,
                },
                model: self.model.clone().unwrap_or_else(|| "replay".into()),
                max_tokens: model_config::DEFAULT_MAX_TOKENS,
                context_tokens: file
                    .model
                    .context_tokens
                    .unwrap_or(model_config::DEFAULT_ANTHROPIC_CONTEXT),
                gateway: GatewayOptions::default(),
                prices: PriceTable::new(file.prices),
                system_prompt: file.agent.system_prompt,
                selection: file.selection.options(),
            };
            return Ok((Arc::new(replay), settings.model.clone(), settings));
        }
        let flags = model_config::ModelFlags {
            provider: self.provider,
            model: self.model.clone(),
            base_url: self.base_url.clone(),
        };
        let settings = model_config::resolve(file, &flags, &|name| std::env::var(name).ok()).map_err(UsageError)?;
        let provider = crate::llm::connect(&settings.endpoint)?;
        tracing::info!(provider = %settings.endpoint.kind, model = %settings.model, url = %settings.endpoint.base_url, data_dir = %data_dir.display(), "model");
        Ok((provider, settings.model.clone(), settings))
    }
}

/// Where an agent works: its tools, its data directory, and the workspace
/// whose `AGENTS.md` / `BORAM.md` join its system prompt.
pub struct AgentPlace<'a> {
    pub host: Arc<ToolHost>,
    pub data_dir: &'a std::path::Path,
    pub tools_dir: &'a std::path::Path,
    pub workspace: Option<&'a std::path::Path>,
    /// Cluster mode: the user's notes and remembered approvals are in the
    /// shared store, and a copy of each `usage.jsonl` line goes there;
    /// `None`: the data directory's `memory.db` and `approvals.json`.
    pub shared: Option<crate::store::postgres::SharedUser>,
}

/// Files in a workspace's root whose text joins the system prompt, as
/// coding agents read theirs.
pub const INSTRUCTION_FILES: [&str; 2] = ["AGENTS.md", "BORAM.md"];
/// At most this much of each instruction file is used.
const MAX_INSTRUCTIONS_BYTES: usize = 32 << 10;

/// The system prompt's addition from `dir`'s instruction files, if any.
pub fn workspace_instructions(dir: &std::path::Path) -> Option<String> {
    let mut parts = Vec::new();
    for name in INSTRUCTION_FILES {
        let Ok(bytes) = std::fs::read(dir.join(name)) else {
            continue;
        };
        let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_INSTRUCTIONS_BYTES)]).into_owned();
        if bytes.len() > MAX_INSTRUCTIONS_BYTES {
            text.push_str("\n[… cut at 32 KiB]");
        }
        parts.push(format!(
            "Instructions from {name} in the workspace (/workspace), written by the user:\n{}",
            text.trim()
        ));
    }
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// A resolved model (provider, name, settings) that builds agents: one per
/// CLI session, one per run in `boram serve`.
pub struct AgentKit {
    /// The process's one gateway to the provider: every agent built here
    /// gets a sibling sharing its queue and circuit breaker.
    gateway: Gateway,
    model: String,
    settings: model_config::ModelConfig,
    profiles: Profiles,
    /// `--profile`: the top-level agent runs as this profile.
    profile: Option<Profile>,
}

impl AgentKit {
    /// A gateway to this kit's model (for calls outside an agent), sharing
    /// the queue and breaker of every agent's.
    pub fn gateway(&self) -> Gateway {
        self.gateway.sibling()
    }

    pub fn model_name(&self) -> &str {
        &self.model
    }

    /// An agent over `place` with a new session (or `resume`d), its usage
    /// logged to the place's `usage.jsonl` and reported to `observer`.
    pub fn agent(
        &self,
        place: AgentPlace<'_>,
        mode: PromptMode,
        resume: Option<&str>,
        recorder: Option<Recorder>,
        observer: Option<UsageObserver>,
    ) -> anyhow::Result<Agent> {
        let session = match resume {
            Some(wanted) => crate::session::SessionChoice::Resume(wanted),
            None => crate::session::SessionChoice::New,
        };
        self.build(self.profile.as_ref(), place, mode, session, recorder, observer)
    }

    /// A new agent running as profile `name` (`None`: this kit's own),
    /// e.g. for a scheduled run.
    pub fn agent_as(
        &self,
        name: Option<&str>,
        place: AgentPlace<'_>,
        mode: PromptMode,
        observer: Option<UsageObserver>,
    ) -> anyhow::Result<Agent> {
        self.agent_in(name, place, mode, crate::session::SessionChoice::New, observer)
    }

    /// [`Self::agent_as`] in a given session (a queued run's, in the
    /// shared store): a new one gets its first record, one with `records`
    /// is resumed from them.
    pub fn agent_in(
        &self,
        name: Option<&str>,
        place: AgentPlace<'_>,
        mode: PromptMode,
        session: crate::session::SessionChoice<'_>,
        observer: Option<UsageObserver>,
    ) -> anyhow::Result<Agent> {
        let profile = self.profile_named(name)?;
        self.build(profile, place, mode, session, None, observer)
    }

    /// Profile `name`, or this kit's own for `None`.
    fn profile_named(&self, name: Option<&str>) -> anyhow::Result<Option<&Profile>> {
        Ok(match name {
            Some(name) => Some(self.profiles.require(name).map_err(UsageError)?),
            None => self.profile.as_ref(),
        })
    }

    /// The provider and model an agent of profile `name` talks to.
    pub fn model_of(&self, name: Option<&str>) -> anyhow::Result<(String, String)> {
        let profile = self.profile_named(name)?;
        let model = profile
            .and_then(|p| p.model.clone())
            .unwrap_or_else(|| self.model.clone());
        Ok((self.gateway.provider_kind().to_string(), model))
    }

    fn build(
        &self,
        profile: Option<&Profile>,
        place: AgentPlace<'_>,
        mode: PromptMode,
        session: crate::session::SessionChoice<'_>,
        recorder: Option<Recorder>,
        observer: Option<UsageObserver>,
    ) -> anyhow::Result<Agent> {
        let AgentPlace {
            host,
            data_dir,
            tools_dir,
            workspace,
            shared,
        } = place;
        let settings = &self.settings;
        let mut gateway = self.gateway.sibling().with_usage_log(
            JsonlFile::open(&config::usage_log(data_dir))
                .context("cannot open usage.jsonl")?
                .with_copy(shared.as_ref().map(|s| s.usage_copy())),
        );
        if let Some(recorder) = recorder {
            gateway = gateway.with_recorder(recorder);
        }
        if let Some(observer) = observer {
            gateway = gateway.with_usage_observer(observer);
        }
        let approvals = Arc::new(match &shared {
            Some(shared) => Approvals::with_book(mode, shared.approvals()),
            None => Approvals::new(mode, data_dir),
        });
        let mut options = AgentOptions {
            system_prompt: settings
                .system_prompt
                .clone()
                .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_string()),
            model: self.model.clone(),
            max_tokens: settings.max_tokens,
            context_tokens: settings.context_tokens,
            limits: host.policy().agent,
            selection: settings.selection.clone(),
            tools: None,
        };
        if let Some(profile) = profile {
            if let Some(prompt) = &profile.system_prompt {
                options.system_prompt = prompt.clone();
            }
            if let Some(model) = &profile.model {
                options.model = model.clone();
            }
            options.tools = profile.narrow(None);
            options.limits = profile.limits(options.limits);
        }
        if let Some(instructions) = workspace.and_then(workspace_instructions) {
            options.system_prompt = format!("{}\n\n{instructions}", options.system_prompt);
        }
        refuse_unpriced_budget(&gateway, &options)?;
        let sessions = config::sessions_dir(data_dir);
        let gateway = Arc::new(gateway);
        let provider_name = gateway.provider_kind().to_string();
        let options_for_children = options.clone();
        let agent_host = host.clone();
        let agent_approvals = approvals.clone();
        let agent = match session {
            crate::session::SessionChoice::Given { session, records } if records.is_empty() => {
                session
                    .start(&provider_name, &options.model)
                    .with_context(|| format!("cannot write {}", session.location()))?;
                Agent::new(gateway.clone(), agent_host, agent_approvals, options, session)
            }
            crate::session::SessionChoice::Given { session, records } => {
                Agent::new(gateway.clone(), agent_host, agent_approvals, options, session).resume(&records)
            }
            crate::session::SessionChoice::New => {
                let session = Session::create(&sessions, &provider_name, &self.model)
                    .with_context(|| format!("cannot create a session in {}", sessions.display()))?;
                Agent::new(gateway.clone(), agent_host, agent_approvals, options, session)
            }
            crate::session::SessionChoice::Resume(wanted) => {
                let id = crate::session::resolve_id(&sessions, wanted).map_err(|e| UsageError(e.to_string()))?;
                // An id printed by a schedule or a service run lives in that user's directory.
                let dir = crate::session::find_dir(data_dir, &id).unwrap_or_else(|| sessions.clone());
                let (session, records) = Session::open(&dir, &id).map_err(|e| UsageError(e.to_string()))?;
                Agent::new(gateway.clone(), agent_host, agent_approvals, options, session).resume(&records)
            }
        };
        let delegator = Delegator::new(
            gateway.clone(),
            host.clone(),
            approvals.clone(),
            options_for_children,
            self.profiles.clone(),
            sessions.clone(),
            0,
        );
        let agent = with_tool_factory(agent.with_delegator(Arc::new(delegator)), tools_dir, data_dir);
        Ok(with_memory(agent, data_dir, shared.map(|s| s.notes())))
    }
}

/// A `budget_usd` the policy sets cannot be kept for a model without a
/// price (its cost would count as zero): refuse, saying how to add one.
fn refuse_unpriced_budget(gateway: &Gateway, options: &AgentOptions) -> anyhow::Result<()> {
    let limits = &options.limits;
    if !limits.budget_set || gateway.provider_kind() == ProviderKind::Replay {
        return Ok(());
    }
    if gateway.prices().price(&options.model).is_some() {
        return Ok(());
    }
    Err(UsageError(format!(
        "budget_usd = {} is set, but model `{}` has no price, so its spend cannot be counted; \
         add its price (US$ per million tokens) to the config file:\n\n    [prices.\"{}\"]\n    input = 3.0\n    output = 15.0\n\n\
         or remove budget_usd from the policy",
        limits.budget_usd, options.model, options.model
    ))
    .into())
}

/// Gives the agent its memory and failure store from `memory.db`; a broken
/// database costs the memory tools, not the session.
/// (The failure store stays in the data directory even with shared notes:
/// it is this machine's record of tool trouble.)
fn with_memory(agent: Agent, data_dir: &std::path::Path, shared_notes: Option<Notes>) -> Agent {
    match MemoryStore::open(data_dir) {
        Ok(memory) => {
            let failures = Arc::new(memory.failures());
            let notes = shared_notes.unwrap_or_else(|| Notes::Local(Arc::new(memory)));
            agent.with_memory(Arc::new(notes), failures)
        }
        Err(e) => {
            eprintln!("warning: memory is off for this session: {e}");
            agent
        }
    }
}

/// Offers `create_tool` unless the policy denies it or this binary's
/// checkout (with the SDK the created crates build against) is gone.
fn with_tool_factory(agent: Agent, tools_dir: &std::path::Path, data_dir: &std::path::Path) -> Agent {
    let denied = agent
        .tool_host()
        .policy()
        .tool(crate::agent::builtin::CREATE_TOOL)
        .approval
        == crate::policy::Approval::Deny;
    if denied || !crate::authoring::sdk_dir().join("Cargo.toml").exists() {
        return agent;
    }
    let factory = crate::authoring::factory::ToolFactory::new(tools_dir, data_dir);
    agent.with_tool_factory(Arc::new(factory))
}

/// The embedding model for tool selection. A model the config names is
/// loaded now, so that a broken one is a usage error at once; the default
/// one is loaded when a selector first needs it (a catalogue at or below
/// `min_tools` never does) and, when broken, only logged — ranking by words
/// goes on.
pub(crate) fn load_meaning(
    dir: &std::path::Path,
    named: bool,
) -> anyhow::Result<Option<crate::agent::select::MeaningModel>> {
    let model = if named {
        let embedder = crate::embed::shared(dir).map_err(|e| UsageError(format!("[selection] model: {e:#}")))?;
        crate::agent::select::MeaningModel::loaded(embedder)
    } else {
        crate::agent::select::MeaningModel::at(dir)
    };
    tracing::info!(model = %dir.display(), "tool selection ranks by meaning and words");
    Ok(Some(model))
}
