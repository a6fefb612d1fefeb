//! `boram tool list`.

use crate::cli::context::GlobalArgs;
use crate::policy::summary;
use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ListCommand {
    /// Print a JSON array (name, description, component, sha256, grants, input schema).
    #[arg(long)]
    json: bool,
}

impl ListCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let policy = global.app(None).load_policy()?;
        let registry = global.app(None).registry().await?;
        if self.json {
            let tools: Vec<_> = registry
                .tools()
                .map(|(spec, component)| {
                    serde_json::json!({
                        "name": spec.name,
                        "description": spec.description,
                        "component": component.path,
                        "sha256": component.sha256,
                        "grants": policy.tool(&spec.name),
                        "input_schema": spec.input_schema,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&tools)?);
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<[String; 3]> = registry
            .tools()
            .map(|(spec, _)| {
                [
                    spec.name.clone(),
                    super::short_description(&spec.description, 60),
                    summary(&policy.tool(&spec.name)),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("no tools loaded from {}", global.tools_dir().display());
            return Ok(ExitCode::SUCCESS);
        }
        let header = [
            "TOOL".to_string(),
            "DESCRIPTION".to_string(),
            format!("GRANTS ({})", policy.display_source()),
        ];
        let width = |i: usize| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let (w0, w1) = (width(0), width(1));
        for row in [&header].into_iter().chain(&rows) {
            println!("{:w0$}  {:w1$}  {}", row[0], row[1], row[2]);
        }
        Ok(ExitCode::SUCCESS)
    }
}
