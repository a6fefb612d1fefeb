//! Policy files: what each tool may touch. Pure data and decisions; this
//! module never imports wasmtime.
//!
//! A policy is TOML (see `policies/` and the README's policy reference),
//! deny by default: a tool absent from the file gets `[defaults]` and no
//! capabilities at all. [`Policy::load`] parses and validates a file,
//! reporting the file, line and a hint for every mistake; [`Policy::tool`]
//! resolves what one tool is granted; [`explain`] says it in plain words.

mod error;
mod explain;
mod grants;
mod model;
pub mod net;
pub(crate) mod parse;
mod placement;
mod scan;
mod schema;
pub mod workspace;

pub use error::PolicyError;
pub use explain::{explain, summary};
pub use grants::{HOST_SECRET_ENV_KEYS, forbidden_dir};
pub use model::{
    Access, AgentLimits, Approval, DEFAULT_APPROVAL, DEFAULT_MAX_OUTPUT_KB, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_MS,
    EnvGrant, FsGrant, HttpLimits, Limits, NetRule, Policy, SecretRule, ToolPolicy,
};
pub use parse::is_tool_name;
pub use placement::{PlacementFinding, Severity, TrustedKind, TrustedPaths, check_placement};
pub use scan::{ScanReport, scan_grants};
