//! `boram tool inspect FILE.wasm`.

use crate::cli::context::GlobalArgs;
use crate::runtime::ArtifactOrigin;
use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct InspectCommand {
    /// The component file, e.g. tools/read_file.wasm.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl InspectCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let runtime = global.app(None).runtime()?;
        let c = runtime
            .load(&self.file)
            .await
            .with_context(|| format!("cannot inspect {}", self.file.display()))?;
        if self.json {
            let value = serde_json::json!({
                "path": c.path,
                "size_bytes": c.size_bytes,
                "sha256": c.sha256,
                "compiled_from": c.origin,
                "imports": c.imports,
                "exports": c.exports,
                "tools": c.specs,
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("{}", c.path.display());
        println!("  size:     {} bytes", c.size_bytes);
        println!("  sha256:   {}", c.sha256);
        let origin = match c.origin {
            ArtifactOrigin::Cache => "loaded from the compile cache",
            ArtifactOrigin::Compiled => "compiled now",
        };
        println!("  code:     {origin}");
        println!("  imports:");
        for import in &c.imports {
            println!("    {import}");
        }
        println!("  exports:  {}", c.exports.join(", "));
        println!("  tools:");
        for spec in &c.specs {
            println!("    {}", spec.name);
            for line in crate::terminal::sanitize(&spec.description).lines() {
                println!("      {line}");
            }
            println!("      input schema:");
            let schema = serde_json::to_string_pretty(&spec.input_schema)?;
            for line in schema.lines() {
                println!("        {line}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
