//! The `boram` command line: clap commands, one file per command, no
//! business logic. Human output on stdout by default, `--json` for
//! machines; logs and progress on stderr.

mod agent;
mod context;
mod mcp_cmd;
mod memory_cmd;
mod model_cmd;
mod policy_cmd;
mod schedule_cmd;
mod serve_cmd;
mod tool;

use clap::{Parser, Subcommand};
use context::GlobalArgs;
use std::process::ExitCode;

/// BoramClaw: an AI agent whose tools run as sandboxed WebAssembly components.
///
/// Every tool is a WASI preview-2 component that can touch only what the
/// policy file grants it: preopened directories, listed environment keys,
/// and bounded memory, time and output. Start with `boram chat` (or
/// `boram run "task"`); `boram tool list` shows the tools.
#[derive(Debug, Parser)]
#[command(name = "boram", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one task with the agent and print its answer.
    Run(agent::RunCommand),
    /// Chat with the agent interactively.
    Chat(agent::ChatCommand),
    /// List saved sessions.
    #[command(subcommand)]
    Sessions(agent::SessionsCommand),
    /// Save, search and list the agent's long-term notes.
    #[command(subcommand)]
    Memory(memory_cmd::MemoryCommand),
    /// Failed tool calls and tasks, and what fixed them.
    Failures(memory_cmd::FailuresCommand),
    /// Install or check the embedding model that picks tools by meaning.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// List, call and inspect tools.
    #[command(subcommand)]
    Tool(tool::ToolCommand),
    /// Validate a policy file and explain what it grants.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Serve the tools to other agents over MCP (stdio).
    Mcp(mcp_cmd::McpCommand),
    /// Serve the tools, agent runs, metrics and a dashboard over HTTP.
    Serve(serve_cmd::ServeCommand),
    /// Scheduled agent runs (run by `boram serve`).
    Schedule(schedule_cmd::ScheduleArgs),
}

/// Exit code for a command that ran but whose result was not a success
/// (a tool call that failed, a runtime error).
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code for bad input from the user: invalid policy, unknown tool, bad JSON.
const EXIT_USAGE: u8 = 2;

/// A mistake in what the user asked for: exit code 2.
pub use crate::app::UsageError;

/// Parses the command line, runs the command and turns any error into a
/// printed cause chain and an exit code.
pub fn main() -> ExitCode {
    // Not a user command: the child process that compiles one component.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(crate::runtime::compile_worker::WORKER_ARG) {
        return crate::runtime::compile_worker::run(&args[2..]);
    }
    // `boram` alone on a terminal is `boram chat`, as coding agents start.
    let bare = args.len() == 1
        && std::io::IsTerminal::is_terminal(&std::io::stdin())
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let cli = if bare {
        Cli::parse_from(["boram", "chat"])
    } else {
        Cli::parse()
    };
    crate::scrub::register_host_env();
    cli.global.init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    if cli.command.uses_user_state() {
        adopt_legacy_local_user(&cli.global.data_dir());
    }
    let result = runtime.block_on(async {
        let result = match cli.command {
            Command::Run(cmd) => cmd.run(&cli.global).await,
            Command::Chat(cmd) => cmd.run(&cli.global).await,
            Command::Sessions(cmd) => cmd.run(&cli.global).await,
            Command::Memory(cmd) => cmd.run(&cli.global).await,
            Command::Failures(cmd) => cmd.run(&cli.global).await,
            Command::Model(cmd) => cmd.run(&cli.global).await,
            Command::Tool(cmd) => cmd.run(&cli.global).await,
            Command::Policy(cmd) => cmd.run(&cli.global).await,
            Command::Mcp(cmd) => cmd.run(&cli.global).await,
            Command::Serve(cmd) => cmd.run(&cli.global).await,
            Command::Schedule(cmd) => cmd.run(&cli.global).await,
        };
        (result, crate::registry::background::finish_before_exit().await)
    });
    let (result, compiles_finished) = result;
    if !compiles_finished {
        // Do not wait for the compile threads; their workers die with us.
        runtime.shutdown_background();
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            print_error_chain(&e);
            ExitCode::from(exit_code_for(&e))
        }
    }
}

impl Command {
    /// Whether the command reads or writes the local user's sessions,
    /// memory or schedules (`serve --check` changes nothing, so it is not).
    fn uses_user_state(&self) -> bool {
        match self {
            Command::Run(_)
            | Command::Chat(_)
            | Command::Sessions(_)
            | Command::Memory(_)
            | Command::Failures(_)
            | Command::Mcp(_)
            | Command::Schedule(_) => true,
            Command::Serve(cmd) => !cmd.is_check(),
            Command::Model(_) | Command::Tool(_) | Command::Policy(_) => false,
        }
    }
}

/// Moves an earlier build's `users/local/` into the data directory (see
/// [`crate::store::local_user`]) and says what it did; a failure is a
/// warning, since the command itself can still run.
fn adopt_legacy_local_user(data_dir: &std::path::Path) {
    match crate::store::local_user::adopt_legacy_dir(data_dir) {
        Ok(notes) => {
            for note in notes {
                eprintln!("boram: local user: {note}");
            }
        }
        Err(e) => eprintln!(
            "warning: cannot merge {} into {}: {e}",
            crate::store::local_user::legacy_dir(data_dir).display(),
            data_dir.display()
        ),
    }
}

fn print_error_chain(e: &anyhow::Error) {
    use crate::scrub::scrub;
    eprintln!("error: {}", scrub(&e.to_string()));
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {}", scrub(&cause.to_string()));
    }
}

fn exit_code_for(e: &anyhow::Error) -> u8 {
    let usage = e
        .chain()
        .any(|c| c.is::<crate::policy::PolicyError>() || c.is::<crate::registry::CallError>() || c.is::<UsageError>());
    if usage { EXIT_USAGE } else { EXIT_FAILURE }
}
