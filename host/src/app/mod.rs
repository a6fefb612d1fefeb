//! The composition root: every layer is built here, once, from resolved
//! settings, and handed out ready to use.
//!
//! - [`App`] is the settings every command resolves once (data directory,
//!   tools directory, policy and config files, compile cache, memory
//!   budget); it opens the runtime, the registry and the tool host
//!   ([`tools`]).
//! - [`AgentKit`] is one resolved model (provider, gateway with its queue
//!   and breaker, profiles) that builds agents for a place
//!   ([`AgentPlace`]: tool host, data directory, shared store): the CLI's
//!   `run` and `chat`, scheduled runs, the service's runs and delegation
//!   all get theirs from [`AgentKit::agent`] and friends ([`agents`]).
//! - [`service`] opens the service's state: the run queue on the embedded
//!   store or on PostgreSQL (cluster mode), and the agents of its runs.
//!
//! The CLI parses flags into these and prints; the integration tests and
//! the benches build through them too, so what they exercise is what a
//! user runs. Nothing outside this module wires layers together.

pub mod agents;
pub mod service;
pub mod tools;

pub use agents::{AgentKit, AgentPlace, Extras, ModelChoice};

use std::path::PathBuf;

/// A mistake in what the user asked for (the CLI exits with code 2), as
/// opposed to a failure while doing it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The settings every command resolves once (flags < environment are
/// resolved by the CLI; defaults here).
#[derive(Debug, Clone)]
pub struct App {
    /// Audit log, sessions, memory, compile cache, run queue.
    pub data_dir: PathBuf,
    /// The tool components (`*.wasm`).
    pub tools_dir: PathBuf,
    /// The policy file; `None`: the built-in deny-all policy (or, for an
    /// agent command, the built-in workspace policy).
    pub policy: Option<PathBuf>,
    /// The config file named on the command line; `None`: `BORAM_CONFIG`
    /// or the default one when it exists.
    pub config: Option<PathBuf>,
    /// Compile every component instead of using the compile cache.
    pub no_cache: bool,
    /// Sum of the memory limits of calls running at once (MiB); `None`:
    /// the runtime's default.
    pub memory_budget_mb: Option<u64>,
}
