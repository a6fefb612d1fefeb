//! `write_file`: writes a text file in a directory the policy grants read-write.

use boram_tool_sdk::prelude::*;
use std::io::Write;

/// Write text to a file. Only directories the policy grants read-write can be
/// written; read-only ones refuse. Creates the file if needed.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Absolute path of the file inside the sandbox, e.g. `/workspace/out.txt`.
    path: String,
    /// Text to write.
    content: String,
    /// `overwrite` (default) replaces the file, `append` adds to its end,
    /// `create_new` fails if the file exists.
    #[serde(default)]
    mode: Mode,
    /// Create missing parent directories (default false).
    #[serde(default)]
    create_dirs: bool,
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Mode {
    #[default]
    Overwrite,
    Append,
    CreateNew,
}

#[derive(Serialize)]
struct Output {
    path: String,
    bytes_written: usize,
}

fn write_file(input: Input) -> Result<Output, ToolError> {
    let path = std::path::Path::new(&input.path);
    if input.create_dirs
        && let Some(parent) = path.parent()
    {
        std::fs::create_dir_all(parent).context(format!("cannot create {}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    match input.mode {
        Mode::Overwrite => options.write(true).create(true).truncate(true),
        Mode::Append => options.append(true).create(true),
        Mode::CreateNew => options.write(true).create_new(true),
    };
    let mut file = options
        .open(path)
        .context(format!("cannot open {} for writing", input.path))?;
    file.write_all(input.content.as_bytes())
        .context(format!("cannot write {}", input.path))?;
    file.flush().context(format!("cannot flush {}", input.path))?;
    Ok(Output {
        path: input.path,
        bytes_written: input.content.len(),
    })
}

boram_tool_sdk::export_tools!("write_file" => write_file);
