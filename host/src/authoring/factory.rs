//! `create_tool`: the model writes a tool. It sends a name, a description
//! and Rust source written against the SDK; the factory writes the crate
//! (under the data directory, never in the checkout), builds it with a time
//! cap, checks the component (it loads, `describe` works, it exports exactly
//! the tool asked for), places it in the tools directory and swaps it into
//! the host, where it runs under whatever the policy says of its name —
//! which, unless an operator wrote a `[tools.NAME]` table, is nothing: no
//! filesystem, network, environment or secrets.
//!
//! A name that belongs to a tool the factory did not create is refused:
//! otherwise the model could take over `read_file`'s grants by rebuilding
//! it. Every attempt, built or not, is an audit event.

use super::build::{self, BuildFailure, ToolCrate};
use crate::registry::ToolHost;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest source accepted.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// Longest description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Default cap on one build (the first one compiles the SDK's dependencies).
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(300);
/// Default cap on the compiler output returned to the model.
pub const DEFAULT_MAX_ERROR_CHARS: usize = 6000;

/// What the model sends.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub name: String,
    pub description: String,
    pub source: String,
}

/// Why no tool was created.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateError {
    /// The request itself is unusable (bad name, taken name, empty source…).
    Invalid(String),
    /// The compiler refused the source; the text is its errors.
    Compile(String),
    /// It built but cannot serve (wrong tool name, `describe` failed…), or
    /// the build could not run.
    Failed(String),
}

/// A tool that is now loaded.
#[derive(Debug, Clone)]
pub struct Created {
    pub name: String,
    pub sha256: String,
    pub path: PathBuf,
    pub build_time: Duration,
    pub warnings: usize,
    /// What the policy grants it, in words.
    pub grants: String,
}

pub struct ToolFactory {
    /// Where created components are placed (the host's tools directory).
    pub tools_dir: PathBuf,
    /// Where created crates are written, one directory per tool.
    pub crates_dir: PathBuf,
    pub build_timeout: Duration,
    pub max_error_chars: usize,
}

impl ToolFactory {
    pub fn new(tools_dir: &Path, data_dir: &Path) -> Self {
        Self {
            tools_dir: tools_dir.to_path_buf(),
            crates_dir: data_dir.join("created-tools"),
            build_timeout: DEFAULT_BUILD_TIMEOUT,
            max_error_chars: DEFAULT_MAX_ERROR_CHARS,
        }
    }

    /// True when this factory wrote tool `name` (so it may rebuild it).
    pub fn created(&self, name: &str) -> bool {
        self.crates_dir.join(name).join("Cargo.toml").exists()
    }

    /// Builds and loads the tool; `reserved` are names taken by built-ins.
    pub async fn create(
        &self,
        host: &ToolHost,
        request: CreateRequest,
        reserved: &[&str],
    ) -> Result<Created, CreateError> {
        let result = self.create_inner(host, &request, reserved).await;
        if let Some(audit) = host.audit() {
            let source_sha256 = hex::encode(Sha256::digest(request.source.as_bytes()));
            let mut event = json!({
                "time": crate::audit::now(),
                "event": "tool_create",
                "name": request.name,
                "description": request.description,
                "source_sha256": source_sha256,
            });
            match &result {
                Ok(created) => {
                    event["outcome"] = json!("created");
                    event["new_sha256"] = json!(created.sha256);
                    event["build_ms"] = json!(created.build_time.as_millis() as u64);
                    event["grants"] = json!(created.grants);
                }
                Err(e) => {
                    let (outcome, message) = match e {
                        CreateError::Invalid(m) => ("invalid_input", m),
                        CreateError::Compile(m) => ("compile_error", m),
                        CreateError::Failed(m) => ("failed", m),
                    };
                    event["outcome"] = json!(outcome);
                    event["error"] = json!(message.chars().take(2000).collect::<String>());
                }
            }
            audit.event(&event);
        }
        result
    }

    async fn create_inner(
        &self,
        host: &ToolHost,
        request: &CreateRequest,
        reserved: &[&str],
    ) -> Result<Created, CreateError> {
        self.check_request(host, request, reserved)?;
        let name = &request.name;
        let crate_dir = self.crates_dir.join(name);
        let lockfile = super::workspace_dir().join("tools/Cargo.lock");
        super::scaffold::write_crate(&crate_dir, name, &request.description, &request.source, Some(&lockfile))
            .map_err(|e| CreateError::Failed(format!("cannot write the crate: {e:#}")))?;

        let started = Instant::now();
        let krate = ToolCrate {
            manifest: crate_dir.join("Cargo.toml"),
            package: None,
            sources: vec![crate_dir.clone()],
        };
        // Build into a staging directory first: a component that fails the
        // checks below never reaches the tools directory.
        let staging = self.crates_dir.join(".staging").join(name);
        let timeout = self.build_timeout;
        let max_error_chars = self.max_error_chars;
        let built = tokio::task::spawn_blocking(move || {
            build::build_and_place(&krate, &staging, Some(timeout), None, &mut |_| {})
        })
        .await
        .map_err(|e| CreateError::Failed(format!("the build task failed: {e}")))?;
        let (output, placed) = built.map_err(|failure| match failure {
            BuildFailure::Compile(output) => CreateError::Compile(output.failure_text(max_error_chars)),
            other => CreateError::Failed(other.to_string()),
        })?;
        let build_time = started.elapsed();
        let staged = placed
            .into_iter()
            .find(|p| p.path.file_stem().is_some_and(|s| *s == **name))
            .ok_or_else(|| CreateError::Failed("the build produced no component".into()))?;

        let runtime = host.registry().runtime().clone();
        let component = runtime
            .load(&staged.path)
            .await
            .map_err(|e| CreateError::Failed(format!("the component built but does not load: {e}")))?;
        let names: Vec<&str> = component.specs.iter().map(|s| s.name.as_str()).collect();
        if names != [name.as_str()] {
            return Err(CreateError::Failed(format!(
                "the component exports the tools {names:?}; it must export exactly one, `{name}`: \
                 end the source with `boram_tool_sdk::export_tools!(\"{name}\" => your_function);`"
            )));
        }
        if component.specs[0].description.trim().is_empty() {
            return Err(CreateError::Failed(
                "the tool has no description: put a `///` doc comment on the input struct, e.g. the description you sent"
                    .into(),
            ));
        }

        std::fs::create_dir_all(&self.tools_dir)
            .map_err(|e| CreateError::Failed(format!("cannot create {}: {e}", self.tools_dir.display())))?;
        let path = self.tools_dir.join(format!("{name}.wasm"));
        guest_build::install_if_changed(&staged.path, &path).map_err(CreateError::Failed)?;
        if let Some(crate::registry::ReloadEvent::ToolRejected { error, .. }) =
            crate::registry::apply_tool_file(host, &path).await
        {
            return Err(CreateError::Failed(format!("the host rejected the component: {error}")));
        }
        let grants = crate::policy::summary(&host.policy().tool(name));
        Ok(Created {
            name: name.clone(),
            sha256: component.sha256.clone(),
            path,
            build_time,
            warnings: output.warnings,
            grants,
        })
    }

    fn check_request(&self, host: &ToolHost, request: &CreateRequest, reserved: &[&str]) -> Result<(), CreateError> {
        let name = &request.name;
        if !crate::policy::is_tool_name(name) {
            return Err(CreateError::Invalid(format!(
                "`{name}` is not a valid tool name: use lowercase letters, digits and `_`, starting with a letter"
            )));
        }
        if reserved.contains(&name.as_str()) {
            return Err(CreateError::Invalid(format!(
                "`{name}` is a built-in tool; pick another name"
            )));
        }
        let taken_by_other =
            host.registry().get(name).is_some() || self.tools_dir.join(format!("{name}.wasm")).exists();
        if taken_by_other && !self.created(name) {
            return Err(CreateError::Invalid(format!(
                "a tool named `{name}` already exists and was not created by create_tool; pick another name"
            )));
        }
        if request.description.trim().is_empty() || request.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(CreateError::Invalid(format!(
                "`description` must be 1 to {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        if request.source.trim().is_empty() || request.source.len() > MAX_SOURCE_BYTES {
            return Err(CreateError::Invalid(format!(
                "`source` must be the whole src/lib.rs, 1 byte to {} KiB",
                MAX_SOURCE_BYTES >> 10
            )));
        }
        Ok(())
    }
}
