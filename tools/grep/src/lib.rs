//! `grep`: searches the text files under a granted directory with a regular
//! expression and returns the matching lines.

use boram_tool_sdk::prelude::*;
use regex::{Regex, RegexBuilder};
use std::path::{Path, PathBuf};

const DEFAULT_MAX_MATCHES: usize = 200;
/// Files larger than this are skipped: grep is for source and notes, not dumps.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Longest line text returned; longer lines are cut.
const MAX_LINE_CHARS: usize = 400;

/// Search files with a regular expression (Rust regex syntax) and return the
/// matching lines with their file and line number. `path` may be a file or a
/// directory (searched recursively). Binary files are skipped.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The regular expression, e.g. `fn \w+\(` or `TODO|FIXME`.
    pattern: String,
    /// Absolute path of a file or directory inside the sandbox, e.g. `/workspace`.
    path: String,
    /// Only search files whose name ends with this suffix, e.g. `.rs`.
    suffix: Option<String>,
    /// Match case-insensitively (default false).
    #[serde(default)]
    ignore_case: bool,
    /// Most matching lines to return (default 200).
    max_matches: Option<usize>,
}

#[derive(Serialize)]
struct Match {
    path: String,
    line: usize,
    text: String,
}

#[derive(Serialize)]
struct Output {
    matches: Vec<Match>,
    files_searched: usize,
    /// True when more lines matched than were returned.
    truncated: bool,
}

fn grep(input: Input) -> Result<Output, ToolError> {
    let regex = RegexBuilder::new(&input.pattern)
        .case_insensitive(input.ignore_case)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ToolError::invalid_input(format!("`pattern` is not a valid regex: {e}")))?;
    let max = input.max_matches.unwrap_or(DEFAULT_MAX_MATCHES);
    let mut out = Output {
        matches: Vec::new(),
        files_searched: 0,
        truncated: false,
    };
    let root = PathBuf::from(&input.path);
    let meta = std::fs::metadata(&root).context(format!("cannot access {}", input.path))?;
    let files = if meta.is_dir() { walk(&root)? } else { vec![root] };
    for file in files {
        let name_ok = input
            .suffix
            .as_deref()
            .is_none_or(|s| file.to_string_lossy().ends_with(s));
        if !name_ok {
            continue;
        }
        if search_file(&file, &regex, max, &mut out) {
            out.truncated = true;
            break;
        }
    }
    Ok(out)
}

/// All regular files under `root`, sorted, without following symlinks.
fn walk(root: &Path) -> Result<Vec<PathBuf>, ToolError> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).context(format!("cannot list {}", dir.display()))? {
            let entry = entry.context(format!("cannot list {}", dir.display()))?;
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push(entry.path()),
                Ok(t) if t.is_file() => files.push(entry.path()),
                _ => {}
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Adds the file's matching lines; returns true once `max` is exceeded.
fn search_file(file: &Path, regex: &Regex, max: usize, out: &mut Output) -> bool {
    let too_big = std::fs::metadata(file)
        .map(|m| m.len() > MAX_FILE_BYTES)
        .unwrap_or(true);
    let Ok(bytes) = (if too_big {
        Err(())
    } else {
        std::fs::read(file).map_err(|_| ())
    }) else {
        return false;
    };
    if bytes.contains(&0) {
        return false;
    }
    out.files_searched += 1;
    let text = String::from_utf8_lossy(&bytes);
    for (number, line) in text.lines().enumerate() {
        if regex.is_match(line) {
            if out.matches.len() == max {
                return true;
            }
            out.matches.push(Match {
                path: file.display().to_string(),
                line: number + 1,
                text: line.chars().take(MAX_LINE_CHARS).collect(),
            });
        }
    }
    false
}

boram_tool_sdk::export_tools!("grep" => grep);
