//! Says in plain words what a tool may touch under a policy, and which line
//! of the file grants it.

use super::model::{Access, Approval, Limits, Policy, ToolPolicy};
use std::fmt::Write;

/// A one-line summary of a tool's grants, for `boram tool list`, e.g.
/// `allow; fs /workspace (ro); env LANG`.
pub fn summary(tool: &ToolPolicy) -> String {
    let mut parts = vec![approval_word(tool.approval).to_string()];
    for g in &tool.fs {
        parts.push(format!("fs {} ({})", g.guest, access_word(g.access)));
    }
    if !tool.env.is_empty() {
        parts.push(format!(
            "env {}",
            tool.env.iter().map(|e| e.key.as_str()).collect::<Vec<_>>().join(",")
        ));
    }
    for r in &tool.net {
        parts.push(format!("net {r}"));
    }
    if tool.grants_nothing() {
        parts.push("no capabilities".to_string());
    }
    parts.join("; ")
}

/// A paragraph explaining what `name` may touch under `policy`, and why.
pub fn explain(policy: &Policy, name: &str) -> String {
    let tool = policy.tool(name);
    let source = policy.display_source();
    let mut out = String::new();
    match tool.line {
        Some(line) => _ = writeln!(out, "{name} under {source} ([tools.{name}] at line {line}):"),
        None => {
            _ = writeln!(
                out,
                "{name} is not listed in {source}, so it gets the [defaults] and no capabilities:"
            )
        }
    }
    let approval_why = tool.approval_source(name);
    let approval_text = match tool.approval {
        Approval::Allow => "the agent runs it without asking",
        Approval::Prompt => "the agent asks you before each run (non-interactive runs refuse it unless --yes)",
        Approval::Deny => "it never runs",
    };
    _ = writeln!(
        out,
        "  approval: {} ({approval_why}): {approval_text}.",
        approval_word(tool.approval)
    );

    if tool.fs.is_empty() {
        _ = writeln!(out, "  files: none; it sees no host directory at all.");
    }
    for g in &tool.fs {
        let verb = match g.access {
            Access::ReadOnly => "may read (not change)",
            Access::ReadWrite => "may read, create, change and delete files in",
        };
        _ = writeln!(
            out,
            "  files: {verb} {}, which it sees as {} (line {}).",
            g.host.display(),
            g.guest,
            g.line
        );
    }
    if tool.env.is_empty() {
        _ = writeln!(out, "  environment: none; it sees no environment variables.");
    }
    for e in &tool.env {
        _ = writeln!(
            out,
            "  environment: may read {} from the host's environment (line {}).",
            e.key, e.line
        );
    }
    if tool.net.is_empty() {
        _ = writeln!(
            out,
            "  network: none; every HTTP request is denied (and every wasi:sockets operation is refused)."
        );
    }
    for r in &tool.net {
        _ = writeln!(out, "  network: may send HTTP requests to {r} (line {}).", r.line);
    }
    if !tool.net.is_empty() {
        _ = writeln!(
            out,
            "  network: loopback, private, link-local and cloud-metadata addresses are refused unless a rule names the address itself."
        );
    }
    for s in &tool.secrets {
        _ = writeln!(
            out,
            "  secret: the host adds the {} header to requests for {}; the tool never sees its value (line {}).",
            s.header, s.host, s.line
        );
    }
    _ = writeln!(out, "  limits: {}.", limits_text(&tool.limits));
    if !tool.net.is_empty() {
        _ = writeln!(out, "  http limits: {}.", http_limits_text(&tool.limits.http));
    }
    _ = write!(out, "  Anything not listed here is denied.");
    out
}

fn limits_text(l: &Limits) -> String {
    format!(
        "{} ms wall clock (host calls included), {} MiB memory, {} KiB output",
        l.timeout.as_millis(),
        l.memory_bytes >> 20,
        l.max_output_bytes >> 10
    )
}

fn http_limits_text(h: &crate::policy::HttpLimits) -> String {
    format!(
        "at most {} requests per call, {} ms each, {} KiB request body, {} KiB response body, {} KiB headers",
        h.requests,
        h.timeout.as_millis(),
        h.request_body_bytes >> 10,
        h.response_body_bytes >> 10,
        h.header_bytes >> 10
    )
}

fn approval_word(a: Approval) -> &'static str {
    match a {
        Approval::Allow => "allow",
        Approval::Prompt => "prompt",
        Approval::Deny => "deny",
    }
}

fn access_word(a: Access) -> &'static str {
    match a {
        Access::ReadOnly => "ro",
        Access::ReadWrite => "rw",
    }
}
