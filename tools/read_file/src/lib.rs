//! `read_file`: reads a UTF-8 text file from a directory the policy grants.

use boram_tool_sdk::prelude::*;
use std::io::{Read, Seek, SeekFrom};

/// Default and largest number of bytes returned by one call.
const DEFAULT_MAX_BYTES: u64 = 64 * 1024;
const LIMIT_MAX_BYTES: u64 = 200 * 1024;

/// Read a UTF-8 text file and return its content. Only directories granted
/// by the policy are visible (for example /workspace). For large files, read
/// in pieces with `offset` and `max_bytes`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Absolute path of the file inside the sandbox, e.g. `/workspace/notes.txt`.
    path: String,
    /// Byte offset to start reading at (default 0).
    #[serde(default)]
    offset: u64,
    /// Most bytes to return (default 65536, at most 204800).
    max_bytes: Option<u64>,
}

#[derive(Serialize)]
struct Output {
    path: String,
    content: String,
    /// Size of the whole file in bytes.
    size: u64,
    offset: u64,
    /// True when the file continues past what was returned.
    truncated: bool,
}

fn read_file(input: Input) -> Result<Output, ToolError> {
    let max = input.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max == 0 || max > LIMIT_MAX_BYTES {
        return Err(ToolError::invalid_input(format!(
            "max_bytes must be between 1 and {LIMIT_MAX_BYTES}, got {max}"
        )));
    }
    let mut file = std::fs::File::open(&input.path).context(format!("cannot open {}", input.path))?;
    let size = file.metadata().context(format!("cannot stat {}", input.path))?.len();
    if input.offset > size {
        return Err(ToolError::invalid_input(format!(
            "offset {} is past the end of {} ({size} bytes)",
            input.offset, input.path
        )));
    }
    file.seek(SeekFrom::Start(input.offset))
        .context(format!("cannot seek in {}", input.path))?;
    let mut bytes = Vec::new();
    file.take(max)
        .read_to_end(&mut bytes)
        .context(format!("cannot read {}", input.path))?;
    let content = decode_utf8(bytes, &input.path)?;
    let truncated = input.offset + (content.len() as u64) < size;
    Ok(Output {
        path: input.path,
        content,
        size,
        offset: input.offset,
        truncated,
    })
}

/// Decodes UTF-8, dropping a character cut in half at the end of the window.
fn decode_utf8(mut bytes: Vec<u8>, path: &str) -> Result<String, ToolError> {
    match std::str::from_utf8(&bytes) {
        Ok(_) => {}
        Err(e) if e.error_len().is_none() => bytes.truncate(e.valid_up_to()),
        Err(e) => {
            return Err(ToolError::failed(format!(
                "{path} is not UTF-8 text (invalid byte at offset {}); this tool reads text files only",
                e.valid_up_to()
            )));
        }
    }
    String::from_utf8(bytes).map_err(|e| ToolError::failed(format!("{path}: {e}")))
}

boram_tool_sdk::export_tools!("read_file" => read_file);
