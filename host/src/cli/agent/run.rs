//! `boram run "task"`: one task, streamed to stdout; exits when the agent
//! answers (0), fails or hits a limit (1), or is cancelled with Ctrl-C (130).

use super::args::AgentArgs;
use super::render;
use crate::agent::Stop;
use crate::cli::UsageError;
use crate::cli::context::GlobalArgs;
use clap::Args;
use std::io::Read;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Exit code after Ctrl-C, as shells expect (128 + SIGINT).
const EXIT_CANCELLED: u8 = 130;

/// Run one task with the agent and print its answer.
///
/// The model's answer streams to stdout; tool calls and their outcomes are
/// shown on stderr. Tools whose policy says `prompt` are asked about on the
/// terminal; without one they are denied unless `--yes`.
#[derive(Debug, Args)]
pub struct RunCommand {
    /// The task, in words (several words are joined). `-` reads it from stdin.
    #[arg(required = true, value_name = "TASK")]
    task: Vec<String>,

    /// Print every event as a JSON line on stdout (turn started, text delta,
    /// tool call, approval, tool result, usage, done) instead of text.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    agent: AgentArgs,
}

impl RunCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let task = self.task()?;
        let mut agent = self.agent.agent(global, None).await?;
        let events = if self.json {
            render::json_sink()
        } else {
            render::human_sink()
        };
        let cancel = CancellationToken::new();
        let ctrl_c = super::cancel_on_ctrl_c(cancel.clone());
        let result = agent.turn(&task, &events, &cancel).await;
        ctrl_c.abort();
        if !self.json && !result.stop.is_success() {
            eprintln!(
                "session {} saved; continue it with `boram chat --resume {}`",
                agent.session().id(),
                agent.session().id()
            );
        }
        Ok(match result.stop {
            Stop::Answered => ExitCode::SUCCESS,
            Stop::Cancelled => ExitCode::from(EXIT_CANCELLED),
            _ => ExitCode::from(crate::cli::EXIT_FAILURE),
        })
    }

    fn task(&self) -> anyhow::Result<String> {
        let task = if self.task.len() == 1 && self.task[0] == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text
        } else {
            self.task.join(" ")
        };
        if task.trim().is_empty() {
            return Err(UsageError("the task is empty; say what the agent should do".into()).into());
        }
        Ok(task)
    }
}
