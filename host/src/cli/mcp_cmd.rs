//! `boram mcp`: serve the tools over MCP on stdio (see [`crate::mcp`]).
//! Everything but protocol goes to stderr.

use crate::cli::context::GlobalArgs;
use crate::mcp::{McpServer, Unattended};
use crate::registry::watch::{self, ReloadEvent};
use anyhow::Context as _;
use clap::Args;
use rmcp::ServiceExt as _;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct McpCommand {
    /// Run tools whose policy says `prompt` without asking when the client
    /// cannot ask the user (no MCP elicitation). Default: refuse them.
    #[arg(short = 'y', long)]
    yes: bool,
}

impl McpCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let host = Arc::new(global.app(None).tool_host().await?);
        let unattended = if self.yes {
            Unattended::Approve
        } else {
            Unattended::Refuse
        };
        let mut server = McpServer::new(host.clone(), unattended);
        match crate::memory::MemoryStore::open(&global.data_dir()) {
            Ok(memory) => server = server.with_memory(Arc::new(crate::memory::Notes::Local(Arc::new(memory)))),
            Err(e) => tracing::warn!(error = %e, "no memory tools for MCP clients"),
        }

        // Hot swap: every reload tells the client to list the tools again.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ReloadEvent>();
        let _watching = watch::watch(
            host.clone(),
            &global.tools_dir(),
            global.policy.as_deref(),
            Arc::new(move |event: &ReloadEvent| {
                let _ = tx.send(event.clone());
            }),
        )
        .context("cannot watch the tools directory")?;
        let notifier = server.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if event.changes_tools() {
                    notifier.tools_changed().await;
                }
            }
        });

        tracing::info!(tools = host.registry().names().count(), "MCP server on stdio");
        let running = server
            .serve(rmcp::transport::stdio())
            .await
            .context("the MCP handshake failed")?;
        running.waiting().await.context("the MCP session ended with an error")?;
        Ok(ExitCode::SUCCESS)
    }
}
