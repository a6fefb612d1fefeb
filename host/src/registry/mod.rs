//! The loaded tools, by name, and the one place a tool call goes through.
//!
//! [`Registry`] loads every `.wasm` in the tools directory (a broken file is
//! reported and skipped, never fatal for the others); [`ToolHost`] joins it
//! with the policy and the audit log: it builds each tool's sandbox template
//! once, applies the approval rule, runs the call and records it; [`watch`]
//! swaps rebuilt tools and edited policies in while calls keep running.

pub mod background;
mod discover;
mod host;
mod input;
pub mod watch;

pub use discover::{LoadProblem, Registry, indexed_names};
pub use host::{CallError, CallObserver, HostState, ToolHost, check_grants};
pub use watch::{ReloadEvent, apply_tool_file};
