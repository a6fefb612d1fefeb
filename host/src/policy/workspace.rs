//! `${workspace}` in a policy, and the built-in workspace policy.
//!
//! A policy may name its directory as `${workspace}`: `boram serve` puts
//! each user's workspace there, the CLI the directory given with
//! `--workspace` (or the current one). Without `--policy`, `boram chat` and
//! `boram run` use `policies/workspace.toml`, compiled in, over that
//! directory: work where the user is, as coding agents do, and say so.

use super::Policy;
use std::path::Path;

/// The placeholder replaced by the workspace directory.
pub const WORKSPACE_VAR: &str = "${workspace}";
/// The built-in policy's text (`policies/workspace.toml`).
pub const BUILTIN: &str = include_str!("../../../policies/workspace.toml");
/// How the built-in policy is named in messages.
pub const BUILTIN_NAME: &str = "the built-in workspace policy";

/// Parses the policy `text` of file `path`, `${workspace}` replaced by
/// `workspace` (created if missing); an error when the text uses it and no
/// workspace is given.
pub fn parse_with_workspace(path: &Path, text: &str, workspace: Option<&Path>) -> Result<Policy, String> {
    let text = match workspace {
        Some(dir) => substitute(text, dir)?,
        None if text.contains(WORKSPACE_VAR) => {
            return Err(format!(
                "{} uses {WORKSPACE_VAR}, but no workspace is set: pass --workspace DIR or configure [[serve.users]]",
                path.display()
            ));
        }
        None => text.to_string(),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    Policy::parse(&text, &path.display().to_string(), base).map_err(|e| e.to_string())
}

/// The built-in workspace policy over `dir`. Without `writable`,
/// `write_file` gets no directory (used when `dir` holds the host's own
/// files, which no tool may write).
pub fn builtin(dir: &Path, writable: bool) -> Result<Policy, String> {
    let text = substitute(BUILTIN, dir)?;
    let mut policy = Policy::parse(&text, BUILTIN_NAME, dir).map_err(|e| e.to_string())?;
    if !writable && let Some(write) = policy.tools.get_mut("write_file") {
        write.fs.clear();
    }
    Ok(policy)
}

/// `text` with `${workspace}` replaced by `dir` (created if missing, made
/// absolute), escaped for a TOML string.
fn substitute(text: &str, dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the workspace {}: {e}", dir.display()))?;
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let escaped = dir.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    Ok(text.replace(WORKSPACE_VAR, &escaped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_policy_reads_the_workspace_and_writes_after_asking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = builtin(dir.path(), true).expect("builtin");
        let read = policy.tool("read_file");
        assert_eq!(read.approval, crate::policy::Approval::Allow);
        assert_eq!(read.fs[0].guest, "/workspace");
        let write = policy.tool("write_file");
        assert_eq!(write.approval, crate::policy::Approval::Prompt);
        assert_eq!(write.fs[0].access, crate::policy::Access::ReadWrite);
        assert!(policy.tools.values().all(|t| t.net.is_empty() && t.env.is_empty()));
        assert!(builtin(dir.path(), false).expect("ro").tool("write_file").fs.is_empty());
    }

    #[test]
    fn a_workspace_with_quotes_in_its_name_is_escaped() {
        let root = tempfile::tempdir().expect("tempdir");
        let odd = root.path().join("my \"work\"");
        let policy = builtin(&odd, true).expect("builtin");
        assert!(policy.tool("read_file").fs[0].host.ends_with("my \"work\""));
    }
}
