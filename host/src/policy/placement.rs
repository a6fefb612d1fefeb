//! Trust placement (issue 14): the files that define what a tool may do —
//! the policy file, the config file, the data directory (approvals, audit,
//! the compile cache and its key) and the tools directory — must never be
//! writable from inside a sandbox. A `rw` preopen that contains one of them,
//! or lies inside one, lets a tool rewrite its own rules, forge a remembered
//! approval, or plant machine code the host will run; it is refused at
//! start and on every reload. A `ro` preopen over the data directory lets a
//! tool read the audit log and approvals: a warning.

use super::model::{Access, Policy};
use std::path::{Path, PathBuf};

/// What a protected path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustedKind {
    PolicyFile,
    ConfigFile,
    DataDir,
    ToolsDir,
}

impl TrustedKind {
    fn words(self) -> &'static str {
        match self {
            Self::PolicyFile => "the policy file",
            Self::ConfigFile => "the config file",
            Self::DataDir => "the data directory",
            Self::ToolsDir => "the tools directory",
        }
    }
}

/// The host's own files, made absolute with symlinks resolved (for a path
/// that does not exist yet, its nearest existing ancestor is resolved).
#[derive(Debug, Clone, Default)]
pub struct TrustedPaths {
    paths: Vec<(TrustedKind, PathBuf)>,
}

impl TrustedPaths {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `path` as `kind` (ignored when `None`).
    pub fn with(mut self, kind: TrustedKind, path: Option<&Path>) -> Self {
        if let Some(path) = path {
            self.paths.push((kind, resolve(path)));
        }
        self
    }

    /// The resolved path of `kind`, if one was given.
    pub fn get(&self, kind: TrustedKind) -> Option<&Path> {
        self.paths.iter().find(|(k, _)| *k == kind).map(|(_, p)| p.as_path())
    }
}

/// Refusal or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One preopen that reaches a protected path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementFinding {
    pub severity: Severity,
    pub tool: String,
    /// The preopen's host directory and its line in the policy file.
    pub grant: PathBuf,
    pub line: usize,
    pub access: Access,
    pub kind: TrustedKind,
    pub protected: PathBuf,
    /// The policy file, for the message.
    pub policy: String,
}

impl std::fmt::Display for PlacementFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let access = match self.access {
            Access::ReadOnly => "ro",
            Access::ReadWrite => "rw",
        };
        let relation = if self.protected == self.grant {
            "is"
        } else if self.protected.starts_with(&self.grant) {
            "contains"
        } else {
            "lies inside"
        };
        write!(
            f,
            "{}:{}: [tools.{}] {access} preopen {} {relation} {} {}",
            self.policy,
            self.line,
            self.tool,
            self.grant.display(),
            self.kind.words(),
            self.protected.display()
        )?;
        match self.severity {
            Severity::Error => write!(
                f,
                "; a tool could rewrite what the host trusts. Move {} out of the granted directory, or grant a narrower one",
                self.kind.words()
            ),
            Severity::Warning => write!(f, "; the tool can read the audit log and remembered approvals"),
        }
    }
}

/// Every preopen of `policy` that reaches one of `trusted`, errors first.
pub fn check_placement(policy: &Policy, trusted: &TrustedPaths) -> Vec<PlacementFinding> {
    let mut findings = Vec::new();
    for (tool, tool_policy) in &policy.tools {
        for grant in &tool_policy.fs {
            for (kind, protected) in &trusted.paths {
                let overlaps = protected.starts_with(&grant.host) || grant.host.starts_with(protected);
                let severity = match (grant.access, kind) {
                    _ if !overlaps => continue,
                    (Access::ReadWrite, _) => Severity::Error,
                    (Access::ReadOnly, TrustedKind::DataDir) => Severity::Warning,
                    (Access::ReadOnly, _) => continue,
                };
                findings.push(PlacementFinding {
                    severity,
                    tool: tool.clone(),
                    grant: grant.host.clone(),
                    line: grant.line,
                    access: grant.access,
                    kind: *kind,
                    protected: protected.clone(),
                    policy: policy.display_source(),
                });
            }
        }
    }
    findings.sort_by_key(|f| (f.severity != Severity::Error, f.line));
    findings
}

/// `path` absolute with symlinks resolved as far as it exists.
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_with(root: &Path, tool: &str, host: &str, access: &str) -> Policy {
        let text = format!(
            "version = 1\n[tools.{tool}]\nfs = [{{ host = \"{host}\", guest = \"/g\", access = \"{access}\" }}]\n"
        );
        Policy::parse(&text, "p.toml", root).expect("test setup")
    }

    #[test]
    fn rw_over_each_protected_path_is_an_error_and_ro_over_data_a_warning_issue_14() {
        let dir = tempfile::tempdir().expect("test setup");
        let root = dir.path().canonicalize().expect("test setup");
        for d in ["ws/tools", "ws/data/sub", "elsewhere"] {
            std::fs::create_dir_all(root.join(d)).expect("test setup");
        }
        std::fs::write(root.join("ws/policy.toml"), "").expect("test setup");
        let trusted = TrustedPaths::new()
            .with(TrustedKind::PolicyFile, Some(&root.join("ws/policy.toml")))
            .with(TrustedKind::ToolsDir, Some(&root.join("ws/tools")))
            .with(TrustedKind::DataDir, Some(&root.join("ws/data")));

        let w = check_placement(&policy_with(&root, "w", "ws", "rw"), &trusted);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w.iter().all(|f| f.severity == Severity::Error));
        let message = w[0].to_string();
        assert!(message.starts_with("p.toml:3: [tools.w] rw preopen"), "{message}");
        assert!(message.contains("contains the policy file"), "{message}");

        let inside = check_placement(&policy_with(&root, "w", "ws/data/sub", "rw"), &trusted);
        assert_eq!(inside.len(), 1);
        assert!(
            inside[0].to_string().contains("lies inside the data directory"),
            "{}",
            inside[0]
        );

        let r = check_placement(&policy_with(&root, "r", "ws/data", "ro"), &trusted);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].severity, Severity::Warning);
        assert!(r[0].to_string().contains("ro preopen"));
        assert!(check_placement(&policy_with(&root, "r", "ws/tools", "ro"), &trusted).is_empty());
        assert!(check_placement(&policy_with(&root, "e", "elsewhere", "rw"), &trusted).is_empty());
    }

    #[test]
    fn a_data_dir_not_created_yet_is_still_protected() {
        let dir = tempfile::tempdir().expect("test setup");
        let root = dir.path().canonicalize().expect("test setup");
        std::fs::create_dir_all(root.join("ws")).expect("test setup");
        let trusted = TrustedPaths::new().with(TrustedKind::DataDir, Some(&root.join("ws/.boram/state")));
        assert_eq!(
            trusted.get(TrustedKind::DataDir),
            Some(root.join("ws/.boram/state").as_path())
        );
        let found = check_placement(&policy_with(&root, "w", "ws", "rw"), &trusted);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Error);
    }
}
