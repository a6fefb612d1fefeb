//! Policy errors that point at the file, line and column, quote the line,
//! and say what to do.

use std::fmt;
use std::path::PathBuf;

/// Why a policy file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid policy.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

/// A located problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line and column of the offending text.
    pub line: usize,
    pub column: usize,
    /// What is wrong, e.g. ``unknown key `netwrk` in [tools.http_get] (did you mean `net`?)``.
    pub message: String,
    /// How to fix it, when the message alone does not say.
    pub help: Option<String>,
    /// The offending line, quoted under the message.
    pub source_line: String,
    /// Width of the underline under the offending text (at least 1).
    pub width: usize,
}

impl Diagnostic {
    /// Locates the byte range `span` of `text` and builds the diagnostic.
    pub fn at(file: &str, text: &str, span: std::ops::Range<usize>, message: String) -> Self {
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let source_line = text[line_start..line_end].trim_end_matches('\r').to_string();
        let column = text[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
        Self {
            file: file.to_string(),
            line: text[..start].matches('\n').count() + 1,
            column,
            message,
            help: None,
            source_line,
            width: text[start..end].chars().count().max(1),
        }
    }

    /// Adds a line saying how to fix the problem.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl From<Diagnostic> for PolicyError {
    fn from(d: Diagnostic) -> Self {
        Self::Invalid(Box::new(d))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gutter = " ".repeat(self.line.to_string().len());
        writeln!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)?;
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{} | {}", self.line, self.source_line)?;
        write!(
            f,
            "{gutter} | {}{}",
            " ".repeat(self.column - 1),
            "^".repeat(self.width)
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n{gutter} = help: {help}")?;
        }
        Ok(())
    }
}
