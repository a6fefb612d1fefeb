//! Options every command shares, and building the runtime, registry and
//! tool host from them.

use crate::audit::AuditLog;
use crate::cli::UsageError;
use crate::config;
use crate::policy::{Policy, TrustedKind, TrustedPaths};
use crate::registry::{Registry, ToolHost, check_grants};
use crate::runtime::{Runtime, RuntimeOptions};
use anyhow::Context as _;
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Policy file granting tools their capabilities. Without one, every tool
    /// runs with no capabilities at all (the built-in deny-all policy).
    #[arg(long, global = true, env = config::POLICY_ENV, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Directory of tool components (`*.wasm`). Default: `./tools` if it holds
    /// components, else the `tools/` of the checkout `boram` was built from.
    #[arg(long, global = true, env = config::TOOLS_DIR_ENV, value_name = "DIR")]
    pub tools_dir: Option<PathBuf>,

    /// Data directory: audit log, compile cache. Default: ~/.local/share/boram.
    #[arg(long, global = true, env = config::DATA_DIR_ENV, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Compile every component instead of using the compile cache.
    #[arg(long, global = true)]
    pub no_cache: bool,

    /// Sum of the memory limits (`memory_mb`) of tool calls running at
    /// once, in MiB; calls past it wait their turn. Default: 4096.
    #[arg(long, global = true, env = config::MEMORY_BUDGET_ENV, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub memory_budget_mb: Option<u64>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). `RUST_LOG` also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Write logs as JSON lines (still on stderr).
    #[arg(long, global = true)]
    pub log_json: bool,
}

impl GlobalArgs {
    pub fn init_tracing(&self) {
        let default = match self.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        // Colour only on a terminal: a log file or pipe gets plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(|| crate::scrub::ScrubbedStderr);
        if self.log_json {
            builder.json().init()
        } else {
            builder.init()
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(config::default_data_dir)
    }

    pub fn tools_dir(&self) -> PathBuf {
        self.tools_dir.clone().unwrap_or_else(config::default_tools_dir)
    }

    /// The policy named by `--policy`, or the built-in deny-all policy.
    pub fn load_policy(&self) -> anyhow::Result<Policy> {
        match &self.policy {
            Some(path) => Ok(Policy::load(path)?),
            None => Ok(Policy::deny_all()),
        }
    }

    pub fn runtime(&self) -> anyhow::Result<Arc<Runtime>> {
        let cache_dir = (!self.no_cache).then(|| config::cache_dir(&self.data_dir()));
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
        let dir = self.tools_dir();
        let runtime = self.runtime()?;
        let threshold = crate::registry::background::threshold_bytes();
        let check = runtime.clone();
        let (registry, deferred) = Registry::load_dir_deferring(runtime, &dir, |path| {
            defer_big && crate::registry::background::should_defer(&check, path, threshold)
        })
        .await
        .with_context(|| hint_for_tools_dir(&dir))?;
        for problem in registry.problems() {
            eprintln!("warning: {}: {}", problem.path.display(), problem.error);
        }
        Ok((registry, deferred))
    }

    /// [`Self::tool_host_for`] for an agent command (`chat`, `run`): without
    /// `--policy`, the built-in workspace policy over `workspace` (default:
    /// the current directory); `${workspace}` in a `--policy` file is that
    /// directory too. Returns the host and one line saying where the agent
    /// works, for the banner.
    pub async fn agent_tool_host(
        &self,
        config: Option<&Path>,
        workspace: Option<&Path>,
    ) -> anyhow::Result<(ToolHost, String, Vec<PathBuf>)> {
        let here = std::env::current_dir().context("cannot read the current directory")?;
        let dir = workspace.map_or(here, Path::to_path_buf);
        let trusted = self.trusted_paths(config);
        let (policy, line, warnings) = match &self.policy {
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
            None => {
                let policy = crate::policy::workspace::builtin(&dir, true).map_err(UsageError)?;
                // Each policy's grants are checked (and its trees scanned) once.
                match check_grants(&policy, &trusted) {
                    Ok(warnings) => (
                        policy,
                        format!(
                            "workspace {} (read tools read it, write_file writes after asking, no network; \
                             --policy to change)",
                            dir.display()
                        ),
                        warnings,
                    ),
                    // The directory holds the host's own files (a checkout
                    // with its tools/): read-only, and say why.
                    Err(why) => {
                        let policy = crate::policy::workspace::builtin(&dir, false).map_err(UsageError)?;
                        let warnings = check_grants(&policy, &trusted).map_err(refused)?;
                        let line = format!(
                            "workspace {} read-only: write_file gets no directory, since {}; \
                             pass --workspace DIR for a directory to write in",
                            dir.display(),
                            why.lines().next().unwrap_or_default()
                        );
                        (policy, line, warnings)
                    }
                }
            }
        };
        let (host, deferred) = self.host_over(policy, &warnings, trusted, config, true).await?;
        Ok((host, line, deferred))
    }

    /// Policy + registry + audit log: what a tool call needs.
    pub async fn tool_host(&self) -> anyhow::Result<ToolHost> {
        self.tool_host_for(None).await
    }

    /// [`Self::tool_host`] for a command whose config file is `config`
    /// (`None`: `BORAM_CONFIG` or the default one, when it exists). Refuses
    /// (exit 2) a policy whose `rw` preopens reach the host's own files.
    pub async fn tool_host_for(&self, config: Option<&Path>) -> anyhow::Result<ToolHost> {
        let policy = self.load_policy()?;
        let trusted = self.trusted_paths(config);
        let warnings = check_grants(&policy, &trusted).map_err(refused)?;
        Ok(self.host_over(policy, &warnings, trusted, config, false).await?.0)
    }

    /// The tool host over `policy`, already checked against `trusted` (its
    /// `warnings` are printed here): the registry and the audit log added.
    /// With `defer_big`, also the components left to compile in the background.
    async fn host_over(
        &self,
        policy: Policy,
        warnings: &[String],
        trusted: TrustedPaths,
        config: Option<&Path>,
        defer_big: bool,
    ) -> anyhow::Result<(ToolHost, Vec<PathBuf>)> {
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
        let (registry, deferred) = self.registry_deferring(defer_big).await?;
        let audit = self.audit_log(config)?;
        Ok((
            ToolHost::new(registry, policy, Some(audit)).with_trusted(trusted),
            deferred,
        ))
    }

    /// The data directory's audit log, `[audit] required` from `config`.
    fn audit_log(&self, config: Option<&Path>) -> anyhow::Result<AuditLog> {
        // A config that does not parse is reported by the command that reads it.
        let required = config::model::ConfigToml::load_or_default(config)
            .ok()
            .and_then(|c| c.audit.required)
            .unwrap_or(false);
        Ok(AuditLog::open(&self.data_dir())
            .with_context(|| format!("cannot open the audit log in {}", self.data_dir().display()))?
            .required(required))
    }

    /// The files no tool may write: the policy, the config, the data and
    /// tools directories.
    pub fn trusted_paths(&self, config: Option<&Path>) -> TrustedPaths {
        let config = config
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(config::model::CONFIG_ENV).map(PathBuf::from))
            .or_else(config::model::default_config_path);
        TrustedPaths::new()
            .with(TrustedKind::PolicyFile, self.policy.as_deref())
            .with(TrustedKind::ConfigFile, config.as_deref())
            .with(TrustedKind::DataDir, Some(&self.data_dir()))
            .with(TrustedKind::ToolsDir, Some(&self.tools_dir()))
    }
}

/// The usage error for a policy whose grants are refused (trust placement,
/// special files).
pub fn refused(errors: String) -> crate::cli::UsageError {
    crate::cli::UsageError(format!("the policy grants what no tool may have:\n{errors}"))
}

fn hint_for_tools_dir(dir: &Path) -> String {
    format!(
        "no tools directory at {}; build the tools with `cargo build` or pass --tools-dir",
        dir.display()
    )
}
