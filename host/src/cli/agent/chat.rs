//! `boram chat`: the interactive session. Reads prompts with line editing
//! (rustyline) on a terminal, or line by line from a pipe; streams answers;
//! handles slash commands; Ctrl-C cancels the running turn and keeps the
//! session. `--resume` continues a saved session.

use super::args::AgentArgs;
use super::render;
use crate::agent::{Agent, EventSink};
use crate::cli::context::GlobalArgs;
use clap::Args;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Chat with the agent.
///
/// Type a task and press Enter; the answer streams in and each tool call is
/// shown with its outcome. Commands: /tools, /cost, /compact, /new, /help,
/// /quit. Ctrl-C cancels the current turn; Ctrl-D (or /quit) leaves. Every
/// session is saved and can be continued with `--resume`.
#[derive(Debug, Args)]
pub struct ChatCommand {
    /// Continue a saved session: its id, or `last` (see `boram sessions list`).
    #[arg(long, value_name = "ID|last")]
    resume: Option<String>,

    #[command(flatten)]
    agent: AgentArgs,
}

const HELP: &str = "\
  /tools     the tools the agent can use, and what each is granted
  /cost      tokens and cost of this session
  /compact   summarise the conversation so far to free context
  /memory save TEXT [#tag …] | search WORDS | latest [N]   long-term notes
  /delegate PROFILE TASK   hand TASK to a profile's agent (research, ops, builder, general, …)
  /new       start a new session
  /quit      leave (Ctrl-D works too)";

const COMMANDS: &[&str] = &[
    "/tools",
    "/cost",
    "/compact",
    "/memory",
    "/delegate",
    "/new",
    "/help",
    "/quit",
    "/exit",
];

impl ChatCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let mut agent = self.agent.agent(global, self.resume.as_deref()).await?;
        let events = render::human_sink();
        let mut input = Input::open();
        greet(&agent, self.resume.is_some());
        let mut watching = watch_tools(&agent, global);
        // Ctrl-C cancels whichever turn is running.
        let current = Arc::new(Mutex::new(CancellationToken::new()));
        let listener = {
            let current = current.clone();
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    current.lock().unwrap_or_else(|e| e.into_inner()).cancel();
                }
            })
        };
        while let Some(line) = input.read("› ") {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('/') {
                let generation = agent.session().id().to_string();
                match self.command(line, &mut agent, &events, global).await? {
                    Flow::Continue => {
                        // `/new` built a new agent and tool host: watch that one.
                        if agent.session().id() != generation {
                            watching = watch_tools(&agent, global);
                        }
                        continue;
                    }
                    Flow::Quit => break,
                }
            }
            let cancel = CancellationToken::new();
            *current.lock().unwrap_or_else(|e| e.into_inner()) = cancel.clone();
            agent.turn(line, &events, &cancel).await;
        }
        listener.abort();
        drop(watching);
        eprintln!(
            "session {} saved (${:.4}); continue it with `boram chat --resume {}`",
            agent.session().id(),
            agent.spent_usd(),
            agent.session().id()
        );
        Ok(ExitCode::SUCCESS)
    }

    async fn command(
        &self,
        line: &str,
        agent: &mut Agent,
        events: &EventSink,
        global: &GlobalArgs,
    ) -> anyhow::Result<Flow> {
        let word = line.split_whitespace().next().unwrap_or(line);
        match word {
            "/quit" | "/exit" => return Ok(Flow::Quit),
            "/help" => eprintln!("{HELP}"),
            "/tools" => print_tools(agent),
            "/cost" => {
                let usage = agent.usage();
                eprintln!(
                    "  {} input + {} output tokens ({} read from cache, {} written), ${:.4} this session",
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.cache_read_tokens,
                    usage.cache_write_tokens,
                    agent.spent_usd()
                );
            }
            "/compact" => match agent.compact(events).await {
                Ok(true) => {}
                Ok(false) => eprintln!("  nothing to compact yet"),
                Err(e) => eprintln!("  compaction failed: {e}"),
            },
            "/memory" => memory(line, global),
            "/delegate" => {
                let mut words = line
                    .trim_start_matches("/delegate")
                    .trim()
                    .splitn(2, char::is_whitespace);
                match (words.next().filter(|w| !w.is_empty()), words.next().map(str::trim)) {
                    (Some(profile), Some(task)) if !task.is_empty() => {
                        match agent.delegate(profile, task, events).await {
                            Ok(done) => {
                                println!("{}", done.answer);
                                eprintln!(
                                    "  [{}] {} in {} rounds, ${:.4}; transcript {}",
                                    done.profile, done.stop, done.rounds, done.cost_usd, done.session
                                );
                            }
                            Err(e) => eprintln!("  {e}"),
                        }
                    }
                    _ => eprintln!(
                        "  usage: /delegate PROFILE TASK, e.g. /delegate research find papers on WASI sandboxes"
                    ),
                }
            }
            "/new" => {
                *agent = self.agent.agent(global, None).await?;
                greet(agent, false);
            }
            other => {
                let hint = crate::suggest::did_you_mean(other, COMMANDS.iter().copied()).unwrap_or_default();
                eprintln!("  unknown command `{other}`{hint}; /help lists them");
            }
        }
        Ok(Flow::Continue)
    }
}

/// `/memory save TEXT #tag`, `/memory search WORDS`, `/memory latest [N]`.
fn memory(line: &str, global: &GlobalArgs) {
    let rest = line.trim_start_matches("/memory").trim();
    let (verb, arg) = rest.split_once(' ').unwrap_or((rest, ""));
    let store = match crate::memory::MemoryStore::open(&global.data_dir()) {
        Ok(store) => store,
        Err(e) => return eprintln!("  memory is not available: {e}"),
    };
    let result = match verb {
        "save" => {
            let (tags, words): (Vec<&str>, Vec<&str>) = arg.split_whitespace().partition(|w| w.starts_with('#'));
            let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
            store
                .save(&words.join(" "), &tags)
                .map(|id| eprintln!("  saved note {id}"))
        }
        "search" => store.search(arg, 10).map(|found| print_notes(&found)),
        "latest" => store.latest(arg.parse().unwrap_or(10)).map(|found| print_notes(&found)),
        _ => return eprintln!("  usage: /memory save TEXT [#tag …] | /memory search WORDS | /memory latest [N]"),
    };
    if let Err(e) = result {
        eprintln!("  {e}");
    }
}

fn print_notes(entries: &[crate::memory::Entry]) {
    if let Err(e) = crate::cli::memory_cmd::print_entries(entries, false) {
        eprintln!("  {e}");
    }
}

/// Hot swap while chatting: rebuilt tools and policy edits apply to the
/// next round, and each reload is shown on one line.
fn watch_tools(agent: &Agent, global: &GlobalArgs) -> Option<crate::registry::watch::Watching> {
    use crate::registry::watch::{ReloadEvent, watch};
    let show = Arc::new(|event: &ReloadEvent| match event {
        ReloadEvent::ToolLoaded { tools, .. } => eprintln!("  ↻ loaded {}", tools.join(", ")),
        ReloadEvent::ToolSwapped { tools, new_sha256, .. } => {
            eprintln!("  ↻ swapped {} (now {})", tools.join(", "), &new_sha256[..12])
        }
        ReloadEvent::ToolRejected { path, error, .. } => {
            eprintln!("  ✗ {} not loaded, the previous version stays: {error}", path.display())
        }
        ReloadEvent::ToolUnloaded { path, .. } => eprintln!("  ↻ unloaded {}", path.display()),
        ReloadEvent::PolicyReloaded { path } => eprintln!("  ↻ policy {} reloaded", path.display()),
        ReloadEvent::PolicyRejected { error, .. } => {
            eprintln!("  ✗ policy edit rejected, the previous policy stays:\n{error}")
        }
    });
    match watch(
        agent.shared_tool_host(),
        &global.tools_dir(),
        global.policy.as_deref(),
        show,
    ) {
        Ok(watching) => Some(watching),
        Err(e) => {
            eprintln!("warning: not watching for rebuilt tools: {e}");
            None
        }
    }
}

enum Flow {
    Continue,
    Quit,
}

fn greet(agent: &Agent, resumed: bool) {
    let tools = agent.tool_defs().len();
    let id = agent.session().id();
    if resumed {
        eprintln!(
            "boram chat · resumed session {id} ({} messages) · {tools} tools",
            agent.messages().len()
        );
    } else {
        eprintln!("boram chat · session {id} · {tools} tools");
    }
    eprintln!("Type a task, or /help. Ctrl-C cancels a turn; Ctrl-D or /quit leaves.");
}

fn print_tools(agent: &Agent) {
    let host = agent.tool_host();
    for def in agent.tool_defs() {
        let grants = crate::policy::summary(&host.policy().tool(&def.name));
        eprintln!("  {:<14} {grants}", def.name);
    }
}

/// Where prompts come from: an editor on a terminal, lines from a pipe.
enum Input {
    Editor(Box<rustyline::DefaultEditor>),
    Lines,
}

impl Input {
    fn open() -> Self {
        if std::io::stdin().is_terminal()
            && let Ok(editor) = rustyline::DefaultEditor::new()
        {
            return Input::Editor(Box::new(editor));
        }
        Input::Lines
    }

    /// The next line; `None` at the end of input.
    fn read(&mut self, prompt: &str) -> Option<String> {
        tokio::task::block_in_place(|| match self {
            Input::Editor(editor) => loop {
                match editor.readline(prompt) {
                    Ok(line) => {
                        let _ = editor.add_history_entry(line.as_str());
                        return Some(line);
                    }
                    // Ctrl-C at the prompt clears the line, as in a shell.
                    Err(rustyline::error::ReadlineError::Interrupted) => continue,
                    Err(_) => return None,
                }
            },
            Input::Lines => {
                let mut line = String::new();
                match std::io::stdin().lock().read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line),
                }
            }
        })
    }
}
