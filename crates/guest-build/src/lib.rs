//! Builds guest crates and workspaces (tools, test fixtures, tools the agent
//! writes) for `wasm32-wasip2`. One implementation serves the host's build
//! script (so `cargo build` / `cargo test` also produce every component the
//! host loads), `boram tool build` (progress display, `--watch`) and the
//! agent's `create_tool` (time cap, compiler errors returned to the model).
//! Nothing is installed by hand: `rust-toolchain.toml` makes rustup add the
//! target, and [`ensure_guest_target`] adds it when rustup did not.
//!
//! Cargo runs with `--message-format=json`: artifacts and compiler
//! diagnostics arrive as events while the build runs, and the rendered
//! diagnostics are kept so a caller can show (or cap) them.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The guest target every BoramClaw component is built for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Most bytes of cargo's own stderr kept (its last part, where errors such
/// as a failed dependency resolution are).
const STDERR_TAIL: usize = 16 * 1024;

/// Environment variables of an outer build that must not leak into the
/// guest build: they carry host-target flags or point at the outer target dir.
const SCRUBBED_ENV: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_MANIFEST_DIR",
    "CARGO_PRIMARY_PACKAGE",
    "RUSTC_WORKSPACE_WRAPPER",
];

/// Makes sure the standard library for [`GUEST_TARGET`] is installed,
/// adding it with rustup when it is not (`rust-toolchain.toml` lists it,
/// but rustup only reads that list when it installs the toolchain itself).
pub fn ensure_guest_target() -> Result<(), String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {rustc}: {e}; is the Rust toolchain installed (https://rustup.rs)?"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(GUEST_TARGET).exists() {
        return Ok(());
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", GUEST_TARGET]);
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    match rustup.status() {
        Ok(status) if status.success() => Ok(()),
        _ => Err(format!(
            "the {GUEST_TARGET} target is not installed and rustup could not add it; \
             run `rustup target add {GUEST_TARGET}`"
        )),
    }
}

/// One `cargo build --release --target wasm32-wasip2`.
#[derive(Debug, Clone)]
pub struct Build {
    /// `Cargo.toml` of the crate or workspace.
    pub manifest: PathBuf,
    /// Where cargo keeps its output; share one between builds so
    /// dependencies compile once.
    pub target_dir: PathBuf,
    /// Only this package of a workspace (`-p`); `None` builds every member.
    pub package: Option<String>,
    /// Stop the build (and every compiler it started) after this long.
    pub timeout: Option<Duration>,
    /// Stop it (the same way) as soon as this becomes true (Ctrl-C).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Something the build reported while running.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent {
    /// A crate finished compiling (`fresh`: it was up to date already).
    Compiled { crate_name: String, fresh: bool },
    /// A compiler message: `level` is `error`, `warning`, …; `rendered` is
    /// what rustc would print, with the file, line and a caret.
    Diagnostic { level: String, rendered: String },
}

/// What a finished build produced (`default()`: nothing yet, not a success).
#[derive(Debug, Clone, Default)]
pub struct BuildOutput {
    pub success: bool,
    /// Components produced (or found fresh), one per `cdylib` built.
    pub wasm: Vec<PathBuf>,
    /// Rendered error diagnostics, in the order rustc gave them.
    pub errors: Vec<String>,
    pub warnings: usize,
    /// The end of cargo's own stderr (resolution and manifest errors land here).
    pub stderr_tail: String,
    pub elapsed: Duration,
}

impl BuildOutput {
    /// Why the build failed, in words: the compiler errors, or cargo's own
    /// error when there are none, at most `max_chars` characters.
    pub fn failure_text(&self, max_chars: usize) -> String {
        // Room for the "(N more errors not shown)" line.
        let budget = max_chars.saturating_sub(40);
        let mut text = String::new();
        let mut shown = 0;
        for error in &self.errors {
            if text.chars().count() + error.chars().count() > budget && shown > 0 {
                break;
            }
            text.push_str(error.trim_end());
            text.push_str("\n\n");
            shown += 1;
        }
        if shown < self.errors.len() {
            text.push_str(&format!("({} more errors not shown)\n", self.errors.len() - shown));
        }
        if self.errors.is_empty() {
            let cargo_errors: Vec<&str> = self
                .stderr_tail
                .lines()
                .skip_while(|l| !l.trim_start().starts_with("error"))
                .collect();
            text = if cargo_errors.is_empty() {
                self.stderr_tail.clone()
            } else {
                cargo_errors.join("\n")
            };
        }
        let text = text.trim_end();
        if text.chars().count() <= max_chars {
            return text.to_string();
        }
        let mut cut: String = text.chars().take(max_chars).collect();
        cut.push_str("\n(cut)");
        cut
    }
}

/// Why a build did not run to its end.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildError {
    /// Cargo could not be started.
    Spawn(String),
    /// The time cap passed; the build was stopped.
    TimedOut(Duration),
    /// `cancel` was set; the build was stopped.
    Cancelled,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Spawn(message) => f.write_str(message),
            Self::TimedOut(after) => write!(f, "the build was stopped after {} s, its time limit", after.as_secs()),
            Self::Cancelled => f.write_str("the build was cancelled"),
        }
    }
}

impl std::error::Error for BuildError {}

impl Build {
    /// Runs the build, calling `on_event` for each artifact and diagnostic
    /// as cargo reports it. A build that compiles with errors is `Ok` with
    /// `success: false`; `Err` means it could not run or was stopped.
    pub fn run(&self, on_event: &mut dyn FnMut(&BuildEvent)) -> Result<BuildOutput, BuildError> {
        ensure_guest_target().map_err(BuildError::Spawn)?;
        let started = Instant::now();
        let mut child = self
            .command()
            .spawn()
            .map_err(|e| BuildError::Spawn(format!("cannot run cargo: {e}")))?;
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr_reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            let start = all.len().saturating_sub(STDERR_TAIL);
            String::from_utf8_lossy(&all[start..]).into_owned()
        });

        let mut output = BuildOutput::default();
        let deadline = self.timeout.map(|t| started + t);
        let cancelled = || {
            self.cancel
                .as_ref()
                .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        };
        loop {
            if cancelled() {
                kill_build(&mut child);
                let _ = reader.join();
                return Err(BuildError::Cancelled);
            }
            // Woken at least every 50 ms to see a cancel.
            let wait = deadline
                .map_or(Duration::from_secs(3600), |d| {
                    d.saturating_duration_since(Instant::now())
                })
                .min(Duration::from_millis(50));
            match rx.recv_timeout(wait) {
                Ok(line) => {
                    if let Some(event) = parse_message(&line, &mut output) {
                        on_event(&event);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        kill_build(&mut child);
                        let _ = reader.join();
                        return Err(BuildError::TimedOut(self.timeout.unwrap_or_default()));
                    }
                }
            }
        }
        let status = child
            .wait()
            .map_err(|e| BuildError::Spawn(format!("cannot wait for cargo: {e}")))?;
        let _ = reader.join();
        output.stderr_tail = stderr_reader.join().unwrap_or_default();
        output.success = status.success();
        output.wasm.sort();
        output.wasm.dedup();
        output.elapsed = started.elapsed();
        Ok(output)
    }

    fn command(&self) -> Command {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--release", "--message-format=json"])
            .args(["--target", GUEST_TARGET])
            .arg("--manifest-path")
            .arg(&self.manifest)
            .arg("--target-dir")
            .arg(&self.target_dir);
        match &self.package {
            Some(package) => cmd.args(["--package", package]),
            None => cmd.arg("--workspace"),
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for key in SCRUBBED_ENV {
            cmd.env_remove(key);
        }
        // Its own process group, so a time-out stops rustc and the linker too.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }
}

/// Stops cargo and everything it started.
fn kill_build(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Folds one line of cargo's JSON output into `output`; returns the event
/// to report, if any.
fn parse_message(line: &str, output: &mut BuildOutput) -> Option<BuildEvent> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    match msg["reason"].as_str()? {
        "compiler-artifact" => {
            let files = msg["filenames"].as_array().into_iter().flatten();
            output.wasm.extend(
                files
                    .filter_map(|f| f.as_str())
                    .filter(|f| f.ends_with(".wasm"))
                    .map(PathBuf::from),
            );
            Some(BuildEvent::Compiled {
                crate_name: msg["target"]["name"].as_str().unwrap_or("?").to_string(),
                fresh: msg["fresh"].as_bool().unwrap_or(false),
            })
        }
        "compiler-message" => {
            let level = msg["message"]["level"].as_str().unwrap_or("").to_string();
            let rendered = msg["message"]["rendered"].as_str().unwrap_or("").to_string();
            let summary = rendered.starts_with("error: aborting due to")
                || rendered.contains("warning emitted")
                || rendered.contains("warnings emitted");
            // rustc ends with summaries ("aborting due to 2 previous errors"); count only real ones.
            match level.as_str() {
                "error" | "error: internal compiler error" if !summary => output.errors.push(rendered.clone()),
                "warning" if !summary => output.warnings += 1,
                _ => {}
            }
            Some(BuildEvent::Diagnostic { level, rendered })
        }
        _ => None,
    }
}

/// Builds every package of the workspace at `manifest` (the host's build
/// script uses this) and returns the components it produced. Diagnostics
/// are printed to stderr as they come.
pub fn build_workspace(manifest: &Path, target_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let build = Build {
        manifest: manifest.to_path_buf(),
        target_dir: target_dir.to_path_buf(),
        package: None,
        timeout: None,
        cancel: None,
    };
    let output = build
        .run(&mut |event| {
            if let BuildEvent::Diagnostic { rendered, .. } = event {
                eprint!("{rendered}");
            }
        })
        .map_err(|e| e.to_string())?;
    if !output.success {
        return Err(format!(
            "building {} for {GUEST_TARGET} failed:\n{}",
            manifest.display(),
            output.failure_text(20_000)
        ));
    }
    Ok(output.wasm)
}

/// Tells cargo to rerun the build script when any source of the guest
/// workspace at `dir` changes. Lists `src/`, manifests and lockfiles one by
/// one rather than the whole directory, so build outputs copied into it
/// (such as `tools/*.wasm`) do not retrigger the build.
pub fn rerun_if_sources_change(dir: &Path) {
    for name in ["Cargo.toml", "Cargo.lock", "src", "wit"] {
        let path = dir.join(name);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.path().join("Cargo.toml").exists() {
            rerun_if_sources_change(&entry.path());
        }
    }
}

/// Copies `from` to `to` only when the bytes differ, through a temporary
/// file and a rename, so a host watching `to` never sees a half-written file.
pub fn install_if_changed(from: &Path, to: &Path) -> Result<bool, String> {
    let new = std::fs::read(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    if std::fs::read(to).is_ok_and(|old| old == new) {
        return Ok(false);
    }
    let tmp = to.with_extension("wasm.tmp");
    std::fs::write(&tmp, &new).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, to).map_err(|e| format!("cannot move {} into place: {e}", to.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_components_and_diagnostics_from_cargo_messages() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"a"},"fresh":true,"filenames":["/t/a.wasm","/t/liba.rlib"]}"#,
            r#"{"reason":"compiler-message","message":{"level":"error","rendered":"error[E0425]: cannot find value `x`\n"}}"#,
            r#"{"reason":"compiler-message","message":{"level":"error","rendered":"error: aborting due to 1 previous error\n"}}"#,
            r#"{"reason":"compiler-message","message":{"level":"warning","rendered":"warning: unused variable\n"}}"#,
            r#"{"reason":"build-finished","success":false}"#,
            "not json",
        ];
        let mut output = BuildOutput::default();
        let events: Vec<BuildEvent> = messages.iter().filter_map(|m| parse_message(m, &mut output)).collect();
        assert_eq!(events.len(), 4);
        assert_eq!(
            events[0],
            BuildEvent::Compiled {
                crate_name: "a".into(),
                fresh: true
            }
        );
        assert_eq!(output.wasm, vec![PathBuf::from("/t/a.wasm")]);
        assert_eq!(output.errors, vec!["error[E0425]: cannot find value `x`\n".to_string()]);
        assert_eq!(output.warnings, 1);
    }

    #[test]
    fn failure_text_is_capped_and_counts_what_it_leaves_out() {
        let output = BuildOutput {
            errors: (0..5).map(|i| format!("error {i}: {}\n", "x".repeat(40))).collect(),
            ..BuildOutput::default()
        };
        let text = output.failure_text(120);
        assert!(text.starts_with("error 0"), "{text}");
        assert!(text.contains("more errors not shown"), "{text}");
        assert!(text.chars().count() <= 130, "{text}");
    }

    #[test]
    fn failure_text_falls_back_to_cargos_own_error() {
        let output = BuildOutput {
            stderr_tail: "    Updating index\nerror: failed to parse manifest at `/x/Cargo.toml`\n".into(),
            ..BuildOutput::default()
        };
        assert_eq!(
            output.failure_text(1000),
            "error: failed to parse manifest at `/x/Cargo.toml`"
        );
    }
}
