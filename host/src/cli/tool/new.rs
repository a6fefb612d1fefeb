//! `boram tool new NAME`: scaffolds a tool crate that uses the SDK — an
//! input type whose doc comments become the model-facing description, the
//! tool function, one native unit test — and prints the policy stanza to
//! paste. Inside a tools workspace (a `Cargo.toml` with `[workspace]`) the
//! crate joins it; elsewhere it is a standalone crate pointing at this
//! checkout's SDK.

use crate::cli::UsageError;
use crate::cli::context::GlobalArgs;
use anyhow::Context as _;
use clap::Args;
use std::path::{Path, PathBuf};
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
        std::fs::write(crate_dir.join("Cargo.toml"), manifest(&self.name, in_workspace))?;
        std::fs::write(crate_dir.join("src/lib.rs"), source(&self.name))?;
        if in_workspace {
            add_member(&workspace, &self.name)?;
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
        println!("\nnext:");
        println!("  edit {}/src/lib.rs", crate_dir.display());
        println!(
            "  cargo test --manifest-path {}/Cargo.toml      # the unit test, natively",
            crate_dir.display()
        );
        println!(
            "  cargo build --release --target wasm32-wasip2 --manifest-path {}/Cargo.toml",
            if in_workspace {
                workspace.display().to_string()
            } else {
                crate_dir.join("Cargo.toml").display().to_string()
            }
        );
        println!("\nthen grant it what it needs in your policy (it gets nothing until you do):\n");
        println!("[tools.{}]\napproval = \"prompt\"", self.name);
        println!("# fs = [{{ host = \"../workspace\", guest = \"/workspace\", access = \"ro\" }}]");
        println!("# net = [\"https://api.example.com\"]");
        Ok(ExitCode::SUCCESS)
    }
}

fn manifest(name: &str, in_workspace: bool) -> String {
    let deps = if in_workspace {
        "boram-tool-sdk = { workspace = true }\nserde = { workspace = true }\nschemars = { workspace = true }\n"
            .to_string()
    } else {
        let sdk = Path::new(env!("BORAM_WORKSPACE_DIR")).join("tool-sdk");
        format!(
            "boram-tool-sdk = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\nschemars = \"1\"\n",
            sdk.display().to_string()
        )
    };
    let standalone = if in_workspace {
        String::new()
    } else {
        // Its own workspace, so a parent directory's workspace does not claim
        // it; small components load and instantiate faster.
        "\n[workspace]\n\n[profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\nstrip = true\npanic = \"abort\"\n"
            .to_string()
    };
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\n\
         crate-type = [\"cdylib\"]\n\n[dependencies]\n{deps}{standalone}"
    )
}

fn source(name: &str) -> String {
    format!(
        r#"//! `{name}`: describe what the tool does here.

use boram_tool_sdk::prelude::*;

/// One or two sentences for the model: what `{name}` does and when to use
/// it. This comment is the tool's description.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {{
    /// What this field means, with an example.
    text: String,
}}

#[derive(Serialize)]
struct Output {{
    length: usize,
}}

fn {name}(input: Input) -> Result<Output, ToolError> {{
    if input.text.is_empty() {{
        return Err(ToolError::invalid_input("`text` is empty"));
    }}
    Ok(Output {{
        length: input.text.chars().count(),
    }})
}}

boram_tool_sdk::export_tools!("{name}" => {name});

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn counts_characters() {{
        let out = {name}(Input {{ text: "héllo".into() }}).ok().expect("a result");
        assert_eq!(out.length, 5);
    }}
}}
"#
    )
}

/// Adds `name` to `members = [...]` of the workspace manifest.
fn add_member(manifest: &Path, name: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(manifest)?;
    let Some(start) = text.find("members = [") else {
        anyhow::bail!(
            "{} has no `members = [...]`; add \"{name}\" to it yourself",
            manifest.display()
        );
    };
    let close = start + text[start..].find(']').context("unclosed members list")?;
    let inside = text[start + "members = [".len()..close].trim_end();
    let sep = if inside.is_empty() || inside.ends_with(',') {
        " "
    } else {
        ", "
    };
    let updated = format!(
        "{}{sep}\"{name}\"{}",
        &text[..start + "members = [".len() + inside.len()],
        &text[close..]
    );
    std::fs::write(manifest, updated)?;
    Ok(())
}
