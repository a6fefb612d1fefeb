//! `boram tool new NAME`: scaffolds a tool crate that uses the SDK — an
//! input type whose doc comments become the model-facing description, the
//! tool function, one native unit test, `examples.toml` for `boram tool
//! test` — and prints the policy stanza to paste. Inside a tools workspace (a `Cargo.toml` with `[workspace]`) the
//! crate joins it; elsewhere it is a standalone crate pointing at this
//! checkout's SDK.

use crate::authoring::scaffold;
use crate::cli::UsageError;
use crate::cli::context::GlobalArgs;
use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct NewCommand {
    /// Tool name: lowercase letters, digits and `_`, starting with a letter.
    name: String,
    /// Where to create the crate. Default: the tools directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl NewCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        if !crate::policy::is_tool_name(&self.name) {
            return Err(UsageError(format!(
                "`{}` is not a valid tool name: use lowercase letters, digits and `_`, starting with a letter",
                self.name
            ))
            .into());
        }
        let dir = self.dir.clone().unwrap_or_else(|| global.tools_dir());
        let crate_dir = dir.join(&self.name);
        if crate_dir.exists() {
            return Err(UsageError(format!("{} already exists; pick another name", crate_dir.display())).into());
        }
        let workspace = dir.join("Cargo.toml");
        let in_workspace = std::fs::read_to_string(&workspace).is_ok_and(|t| t.contains("[workspace]"));
        std::fs::create_dir_all(crate_dir.join("src"))
            .with_context(|| format!("cannot create {}", crate_dir.display()))?;
        let description = format!("BoramClaw tool `{}`", self.name);
        std::fs::write(
            crate_dir.join("Cargo.toml"),
            scaffold::manifest(&self.name, &description, in_workspace),
        )?;
        std::fs::write(crate_dir.join("src/lib.rs"), scaffold::template_source(&self.name))?;
        std::fs::write(crate_dir.join("examples.toml"), scaffold::template_examples(&self.name))?;
        if in_workspace {
            scaffold::add_member(&workspace, &self.name)?;
        } else {
            // The first-party tools' versions: already compiled, no resolution needed.
            let lockfile = crate::authoring::workspace_dir().join("tools/Cargo.lock");
            if lockfile.exists() {
                std::fs::copy(&lockfile, crate_dir.join("Cargo.lock"))?;
            }
        }
        println!(
            "created {} ({})",
            crate_dir.display(),
            if in_workspace {
                "workspace member"
            } else {
                "standalone crate"
            }
        );
        let dir_flag = match &self.dir {
            Some(dir) => format!(" --dir {}", dir.display()),
            None => String::new(),
        };
        println!("\nnext:");
        println!("  edit {}/src/lib.rs", crate_dir.display());
        println!(
            "  cargo test --manifest-path {}/Cargo.toml      # the unit test, natively",
            crate_dir.display()
        );
        println!(
            "  boram tool build {}{dir_flag} --watch   # builds into the tools directory on every save",
            self.name
        );
        println!(
            "  boram tool test {}{dir_flag}            # runs examples.toml in the sandbox, under the policy",
            self.name
        );
        println!("\nthen grant it what it needs in your policy (it gets nothing until you do):\n");
        println!("[tools.{}]\napproval = \"prompt\"", self.name);
        println!("# fs = [{{ host = \"../workspace\", guest = \"/workspace\", access = \"ro\" }}]");
        println!("# net = [\"https://api.example.com\"]");
        Ok(ExitCode::SUCCESS)
    }
}
