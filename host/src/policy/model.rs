//! The resolved policy: validated values with defaults applied and paths
//! made absolute. Each grant remembers the line that made it, so
//! `policy explain` can say why a tool may touch something.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Approval when neither `[defaults]` nor the tool sets one: ask the user.
pub const DEFAULT_APPROVAL: Approval = Approval::Prompt;
/// Wall-clock limit per call when none is set: 30 s, host calls included.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Memory limit per call when none is set: 64 MiB of linear memory.
pub const DEFAULT_MEMORY_MB: u64 = 64;
/// Output limit per call when none is set: 256 KiB.
pub const DEFAULT_MAX_OUTPUT_KB: u64 = 256;
/// `concurrency`: calls of one tool running at once; later ones wait.
pub const DEFAULT_CONCURRENCY: u32 = 8;
/// `http_requests`: outgoing HTTP requests per call.
pub const DEFAULT_HTTP_REQUESTS: u64 = 20;
/// `http_request_kb`: body of one outgoing request.
pub const DEFAULT_HTTP_REQUEST_KB: u64 = 1024;
/// `http_response_kb`: body of one response.
pub const DEFAULT_HTTP_RESPONSE_KB: u64 = 5120;
/// `http_header_kb`: the headers of one request, and of one response.
pub const DEFAULT_HTTP_HEADER_KB: u64 = 32;
/// `http_timeout_ms`: one request, from connecting to the last byte.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 15_000;
/// Agent loop defaults (used by `boram chat` / `boram run`).
pub const DEFAULT_MAX_ROUNDS: u32 = 12;
pub const DEFAULT_SAME_CALL_LIMIT: u32 = 4;
pub const DEFAULT_BUDGET_USD: f64 = 2.0;
/// `[agent] time_limit_s`: wall clock of one turn (a user prompt until the answer).
pub const DEFAULT_TIME_LIMIT_S: u64 = 900;

/// A validated policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The file it came from (`None` for the built-in deny-all policy).
    pub source: Option<PathBuf>,
    /// Approval for tools that do not set their own.
    pub default_approval: Approval,
    /// Limits for tools that do not set their own.
    pub default_limits: Limits,
    /// Agent loop limits.
    pub agent: AgentLimits,
    /// Tools that have their own table, by name.
    pub tools: BTreeMap<String, ToolPolicy>,
}

/// Whether a tool may run without asking the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Runs without asking.
    Allow,
    /// Asks the user before each run (non-interactive runs treat it as deny).
    Prompt,
    /// Never runs.
    Deny,
}

/// Resource limits of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// Wall clock, host calls included.
    pub timeout: Duration,
    /// Total linear memory of the instance, in bytes.
    pub memory_bytes: u64,
    /// Largest output returned, in bytes.
    pub max_output_bytes: u64,
    /// Calls of this tool running at once.
    pub concurrency: u32,
    pub http: HttpLimits,
}

/// Limits on a call's outgoing HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HttpLimits {
    /// Requests per call.
    pub requests: u64,
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    /// Each way: the request's headers, the response's headers.
    pub header_bytes: u64,
    /// One request, connect to last byte.
    pub timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            requests: DEFAULT_HTTP_REQUESTS,
            request_body_bytes: DEFAULT_HTTP_REQUEST_KB << 10,
            response_body_bytes: DEFAULT_HTTP_RESPONSE_KB << 10,
            header_bytes: DEFAULT_HTTP_HEADER_KB << 10,
            timeout: Duration::from_millis(DEFAULT_HTTP_TIMEOUT_MS),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            memory_bytes: DEFAULT_MEMORY_MB << 20,
            max_output_bytes: DEFAULT_MAX_OUTPUT_KB << 10,
            concurrency: DEFAULT_CONCURRENCY,
            http: HttpLimits::default(),
        }
    }
}

/// `[agent]` after defaults.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AgentLimits {
    pub max_rounds: u32,
    pub same_call_limit: u32,
    pub budget_usd: f64,
    /// `budget_usd` was written in the policy (or a profile), not defaulted:
    /// then a model without a price cannot run (its spend could not be capped).
    #[serde(skip)]
    pub budget_set: bool,
    pub time_limit: Duration,
}

impl Default for AgentLimits {
    fn default() -> Self {
        Self {
            max_rounds: DEFAULT_MAX_ROUNDS,
            same_call_limit: DEFAULT_SAME_CALL_LIMIT,
            budget_usd: DEFAULT_BUDGET_USD,
            budget_set: false,
            time_limit: Duration::from_secs(DEFAULT_TIME_LIMIT_S),
        }
    }
}

/// Everything one tool is granted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ToolPolicy {
    pub approval: Approval,
    /// True when `approval` came from the tool's own table.
    pub approval_from_tool: bool,
    pub limits: Limits,
    pub fs: Vec<FsGrant>,
    pub env: Vec<EnvGrant>,
    pub net: Vec<NetRule>,
    pub secrets: Vec<SecretRule>,
    /// Line of the `[tools.NAME]` header, `None` when the tool only gets defaults.
    pub line: Option<usize>,
}

impl ToolPolicy {
    /// What a tool gets under `policy` when the file does not name it:
    /// the defaults, and no capabilities.
    pub fn defaults_of(policy: &Policy) -> Self {
        Self {
            approval: policy.default_approval,
            approval_from_tool: false,
            limits: policy.default_limits,
            fs: Vec::new(),
            env: Vec::new(),
            net: Vec::new(),
            secrets: Vec::new(),
            line: None,
        }
    }

    /// The table that set `approval`: `[tools.NAME]` or `[defaults]`.
    pub fn approval_source(&self, name: &str) -> String {
        if self.approval_from_tool {
            format!("[tools.{name}]")
        } else {
            "[defaults]".to_string()
        }
    }

    /// True when the tool can touch nothing outside its own memory.
    pub fn grants_nothing(&self) -> bool {
        self.fs.is_empty() && self.env.is_empty() && self.net.is_empty() && self.secrets.is_empty()
    }
}

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    #[serde(rename = "ro")]
    ReadOnly,
    #[serde(rename = "rw")]
    ReadWrite,
}

/// A host directory preopened for the tool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FsGrant {
    /// Absolute host path (resolved against the policy file's directory).
    pub host: PathBuf,
    /// Absolute path the tool sees.
    pub guest: String,
    pub access: Access,
    pub line: usize,
}

/// An environment key the tool may read (its value comes from the host at call time).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EnvGrant {
    pub key: String,
    pub line: usize,
}

/// An allowed HTTP destination: scheme, host (or `*.suffix`) and optional port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NetRule {
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
    pub line: usize,
}

impl std::fmt::Display for NetRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// A header the host adds to requests for one host; the tool never sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretRule {
    pub host: String,
    pub header: String,
    /// The value template, e.g. `Bearer ${env:GITHUB_TOKEN}` (never the secret itself).
    pub value_template: String,
    pub line: usize,
}

impl Policy {
    /// The built-in policy used when no file is given: every tool gets the
    /// defaults, no capabilities, and must be approved.
    pub fn deny_all() -> Self {
        Self {
            source: None,
            default_approval: DEFAULT_APPROVAL,
            default_limits: Limits::default(),
            agent: AgentLimits::default(),
            tools: BTreeMap::new(),
        }
    }

    /// What `name` is granted: its own table, or the defaults and nothing else.
    pub fn tool(&self, name: &str) -> ToolPolicy {
        self.tools
            .get(name)
            .cloned()
            .unwrap_or_else(|| ToolPolicy::defaults_of(self))
    }

    /// How to name this policy in messages.
    pub fn display_source(&self) -> String {
        match &self.source {
            Some(path) => path.display().to_string(),
            None => "the built-in deny-all policy".to_string(),
        }
    }
}
