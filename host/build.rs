//! Builds the first-party tools and the test fixtures for `wasm32-wasip2`
//! whenever the host is built, so `cargo build`, `cargo run` and
//! `cargo test` need no separate step. The tools land in `tools/<name>.wasm`
//! (the host's default tools directory); the fixtures stay in the guest
//! target directory. Set `BORAM_SKIP_GUEST_BUILD=1` to skip.

use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("guest");
    let tools_dir = root.join("tools");
    let fixtures_dir = root.join("tests/fixtures");
    let fixture_out = target_dir.join(guest_build::GUEST_TARGET).join("release");

    println!("cargo:rustc-env=BORAM_WORKSPACE_DIR={}", root.display());
    println!("cargo:rustc-env=BORAM_FIXTURES_DIR={}", fixture_out.display());
    println!("cargo:rustc-env=BORAM_GUEST_TARGET_DIR={}", target_dir.display());
    println!("cargo:rerun-if-env-changed=BORAM_SKIP_GUEST_BUILD");
    guest_build::rerun_if_sources_change(&tools_dir);
    guest_build::rerun_if_sources_change(&fixtures_dir);
    guest_build::rerun_if_sources_change(&root.join("tool-sdk"));
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    if std::env::var_os("BORAM_SKIP_GUEST_BUILD").is_some() {
        return;
    }

    for wasm in build(&tools_dir.join("Cargo.toml"), &target_dir) {
        let name = wasm.file_name().expect("artifact has a file name");
        if let Err(e) = guest_build::install_if_changed(&wasm, &tools_dir.join(name)) {
            panic!("{e}");
        }
    }
    build(&fixtures_dir.join("Cargo.toml"), &target_dir);
}

fn build(manifest: &Path, target_dir: &Path) -> Vec<PathBuf> {
    guest_build::build_workspace(manifest, target_dir).unwrap_or_else(|e| panic!("{e}"))
}
