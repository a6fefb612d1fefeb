//! A loaded tool component: compiled code, a pre-linked instance template,
//! and the tool specs it described when it was loaded.

use super::bindings::ToolPre;
use super::cache::ArtifactOrigin;
use super::state::StoreState;
use serde::Serialize;
use std::path::PathBuf;

/// One tool as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the input object.
    pub input_schema: serde_json::Value,
}

/// A component ready to be called many times, each call in a fresh instance.
pub struct LoadedComponent {
    pub path: PathBuf,
    /// SHA-256 of the `.wasm` bytes, hex.
    pub sha256: String,
    pub size_bytes: u64,
    pub origin: ArtifactOrigin,
    pub specs: Vec<ToolSpec>,
    /// WIT imports, e.g. `wasi:filesystem/types@0.2.0`.
    pub imports: Vec<String>,
    /// WIT exports, e.g. `call`.
    pub exports: Vec<String>,
    pub(super) pre: ToolPre<StoreState>,
}

impl LoadedComponent {
    pub fn spec(&self, tool: &str) -> Option<&ToolSpec> {
        self.specs.iter().find(|s| s.name == tool)
    }
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("specs", &self.specs.iter().map(|s| &s.name).collect::<Vec<_>>())
            .finish()
    }
}
