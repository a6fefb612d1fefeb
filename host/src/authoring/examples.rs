//! A tool's `examples.toml`: inputs with the answers expected, run by
//! `boram tool test` against the built component in its real sandbox,
//! under the policy, through the same [`ToolHost`] the agent uses. This is
//! what a native `cargo test` cannot check: that the component behaves the
//! same under the sandbox and with only what the policy grants.

use crate::registry::ToolHost;
use crate::runtime::CallReport;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExamplesFile {
    #[serde(default, rename = "example")]
    examples: Vec<Example>,
}

/// One `[[example]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub name: String,
    /// The tool to call, when the crate exports several; default: the crate's name.
    pub tool: Option<String>,
    #[serde(default = "empty_object")]
    pub input: Value,
    /// The exact output expected (implies `outcome = "ok"`).
    pub output: Option<Value>,
    /// Text the error message must contain (implies a failed call).
    pub error: Option<String>,
    /// The outcome word expected: `ok`, `invalid_input`, `failed`, `denied`, …
    pub outcome: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Reads `path`; errors name the file, line and column.
pub fn load(path: &Path) -> Result<Vec<Example>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: ExamplesFile = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let line = text[..span.start].matches('\n').count() + 1;
                format!(":{line}")
            })
            .unwrap_or_default();
        format!("{}{at}: {}", path.display(), e.message())
    })?;
    for (i, example) in file.examples.iter().enumerate() {
        if !example.input.is_object() {
            return Err(format!(
                "{}: example {} (`{}`): `input` must be a table, e.g. input = {{ text = \"hi\" }}",
                path.display(),
                i + 1,
                example.name
            ));
        }
    }
    if file.examples.is_empty() {
        return Err(format!(
            "{} has no [[example]]; add one with `name`, `input` and `output` or `error`",
            path.display()
        ));
    }
    Ok(file.examples)
}

/// How one example went.
#[derive(Debug, Clone)]
pub struct ExampleResult {
    pub name: String,
    pub tool: String,
    pub passed: bool,
    /// What differed, when it failed.
    pub detail: Option<String>,
    pub duration: Duration,
}

/// Runs each example through `host` (tool `default_tool` unless the example
/// names another), one after another.
pub async fn run(host: &ToolHost, default_tool: &str, examples: &[Example]) -> Vec<ExampleResult> {
    let mut results = Vec::new();
    for example in examples {
        let tool = example.tool.clone().unwrap_or_else(|| default_tool.to_string());
        let (passed, detail, duration) = match host.call(&tool, &example.input.to_string(), None).await {
            Ok(report) => {
                let detail = check(example, &report);
                (detail.is_none(), detail, report.duration)
            }
            Err(e) => (false, Some(e.to_string()), Duration::ZERO),
        };
        results.push(ExampleResult {
            name: example.name.clone(),
            tool,
            passed,
            detail,
            duration,
        });
    }
    results
}

/// `None` when `report` is what `example` expects, else what differed.
fn check(example: &Example, report: &CallReport) -> Option<String> {
    let outcome = serde_json::to_value(report.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let expected_outcome = example.outcome.clone().unwrap_or_else(|| {
        if example.error.is_some() {
            "any failure".to_string()
        } else {
            "ok".to_string()
        }
    });
    let outcome_matches = match expected_outcome.as_str() {
        "any failure" => !report.outcome.is_ok(),
        expected => outcome == expected,
    };
    let got = || match (&report.output, &report.error) {
        (Some(output), _) => format!("output {output}"),
        (None, Some(error)) => format!("error: {error}"),
        (None, None) => "nothing".to_string(),
    };
    if !outcome_matches {
        return Some(format!("expected {expected_outcome}, got {outcome} ({})", got()));
    }
    if let Some(expected) = &example.output {
        let actual: Option<Value> = report.output.as_deref().and_then(|o| serde_json::from_str(o).ok());
        if actual.as_ref() != Some(expected) {
            return Some(format!("expected output {expected}, got {}", got()));
        }
    }
    if let Some(needle) = &example.error {
        let error = report.error.as_deref().unwrap_or("");
        if !error.contains(needle.as_str()) {
            return Some(format!("expected an error containing {needle:?}, got {}", got()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_names_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("examples.toml");
        std::fs::write(
            &path,
            "[[example]]\nname = \"a\"\ninput = { text = \"x\" }\nexpect = 1\n",
        )
        .expect("write");
        let error = load(&path).expect_err("unknown key");
        assert!(error.contains("examples.toml:") && error.contains("expect"), "{error}");

        std::fs::write(&path, "[[example]]\nname = \"a\"\ninput = 3\n").expect("write");
        let error = load(&path).expect_err("input not a table");
        assert!(error.contains("must be a table"), "{error}");

        std::fs::write(&path, "# nothing\n").expect("write");
        assert!(load(&path).expect_err("empty").contains("no [[example]]"));
    }
}
