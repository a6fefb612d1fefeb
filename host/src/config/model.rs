//! Which model to talk to and how: the `config.toml` file, then environment
//! variables, then command-line flags, each layer overriding the one
//! before. [`ConfigToml`] is the file as written; [`ModelConfig`] is the
//! resolved result the agent uses.

use crate::llm::gateway::*;
use crate::llm::{Endpoint, Price, PriceTable, ProviderKind, anthropic, openai};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "BORAM_CONFIG";
/// Default model per provider.
pub const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4o-mini";
/// Tokens the model may write per reply.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Context window assumed when the config does not say (Anthropic's models; most OpenAI ones have 128k).
pub const DEFAULT_ANTHROPIC_CONTEXT: u64 = 200_000;
pub const DEFAULT_OPENAI_CONTEXT: u64 = 128_000;

/// `config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigToml {
    #[serde(default)]
    pub model: ModelToml,
    #[serde(default)]
    pub gateway: GatewayToml,
    /// `[prices."MODEL"] input = 3.0, output = 15.0, cache_read = 0.3, cache_write = 3.75` (USD per million tokens).
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    #[serde(default)]
    pub agent: AgentToml,
    #[serde(default)]
    pub selection: SelectionToml,
    #[serde(default)]
    pub serve: super::serve::ServeToml,
    /// `[profiles.NAME]`: agent profiles for `--profile` and `delegate`.
    #[serde(default)]
    pub profiles: BTreeMap<String, crate::agent::profiles::ProfileToml>,
    #[serde(default)]
    pub audit: AuditToml,
    #[serde(default)]
    pub store: StoreToml,
}

/// `[store]`: where `boram serve` keeps shared state.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreToml {
    /// `url = "postgres://user@host/db"`: cluster mode, runs and sessions in
    /// PostgreSQL shared by every replica (`BORAM_DATABASE_URL` overrides
    /// it). Without it, the data directory (one machine).
    pub url: Option<String>,
    /// `lease_secs = 15`: a replica that stops renewing a run's lease for
    /// this long (it died) loses the run to another replica, which resumes it.
    pub lease_secs: Option<f64>,
    /// `workers = 4`: runs one replica executes at once.
    pub workers: Option<usize>,
    /// `replica = "web-1"`: this replica's name in leases and listings
    /// (default: host name and process id; `BORAM_REPLICA` overrides it).
    pub replica: Option<String>,
}

/// `[audit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditToml {
    /// `required = true`: a tool call whose audit line cannot be written
    /// does not run. Default: true for `boram serve`, false on the CLI
    /// (where a lost line is a warning on stderr).
    pub required: Option<bool>,
}

/// `[selection]`: which tools each request offers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionToml {
    /// `enabled = true`: offer only relevant tools (when more than `min_tools` are loaded).
    pub enabled: Option<bool>,
    /// `max_tools = 4`: most tools picked by relevance.
    pub max_tools: Option<usize>,
    /// `min_share = 0.5`: a picked tool scores at least this share of the best.
    pub min_share: Option<f64>,
    /// `always = ["read_file"]`: offered on every request.
    pub always: Option<Vec<String>>,
    /// `min_tools = 10`: below this many tools, every tool is offered.
    pub min_tools: Option<usize>,
    /// `model = "/path/to/model"`: a sentence-embedding model directory for
    /// ranking by meaning; `"none"` ranks by words only. Default: the one
    /// `boram model fetch` installs, when it is there.
    pub model: Option<String>,
    /// `meaning_weight = 0.6`: share of a tool's score from meaning.
    pub meaning_weight: Option<f64>,
}

impl SelectionToml {
    /// The embedding model directory to rank by meaning with: `model`, or
    /// the default one when it exists; `None` for words only. The flag says
    /// whether the user named it (then failing to load it is an error).
    pub fn model_dir(&self, data_dir: &Path) -> Option<(PathBuf, bool)> {
        match self.model.as_deref() {
            Some("none") => None,
            Some(path) => Some((PathBuf::from(path), true)),
            None => {
                let dir = crate::embed::default_model_dir(data_dir);
                dir.exists().then_some((dir, false))
            }
        }
    }

    /// The selection options, or `None` when turned off.
    pub fn options(&self) -> Option<crate::agent::select::SelectionOptions> {
        if self.enabled == Some(false) {
            return None;
        }
        let d = crate::agent::select::SelectionOptions::default();
        Some(crate::agent::select::SelectionOptions {
            max_tools: self.max_tools.unwrap_or(d.max_tools),
            min_share: self.min_share.unwrap_or(d.min_share),
            always: self.always.clone().unwrap_or_default(),
            min_tools: self.min_tools.unwrap_or(d.min_tools),
            meaning: None,
            meaning_weight: self.meaning_weight.unwrap_or(d.meaning_weight),
        })
    }
}

/// `[model]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelToml {
    /// `provider = "anthropic" | "openai"`.
    pub provider: Option<String>,
    /// `name = "claude-sonnet-4-5"`.
    pub name: Option<String>,
    /// `base_url = "http://localhost:11434/v1"`.
    pub base_url: Option<String>,
    /// `api_key_env = "MY_KEY"`: the environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// `max_tokens = 4096`.
    pub max_tokens: Option<u32>,
    /// `context_tokens = 200000`: the model's context window; compaction starts at 80 %.
    pub context_tokens: Option<u64>,
    /// `max_stream_event_kib = 8192`: the largest SSE line or event accepted from the model server.
    pub max_stream_event_kib: Option<usize>,
}

/// `[gateway]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayToml {
    pub concurrency: Option<usize>,
    pub max_retries: Option<u32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub max_retry_after_s: Option<u64>,
    pub breaker_threshold: Option<u32>,
    pub breaker_cooldown_s: Option<u64>,
}

/// `[agent]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentToml {
    /// `system_prompt = "..."`: replaces the built-in system prompt.
    pub system_prompt: Option<String>,
}

impl ConfigToml {
    /// Reads `path`; a missing default file is an empty config.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// The file `named` (`--config`), else the default file if it exists,
    /// else an empty config.
    pub fn load_or_default(named: Option<&Path>) -> anyhow::Result<Self> {
        match named
            .map(Path::to_path_buf)
            .or_else(|| default_config_path().filter(|p| p.exists()))
        {
            Some(path) => Self::load(&path),
            None => Ok(Self::default()),
        }
    }
}

/// Default config file: `$XDG_CONFIG_HOME/boram/config.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("boram").join("config.toml"))
}

/// What the command line says about the model.
#[derive(Debug, Default, Clone)]
pub struct ModelFlags {
    pub provider: Option<ProviderKind>,
    pub model: Option<String>,
    pub base_url: Option<String>,
}

/// Everything the agent needs to call its model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub endpoint: Endpoint,
    pub model: String,
    pub max_tokens: u32,
    pub context_tokens: u64,
    pub gateway: GatewayOptions,
    pub prices: PriceTable,
    pub system_prompt: Option<String>,
    pub selection: Option<crate::agent::select::SelectionOptions>,
}

/// The message shown when no provider can be chosen.
pub const NOT_CONFIGURED: &str = "no model provider is configured. Either:
  - set ANTHROPIC_API_KEY to use Claude,
  - set OPENAI_API_KEY to use OpenAI,
  - pass --provider openai --base-url http://localhost:11434/v1 for a local server (Ollama, vLLM, llama.cpp, LM Studio),
  - or pass --replay FILE to re-run a recorded session offline";

/// Resolves file < environment < flags. `env` reads an environment variable.
pub fn resolve(
    file: ConfigToml,
    flags: &ModelFlags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ModelConfig, String> {
    let from_file = file
        .model
        .provider
        .as_deref()
        .map(str::parse::<ProviderKind>)
        .transpose()?;
    let from_env = env("BORAM_PROVIDER")
        .as_deref()
        .map(str::parse::<ProviderKind>)
        .transpose()?;
    let kind = flags
        .provider
        .or(from_env)
        .or(from_file)
        .or_else(|| infer_provider(flags, env))
        .ok_or_else(|| NOT_CONFIGURED.to_string())?;
    let (key_var, url_var, default_url, default_model, default_context) = match kind {
        ProviderKind::Anthropic => (
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
            anthropic::DEFAULT_BASE_URL,
            DEFAULT_ANTHROPIC_MODEL,
            DEFAULT_ANTHROPIC_CONTEXT,
        ),
        _ => (
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            openai::DEFAULT_BASE_URL,
            DEFAULT_OPENAI_MODEL,
            DEFAULT_OPENAI_CONTEXT,
        ),
    };
    let base_url = flags
        .base_url
        .clone()
        .or_else(|| env(url_var))
        .or(file.model.base_url)
        .unwrap_or_else(|| default_url.to_string());
    let api_key = env(file.model.api_key_env.as_deref().unwrap_or(key_var)).filter(|k| !k.is_empty());
    if api_key.is_none() && base_url == default_url {
        return Err(format!(
            "{kind} needs an API key: set {key_var} (or pass --base-url for a server that needs none)"
        ));
    }
    let model = flags
        .model
        .clone()
        .or_else(|| env("BORAM_MODEL"))
        .or(file.model.name)
        .unwrap_or_else(|| default_model.to_string());
    Ok(ModelConfig {
        endpoint: Endpoint {
            kind,
            base_url,
            api_key,
            max_event_bytes: file
                .model
                .max_stream_event_kib
                .map_or(crate::llm::DEFAULT_MAX_EVENT_BYTES, |kib| kib.saturating_mul(1024)),
        },
        model,
        max_tokens: file.model.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        context_tokens: file.model.context_tokens.unwrap_or(default_context),
        gateway: gateway_options(&file.gateway),
        prices: PriceTable::new(file.prices),
        system_prompt: file.agent.system_prompt,
        selection: file.selection.options(),
    })
}

/// An API key in the environment picks its provider; a base URL alone means
/// a local OpenAI-compatible server.
fn infer_provider(flags: &ModelFlags, env: &dyn Fn(&str) -> Option<String>) -> Option<ProviderKind> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if set("ANTHROPIC_API_KEY") {
        Some(ProviderKind::Anthropic)
    } else if set("OPENAI_API_KEY") || flags.base_url.is_some() {
        Some(ProviderKind::OpenAi)
    } else {
        None
    }
}

fn gateway_options(raw: &GatewayToml) -> GatewayOptions {
    let d = GatewayOptions::default();
    GatewayOptions {
        concurrency: raw.concurrency.unwrap_or(d.concurrency),
        max_retries: raw.max_retries.unwrap_or(d.max_retries),
        backoff_base: raw.backoff_base_ms.map_or(d.backoff_base, Duration::from_millis),
        backoff_max: raw.backoff_max_ms.map_or(d.backoff_max, Duration::from_millis),
        max_retry_after: raw.max_retry_after_s.map_or(d.max_retry_after, Duration::from_secs),
        breaker_threshold: raw.breaker_threshold.unwrap_or(d.breaker_threshold),
        breaker_cooldown: raw.breaker_cooldown_s.map_or(d.breaker_cooldown, Duration::from_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn nothing_configured_says_how_to_configure() {
        let err = resolve(ConfigToml::default(), &ModelFlags::default(), &env_of(&[])).expect_err("none");
        assert!(err.contains("ANTHROPIC_API_KEY") && err.contains("--replay"), "{err}");
    }

    #[test]
    fn flags_beat_environment_which_beats_the_file() {
        let file: ConfigToml = toml::from_str("[model]\nprovider = \"openai\"\nname = \"from-file\"").expect("toml");
        let env = env_of(&[("BORAM_MODEL", "from-env"), ("OPENAI_API_KEY", "k")]);
        let config = resolve(file, &ModelFlags::default(), &env).expect("config");
        assert_eq!(config.model, "from-env");
        assert_eq!(config.endpoint.kind, ProviderKind::OpenAi);
        let flags = ModelFlags {
            model: Some("from-flag".into()),
            ..ModelFlags::default()
        };
        assert_eq!(
            resolve(ConfigToml::default(), &flags, &env).expect("config").model,
            "from-flag"
        );
    }

    #[test]
    fn a_base_url_alone_means_a_local_openai_compatible_server() {
        let flags = ModelFlags {
            base_url: Some("http://127.0.0.1:11434/v1".into()),
            ..ModelFlags::default()
        };
        let config = resolve(ConfigToml::default(), &flags, &env_of(&[])).expect("config");
        assert_eq!(config.endpoint.kind, ProviderKind::OpenAi);
        assert_eq!(config.endpoint.api_key, None);
    }

    #[test]
    fn the_default_endpoint_without_a_key_is_refused() {
        let flags = ModelFlags {
            provider: Some(ProviderKind::Anthropic),
            ..ModelFlags::default()
        };
        let err = resolve(ConfigToml::default(), &flags, &env_of(&[])).expect_err("no key");
        assert!(err.contains("ANTHROPIC_API_KEY"), "{err}");
    }
}

#[cfg(test)]
mod example_config {
    /// The example config in the repository stays valid.
    #[test]
    fn the_shipped_example_parses() {
        let path = std::path::Path::new(env!("BORAM_WORKSPACE_DIR")).join("examples/config.example.toml");
        let config = super::ConfigToml::load(&path).expect("examples/config.example.toml is valid");
        assert_eq!(config.serve.users.len(), 2);
        assert!(config.profiles.contains_key("translator"));
    }
}
