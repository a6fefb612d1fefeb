//! Approvals: whether a tool call the model asked for may run. The policy
//! says `allow`, `deny` or `prompt`; for `prompt` the user is asked (tool,
//! input and what the tool is granted) and answers once / for this session
//! / always / deny with an optional reason for the model. "Always" is
//! remembered in `approvals.json` in the data directory, bound to the tool's
//! content hash: a rebuilt tool is asked about again. Without a terminal,
//! `prompt` means deny unless the user passed `--yes`.

use crate::policy::Approval;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// File name of the remembered approvals inside the data directory.
pub const APPROVALS_FILE: &str = "approvals.json";

/// The user's answer to a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Once,
    Session,
    Always,
    Deny(Option<String>),
}

/// What the user is shown.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    pub tool: String,
    pub tool_hash: String,
    pub input: serde_json::Value,
    /// One line: what the policy grants the tool.
    pub grants: String,
}

/// Asks a person.
#[async_trait::async_trait]
pub trait Prompter: Send + Sync {
    async fn ask(&self, request: &ApprovalRequest) -> Answer;
}

/// The outcome, with a word for the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(&'static str),
    Deny { how: &'static str, reason: String },
}

impl Decision {
    /// `allow (once)`, `deny (policy)`, …
    pub fn label(&self) -> String {
        match self {
            Decision::Allow(how) => format!("allow ({how})"),
            Decision::Deny { how, .. } => format!("deny ({how})"),
        }
    }
}

/// How `prompt` is answered in this process.
pub enum PromptMode {
    /// Ask the user.
    Ask(Arc<dyn Prompter>),
    /// Nobody to ask: deny, or allow when `yes` (`--yes`).
    Unattended { yes: bool },
}

pub struct Approvals {
    mode: PromptMode,
    /// Tools allowed "for this session", by name and hash.
    session: Mutex<HashSet<(String, String)>>,
    remembered: Remembered,
    /// One question on the terminal at a time, even for parallel tool calls.
    asking: tokio::sync::Mutex<()>,
}

impl Approvals {
    /// `data_dir` holds the remembered "always" answers.
    pub fn new(mode: PromptMode, data_dir: &Path) -> Self {
        Self {
            mode,
            session: Mutex::default(),
            remembered: Remembered::load(data_dir.join(APPROVALS_FILE)),
            asking: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn decide(&self, policy: Approval, request: &ApprovalRequest) -> Decision {
        match policy {
            Approval::Allow => return Decision::Allow("policy"),
            Approval::Deny => {
                return Decision::Deny {
                    how: "policy",
                    reason: format!("the policy denies `{}` (approval = \"deny\")", request.tool),
                };
            }
            Approval::Prompt => {}
        }
        let key = (request.tool.clone(), request.tool_hash.clone());
        if self.session.lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
            return Decision::Allow("session");
        }
        if self.remembered.contains(&request.tool, &request.tool_hash) {
            return Decision::Allow("always");
        }
        let prompter = match &self.mode {
            PromptMode::Unattended { yes: true } => return Decision::Allow("--yes"),
            PromptMode::Unattended { yes: false } => {
                return Decision::Deny {
                    how: "unattended",
                    reason: format!(
                        "`{}` needs the user's approval and nobody can be asked (run interactively, or pass --yes)",
                        request.tool
                    ),
                };
            }
            PromptMode::Ask(prompter) => prompter,
        };
        let _one_at_a_time = self.asking.lock().await;
        // A parallel call may have been approved for the session while we waited.
        if self.session.lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
            return Decision::Allow("session");
        }
        match prompter.ask(request).await {
            Answer::Once => Decision::Allow("once"),
            Answer::Session => {
                self.session.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
                Decision::Allow("session")
            }
            Answer::Always => {
                if let Err(e) = self.remembered.add(&request.tool, &request.tool_hash) {
                    tracing::error!(error = %e, "cannot save the approval; it holds for this run only");
                }
                Decision::Allow("always")
            }
            Answer::Deny(reason) => Decision::Deny {
                how: "user",
                reason: match reason {
                    Some(why) => format!("the user denied `{}`: {why}", request.tool),
                    None => format!("the user denied `{}`", request.tool),
                },
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RememberedApproval {
    tool: String,
    sha256: String,
    granted: String,
}

/// "Always" answers, persisted with temp file + rename.
struct Remembered {
    path: PathBuf,
    entries: Mutex<Vec<RememberedApproval>>,
}

impl Remembered {
    fn load(path: PathBuf) -> Self {
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable approvals file");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        Self {
            path,
            entries: Mutex::new(entries),
        }
    }

    fn contains(&self, tool: &str, sha256: &str) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().any(|e| e.tool == tool && e.sha256 == sha256)
    }

    fn add(&self, tool: &str, sha256: &str) -> std::io::Result<()> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push(RememberedApproval {
            tool: tool.to_string(),
            sha256: sha256.to_string(),
            granted: crate::audit::now(),
        });
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        file.write_all(&serde_json::to_vec_pretty(&*entries).map_err(std::io::Error::other)?)?;
        file.as_file().sync_all()?;
        file.persist(&self.path).map(|_| ()).map_err(|e| e.error)
    }
}

/// Asks on a line-based terminal: the question goes to `output`, the answer
/// is read from `input` (stdin and stderr for the real terminal).
pub struct LinePrompter {
    io: Arc<Mutex<LineIo>>,
}

/// Where questions are written and answers read.
type LineIo = (Box<dyn BufRead + Send>, Box<dyn Write + Send>);

impl LinePrompter {
    pub fn new(input: Box<dyn BufRead + Send>, output: Box<dyn Write + Send>) -> Self {
        Self {
            io: Arc::new(Mutex::new((input, output))),
        }
    }

    /// Reads stdin, writes stderr.
    pub fn terminal() -> Self {
        Self::new(
            Box::new(std::io::BufReader::new(std::io::stdin())),
            Box::new(std::io::stderr()),
        )
    }
}

#[async_trait::async_trait]
impl Prompter for LinePrompter {
    async fn ask(&self, request: &ApprovalRequest) -> Answer {
        let io = self.io.clone();
        let request = request.clone();
        tokio::task::spawn_blocking(move || {
            let mut io = io.lock().unwrap_or_else(|e| e.into_inner());
            let (input, output) = &mut *io;
            ask_lines(&request, input.as_mut(), output.as_mut())
        })
        .await
        .unwrap_or(Answer::Deny(None))
    }
}

fn ask_lines(request: &ApprovalRequest, input: &mut dyn BufRead, output: &mut dyn Write) -> Answer {
    let shown = serde_json::to_string_pretty(&request.input).unwrap_or_default();
    let _ = writeln!(output, "\n? `{}` wants to run with input:", request.tool);
    for line in shown.lines() {
        let _ = writeln!(output, "    {line}");
    }
    let _ = writeln!(output, "  it is granted: {}", request.grants);
    for _ in 0..3 {
        let _ = write!(
            output,
            "  allow [o]nce, for this [s]ession, [a]lways, or [d]eny (d: reason)? "
        );
        let _ = output.flush();
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return Answer::Deny(Some("no answer (end of input)".into())),
            Ok(_) => {}
        }
        if let Some(answer) = parse_answer(&line) {
            return answer;
        }
        let _ = writeln!(output, "  please answer o, s, a or d");
    }
    Answer::Deny(None)
}

/// `o`/`once`, `s`/`session`, `a`/`always`, `d`/`deny` optionally followed
/// by `:` or a space and a reason.
pub fn parse_answer(line: &str) -> Option<Answer> {
    let line = line.trim();
    let (word, rest) = line
        .split_once(|c: char| c == ':' || c.is_whitespace())
        .unwrap_or((line, ""));
    let reason = Some(rest.trim().to_string()).filter(|r| !r.is_empty());
    match word.to_ascii_lowercase().as_str() {
        "o" | "once" | "y" | "yes" => Some(Answer::Once),
        "s" | "session" => Some(Answer::Session),
        "a" | "always" => Some(Answer::Always),
        "d" | "deny" | "n" | "no" => Some(Answer::Deny(reason)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_an_optional_reason() {
        assert_eq!(parse_answer("o\n"), Some(Answer::Once));
        assert_eq!(parse_answer(" Session "), Some(Answer::Session));
        assert_eq!(parse_answer("a"), Some(Answer::Always));
        assert_eq!(parse_answer("d"), Some(Answer::Deny(None)));
        assert_eq!(
            parse_answer("d: use list_dir first"),
            Some(Answer::Deny(Some("use list_dir first".into())))
        );
        assert_eq!(parse_answer("maybe"), None);
    }

    #[test]
    fn the_prompt_shows_tool_input_and_grants_and_asks_again_on_nonsense() {
        let request = ApprovalRequest {
            tool: "write_file".into(),
            tool_hash: "h".into(),
            input: serde_json::json!({"path": "/workspace/a.txt"}),
            grants: "fs /workspace (rw)".into(),
        };
        let mut output = Vec::new();
        let answer = ask_lines(&request, &mut std::io::Cursor::new("what\ns\n"), &mut output);
        assert_eq!(answer, Answer::Session);
        let shown = String::from_utf8(output).expect("utf8");
        assert!(
            shown.contains("`write_file`")
                && shown.contains("/workspace/a.txt")
                && shown.contains("fs /workspace (rw)")
        );
        assert!(shown.contains("please answer"), "{shown}");
    }
}
