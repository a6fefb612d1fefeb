//! The on-disk shape of a policy file. Every struct rejects unknown keys;
//! values that later checks must point at are `Spanned` so errors can name
//! their line.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A whole policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyToml {
    /// `version = 1`: required, the only version this build understands.
    pub version: Spanned<i64>,
    /// `[defaults]`: approval and limits for every tool that does not override them.
    #[serde(default)]
    pub defaults: LimitsToml,
    /// `[agent]`: limits of the agent loop.
    #[serde(default)]
    pub agent: AgentToml,
    /// `[tools.NAME]`: one table per tool that gets more than the defaults.
    #[serde(default)]
    pub tools: BTreeMap<Spanned<String>, ToolToml>,
}

/// `[defaults]`: approval and limits (a `[tools.NAME]` table may override each).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsToml {
    /// `approval = "allow" | "prompt" | "deny"`.
    pub approval: Option<ApprovalToml>,
    /// `timeout_ms = 30000`: wall clock per call, host calls included.
    pub timeout_ms: Option<Spanned<i64>>,
    /// `memory_mb = 64`: linear memory of the tool's instance.
    pub memory_mb: Option<Spanned<i64>>,
    /// `max_output_kb = 256`: size of the output returned to the caller.
    pub max_output_kb: Option<Spanned<i64>>,
    /// `http_requests = 20`: outgoing HTTP requests per call.
    pub http_requests: Option<Spanned<i64>>,
    /// `http_request_kb = 1024`: body of one outgoing request.
    pub http_request_kb: Option<Spanned<i64>>,
    /// `http_response_kb = 5120`: body of one response.
    pub http_response_kb: Option<Spanned<i64>>,
    /// `http_header_kb = 32`: headers of one request, and of one response.
    pub http_header_kb: Option<Spanned<i64>>,
    /// `http_timeout_ms = 15000`: one request, connect to last byte.
    pub http_timeout_ms: Option<Spanned<i64>>,
    /// `concurrency = 8`: calls of one tool running at once; more wait their turn.
    pub concurrency: Option<Spanned<i64>>,
}

/// `approval` values.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalToml {
    Allow,
    Prompt,
    Deny,
}

/// `[agent]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentToml {
    /// `max_rounds = 12`: model turns per user prompt.
    pub max_rounds: Option<Spanned<i64>>,
    /// `same_call_limit = 4`: identical tool + input calls allowed per session.
    pub same_call_limit: Option<Spanned<i64>>,
    /// `budget_usd = 2.0`: hard spend cap per session.
    pub budget_usd: Option<Spanned<f64>>,
    /// `time_limit_s = 900`: wall clock of one user prompt's turn, model and tools included.
    pub time_limit_s: Option<Spanned<i64>>,
}

/// `[tools.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolToml {
    /// Overrides `[defaults].approval` for this tool.
    pub approval: Option<ApprovalToml>,
    /// Overrides `[defaults].timeout_ms`.
    pub timeout_ms: Option<Spanned<i64>>,
    /// Overrides `[defaults].memory_mb`.
    pub memory_mb: Option<Spanned<i64>>,
    /// Overrides `[defaults].max_output_kb`.
    pub max_output_kb: Option<Spanned<i64>>,
    /// Overrides `[defaults]`: `http_requests = 20`: outgoing HTTP requests per call.
    pub http_requests: Option<Spanned<i64>>,
    /// `http_request_kb = 1024`: body of one outgoing request.
    pub http_request_kb: Option<Spanned<i64>>,
    /// `http_response_kb = 5120`: body of one response.
    pub http_response_kb: Option<Spanned<i64>>,
    /// `http_header_kb = 32`: headers of one request, and of one response.
    pub http_header_kb: Option<Spanned<i64>>,
    /// `http_timeout_ms = 15000`: one request, connect to last byte.
    pub http_timeout_ms: Option<Spanned<i64>>,
    /// Overrides `[defaults].concurrency`.
    pub concurrency: Option<Spanned<i64>>,
    /// `fs = [{ host = "./workspace", guest = "/workspace", access = "ro" }]`.
    #[serde(default)]
    pub fs: Vec<Spanned<FsToml>>,
    /// `env = ["LANG"]`: host environment keys the tool may read.
    #[serde(default)]
    pub env: Vec<Spanned<String>>,
    /// `force_env = ["ANTHROPIC_API_KEY"]`: confirms that a key of `env`
    /// the host uses for its own credentials really goes to this tool.
    #[serde(default)]
    pub force_env: Vec<Spanned<String>>,
    /// `net = ["https://api.github.com"]`: hosts the tool may send HTTP requests to.
    #[serde(default)]
    pub net: Vec<Spanned<String>>,
    /// `secrets = [{ host = "api.github.com", header = "Authorization", value = "Bearer ${env:TOKEN}" }]`.
    #[serde(default)]
    pub secrets: Vec<Spanned<SecretToml>>,
}

/// One `fs` grant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsToml {
    /// Host directory, relative to the policy file or absolute.
    pub host: String,
    /// Absolute path the tool sees it at, e.g. `/workspace`.
    pub guest: String,
    /// `"ro"` (default) or `"rw"`.
    #[serde(default)]
    pub access: AccessToml,
}

/// `access` values.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub enum AccessToml {
    #[default]
    #[serde(rename = "ro")]
    ReadOnly,
    #[serde(rename = "rw")]
    ReadWrite,
}

/// One `secrets` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretToml {
    /// Host the header is added for, e.g. `api.github.com`.
    pub host: String,
    /// Header name, e.g. `Authorization`.
    pub header: String,
    /// Header value; `${env:NAME}` is replaced by the host's environment variable.
    pub value: String,
}

/// The limit keys `[defaults]` and `[tools.NAME]` share, borrowed from either.
pub struct LimitKeys<'a> {
    pub timeout_ms: &'a Option<Spanned<i64>>,
    pub memory_mb: &'a Option<Spanned<i64>>,
    pub max_output_kb: &'a Option<Spanned<i64>>,
    pub http_requests: &'a Option<Spanned<i64>>,
    pub http_request_kb: &'a Option<Spanned<i64>>,
    pub http_response_kb: &'a Option<Spanned<i64>>,
    pub http_header_kb: &'a Option<Spanned<i64>>,
    pub http_timeout_ms: &'a Option<Spanned<i64>>,
    pub concurrency: &'a Option<Spanned<i64>>,
}

macro_rules! limit_keys {
    ($raw:expr) => {
        LimitKeys {
            timeout_ms: &$raw.timeout_ms,
            memory_mb: &$raw.memory_mb,
            max_output_kb: &$raw.max_output_kb,
            http_requests: &$raw.http_requests,
            http_request_kb: &$raw.http_request_kb,
            http_response_kb: &$raw.http_response_kb,
            http_header_kb: &$raw.http_header_kb,
            http_timeout_ms: &$raw.http_timeout_ms,
            concurrency: &$raw.concurrency,
        }
    };
}

impl LimitsToml {
    pub fn keys(&self) -> LimitKeys<'_> {
        limit_keys!(self)
    }
}

impl ToolToml {
    pub fn keys(&self) -> LimitKeys<'_> {
        limit_keys!(self)
    }
}
