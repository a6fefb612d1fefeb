//! Recovery help (opt-in, `[serve] recovery = true`): after repeated
//! crashes the supervisor shows the model the service's last log lines and
//! lets it pick **one** action from a fixed list. The model only chooses;
//! the supervisor validates and carries it out, and nothing outside the
//! list can run:
//!
//! - `remove_stale_file {path}`: a `.pid` or `.lock` file inside the data
//!   directory, and only if the process a `.pid` names is not running;
//! - `use_free_port {}`: the next free port after the configured one;
//! - `fall_back_to_last_good_policy {}`: the copy of the policy kept from
//!   the last start that answered `/health`;
//! - `clear_cache_entry {name}`: one entry of the compile cache;
//! - `no_action {reason}`.
//!
//! Every choice, accepted or refused, and its result is an audit line.

use crate::audit::AuditLog;
use crate::llm::{ChatRequest, Gateway, Message, ToolChoice, ToolDef};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Recovery {
    pub gateway: Arc<Gateway>,
    pub model: String,
    /// Consecutive failures before the model is asked (then after each further one).
    pub after: u32,
    pub data_dir: PathBuf,
}

/// An action the supervisor can take.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    RemoveStaleFile(String),
    UseFreePort,
    FallBackToLastGoodPolicy,
    ClearCacheEntry(String),
    NoAction(String),
}

const SYSTEM: &str = "You help a process supervisor recover a service that keeps crashing. Read its last log lines \
and call exactly one of the tools you are given: the action most likely to let the next start succeed, or \
no_action when none of them fits. You cannot run anything else.";

fn tools() -> Vec<ToolDef> {
    let def = |name: &str, description: &str, schema: Value| ToolDef {
        name: name.into(),
        description: description.into(),
        input_schema: schema,
    };
    let empty = json!({"type": "object", "additionalProperties": false, "properties": {}});
    vec![
        def(
            "remove_stale_file",
            "Remove a stale .pid or .lock file inside the service's data directory (refused if its process runs).",
            json!({"type": "object", "additionalProperties": false, "required": ["path"],
                   "properties": {"path": {"type": "string"}}}),
        ),
        def(
            "use_free_port",
            "Start the service on the next free port after the configured one (the port is taken).",
            empty.clone(),
        ),
        def(
            "fall_back_to_last_good_policy",
            "Start with the last policy file that ran healthy (the current policy is broken).",
            empty.clone(),
        ),
        def(
            "clear_cache_entry",
            "Delete one entry of the compile cache (a corrupt cached component), by its file name.",
            json!({"type": "object", "additionalProperties": false, "required": ["name"],
                   "properties": {"name": {"type": "string"}}}),
        ),
        def(
            "no_action",
            "None of the actions fits.",
            json!({"type": "object", "additionalProperties": false, "required": ["reason"],
                   "properties": {"reason": {"type": "string"}}}),
        ),
    ]
}

/// The model's choice as an [`Action`]; `Err` names what was refused.
pub fn parse(name: &str, input: &Value) -> Result<Action, String> {
    let text = |key: &str| {
        input[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("`{name}` needs a string `{key}`"))
    };
    match name {
        "remove_stale_file" => Ok(Action::RemoveStaleFile(text("path")?)),
        "use_free_port" => Ok(Action::UseFreePort),
        "fall_back_to_last_good_policy" => Ok(Action::FallBackToLastGoodPolicy),
        "clear_cache_entry" => Ok(Action::ClearCacheEntry(text("name")?)),
        "no_action" => Ok(Action::NoAction(text("reason").unwrap_or_default())),
        other => Err(format!("`{other}` is not one of the allowed recovery actions")),
    }
}

/// Where the copy of the last healthy policy is kept: beside the policy
/// (so its relative paths still resolve).
pub fn last_good_policy(policy: &Path) -> PathBuf {
    let name = policy
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    policy.with_file_name(format!(".{name}.last-good"))
}

/// The value after `flag` in `args`.
fn flag_value<'a>(args: &'a mut [String], flag: &str) -> Option<&'a mut String> {
    let i = args.iter().position(|a| a == flag)?;
    args.get_mut(i + 1)
}

impl Recovery {
    /// Asks the model and applies its choice to `args` (the next start's).
    pub async fn recover(&self, log_tail: &[String], failures: u32, args: &mut [String], audit: Option<&AuditLog>) {
        let request = ChatRequest {
            model: self.model.clone(),
            system: SYSTEM.into(),
            messages: vec![Message::user_text(format!(
                "The service failed {failures} times in a row. Its last log lines:\n\n{}\n\nChoose one action.",
                log_tail.join("\n")
            ))],
            tools: tools(),
            tool_choice: ToolChoice::Any,
            max_tokens: 512,
        };
        let reply = match self.gateway.send(&request, &|_| {}, "supervisor").await {
            Ok(completion) => completion.response.message,
            Err(e) => {
                audit_line(audit, json!({"event": "recovery_failed", "error": e.to_string()}));
                return;
            }
        };
        let Some((_, name, input)) = reply.tool_uses().next() else {
            audit_line(
                audit,
                json!({"event": "recovery_rejected", "error": "the model chose no action"}),
            );
            return;
        };
        let action = match parse(name, input) {
            Ok(action) => action,
            Err(e) => {
                eprintln!("supervisor: recovery refused: {e}");
                audit_line(
                    audit,
                    json!({"event": "recovery_rejected", "action": name, "input": input, "error": e}),
                );
                return;
            }
        };
        let result = self.apply(&action, args);
        eprintln!("supervisor: recovery {name}: {}", result.as_ref().unwrap_or_else(|e| e));
        audit_line(
            audit,
            json!({"event": "recovery_action", "action": name, "input": input,
                   "ok": result.is_ok(), "result": result.unwrap_or_else(|e| e)}),
        );
    }

    /// Carries out `action` within its limits.
    pub fn apply(&self, action: &Action, args: &mut [String]) -> Result<String, String> {
        match action {
            Action::NoAction(reason) => Ok(format!("nothing done: {reason}")),
            Action::UseFreePort => {
                let addr = flag_value(args, "--addr").ok_or("the service has no --addr to change")?;
                let current: std::net::SocketAddr = addr.parse().map_err(|e| format!("--addr {addr}: {e}"))?;
                let free = (current.port().saturating_add(1)..=current.port().saturating_add(100))
                    .map(|port| std::net::SocketAddr::new(current.ip(), port))
                    .find(|candidate| std::net::TcpListener::bind(candidate).is_ok())
                    .ok_or("no free port among the next 100")?;
                *addr = free.to_string();
                Ok(format!("the next start listens on {free}"))
            }
            Action::FallBackToLastGoodPolicy => {
                let policy = flag_value(args, "--policy").ok_or("the service runs without --policy")?;
                let copy = last_good_policy(Path::new(policy.as_str()));
                if !copy.exists() {
                    return Err("no policy has started healthy yet; nothing to fall back to".into());
                }
                *policy = copy.display().to_string();
                Ok(format!("the next start uses {}", copy.display()))
            }
            Action::ClearCacheEntry(name) => {
                if name.is_empty() || name.contains('/') || name.contains("..") {
                    return Err(format!("`{name}` is not a cache entry name"));
                }
                let path = crate::config::cache_dir(&self.data_dir).join(name);
                if !path.exists() {
                    return Err(format!("no cache entry `{name}`"));
                }
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
                Ok(format!("removed {}", path.display()))
            }
            Action::RemoveStaleFile(path) => self.remove_stale(Path::new(path)),
        }
    }

    fn remove_stale(&self, path: &Path) -> Result<String, String> {
        let data_dir = self.data_dir.canonicalize().map_err(|e| e.to_string())?;
        let full = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
        if !full.starts_with(&data_dir) {
            return Err(format!("{} is outside the data directory", full.display()));
        }
        let extension = full.extension().and_then(|e| e.to_str()).unwrap_or("");
        if extension != "pid" && extension != "lock" {
            return Err(format!("{} is not a .pid or .lock file", full.display()));
        }
        if extension == "pid"
            && let Some(pid) = std::fs::read_to_string(&full)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        {
            return Err(format!("process {pid} from {} is running; not stale", full.display()));
        }
        std::fs::remove_file(&full).map_err(|e| format!("cannot remove {}: {e}", full.display()))?;
        Ok(format!("removed {}", full.display()))
    }
}

fn audit_line(audit: Option<&AuditLog>, mut line: Value) {
    line["time"] = json!(crate::audit::now());
    if let Some(audit) = audit {
        audit.event(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recovery(dir: &Path) -> Recovery {
        let provider = crate::llm::connect(&crate::llm::Endpoint {
            kind: crate::llm::ProviderKind::Anthropic,
            base_url: "http://127.0.0.1:9".into(),
            api_key: Some("k".into()),
            max_event_bytes: crate::llm::DEFAULT_MAX_EVENT_BYTES,
        })
        .expect("provider");
        Recovery {
            gateway: Arc::new(Gateway::new(provider, Default::default(), Default::default())),
            model: "m".into(),
            after: 2,
            data_dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn only_listed_actions_parse() {
        assert_eq!(parse("use_free_port", &json!({})), Ok(Action::UseFreePort));
        assert!(parse("run_shell", &json!({"command": "rm -rf /"})).is_err());
        assert!(parse("remove_stale_file", &json!({})).is_err());
    }

    #[test]
    fn actions_stay_within_their_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = recovery(dir.path());
        let mut args: Vec<String> = vec!["serve".into()];
        // Files: only .pid/.lock inside the data dir, and a live pid is kept.
        let outside = tempfile::NamedTempFile::new().expect("tmp");
        assert!(
            r.apply(
                &Action::RemoveStaleFile(outside.path().display().to_string()),
                &mut args
            )
            .is_err()
        );
        std::fs::write(dir.path().join("notes.txt"), "x").expect("write");
        let notes = dir.path().join("notes.txt").display().to_string();
        assert!(r.apply(&Action::RemoveStaleFile(notes), &mut args).is_err());
        let live = dir.path().join("serve.pid");
        std::fs::write(&live, std::process::id().to_string()).expect("pid");
        assert!(
            r.apply(&Action::RemoveStaleFile(live.display().to_string()), &mut args)
                .is_err()
        );
        assert!(live.exists());
        let stale = dir.path().join("old.lock");
        std::fs::write(&stale, "").expect("lock");
        assert!(
            r.apply(&Action::RemoveStaleFile(stale.display().to_string()), &mut args)
                .is_ok()
        );
        assert!(!stale.exists());
        // Cache entries: a bare name only.
        assert!(r.apply(&Action::ClearCacheEntry("../x".into()), &mut args).is_err());
        // The policy fallback needs a copy from a healthy start.
        let mut with_policy: Vec<String> = vec!["--policy".into(), dir.path().join("p.toml").display().to_string()];
        assert!(r.apply(&Action::FallBackToLastGoodPolicy, &mut with_policy).is_err());
        std::fs::write(last_good_policy(&dir.path().join("p.toml")), "version = 1\n").expect("copy");
        assert!(r.apply(&Action::FallBackToLastGoodPolicy, &mut with_policy).is_ok());
        assert!(with_policy[1].ends_with(".p.toml.last-good"));
        // A taken port moves to a free one.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr");
        let mut with_addr: Vec<String> = vec!["--addr".into(), port.to_string()];
        assert!(r.apply(&Action::UseFreePort, &mut with_addr).is_ok());
        assert_ne!(with_addr[1], port.to_string());
    }
}
