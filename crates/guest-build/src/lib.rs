//! Builds a guest workspace (tools or test fixtures) for `wasm32-wasip2`
//! from a build script, so `cargo build` / `cargo test` of the host also
//! produce every component the host loads. Nothing is installed by hand:
//! `rust-toolchain.toml` makes rustup add the target.
//!
//! The nested cargo uses its own target directory: sharing the outer one
//! would deadlock on cargo's build lock.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The guest target every BoramClaw component is built for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Environment variables of the outer build that must not leak into the
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
        .map_err(|e| format!("cannot run {rustc}: {e}"))?;
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

/// Builds every package of the workspace at `manifest` in release mode and
/// returns the `.wasm` components it produced.
pub fn build_workspace(manifest: &Path, target_dir: &Path) -> Result<Vec<PathBuf>, String> {
    ensure_guest_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--workspace",
        "--message-format=json-render-diagnostics",
    ])
    .args(["--target", GUEST_TARGET])
    .arg("--manifest-path")
    .arg(manifest)
    .arg("--target-dir")
    .arg(target_dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for key in SCRUBBED_ENV {
        cmd.env_remove(key);
    }
    let output = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building {} for {GUEST_TARGET} failed ({}); see the compiler output above",
            manifest.display(),
            output.status
        ));
    }
    Ok(wasm_artifacts(&String::from_utf8_lossy(&output.stdout)))
}

/// Picks the `.wasm` files out of cargo's JSON messages.
fn wasm_artifacts(messages: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for line in messages.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let files = msg["filenames"].as_array().into_iter().flatten();
        found.extend(
            files
                .filter_map(|f| f.as_str())
                .filter(|f| f.ends_with(".wasm"))
                .map(PathBuf::from),
        );
    }
    found.sort();
    found.dedup();
    found
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
    fn picks_wasm_files_from_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","filenames":["/t/a.wasm","/t/liba.rlib"]}
{"reason":"build-finished","success":true}
not json
{"reason":"compiler-artifact","filenames":["/t/b.wasm"]}"#;
        assert_eq!(
            wasm_artifacts(messages),
            vec![PathBuf::from("/t/a.wasm"), PathBuf::from("/t/b.wasm")]
        );
    }
}
