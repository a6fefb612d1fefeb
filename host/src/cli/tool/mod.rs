//! `boram tool …`: list, call and inspect tool components; scaffold, build
//! and test new ones.

mod build;
mod call;
mod inspect;
mod list;
mod new;
mod rank;
mod test;

use super::context::GlobalArgs;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ToolCommand {
    /// Show every loaded tool, its description and what the policy grants it.
    List(list::ListCommand),
    /// Run one tool once in its sandbox and print the result.
    Call(call::CallCommand),
    /// Show a component's tools, input schemas, WIT imports, size and hash.
    Inspect(inspect::InspectCommand),
    /// Scaffold a new tool crate that uses the SDK, and print its policy stanza.
    New(new::NewCommand),
    /// Compile tool crates to wasm32-wasip2 into the tools directory (`--watch`: on every save).
    Build(build::BuildCommand),
    /// Run a tool's examples.toml in its sandbox, under the policy.
    Test(test::TestCommand),
    /// Show how tool selection ranks the loaded tools for a prompt.
    Rank(rank::RankCommand),
}

impl ToolCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        match self {
            Self::List(cmd) => cmd.run(global).await,
            Self::Call(cmd) => cmd.run(global).await,
            Self::Inspect(cmd) => cmd.run(global).await,
            Self::New(cmd) => cmd.run(global).await,
            Self::Build(cmd) => cmd.run(global).await,
            Self::Test(cmd) => cmd.run(global).await,
            Self::Rank(cmd) => cmd.run(global).await,
        }
    }
}

/// First sentence of a description, at most `max` characters.
pub(super) fn short_description(text: &str, max: usize) -> String {
    let sanitized = crate::terminal::sanitize(text);
    let text: &str = &sanitized;
    let first = text
        .split_inclusive(". ")
        .next()
        .unwrap_or(text)
        .trim()
        .replace('\n', " ");
    if first.chars().count() <= max {
        return first;
    }
    let mut cut: String = first.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
