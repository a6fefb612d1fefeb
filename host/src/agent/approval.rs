//! Approvals: whether a tool call the model asked for may run. The policy
//! says `allow`, `deny` or `prompt`; for `prompt` the user is asked (tool,
//! its file and hash, input and what the tool is granted) and answers once
//! / for this session / always / deny with an optional reason for the
//! model. Without a terminal, `prompt` means deny unless the user passed
//! `--yes`.
//!
//! A remembered answer ("session", or "always" in `approvals.json`) covers
//! only what the user approved: the tool, its content hash and a
//! fingerprint of its grant (fs, net, env, secrets, limits and the policy
//! file it came from). A rebuilt tool, a widened grant or another policy
//! file asks again. For a tool with `net` rules it also covers only the
//! origins (`scheme://host:port`) the approved input named, and the calls
//! it covers may reach only those origins (the egress filter enforces it);
//! "any host the policy allows" is a separate, explicit answer. An input
//! that names no URL cannot be scoped, so for it only "once" and "any host"
//! are offered.

use crate::policy::{Approval, ToolPolicy};
use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use crate::store::approvals::APPROVALS_FILE;
use crate::store::approvals::{ApprovalBook, Grant};

/// The user's answer to a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Once,
    /// This session; for a networked tool, the input's origins only.
    Session,
    /// Remembered; for a networked tool, the input's origins only.
    Always,
    /// This session, any host the policy allows (networked tools).
    SessionAnyHost,
    Deny(Option<String>),
}

/// What the user is shown.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    pub tool: String,
    pub tool_hash: String,
    /// Where the tool came from (its file), so a look-alike name shows.
    pub source: String,
    pub input: serde_json::Value,
    /// One line: what the policy grants the tool.
    pub grants: String,
    /// [`grant_fingerprint`] of the tool's grant under the policy in force.
    pub grant: String,
    /// The tool has `net` rules: approvals are scoped to origins.
    pub networked: bool,
}

impl ApprovalRequest {
    /// The question a call of `name` (content hash `tool_hash`, from
    /// `source`) with `input` raises under `host`'s policy now, and the
    /// approval that policy sets for it.
    pub fn for_call(
        host: &crate::registry::ToolHost,
        name: &str,
        input: &serde_json::Value,
        tool_hash: String,
        source: String,
    ) -> (Approval, Self) {
        let policy = host.policy();
        let tool_policy = policy.tool(name);
        let approval = crate::agent::builtin::approval_for(name, &tool_policy);
        let request = ApprovalRequest {
            tool: name.to_string(),
            tool_hash,
            source,
            input: input.clone(),
            grants: crate::policy::summary(&tool_policy),
            grant: grant_fingerprint(&policy.display_source(), &tool_policy),
            networked: !tool_policy.net.is_empty(),
        };
        (approval, request)
    }

    /// The origins the input's URLs name, normalised (`https://host:443`).
    pub fn origins(&self) -> BTreeSet<String> {
        let mut origins = BTreeSet::new();
        collect_origins(&self.input, &mut origins);
        origins
    }
}

fn collect_origins(value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            if let Ok(target) = crate::policy::net::parse_target(s) {
                out.insert(target.to_string());
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_origins(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_origins(v, out)),
        _ => {}
    }
}

/// A digest of everything `tool` is granted under the policy from
/// `source`: its files, hosts, env keys, secrets and limits (not its
/// approval setting or its line number).
pub fn grant_fingerprint(source: &str, tool: &ToolPolicy) -> String {
    use sha2::Digest as _;
    let mut grant = serde_json::to_value(tool).unwrap_or_default();
    if let Some(map) = grant.as_object_mut() {
        for ignored in ["approval", "approval_from_tool", "line"] {
            map.remove(ignored);
        }
    }
    let text = serde_json::json!({"policy": source, "grant": grant}).to_string();
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
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

/// An allowed call and the origins its HTTP requests are limited to
/// (`None`: whatever the policy allows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub origins: Option<Arc<[String]>>,
}

impl Verdict {
    fn unscoped(decision: Decision) -> Self {
        Self {
            decision,
            origins: None,
        }
    }

    fn within(decision: Decision, origins: &BTreeSet<String>) -> Self {
        Self {
            decision,
            origins: (!origins.is_empty()).then(|| origins.iter().cloned().collect()),
        }
    }
}

/// How `prompt` is answered in this process.
pub enum PromptMode {
    /// Ask the user.
    Ask(Arc<dyn Prompter>),
    /// Nobody to ask: deny, or allow when `yes` (`--yes`).
    Unattended { yes: bool },
    /// A run of `boram serve`: nobody to ask either, and the refusal names
    /// the operator's fixes (the policy, `[serve] approve_prompt`), not a flag.
    Service { approve_prompt: bool },
}

pub struct Approvals {
    mode: PromptMode,
    /// Answers given "for this session".
    session: Mutex<Vec<Grant>>,
    /// Answers given "always": a file, or the shared store.
    remembered: ApprovalBook,
    /// One question on the terminal at a time, even for parallel tool calls.
    asking: tokio::sync::Mutex<()>,
}

impl Approvals {
    /// `data_dir` holds the remembered "always" answers.
    pub fn new(mode: PromptMode, data_dir: &Path) -> Self {
        Self::with_book(mode, ApprovalBook::in_dir(data_dir))
    }

    /// With the remembered answers in `book` (the shared store's, in cluster mode).
    pub fn with_book(mode: PromptMode, book: ApprovalBook) -> Self {
        Self {
            mode,
            session: Mutex::default(),
            remembered: book,
            asking: tokio::sync::Mutex::new(()),
        }
    }

    /// The decision alone (see [`Approvals::verdict`] for the origins).
    pub async fn decide(&self, policy: Approval, request: &ApprovalRequest) -> Decision {
        self.verdict(policy, request).await.decision
    }

    fn in_session(&self, request: &ApprovalRequest) -> Option<BTreeSet<String>> {
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        session.iter().find_map(|g| g.covers(request))
    }

    pub async fn verdict(&self, policy: Approval, request: &ApprovalRequest) -> Verdict {
        match policy {
            Approval::Allow => return Verdict::unscoped(Decision::Allow("policy")),
            Approval::Deny => {
                return Verdict::unscoped(Decision::Deny {
                    how: "policy",
                    reason: format!("the policy denies `{}` (approval = \"deny\")", request.tool),
                });
            }
            Approval::Prompt => {}
        }
        if let Some(origins) = self.in_session(request) {
            return Verdict::within(Decision::Allow("session"), &origins);
        }
        if let Some(origins) = self.remembered.covering(request).await {
            return Verdict::within(Decision::Allow("always"), &origins);
        }
        let prompter = match &self.mode {
            PromptMode::Unattended { yes: true } => return Verdict::unscoped(Decision::Allow("--yes")),
            PromptMode::Service { approve_prompt: true } => {
                return Verdict::unscoped(Decision::Allow("approve_prompt"));
            }
            PromptMode::Unattended { yes: false } => {
                return Verdict::unscoped(Decision::Deny {
                    how: "unattended",
                    reason: format!(
                        "`{}` needs the user's approval and nobody can be asked (run interactively, or pass --yes)",
                        request.tool
                    ),
                });
            }
            PromptMode::Service { approve_prompt: false } => {
                return Verdict::unscoped(Decision::Deny {
                    how: "unattended",
                    reason: format!(
                        "`{tool}` needs approval (approval = \"prompt\" in the service's policy) and a service run \
                         has nobody to ask. Operator: to let runs use it, set `approval = \"allow\"` under \
                         [tools.{tool}] in the policy, or `approve_prompt = true` under [serve] in the config",
                        tool = request.tool
                    ),
                });
            }
            PromptMode::Ask(prompter) => prompter,
        };
        let _one_at_a_time = self.asking.lock().await;
        // A parallel call may have been approved for the session while we waited.
        if let Some(origins) = self.in_session(request) {
            return Verdict::within(Decision::Allow("session"), &origins);
        }
        let own = if request.networked {
            request.origins()
        } else {
            BTreeSet::new()
        };
        let scopable = !request.networked || !own.is_empty();
        match prompter.ask(request).await {
            Answer::Once => Verdict::within(Decision::Allow("once"), &own),
            // Without a URL in the input the hosts are unknown: only "once" or "any host" can cover it.
            Answer::Session | Answer::Always if !scopable => Verdict::within(Decision::Allow("once"), &own),
            Answer::Session => {
                self.lock_session().push(Grant::new(request, false));
                Verdict::within(Decision::Allow("session"), &own)
            }
            Answer::SessionAnyHost => {
                self.lock_session().push(Grant::new(request, true));
                Verdict::unscoped(Decision::Allow("session, any host"))
            }
            Answer::Always => {
                if let Err(e) = self.remembered.remember(Grant::new(request, false)).await {
                    tracing::error!(error = %e, "cannot save the approval; it holds for this run only");
                    self.lock_session().push(Grant::new(request, false));
                }
                Verdict::within(Decision::Allow("always"), &own)
            }
            Answer::Deny(reason) => Verdict::unscoped(Decision::Deny {
                how: "user",
                reason: match reason {
                    Some(why) => format!("the user denied `{}`: {why}", request.tool),
                    None => format!("the user denied `{}`", request.tool),
                },
            }),
        }
    }

    fn lock_session(&self) -> std::sync::MutexGuard<'_, Vec<Grant>> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Asks on a line-based terminal: the question goes to `output`, the answer
/// is read from `input` (stdin and stderr for the real terminal).
pub struct LinePrompter {
    io: Arc<Mutex<LineIo>>,
    /// Start each question with an SGR reset: whatever a model's text left
    /// switched on (conceal, colours) must not hide or dress it.
    reset: bool,
}

/// Where questions are written and answers read.
type LineIo = (Box<dyn BufRead + Send>, Box<dyn Write + Send>);

impl LinePrompter {
    pub fn new(input: Box<dyn BufRead + Send>, output: Box<dyn Write + Send>) -> Self {
        Self {
            io: Arc::new(Mutex::new((input, output))),
            reset: false,
        }
    }

    /// Reads stdin, writes stderr.
    pub fn terminal() -> Self {
        use std::io::IsTerminal as _;
        Self {
            reset: std::io::stderr().is_terminal(),
            ..Self::new(
                Box::new(std::io::BufReader::new(std::io::stdin())),
                Box::new(std::io::stderr()),
            )
        }
    }
}

#[async_trait::async_trait]
impl Prompter for LinePrompter {
    async fn ask(&self, request: &ApprovalRequest) -> Answer {
        let io = self.io.clone();
        let request = request.clone();
        let reset = self.reset;
        tokio::task::spawn_blocking(move || {
            let mut io = io.lock().unwrap_or_else(|e| e.into_inner());
            let (input, output) = &mut *io;
            if reset {
                // SGR reset, then end any line a model left unfinished.
                let _ = write!(output, "\x1b[0m");
            }
            ask_lines(&request, input.as_mut(), output.as_mut())
        })
        .await
        .unwrap_or(Answer::Deny(None))
    }
}

/// The choices offered for `request`, each `(key, words)`.
fn choices(request: &ApprovalRequest) -> Vec<(&'static str, String)> {
    let tool = crate::terminal::sanitize(&request.tool);
    let origins: Vec<String> = request.origins().into_iter().collect();
    let mut out = Vec::new();
    if !request.networked {
        out.push(("o", "once: this call only".to_string()));
        out.push((
            "s",
            format!("this session: every call of `{tool}` until it or its grant changes"),
        ));
        out.push((
            "a",
            format!("always: every call of `{tool}`, in later sessions too, until it or its grant changes"),
        ));
    } else if origins.is_empty() {
        out.push(("o", "once: this call only".to_string()));
        out.push((
            "h",
            "this session: any host the policy allows (the input names no URL, so it cannot be narrower)".to_string(),
        ));
    } else {
        let hosts = crate::terminal::sanitize(&origins.join(", ")).into_owned();
        out.push(("o", format!("once: this call only, to {hosts} only")));
        out.push(("s", format!("this session: calls to {hosts} only")));
        out.push((
            "a",
            format!("always: calls to {hosts} only, until the tool or its grant changes"),
        ));
        out.push(("h", "this session: any host the policy allows".to_string()));
    }
    out.push(("d", "deny (d: a reason the model will see)".to_string()));
    out
}

fn ask_lines(request: &ApprovalRequest, input: &mut dyn BufRead, output: &mut dyn Write) -> Answer {
    use crate::terminal::sanitize;
    let shown = serde_json::to_string_pretty(&request.input).unwrap_or_default();
    let hash: String = request.tool_hash.chars().take(12).collect();
    let _ = writeln!(
        output,
        "\n? `{}` ({}, sha256 {hash}) wants to run with input:",
        sanitize(&request.tool),
        sanitize(&request.source)
    );
    for line in shown.lines() {
        let _ = writeln!(output, "    {}", sanitize(line));
    }
    let _ = writeln!(output, "  it is granted: {}", sanitize(&request.grants));
    let choices = choices(request);
    for (key, words) in &choices {
        let _ = writeln!(output, "  [{key}] {words}");
    }
    let keys: Vec<&str> = choices.iter().map(|(k, _)| *k).collect();
    for _ in 0..3 {
        let _ = write!(output, "  answer {}? ", keys.join("/"));
        let _ = output.flush();
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return Answer::Deny(Some("no answer (end of input)".into())),
            Ok(_) => {}
        }
        match parse_answer(&line) {
            Some(answer) if keys.contains(&key_of(&answer)) => return answer,
            _ => {
                let _ = writeln!(output, "  please answer {}", keys.join(", "));
            }
        }
    }
    Answer::Deny(None)
}

fn key_of(answer: &Answer) -> &'static str {
    match answer {
        Answer::Once => "o",
        Answer::Session => "s",
        Answer::Always => "a",
        Answer::SessionAnyHost => "h",
        Answer::Deny(_) => "d",
    }
}

/// `o`/`once`, `s`/`session`, `a`/`always`, `h`/`host`/`any`, `d`/`deny`
/// optionally followed by `:` or a space and a reason.
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
        "h" | "host" | "any" => Some(Answer::SessionAnyHost),
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
            tool_hash: "0123456789abcdef".into(),
            source: "tools/write_file.wasm".into(),
            input: serde_json::json!({"path": "/workspace/a.txt"}),
            grants: "fs /workspace (rw)".into(),
            grant: "g".into(),
            networked: false,
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
        assert!(
            shown.contains("(tools/write_file.wasm, sha256 0123456789ab)"),
            "the source and hash prefix show: {shown}"
        );
    }

    /// Answers with the next of its answers, counting the questions.
    struct Scripted(Mutex<Vec<Answer>>, std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl Prompter for Scripted {
        async fn ask(&self, _: &ApprovalRequest) -> Answer {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.lock().expect("answers").remove(0)
        }
    }

    fn fetch(url: &str, grant: &str) -> ApprovalRequest {
        ApprovalRequest {
            tool: "http_get".into(),
            tool_hash: "h1".into(),
            source: "tools/http_get.wasm".into(),
            input: serde_json::json!({"url": url}),
            grants: "net api.a.example".into(),
            grant: grant.into(),
            networked: true,
        }
    }

    fn approvals(answers: Vec<Answer>, dir: &Path) -> (Approvals, Arc<Scripted>) {
        let prompter = Arc::new(Scripted(Mutex::new(answers), 0.into()));
        (Approvals::new(PromptMode::Ask(prompter.clone()), dir), prompter)
    }

    fn asked(p: &Scripted) -> usize {
        p.1.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_session_approval_covers_the_approved_origin_only_issue_15() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (approvals, prompter) = approvals(vec![Answer::Session, Answer::Deny(None)], dir.path());
        let first = approvals
            .verdict(Approval::Prompt, &fetch("https://a.example/x", "g"))
            .await;
        assert_eq!(first.decision, Decision::Allow("session"));
        assert_eq!(
            first.origins.as_deref(),
            Some(&["https://a.example:443".to_string()][..])
        );
        // The same origin, another path: covered, and still limited to it.
        let again = approvals
            .verdict(Approval::Prompt, &fetch("https://a.example/y?q=1", "g"))
            .await;
        assert_eq!(again.decision, Decision::Allow("session"));
        assert_eq!(again.origins, first.origins);
        assert_eq!(asked(&prompter), 1);
        // Another host asks again.
        let other = approvals
            .verdict(Approval::Prompt, &fetch("https://b.example/", "g"))
            .await;
        assert!(matches!(other.decision, Decision::Deny { .. }));
        assert_eq!(asked(&prompter), 2);
    }

    #[tokio::test]
    async fn a_widened_grant_or_another_policy_asks_again_issue_15() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (approvals, prompter) = approvals(vec![Answer::Always, Answer::Once], dir.path());
        approvals
            .verdict(Approval::Prompt, &fetch("https://a.example/", "g1"))
            .await;
        // Remembered in a new process, for the same grant…
        let (later, unused) = approvals_unattended(dir.path());
        let same = later
            .verdict(Approval::Prompt, &fetch("https://a.example/", "g1"))
            .await;
        assert_eq!(same.decision, Decision::Allow("always"));
        assert_eq!(asked(&unused), 0);
        // …but not once the grant changed.
        let widened = later
            .verdict(Approval::Prompt, &fetch("https://a.example/", "g2"))
            .await;
        assert!(matches!(widened.decision, Decision::Deny { .. }));
        let asked_again = approvals
            .verdict(Approval::Prompt, &fetch("https://a.example/", "g2"))
            .await;
        assert_eq!(asked_again.decision, Decision::Allow("once"));
        assert_eq!(asked(&prompter), 2);
    }

    fn approvals_unattended(dir: &Path) -> (Approvals, Arc<Scripted>) {
        let prompter = Arc::new(Scripted(Mutex::new(Vec::new()), 0.into()));
        (Approvals::new(PromptMode::Unattended { yes: false }, dir), prompter)
    }

    #[tokio::test]
    async fn any_host_is_an_explicit_answer_and_unscoped_issue_15() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (approvals, prompter) = approvals(vec![Answer::SessionAnyHost], dir.path());
        let first = approvals
            .verdict(Approval::Prompt, &fetch("https://a.example/", "g"))
            .await;
        assert_eq!(first.decision, Decision::Allow("session, any host"));
        assert_eq!(first.origins, None);
        let other = approvals
            .verdict(Approval::Prompt, &fetch("https://b.example/", "g"))
            .await;
        assert_eq!(other.decision, Decision::Allow("session"));
        assert_eq!(other.origins, None);
        assert_eq!(asked(&prompter), 1);
    }

    #[test]
    fn the_prompt_says_what_each_answer_covers_issue_15() {
        let words =
            |r: &ApprovalRequest| -> String { choices(r).iter().map(|(k, w)| format!("[{k}] {w}\n")).collect() };
        let scoped = words(&fetch("https://a.example/x", "g"));
        assert!(
            scoped.contains("[s] this session: calls to https://a.example:443 only"),
            "{scoped}"
        );
        assert!(
            scoped.contains("[h] this session: any host the policy allows"),
            "{scoped}"
        );
        let mut no_url = fetch("x", "g");
        no_url.input = serde_json::json!({"host": "b.example"});
        let unscoped = words(&no_url);
        assert!(!unscoped.contains("[s]") && !unscoped.contains("[a]"), "{unscoped}");
        // A session answer typed anyway is not accepted for it.
        let mut output = Vec::new();
        let answer = ask_lines(&no_url, &mut std::io::Cursor::new("s\no\n"), &mut output);
        assert_eq!(answer, Answer::Once);
    }

    #[test]
    fn the_grant_fingerprint_changes_with_the_grant_and_the_policy_file_only() {
        let mut tool = crate::policy::Policy::deny_all().tool("t");
        let base = grant_fingerprint("a.toml", &tool);
        assert_ne!(base, grant_fingerprint("b.toml", &tool));
        tool.line = Some(40);
        tool.approval = Approval::Prompt;
        assert_eq!(
            base,
            grant_fingerprint("a.toml", &tool),
            "line and approval do not count"
        );
        tool.limits.timeout = std::time::Duration::from_secs(99);
        assert_ne!(base, grant_fingerprint("a.toml", &tool));
    }
}
