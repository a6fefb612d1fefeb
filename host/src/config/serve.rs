//! `[serve]` in `config.toml`: how `boram serve` listens and who may use
//! it. Each user has a bearer token (its SHA-256 here, or the name of an
//! environment variable holding it, so no token sits in the file) and a
//! workspace directory that becomes `${workspace}` in the policy: each
//! user's tools see only that user's files.

use serde::Deserialize;
use std::path::PathBuf;

/// Default request body limit.
pub const DEFAULT_BODY_LIMIT_KB: usize = 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeToml {
    /// `addr = "127.0.0.1:8080"`.
    pub addr: Option<String>,
    /// `body_limit_kb = 1024`: larger request bodies get 413.
    pub body_limit_kb: Option<usize>,
    /// `approve_prompt = false`: run `prompt` tools without asking (there
    /// is nobody to ask); by default they are refused.
    pub approve_prompt: Option<bool>,
    /// `recovery = true`: under `--supervise`, after repeated crashes let the
    /// model pick one action from a fixed, safe list (see README).
    pub recovery: Option<bool>,
    /// `recovery_after = 3`: consecutive crashes before the model is asked.
    pub recovery_after: Option<u32>,
    /// `next_free_port = true`: when the port is taken, use the next free one.
    pub next_free_port: Option<bool>,
    #[serde(default)]
    pub users: Vec<UserToml>,
}

/// `[[serve.users]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserToml {
    /// Letters, digits, `-` and `_`; names the user's data directory.
    pub name: String,
    /// Hex SHA-256 of the token (`printf %s TOKEN | sha256sum`).
    pub token_sha256: Option<String>,
    /// Environment variable holding the token.
    pub token_env: Option<String>,
    /// The user's files; `${workspace}` in the policy.
    pub workspace: PathBuf,
}
