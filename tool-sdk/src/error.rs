//! The error a tool function returns, and a `context` helper that turns
//! I/O errors into messages a model can act on.

use std::fmt;

/// Why a tool call produced no output. Both kinds go back to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// The input was unusable; the message says what to change.
    InvalidInput(String),
    /// The input was fine but the work failed; the message says what happened.
    Failed(String),
}

impl ToolError {
    /// An `invalid-input` error: the caller should fix the input and retry.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// A `failed` error: the work itself failed.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Self::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for ToolError {}

impl From<ToolError> for crate::bindings::ToolError {
    fn from(e: ToolError) -> Self {
        match e {
            ToolError::InvalidInput(m) => Self::InvalidInput(m),
            ToolError::Failed(m) => Self::Failed(m),
        }
    }
}

/// Adds what was being done to an error, turning it into [`ToolError::Failed`]:
/// `fs::read(&path).context(format!("reading {path}"))?` fails with
/// `reading /workspace/a.txt: No such file or directory (os error 44)`.
pub trait Context<T> {
    /// Wraps the error with `what` in front of it.
    fn context(self, what: impl fmt::Display) -> Result<T, ToolError>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T, ToolError> {
        self.map_err(|e| ToolError::Failed(format!("{what}: {e}")))
    }
}
