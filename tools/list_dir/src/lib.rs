//! `list_dir`: lists a directory's entries, optionally recursively.

use boram_tool_sdk::prelude::*;

const DEFAULT_MAX_ENTRIES: usize = 500;

/// List the files and directories in a directory the policy grants. Entries
/// are sorted by path; use `recursive` to walk subdirectories.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Absolute path of the directory inside the sandbox, e.g. `/workspace`.
    path: String,
    /// Walk subdirectories too (default false).
    #[serde(default)]
    recursive: bool,
    /// Most entries to return (default 500).
    max_entries: Option<usize>,
}

#[derive(Serialize)]
struct Entry {
    path: String,
    kind: &'static str,
    size: u64,
}

#[derive(Serialize)]
struct Output {
    entries: Vec<Entry>,
    /// True when more entries exist than were returned.
    truncated: bool,
}

fn list_dir(input: Input) -> Result<Output, ToolError> {
    let max = input.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
    if max == 0 {
        return Err(ToolError::invalid_input("max_entries must be at least 1"));
    }
    let mut entries = Vec::new();
    let mut pending = vec![std::path::PathBuf::from(&input.path)];
    let mut truncated = false;
    'walk: while let Some(dir) = pending.pop() {
        let read = std::fs::read_dir(&dir).context(format!("cannot list {}", dir.display()))?;
        let mut children: Vec<_> = read.filter_map(Result::ok).collect();
        children.sort_by_key(|e| e.file_name());
        for child in children {
            if entries.len() == max {
                truncated = true;
                break 'walk;
            }
            let file_type = child
                .file_type()
                .context(format!("cannot stat {}", child.path().display()))?;
            let kind = if file_type.is_dir() {
                "dir"
            } else if file_type.is_symlink() {
                "symlink"
            } else {
                "file"
            };
            let size = if file_type.is_file() {
                child.metadata().map(|m| m.len()).unwrap_or(0)
            } else {
                0
            };
            if input.recursive && file_type.is_dir() {
                pending.push(child.path());
            }
            entries.push(Entry {
                path: child.path().display().to_string(),
                kind,
                size,
            });
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Output { entries, truncated })
}

boram_tool_sdk::export_tools!("list_dir" => list_dir);
