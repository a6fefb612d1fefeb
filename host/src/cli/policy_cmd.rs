//! `boram policy check` and `boram policy explain`.

use super::context::GlobalArgs;
use crate::policy::{Policy, explain};
use crate::serve::tenants::{WORKSPACE_VAR, policy_for};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file; errors name the file, line and a fix.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Say in plain words what a tool may touch under the policy (--policy) and why.
    Explain {
        /// Tool name.
        tool: String,
    },
}

impl PolicyCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        match self {
            Self::Check { file } => check(&file, global).await,
            Self::Explain { tool } => {
                let policy = global.app(None).load_policy()?;
                println!("{}", explain(&policy, &tool));
                let cache = crate::config::cache_dir(&global.data_dir());
                if let Ok((known, unknown)) = crate::registry::indexed_names(&global.tools_dir(), &cache)
                    && unknown.is_empty()
                    && !known.contains(&tool)
                {
                    eprintln!(
                        "note: no loaded tool is named `{tool}` (in {})",
                        global.tools_dir().display()
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

async fn check(file: &Path, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let policy = if text.contains(WORKSPACE_VAR) {
        // `${workspace}` is each user's directory under `boram serve`;
        // check the rest with a stand-in.
        let stand_in = tempfile::tempdir()?;
        let policy = policy_for(file, &text, Some(stand_in.path())).map_err(crate::cli::UsageError)?;
        eprintln!(
            "note: {WORKSPACE_VAR} is each user's workspace under `boram serve`; checked with a temporary directory"
        );
        policy
    } else {
        Policy::load(file)?
    };
    // Trust placement: the same refusal `boram run` and a reload would give.
    let trusted = global
        .app(None)
        .trusted_paths()
        .with(crate::policy::TrustedKind::PolicyFile, Some(file));
    match crate::registry::check_grants(&policy, &trusted) {
        Ok(warnings) => warnings.iter().for_each(|w| eprintln!("warning: {w}")),
        Err(errors) => return Err(crate::app::tools::refused(errors).into()),
    }
    let names: Vec<&str> = policy.tools.keys().map(String::as_str).collect();
    println!(
        "{}: ok (version 1; {} tool table{}{})",
        file.display(),
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        if names.is_empty() {
            String::new()
        } else {
            format!(": {}", names.join(", "))
        }
    );
    // A secret whose variable is unset is left out at run time; say so now.
    for (name, tool) in &policy.tools {
        for secret in &tool.secrets {
            for var in secret_variables(&secret.value_template) {
                if std::env::var_os(var).is_none() {
                    eprintln!(
                        "warning: [tools.{name}] secret for {} uses ${{env:{var}}}, which is not set here; \
                         requests will go without the {} header",
                        secret.host, secret.header
                    );
                }
            }
        }
    }
    // Names that match no tool are probably typos. The names come from what
    // the compile cache remembers: checking a policy loads no component.
    let cache = crate::config::cache_dir(&global.data_dir());
    if let Ok((known, unknown)) = crate::registry::indexed_names(&global.tools_dir(), &cache) {
        let builtin = crate::agent::builtin::BUILTIN_NAMES;
        if unknown.is_empty() {
            for name in names
                .iter()
                .filter(|n| !known.iter().any(|k| k == *n) && !builtin.contains(n))
            {
                let hint = crate::suggest::did_you_mean(name, known.iter().map(String::as_str)).unwrap_or_default();
                eprintln!("warning: [tools.{name}] names no loaded tool{hint}");
            }
        } else {
            eprintln!(
                "note: tool names not checked: {} component(s) in {} were never loaded here (`boram tool list` loads them)",
                unknown.len(),
                global.tools_dir().display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `NAME`s of the `${env:NAME}` references in a secret template.
fn secret_variables(template: &str) -> Vec<&str> {
    template
        .split("${env:")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect()
}
