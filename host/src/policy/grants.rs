//! Checks over the directories and environment keys a policy grants,
//! looking at every tool at once (issue 14).
//!
//! WASI confines a guest to its preopens, but a preopen is only as safe as
//! the path that leads to it: a guest with `rw` on a parent can rename a
//! granted child away and put a symlink in its place, so the next time the
//! child is opened it points anywhere. So no preopen may lie inside, or
//! contain, a `rw` preopen (its own tool's or another's). Kernel trees
//! (`/proc`, `/sys`, `/dev`) and `/` are never granted: `/proc/self/environ`
//! alone holds the host's API keys. And the keys the host itself uses to
//! talk to model providers are not handed to tools unless the policy says
//! so twice (`env` and `force_env`).

use super::model::{Access, FsGrant, ToolPolicy};
use std::collections::BTreeMap;
use std::path::Path;

/// Environment keys the host itself reads for its own credentials. A tool
/// that lists one in `env` is refused unless it is also in `force_env`.
pub const HOST_SECRET_ENV_KEYS: [&str; 3] = ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "BORAM_SERVE_TOKEN"];

/// Kernel trees that expose the host process (its environment, memory,
/// file descriptors) or devices: refused as grants, and so is anything inside them.
const KERNEL_TREES: [&str; 3] = ["/proc", "/sys", "/dev"];

/// A grant the policy may not make, at the line that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantProblem {
    pub line: usize,
    pub message: String,
    pub help: String,
}

/// Why `host` (canonical) may never be granted, if it may not.
pub fn forbidden_dir(host: &Path) -> Option<String> {
    if host == Path::new("/") {
        return Some("`/` is the whole host file system".to_string());
    }
    KERNEL_TREES
        .iter()
        .find(|tree| host.starts_with(tree))
        .map(|tree| format!("{tree} exposes the host's processes and devices (e.g. /proc/self/environ)"))
}

/// Whether `key` is one of the host's own credentials.
pub fn is_host_secret_key(key: &str) -> bool {
    HOST_SECRET_ENV_KEYS.contains(&key)
}

/// The first pair of preopens, of any tools, where one strictly contains
/// the other and at least one is `rw`; reported at the later line.
pub fn nesting_problem(tools: &BTreeMap<String, ToolPolicy>) -> Option<GrantProblem> {
    let grants: Vec<(&str, &FsGrant)> = tools
        .iter()
        .flat_map(|(name, tool)| tool.fs.iter().map(move |g| (name.as_str(), g)))
        .collect();
    let mut found: Vec<GrantProblem> = Vec::new();
    for (i, (tool_a, a)) in grants.iter().enumerate() {
        for (tool_b, b) in &grants[i + 1..] {
            if a.host == b.host || !(a.host.starts_with(&b.host) || b.host.starts_with(&a.host)) {
                continue;
            }
            if a.access != Access::ReadWrite && b.access != Access::ReadWrite {
                continue;
            }
            let ((outer_tool, outer), (inner_tool, inner)) = if b.host.starts_with(&a.host) {
                ((*tool_a, *a), (*tool_b, *b))
            } else {
                ((*tool_b, *b), (*tool_a, *a))
            };
            found.push(GrantProblem {
                line: a.line.max(b.line),
                message: format!(
                    "preopen {} ({}, [tools.{inner_tool}] line {}) lies inside preopen {} ({}, [tools.{outer_tool}] line {})",
                    inner.host.display(),
                    access_word(inner.access),
                    inner.line,
                    outer.host.display(),
                    access_word(outer.access),
                    outer.line,
                ),
                help: "a tool with rw on a directory can swap any directory below it for a symlink; \
                       grant sibling directories instead of nested ones"
                    .to_string(),
            });
        }
    }
    found.into_iter().min_by_key(|p| p.line)
}

fn access_word(access: Access) -> &'static str {
    match access {
        Access::ReadOnly => "ro",
        Access::ReadWrite => "rw",
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::Policy;

    fn policy(text: &str) -> Result<Policy, String> {
        let dir = tempfile::tempdir().expect("test setup");
        for d in ["work/data", "other"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("test setup");
        }
        Policy::parse(text, "p.toml", dir.path()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_preopen_inside_a_rw_preopen_is_refused_issue_14() {
        let err = policy(
            "version = 1\n[tools.a]\nfs = [{ host = \"work\", guest = \"/w\", access = \"rw\" }]\n\
             [tools.b]\nfs = [{ host = \"work/data\", guest = \"/data\", access = \"ro\" }]\n",
        )
        .expect_err("must be refused");
        assert!(err.contains("p.toml:5"), "{err}");
        assert!(err.contains("lies inside preopen"), "{err}");
        assert!(err.contains("[tools.a] line 3"), "{err}");
    }

    #[test]
    fn its_own_nested_preopen_is_refused_too_and_ro_nesting_is_fine() {
        let own = "version = 1\n[tools.a]\nfs = [\n { host = \"work\", guest = \"/w\", access = \"rw\" },\n \
                   { host = \"work/data\", guest = \"/data\", access = \"ro\" },\n]\n";
        assert!(policy(own).expect_err("must be refused").contains("p.toml:5"));
        let ro = "version = 1\n[tools.a]\nfs = [\n { host = \"work\", guest = \"/w\" },\n \
                  { host = \"work/data\", guest = \"/data\" },\n]\n";
        assert!(policy(ro).is_ok());
        let same = "version = 1\n[tools.a]\nfs = [{ host = \"work\", guest = \"/w\", access = \"rw\" }]\n\
                    [tools.b]\nfs = [{ host = \"work\", guest = \"/w\" }]\n";
        assert!(policy(same).is_ok(), "the same directory for two tools is not nesting");
    }

    #[test]
    fn kernel_trees_and_root_are_refused() {
        for host in ["/", "/proc", "/proc/self", "/sys", "/dev"] {
            let text = format!("version = 1\n[tools.a]\nfs = [{{ host = \"{host}\", guest = \"/x\" }}]\n");
            let err = policy(&text).expect_err("must be refused");
            assert!(err.contains("may not be granted"), "{host}: {err}");
        }
    }

    #[test]
    fn host_credentials_need_force_env() {
        let err = policy("version = 1\n[tools.a]\nenv = [\"ANTHROPIC_API_KEY\"]\n").expect_err("must be refused");
        assert!(err.contains("p.toml:3") && err.contains("force_env"), "{err}");
        let forced =
            policy("version = 1\n[tools.a]\nenv = [\"ANTHROPIC_API_KEY\"]\nforce_env = [\"ANTHROPIC_API_KEY\"]\n")
                .expect("test setup");
        assert_eq!(forced.tools["a"].env[0].key, "ANTHROPIC_API_KEY");
        let stray = policy("version = 1\n[tools.a]\nforce_env = [\"OPENAI_API_KEY\"]\n").expect_err("must be refused");
        assert!(stray.contains("not in `env`"), "{stray}");
    }
}
