//! `boram tool call NAME INPUT`.

use crate::cli::UsageError;
use crate::cli::context::GlobalArgs;
use crate::runtime::{CallReport, Progress, ProgressSink};
use crate::terminal::sanitize;
use anyhow::Context as _;
use clap::Args;
use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct CallCommand {
    /// Tool name, as shown by `boram tool list`.
    name: String,
    /// Input as a JSON object, e.g. '{"path":"/workspace/notes.txt"}';
    /// `-` reads it from stdin, `@FILE` from a file. Default: `{}`.
    input: Option<String>,
    /// Print the whole result as JSON: outcome, output, error, duration,
    /// memory peak, captured stdout/stderr and logs.
    #[arg(long)]
    json: bool,
}

impl CallCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let input = read_input(self.input.as_deref())?;
        let host = global.app(None).tool_host().await?;
        let progress: Option<ProgressSink> = (!self.json).then(|| Arc::new(print_progress) as ProgressSink);
        let report = host.call(&self.name, &input, progress).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_human(&report);
        }
        Ok(if report.outcome.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(super::super::EXIT_FAILURE)
        })
    }
}

fn read_input(arg: Option<&str>) -> anyhow::Result<String> {
    let text = match arg {
        None => "{}".to_string(),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the input from stdin")?;
            s
        }
        Some(a) if a.starts_with('@') => {
            std::fs::read_to_string(&a[1..]).with_context(|| format!("cannot read the input file {}", &a[1..]))?
        }
        Some(a) => a.to_string(),
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
        return Err(UsageError(format!(
            "the input is not JSON ({e}); pass an object such as '{{\"path\":\"/workspace/notes.txt\"}}'"
        ))
        .into());
    }
    Ok(text)
}

fn print_progress(p: &Progress) {
    match p.total {
        Some(total) => eprintln!("[{}] {}/{} {}", p.tool, p.done, total, sanitize(&p.message)),
        None => eprintln!("[{}] {} {}", p.tool, p.done, sanitize(&p.message)),
    }
}

/// The output on stdout; everything else (errors, what the tool printed,
/// the summary line) on stderr. What the tool wrote goes through the
/// terminal sanitizer on stderr, and on stdout when that is a terminal (a
/// pipe gets the output byte for byte).
fn print_human(report: &CallReport) {
    if let Some(output) = &report.output {
        let text = match serde_json::from_str::<serde_json::Value>(output) {
            Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_else(|_| output.clone()),
            Err(_) => output.clone(),
        };
        if std::io::stdout().is_terminal() {
            println!("{}", sanitize(&text));
        } else {
            println!("{text}");
        }
    }
    for (label, captured) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
        if !captured.text.is_empty() {
            eprintln!("--- tool {label} ---\n{}", sanitize(captured.text.trim_end()));
            if captured.dropped_bytes > 0 {
                eprintln!("({} more bytes dropped)", captured.dropped_bytes);
            }
        }
    }
    for line in &report.logs {
        eprintln!("[{} {}] {}", report.tool, line.level, sanitize(&line.message));
    }
    for r in &report.http {
        let status = r.status.map_or_else(|| "-".to_string(), |s| s.to_string());
        let detail = r
            .error
            .as_deref()
            .map(|e| format!(": {}", sanitize(e)))
            .unwrap_or_default();
        eprintln!(
            "[http] {} {} {}://{}:{} {status} ({} B in, {} ms){detail}",
            r.decision, r.method, r.scheme, r.host, r.port, r.bytes_in, r.duration_ms
        );
    }
    if let Some(error) = &report.error {
        eprintln!("error ({:?}): {}", report.outcome, sanitize(error));
    }
    eprintln!(
        "{}: {} in {:.2} ms, memory peak {:.1} MiB",
        report.tool,
        serde_json::to_value(report.outcome)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        report.duration.as_secs_f64() * 1e3,
        report.memory_peak_bytes as f64 / (1 << 20) as f64
    );
}
