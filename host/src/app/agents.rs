//! Building agents: a [`ModelChoice`] (the command's model flags and
//! config file, or a recording to replay) resolves into an [`AgentKit`]
//! (the provider, one gateway with its queue and circuit breaker, the
//! profiles), which builds an [`Agent`] for a place ([`AgentPlace`]: tool
//! host, data directory, workspace, shared store) with what it gets beyond
//! its tools ([`Extras`]: memory, `create_tool`, `delegate`).
//!
//! `boram run` and `chat`, scheduled runs, the service's runs (in their
//! user's place) and the tests all build their agents here.

use super::UsageError;
use crate::agent::delegate::Delegator;
use crate::agent::profiles::{Profile, Profiles};
use crate::agent::{Agent, AgentOptions, Approvals, DEFAULT_SYSTEM_PROMPT, PromptMode};
use crate::audit::JsonlFile;
use crate::config::{self, model as model_config};
use crate::llm::record::{Recorder, Replay};
use crate::llm::{Gateway, GatewayOptions, PriceTable, Provider, ProviderKind, UsageObserver};
use crate::memory::{MemoryStore, Notes};
use crate::registry::ToolHost;
use crate::session::{Session, SessionChoice};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which model a command talks to: flags over the environment over the
/// config file, or a recording to replay.
#[derive(Debug, Clone, Default)]
pub struct ModelChoice {
    /// `anthropic` or `openai`; default from the config, `BORAM_PROVIDER`
    /// or whichever API key is set.
    pub provider: Option<ProviderKind>,
    pub model: Option<String>,
    /// Alone, it selects the OpenAI-compatible API.
    pub base_url: Option<String>,
    /// The config file; `None`: `BORAM_CONFIG` or the default one.
    pub config: Option<PathBuf>,
    /// Model replies come from this recording instead of a model.
    pub replay: Option<PathBuf>,
    /// The top-level agent runs as this profile.
    pub profile: Option<String>,
}

impl ModelChoice {
    /// The config file named, or the default one if it exists.
    pub fn config_file(&self) -> anyhow::Result<model_config::ConfigToml> {
        Ok(model_config::ConfigToml::load_or_default(self.config.as_deref())
            .map_err(|e| UsageError(format!("{e:#}")))?)
    }

    /// The provider, the model name, and the rest of the model settings.
    fn resolve(
        &self,
        file: model_config::ConfigToml,
        data_dir: &Path,
    ) -> anyhow::Result<(Arc<dyn Provider>, model_config::ModelConfig)> {
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
            return Ok((Arc::new(replay), settings));
        }
        let flags = model_config::ModelFlags {
            provider: self.provider,
            model: self.model.clone(),
            base_url: self.base_url.clone(),
        };
        let settings = model_config::resolve(file, &flags, &|name| std::env::var(name).ok()).map_err(UsageError)?;
        let provider = crate::llm::connect(&settings.endpoint)?;
        tracing::info!(provider = %settings.endpoint.kind, model = %settings.model, url = %settings.endpoint.base_url, data_dir = %data_dir.display(), "model");
        Ok((provider, settings))
    }
}

/// Where an agent works: its tools, its data directory, and the workspace
/// whose `AGENTS.md` / `BORAM.md` join its system prompt.
pub struct AgentPlace<'a> {
    pub host: Arc<ToolHost>,
    pub data_dir: &'a Path,
    /// Where `create_tool` puts the tools it builds.
    pub tools_dir: &'a Path,
    pub workspace: Option<&'a Path>,
    /// Cluster mode: the user's notes and remembered approvals are in the
    /// shared store, and a copy of each `usage.jsonl` line goes there;
    /// `None`: the data directory's `memory.db` and `approvals.json`.
    pub shared: Option<crate::store::postgres::SharedUser>,
}

/// Where an agent's long-term memory and failure store live.
#[derive(Debug, Clone)]
pub enum MemoryAt {
    /// `memory.db` in the place's data directory (or the shared store's
    /// notes in cluster mode).
    DataDir,
    /// `memory.db` in this directory.
    Dir(PathBuf),
    /// No memory tools.
    Off,
}

/// What an agent gets beyond its tools and model. The CLI and the service
/// give every agent all of it ([`Extras::default`]); a test or a bench
/// turns off what it does not measure.
#[derive(Debug, Clone)]
pub struct Extras {
    pub memory: MemoryAt,
    /// `create_tool`, unless the policy denies it or the SDK is gone.
    pub tool_factory: bool,
    /// `delegate` to the kit's profiles.
    pub delegation: bool,
}

impl Default for Extras {
    fn default() -> Self {
        Self {
            memory: MemoryAt::DataDir,
            tool_factory: true,
            delegation: true,
        }
    }
}

impl Extras {
    /// Only the tools of the place and the model: no memory, no
    /// `create_tool`, no `delegate`.
    pub fn none() -> Self {
        Self {
            memory: MemoryAt::Off,
            tool_factory: false,
            delegation: false,
        }
    }
}

/// Files in a workspace's root whose text joins the system prompt, as
/// coding agents read theirs.
pub const INSTRUCTION_FILES: [&str; 2] = ["AGENTS.md", "BORAM.md"];
/// At most this much of each instruction file is used.
const MAX_INSTRUCTIONS_BYTES: usize = 32 << 10;

/// The system prompt's addition from `dir`'s instruction files, if any.
fn workspace_instructions(dir: &Path) -> Option<String> {
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
    settings: model_config::ModelConfig,
    profiles: Profiles,
    /// `--profile`: the top-level agent runs as this profile.
    profile: Option<Profile>,
    extras: Extras,
}

impl AgentKit {
    /// The model `choice` names, with the config file's profiles and
    /// selection settings; `data_dir` holds the embedding model.
    pub fn open(choice: &ModelChoice, data_dir: &Path) -> anyhow::Result<Self> {
        let mut file = choice.config_file()?;
        let profiles = Profiles::new(&std::mem::take(&mut file.profiles));
        let meaning_dir = file.selection.model_dir(data_dir);
        let (provider, mut settings) = choice.resolve(file, data_dir)?;
        match (&mut settings.selection, meaning_dir) {
            (Some(selection), Some((dir, named))) => selection.meaning = load_meaning(&dir, named)?,
            (Some(_), None) => {
                tracing::info!("tool selection ranks by words only (`boram model fetch` adds ranking by meaning)")
            }
            (None, _) => {}
        }
        let profile = match &choice.profile {
            Some(name) => Some(profiles.require(name).map_err(UsageError)?.clone()),
            None => None,
        };
        let gateway = Gateway::new(provider, settings.gateway.clone(), settings.prices.clone());
        Ok(Self {
            gateway,
            settings,
            profiles,
            profile,
            extras: Extras::default(),
        })
    }

    /// A kit over an already connected `gateway` (tests and benches, which
    /// point it at a scripted server), with `settings` for its agents.
    pub fn with_gateway(gateway: Gateway, settings: model_config::ModelConfig, profiles: Profiles) -> Self {
        Self {
            gateway,
            settings,
            profiles,
            profile: None,
            extras: Extras::default(),
        }
    }

    /// Agents built from now on get `extras`.
    pub fn with_extras(mut self, extras: Extras) -> Self {
        self.extras = extras;
        self
    }

    /// A gateway to this kit's model (for calls outside an agent), sharing
    /// the queue and breaker of every agent's.
    pub fn gateway(&self) -> Gateway {
        self.gateway.sibling()
    }

    pub fn model_name(&self) -> &str {
        &self.settings.model
    }

    /// An agent over `place` with a new session (or `resume`d: `last` or
    /// an id), its usage logged to the place's `usage.jsonl` and reported
    /// to `observer`.
    pub fn agent(
        &self,
        place: AgentPlace<'_>,
        mode: PromptMode,
        resume: Option<&str>,
        recorder: Option<Recorder>,
        observer: Option<UsageObserver>,
    ) -> anyhow::Result<Agent> {
        let session = match resume {
            Some(wanted) => SessionChoice::Resume(wanted),
            None => SessionChoice::New,
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
        self.agent_in(name, place, mode, SessionChoice::New, observer)
    }

    /// [`Self::agent_as`] in a given session (a queued run's): a new one
    /// gets its first record, one with `records` is resumed from them.
    pub fn agent_in(
        &self,
        name: Option<&str>,
        place: AgentPlace<'_>,
        mode: PromptMode,
        session: SessionChoice<'_>,
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
            .unwrap_or_else(|| self.settings.model.clone());
        Ok((self.gateway.provider_kind().to_string(), model))
    }

    /// The options of an agent of `profile` over `host` in `workspace`.
    fn options(&self, profile: Option<&Profile>, host: &ToolHost, workspace: Option<&Path>) -> AgentOptions {
        let settings = &self.settings;
        let mut options = AgentOptions {
            system_prompt: settings
                .system_prompt
                .clone()
                .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_string()),
            model: settings.model.clone(),
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
        options
    }

    fn build(
        &self,
        profile: Option<&Profile>,
        place: AgentPlace<'_>,
        mode: PromptMode,
        session: SessionChoice<'_>,
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
        let options = self.options(profile, &host, workspace);
        refuse_unpriced_budget(&gateway, &options)?;
        let sessions = config::sessions_dir(data_dir);
        let gateway = Arc::new(gateway);
        let (session, records) = self.session(session, &options.model, &sessions, data_dir, &gateway)?;
        let mut agent = Agent::new(
            gateway.clone(),
            host.clone(),
            approvals.clone(),
            options.clone(),
            session,
        );
        if let Some(records) = records {
            agent = agent.resume(&records);
        }
        if self.extras.delegation {
            let delegator = Delegator::new(gateway, host, approvals, options, self.profiles.clone(), sessions, 0);
            agent = agent.with_delegator(Arc::new(delegator));
        }
        if self.extras.tool_factory {
            agent = with_tool_factory(agent, tools_dir, data_dir);
        }
        Ok(match &self.extras.memory {
            MemoryAt::DataDir => with_memory(agent, data_dir, shared.map(|s| s.notes())),
            MemoryAt::Dir(dir) => with_memory(agent, dir, None),
            MemoryAt::Off => agent,
        })
    }

    /// The session `choice` names, and the records to resume from (`None`:
    /// a new session, its first record written). A queued run's session
    /// records the model its agent (of its profile) talks to.
    fn session(
        &self,
        choice: SessionChoice<'_>,
        model: &str,
        sessions: &Path,
        data_dir: &Path,
        gateway: &Gateway,
    ) -> anyhow::Result<(Session, Option<Vec<crate::session::Record>>)> {
        let provider_name = gateway.provider_kind().to_string();
        Ok(match choice {
            SessionChoice::Given { session, records } if records.is_empty() => {
                session
                    .start(&provider_name, model)
                    .with_context(|| format!("cannot write {}", session.location()))?;
                (session, None)
            }
            SessionChoice::Given { session, records } => (session, Some(records)),
            SessionChoice::New => {
                let session = Session::create(sessions, &provider_name, &self.settings.model)
                    .with_context(|| format!("cannot create a session in {}", sessions.display()))?;
                (session, None)
            }
            SessionChoice::Resume(wanted) => {
                let id = crate::session::resolve_id(sessions, wanted).map_err(|e| UsageError(e.to_string()))?;
                // An id printed by a schedule or a service run lives in that user's directory.
                let dir = crate::session::find_dir(data_dir, &id).unwrap_or_else(|| sessions.to_path_buf());
                let (session, records) = Session::open(&dir, &id).map_err(|e| UsageError(e.to_string()))?;
                (session, Some(records))
            }
        })
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

/// Gives the agent its memory and failure store from `dir`'s `memory.db`
/// (notes from `shared_notes` instead, in cluster mode); a broken database
/// costs the memory tools, not the session. (The failure store stays in
/// the data directory even with shared notes: it is this machine's record
/// of tool trouble.)
fn with_memory(agent: Agent, dir: &Path, shared_notes: Option<Notes>) -> Agent {
    match MemoryStore::open(dir) {
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
fn with_tool_factory(agent: Agent, tools_dir: &Path, data_dir: &Path) -> Agent {
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
pub fn load_meaning(dir: &Path, named: bool) -> anyhow::Result<Option<crate::agent::select::MeaningModel>> {
    let model = if named {
        let embedder = crate::embed::shared(dir).map_err(|e| UsageError(format!("[selection] model: {e:#}")))?;
        crate::agent::select::MeaningModel::loaded(embedder)
    } else {
        crate::agent::select::MeaningModel::at(dir)
    };
    tracing::info!(model = %dir.display(), "tool selection ranks by meaning and words");
    Ok(Some(model))
}
