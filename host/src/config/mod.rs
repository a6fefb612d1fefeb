//! Where things live: the data directory (audit log, compile cache,
//! sessions, usage) and the tools directory; [`model`] resolves which model
//! to talk to. Flags win over environment
//! variables, which win over the defaults below.

pub mod model;
pub mod serve;

use std::path::PathBuf;

/// Environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "BORAM_DATA_DIR";
/// Environment variable naming the tools directory.
pub const TOOLS_DIR_ENV: &str = "BORAM_TOOLS_DIR";
/// Environment variable naming the policy file.
pub const POLICY_ENV: &str = "BORAM_POLICY";
/// Environment variable setting the memory budget of calls running at once (MiB).
pub const MEMORY_BUDGET_ENV: &str = "BORAM_MEMORY_BUDGET_MB";
/// Environment variable naming this replica in cluster mode (over `[store] replica`).
pub const REPLICA_ENV: &str = "BORAM_REPLICA";

/// Default data directory: `$XDG_DATA_HOME/boram` (usually
/// `~/.local/share/boram`), or `./.boram` when the platform has none.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("boram"))
        .unwrap_or_else(|| PathBuf::from(".boram"))
}

/// Default tools directory: `./tools` when it holds components (running
/// from a checkout), otherwise the checkout this binary was built from.
pub fn default_tools_dir() -> PathBuf {
    let local = PathBuf::from("tools");
    if has_components(&local) {
        return local;
    }
    PathBuf::from(env!("BORAM_WORKSPACE_DIR")).join("tools")
}

fn has_components(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        })
        .unwrap_or(false)
}

/// The user the CLI is, and the one user of a `boram serve` without
/// `[[serve.users]]`; `boram schedule`'s default `--user`.
pub const LOCAL_USER: &str = "local";

/// A user's own data directory (sessions, memory, usage, audit,
/// schedules): the data directory itself for [`LOCAL_USER`], so the CLI,
/// its schedules and a service's open local user share one memory and one
/// session list; `users/NAME` inside it for a configured service user.
pub fn user_data_dir(data_dir: &std::path::Path, user: &str) -> PathBuf {
    if user == LOCAL_USER {
        return data_dir.to_path_buf();
    }
    data_dir.join("users").join(user)
}

/// The usage log's file name.
pub const USAGE_FILE: &str = "usage.jsonl";

/// The compile cache inside a data directory.
pub fn cache_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("cache")
}

/// Session transcripts inside a data directory.
pub fn sessions_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("sessions")
}

/// The usage log (one line per model call) inside a data directory.
pub fn usage_log(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join(USAGE_FILE)
}
