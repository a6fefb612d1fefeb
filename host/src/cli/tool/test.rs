//! `boram tool test NAME`: runs the examples in the tool crate's
//! `examples.toml` against the built component, each call in its real
//! sandbox under the policy (`--policy`), and reports pass or fail per
//! example. Exit status 1 when any fails.

use crate::authoring::{build, examples};
use crate::cli::UsageError;
use crate::cli::context::GlobalArgs;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct TestCommand {
    /// The tool crate whose `examples.toml` to run.
    name: String,
    /// Where the crate is (as given to `boram tool new --dir`). Default: the tools directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl TestCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let tools_dir = global.tools_dir();
        let dir = self.dir.clone().unwrap_or_else(|| tools_dir.clone());
        let krate = build::locate(&dir, Some(&self.name)).map_err(UsageError)?;
        let file = dir.join(&self.name).join("examples.toml");
        if !file.exists() {
            return Err(UsageError(format!(
                "{} does not exist; write examples there (see `boram tool new` for the format)",
                file.display()
            ))
            .into());
        }
        let cases = examples::load(&file).map_err(UsageError)?;
        let wasm = tools_dir.join(format!("{}.wasm", self.name));
        let built = std::fs::metadata(&wasm).and_then(|m| m.modified()).ok();
        match (built, build::newest_source(&krate)) {
            (None, _) => {
                return Err(UsageError(format!(
                    "{} is not built yet; run `boram tool build {}` first",
                    wasm.display(),
                    self.name
                ))
                .into());
            }
            (Some(built), Some(source)) if source > built => eprintln!(
                "warning: the sources changed after {} was built; run `boram tool build {}` to test the new code",
                wasm.display(),
                self.name
            ),
            _ => {}
        }
        let host = global.app(None).tool_host().await?;
        eprintln!(
            "testing {} against {} under {}",
            self.name,
            wasm.display(),
            host.policy().display_source()
        );
        let results = examples::run(&host, &self.name, &cases).await;
        let failed = results.iter().filter(|r| !r.passed).count();
        for r in &results {
            let tool = if r.tool == self.name {
                String::new()
            } else {
                format!(" [{}]", r.tool)
            };
            match &r.detail {
                None => println!("ok    {}{tool} ({:.1} ms)", r.name, r.duration.as_secs_f64() * 1e3),
                Some(detail) => println!("FAIL  {}{tool}: {detail}", r.name),
            }
        }
        println!("\n{} passed, {failed} failed", results.len() - failed);
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(crate::cli::EXIT_FAILURE)
        })
    }
}
