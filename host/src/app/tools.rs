//! Opening the tool side of the app: the wasmtime runtime (with the
//! compile cache in the data directory), the registry of the tools
//! directory, and the tool host that every call goes through (policy,
//! registry, audit log), checked against the host's own files.

use super::{App, UsageError};
use crate::audit::AuditLog;
use crate::config;
use crate::policy::{Policy, TrustedKind, TrustedPaths};
use crate::registry::{Registry, ToolHost, check_grants};
use crate::runtime::{Runtime, RuntimeOptions};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A tool host for an agent command, with what the banner says about it.
pub struct AgentTools {
    pub host: ToolHost,
    /// One line saying where the agent works, for the banner.
    pub place_line: String,
    /// Big components left out to compile in the background
    /// ([`crate::registry::background::spawn`]).
    pub deferred: Vec<PathBuf>,
}

impl App {
    /// The policy file's policy, or the built-in deny-all policy.
    pub fn load_policy(&self) -> anyhow::Result<Policy> {
        match &self.policy {
            Some(path) => Ok(Policy::load(path)?),
            None => Ok(Policy::deny_all()),
        }
    }

    /// The wasmtime runtime, with the compile cache in the data directory
    /// (unless `no_cache`).
    pub fn runtime(&self) -> anyhow::Result<Arc<Runtime>> {
        let cache_dir = (!self.no_cache).then(|| config::cache_dir(&self.data_dir));
        let options = RuntimeOptions {
            cache_dir,
            memory_budget_mb: self.memory_budget_mb,
            compile_worker: crate::runtime::compile_worker::CompileWorker::this_binary(),
            // BORAM_SLOW_COMPILE_MS: when a compile is announced (tests set 0).
            announce_slow_compiles: Some(
                std::env::var("BORAM_SLOW_COMPILE_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .map_or(crate::runtime::SLOW_COMPILE, std::time::Duration::from_millis),
            ),
            ..RuntimeOptions::default()
        };
        Ok(Arc::new(Runtime::new(&options)?))
    }

    /// Loads every component of the tools directory.
    pub async fn registry(&self) -> anyhow::Result<Registry> {
        Ok(self.registry_deferring(false).await?.0)
    }

    /// [`Self::registry`]; with `defer_big`, big components that are not
    /// compiled yet are left out and returned, for
    /// [`crate::registry::background::spawn`].
    async fn registry_deferring(&self, defer_big: bool) -> anyhow::Result<(Registry, Vec<PathBuf>)> {
        let dir = &self.tools_dir;
        let runtime = self.runtime()?;
        let threshold = crate::registry::background::threshold_bytes();
        let check = runtime.clone();
        let (registry, deferred) = Registry::load_dir_deferring(runtime, dir, |path| {
            defer_big && crate::registry::background::should_defer(&check, path, threshold)
        })
        .await
        .with_context(|| hint_for_tools_dir(dir))?;
        for problem in registry.problems() {
            eprintln!("warning: {}: {}", problem.path.display(), problem.error);
        }
        Ok((registry, deferred))
    }

    /// The tool host for an agent command (`chat`, `run`): without a policy
    /// file, the built-in workspace policy over `workspace` (default: the
    /// current directory); `${workspace}` in a policy file is that
    /// directory too.
    pub async fn agent_tools(&self, workspace: Option<&Path>) -> anyhow::Result<AgentTools> {
        let here = std::env::current_dir().context("cannot read the current directory")?;
        let dir = workspace.map_or(here, Path::to_path_buf);
        let trusted = self.trusted_paths();
        let (policy, place_line, warnings) = match &self.policy {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| UsageError(format!("cannot read the policy {}: {e}", path.display())))?;
                let uses_workspace = text.contains(crate::policy::workspace::WORKSPACE_VAR);
                let policy = crate::policy::workspace::parse_with_workspace(
                    path,
                    &text,
                    (uses_workspace || workspace.is_some()).then_some(dir.as_path()),
                )
                .map_err(UsageError)?;
                let line = if uses_workspace {
                    format!("policy {} over workspace {}", path.display(), dir.display())
                } else {
                    format!("policy {}", path.display())
                };
                let warnings = check_grants(&policy, &trusted).map_err(refused)?;
                (policy, line, warnings)
            }
            None => builtin_workspace_policy(&dir, &trusted)?,
        };
        let (host, deferred) = self.host_over(policy, &warnings, trusted, true).await?;
        Ok(AgentTools {
            host,
            place_line,
            deferred,
        })
    }

    /// Policy + registry + audit log: what a tool call needs. Refuses
    /// (exit 2) a policy whose `rw` preopens reach the host's own files.
    pub async fn tool_host(&self) -> anyhow::Result<ToolHost> {
        let policy = self.load_policy()?;
        let trusted = self.trusted_paths();
        let warnings = check_grants(&policy, &trusted).map_err(refused)?;
        Ok(self.host_over(policy, &warnings, trusted, false).await?.0)
    }

    /// The tool host over `policy`, already checked against `trusted` (its
    /// `warnings` are printed here): the registry and the audit log added.
    /// With `defer_big`, also the components left to compile in the background.
    async fn host_over(
        &self,
        policy: Policy,
        warnings: &[String],
        trusted: TrustedPaths,
        defer_big: bool,
    ) -> anyhow::Result<(ToolHost, Vec<PathBuf>)> {
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
        let (registry, deferred) = self.registry_deferring(defer_big).await?;
        let audit = self.audit_log()?;
        Ok((
            ToolHost::new(registry, policy, Some(audit)).with_trusted(trusted),
            deferred,
        ))
    }

    /// The data directory's audit log, `[audit] required` from the config.
    fn audit_log(&self) -> anyhow::Result<AuditLog> {
        // A config that does not parse is reported by the command that reads it.
        let required = config::model::ConfigToml::load_or_default(self.config.as_deref())
            .ok()
            .and_then(|c| c.audit.required)
            .unwrap_or(false);
        Ok(AuditLog::open(&self.data_dir)
            .with_context(|| format!("cannot open the audit log in {}", self.data_dir.display()))?
            .required(required))
    }

    /// The files no tool may write: the policy, the config, the data and
    /// tools directories.
    pub fn trusted_paths(&self) -> TrustedPaths {
        let config = self
            .config
            .clone()
            .or_else(|| std::env::var_os(config::model::CONFIG_ENV).map(PathBuf::from))
            .or_else(config::model::default_config_path);
        TrustedPaths::new()
            .with(TrustedKind::PolicyFile, self.policy.as_deref())
            .with(TrustedKind::ConfigFile, config.as_deref())
            .with(TrustedKind::DataDir, Some(&self.data_dir))
            .with(TrustedKind::ToolsDir, Some(&self.tools_dir))
    }
}

/// The built-in workspace policy over `dir`: read tools read it,
/// `write_file` writes after asking. When `dir` holds the host's own files
/// (a checkout with its `tools/`), read-only, and the banner says why.
fn builtin_workspace_policy(dir: &Path, trusted: &TrustedPaths) -> anyhow::Result<(Policy, String, Vec<String>)> {
    let policy = crate::policy::workspace::builtin(dir, true).map_err(UsageError)?;
    // Each policy's grants are checked (and its trees scanned) once.
    match check_grants(&policy, trusted) {
        Ok(warnings) => Ok((
            policy,
            format!(
                "workspace {} (read tools read it, write_file writes after asking, no network; \
                 --policy to change)",
                dir.display()
            ),
            warnings,
        )),
        Err(why) => {
            let policy = crate::policy::workspace::builtin(dir, false).map_err(UsageError)?;
            let warnings = check_grants(&policy, trusted).map_err(refused)?;
            let line = format!(
                "workspace {} read-only: write_file gets no directory, since {}; \
                 pass --workspace DIR for a directory to write in",
                dir.display(),
                why.lines().next().unwrap_or_default()
            );
            Ok((policy, line, warnings))
        }
    }
}

/// The usage error for a policy whose grants are refused (trust placement,
/// special files).
pub fn refused(errors: String) -> UsageError {
    UsageError(format!("the policy grants what no tool may have:\n{errors}"))
}

fn hint_for_tools_dir(dir: &Path) -> String {
    format!(
        "no tools directory at {}; build the tools with `cargo build` or pass --tools-dir",
        dir.display()
    )
}
