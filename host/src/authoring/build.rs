//! Building tool crates into the tools directory: find the crate a tool
//! name refers to, run the guest build (shared target directory, optional
//! time cap), and place each component as `<tools dir>/<name>.wasm`
//! through a temporary file and a rename, so a host watching the directory
//! swaps in a whole file or nothing.

use guest_build::{Build, BuildError, BuildEvent, BuildOutput};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `boram tool build [NAME]` builds.
#[derive(Debug, Clone)]
pub struct ToolCrate {
    /// `Cargo.toml` to build: the tools workspace, or a standalone crate.
    pub manifest: PathBuf,
    /// The workspace member to build; `None` builds them all.
    pub package: Option<String>,
    /// Directories whose changes call for a rebuild (`--watch`).
    pub sources: Vec<PathBuf>,
}

/// Finds what to build in `dir` (the tools directory, or where `boram tool
/// new --dir` put the crate): tool `name` as a member of the workspace at
/// `dir/Cargo.toml` or as the standalone crate `dir/name`, or with no name
/// the whole workspace.
pub fn locate(dir: &Path, name: Option<&str>) -> Result<ToolCrate, String> {
    let workspace = dir.join("Cargo.toml");
    let is_workspace = std::fs::read_to_string(&workspace).is_ok_and(|t| t.contains("[workspace]"));
    let Some(name) = name else {
        if !is_workspace {
            return Err(format!(
                "{} is not a tools workspace; name the tool to build (`boram tool build NAME`)",
                dir.display()
            ));
        }
        return Ok(ToolCrate {
            manifest: workspace,
            package: None,
            sources: vec![dir.to_path_buf()],
        });
    };
    let crate_dir = dir.join(name);
    let crate_manifest = crate_dir.join("Cargo.toml");
    if !crate_manifest.exists() && crate_dir.join("build.sh").exists() {
        return Err(format!(
            "{} is not a Rust crate; it is built by its own script: run {}",
            crate_dir.display(),
            crate_dir.join("build.sh").display()
        ));
    }
    if !crate_manifest.exists() {
        return Err(format!(
            "no tool crate at {}; create one with `boram tool new {name}`{}",
            crate_dir.display(),
            if dir.join(format!("{name}.wasm")).exists() {
                " (a built component exists, but not its source)"
            } else {
                ""
            }
        ));
    }
    let standalone = std::fs::read_to_string(&crate_manifest).is_ok_and(|t| t.contains("[workspace]"));
    Ok(if is_workspace && !standalone {
        ToolCrate {
            manifest: workspace,
            package: Some(name.to_string()),
            sources: vec![crate_dir],
        }
    } else {
        ToolCrate {
            manifest: crate_manifest,
            package: None,
            sources: vec![crate_dir],
        }
    })
}

/// A component placed in the tools directory.
#[derive(Debug, Clone)]
pub struct Placed {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// False when the file already had these bytes (nothing to reload).
    pub changed: bool,
}

/// Why a build produced nothing to place.
#[derive(Debug)]
pub enum BuildFailure {
    /// Cargo did not run or was stopped.
    NotRun(BuildError),
    /// The compiler refused; `output` has the errors.
    Compile(BuildOutput),
    /// It built, but not what was asked for, or the file could not be placed.
    Install(String),
}

impl std::fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotRun(e) => write!(f, "{e}"),
            Self::Compile(output) => write!(f, "{}", output.failure_text(20_000)),
            Self::Install(message) => f.write_str(message),
        }
    }
}

/// Builds `krate` and places its components in `tools_dir`.
pub fn build_and_place(
    krate: &ToolCrate,
    tools_dir: &Path,
    timeout: Option<Duration>,
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    on_event: &mut dyn FnMut(&BuildEvent),
) -> Result<(BuildOutput, Vec<Placed>), BuildFailure> {
    let build = Build {
        manifest: krate.manifest.clone(),
        target_dir: super::guest_target_dir(),
        package: krate.package.clone(),
        timeout,
        cancel,
    };
    let output = build.run(on_event).map_err(BuildFailure::NotRun)?;
    if !output.success {
        return Err(BuildFailure::Compile(output));
    }
    let wanted: Vec<&PathBuf> = output
        .wasm
        .iter()
        .filter(|wasm| match &krate.package {
            Some(package) => wasm.file_stem().is_some_and(|s| *s == *package.replace('-', "_")),
            None => true,
        })
        .collect();
    if wanted.is_empty() {
        return Err(BuildFailure::Install(format!(
            "the build produced no component; is `crate-type = [\"cdylib\"]` set in {}?",
            krate.manifest.display()
        )));
    }
    std::fs::create_dir_all(tools_dir)
        .map_err(|e| BuildFailure::Install(format!("cannot create {}: {e}", tools_dir.display())))?;
    let mut placed = Vec::new();
    for wasm in wanted {
        let name = wasm.file_name().expect("artifact has a file name");
        let to = tools_dir.join(name);
        let changed = guest_build::install_if_changed(wasm, &to).map_err(BuildFailure::Install)?;
        if !changed {
            // Same bytes, built from the current sources: say so with the
            // time, so `tool test` stops warning that the sources are newer.
            // (A time change is not a content change: hot swap ignores it.)
            if let Err(e) = std::fs::File::options()
                .append(true)
                .open(&to)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            {
                tracing::warn!(path = %to.display(), error = %e, "cannot update the component's modification time");
            }
        }
        let size_bytes = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
        placed.push(Placed {
            path: to,
            size_bytes,
            changed,
        });
    }
    Ok((output, placed))
}

/// The newest modification time of the sources of `krate` (its `src/`
/// files and manifests), to tell whether a component is older than its code.
pub fn newest_source(krate: &ToolCrate) -> Option<std::time::SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(&path, newest);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "toml")
                && let Ok(modified) = entry.metadata().and_then(|m| m.modified())
            {
                *newest = (*newest).max(Some(modified));
            }
        }
    }
    let mut newest = None;
    for dir in &krate.sources {
        walk(dir, &mut newest);
    }
    newest
}
