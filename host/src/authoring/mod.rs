//! Writing tools: scaffolding a tool crate ([`scaffold`]), building it for
//! `wasm32-wasip2` into the tools directory ([`build`]), running its
//! examples inside the real sandbox ([`examples`]), and the agent's own
//! `create_tool` ([`factory`]), which is the same scaffold-and-build with
//! caps on time and output and nothing granted.

pub mod build;
pub mod examples;
pub mod factory;
pub mod scaffold;

use std::path::PathBuf;

/// The checkout this binary was built from: the SDK and WIT live here.
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("BORAM_WORKSPACE_DIR"))
}

/// The tool SDK that scaffolded crates depend on (by path).
pub fn sdk_dir() -> PathBuf {
    workspace_dir().join("tool-sdk")
}

/// Where guest builds keep their output. One directory for every build
/// (the first-party tools, `boram tool build`, `create_tool`), so the SDK's
/// dependencies compile once.
pub fn guest_target_dir() -> PathBuf {
    PathBuf::from(env!("BORAM_GUEST_TARGET_DIR"))
}
