//! Logging and progress reports to the host (the `boram:tool/host` import).
//!
//! Log lines go to the host's log tagged with the tool's name; progress is
//! shown to the user. Neither reaches the model, and the host caps how much
//! one call may log.

use crate::bindings::boram::tool::host::{self, Level};

/// Logs a trace-level line.
pub fn trace(message: &str) {
    host::log(Level::Trace, message);
}

/// Logs a debug-level line.
pub fn debug(message: &str) {
    host::log(Level::Debug, message);
}

/// Logs an info-level line.
pub fn info(message: &str) {
    host::log(Level::Info, message);
}

/// Logs a warning.
pub fn warn(message: &str) {
    host::log(Level::Warn, message);
}

/// Logs an error.
pub fn error(message: &str) {
    host::log(Level::Error, message);
}

/// Reports that `done` units of `total` (if known) are finished.
pub fn progress(done: u64, total: Option<u64>, message: &str) {
    host::progress(done, total, message);
}
