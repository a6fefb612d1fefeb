//! The files of a new tool crate: a manifest depending on the SDK, a
//! `src/lib.rs` whose input type's doc comment is the tool's description,
//! one native unit test, and `examples.toml` for `boram tool test`.
//! `boram tool new` writes the template source; `create_tool` writes the
//! model's source into the same layout.

use anyhow::Context as _;
use std::path::Path;

/// Release profile of every tool: small components compile and
/// instantiate faster in the host. The same as the first-party tools'
/// workspace, so their compiled dependencies are shared.
const RELEASE_PROFILE: &str =
    "[profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\nstrip = true\npanic = \"abort\"\n";

/// `Cargo.toml` of tool `name`. Inside a tools workspace it takes its
/// dependencies from the workspace; standalone it is its own workspace (so
/// a parent directory's workspace does not claim it) and points at this
/// checkout's SDK.
pub fn manifest(name: &str, description: &str, in_workspace: bool) -> String {
    let description = toml_string(description);
    if in_workspace {
        return format!(
            "[package]\nname = \"{name}\"\ndescription = {description}\nversion = \"0.1.0\"\nedition = \"2024\"\n\
             publish = false\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\n\
             boram-tool-sdk = {{ workspace = true }}\nserde = {{ workspace = true }}\nschemars = {{ workspace = true }}\n"
        );
    }
    let sdk = toml_string(&super::sdk_dir().display().to_string());
    format!(
        "[package]\nname = \"{name}\"\ndescription = {description}\nversion = \"0.1.0\"\nedition = \"2024\"\n\
         publish = false\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\n\
         boram-tool-sdk = {{ path = {sdk} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\nschemars = \"1\"\n\n\
         [workspace]\n\n{RELEASE_PROFILE}"
    )
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// The template `src/lib.rs` of `boram tool new`.
pub fn template_source(name: &str) -> String {
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

/// The template `examples.toml`: inputs and what the tool must answer,
/// checked by `boram tool test` inside the sandbox, under the policy.
pub fn template_examples(name: &str) -> String {
    format!(
        r#"# Examples for `boram tool test {name}`: each runs the built component in
# its sandbox, under your policy, and checks the answer.
#   input   = the tool's input (a TOML table, sent as JSON)
#   output  = the exact JSON output expected, or
#   error   = text the error message must contain (the call must fail)
#   outcome = ok | invalid_input | failed | denied | timeout | … (optional)

[[example]]
name = "counts characters"
input = {{ text = "héllo" }}
output = {{ length = 5 }}

[[example]]
name = "rejects empty text"
input = {{ text = "" }}
outcome = "invalid_input"
error = "empty"
"#
    )
}

/// Writes a standalone crate for tool `name` at `dir` (created if needed),
/// with `source` as `src/lib.rs`. When `lockfile` is given and the crate
/// has none yet, it is copied in, so the crate builds with the same
/// dependency versions (already compiled) without resolving anew.
pub fn write_crate(
    dir: &Path,
    name: &str,
    description: &str,
    source: &str,
    lockfile: Option<&Path>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("Cargo.toml"), manifest(name, description, false))?;
    std::fs::write(dir.join("src/lib.rs"), source)?;
    if let Some(lockfile) = lockfile
        && !dir.join("Cargo.lock").exists()
        && lockfile.exists()
    {
        std::fs::copy(lockfile, dir.join("Cargo.lock"))?;
    }
    Ok(())
}

/// Adds `name` to `members = [...]` of the workspace manifest.
pub fn add_member(manifest: &Path, name: &str) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_parse_and_quote_the_description() {
        for in_workspace in [true, false] {
            let text = manifest("x", "says \"hi\"\nand more", in_workspace);
            let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
            assert_eq!(parsed["package"]["description"].as_str(), Some("says \"hi\"\nand more"));
            assert_eq!(parsed.get("workspace").is_some(), !in_workspace);
        }
    }

    #[test]
    fn template_examples_parse() {
        let parsed: toml::Value = toml::from_str(&template_examples("x")).expect("valid TOML");
        assert_eq!(parsed["example"].as_array().map(Vec::len), Some(2));
    }
}
