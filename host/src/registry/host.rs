//! [`ToolHost`]: registry + policy + audit. Every tool call, from the CLI
//! today and from the agent loop, MCP and HTTP service later, goes through
//! [`ToolHost::call`].

use super::Registry;
use crate::audit::AuditLog;
use crate::policy::{Approval, Policy, ToolPolicy};
use crate::runtime::{CallReport, HttpRecordSink, ProgressSink, SandboxTemplate};
use std::collections::HashMap;
use std::sync::Arc;

/// A call that names no loaded tool.
#[derive(Debug, thiserror::Error)]
#[error("no tool named `{name}`{hint}")]
pub struct CallError {
    pub name: String,
    hint: String,
}

pub struct ToolHost {
    registry: Registry,
    policy: Policy,
    templates: HashMap<String, (ToolPolicy, SandboxTemplate)>,
    audit: Option<Arc<AuditLog>>,
}

impl ToolHost {
    /// Prepares each loaded tool's sandbox template from `policy`.
    pub fn new(registry: Registry, policy: Policy, audit: Option<AuditLog>) -> Self {
        let audit = audit.map(Arc::new);
        let templates = registry
            .names()
            .map(|name| {
                let tool_policy = policy.tool(name);
                let sink = audit
                    .clone()
                    .map(|log| -> HttpRecordSink { Arc::new(move |r| log.http_request(r)) });
                let template = SandboxTemplate::for_tool(name, &tool_policy, sink);
                (name.to_string(), (tool_policy, template))
            })
            .collect();
        Self {
            registry,
            policy,
            templates,
            audit,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs tool `name` on `input` under the policy and records it in the
    /// audit log. A tool whose approval is `deny` is refused without running.
    pub async fn call(&self, name: &str, input: &str, progress: Option<ProgressSink>) -> Result<CallReport, CallError> {
        let Some((_, component)) = self.registry.get(name) else {
            return Err(CallError {
                name: name.to_string(),
                hint: self.did_you_mean(name),
            });
        };
        let (tool_policy, template) = &self.templates[name];
        let report = if tool_policy.approval == Approval::Deny {
            let reason = format!(
                "the policy {} denies `{name}` (approval = \"deny\" in {})",
                self.policy.display_source(),
                tool_policy.approval_source(name)
            );
            CallReport::denied(name, &component.sha256, reason)
        } else {
            self.registry
                .runtime()
                .call(component, name, input, template, progress)
                .await
        };
        tracing::info!(
            tool = name,
            outcome = ?report.outcome,
            duration_us = report.duration.as_micros() as u64,
            memory_peak = report.memory_peak_bytes,
            "tool call"
        );
        if let Some(audit) = &self.audit {
            audit.tool_call(&report, input);
        }
        Ok(report)
    }

    fn did_you_mean(&self, name: &str) -> String {
        match crate::suggest::did_you_mean(name, self.registry.names()) {
            Some(hint) => hint,
            None => format!(
                "; loaded tools: {}",
                self.registry.names().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}
