//! Running the tool calls of one model reply: all of them at once (each in
//! its own sandbox), results returned in the order the model asked. Each
//! call passes the repeat guard, then the approval, then runs through the
//! [`ToolHost`] (which writes the audit log). Anything that goes wrong for
//! one call — unknown tool, denial, bad input, failure, timeout — becomes an
//! `is_error` result the model can react to; nothing here ends the turn.
//! Built-in tools (memory, `list_tools`) pass the same guard and approval.
//! Failures go to the failure store, and a failure like an earlier one
//! comes back with that record and its fix.

use super::approval::{ApprovalRequest, Approvals, Decision};
use super::builtin::Builtins;
use super::events::{AgentEvent, EventSink};
use crate::llm::{Block, Message, Role};
use crate::memory::failures::FailureStore;
use crate::registry::ToolHost;
use crate::session::{Record, Session};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Counts identical calls (same tool, same input) across a session.
#[derive(Debug, Default)]
pub struct RepeatGuard {
    counts: Mutex<HashMap<String, u32>>,
}

impl RepeatGuard {
    /// Counts this call; `false` when it was already made `limit` times.
    pub(super) fn admit(&self, name: &str, input: &serde_json::Value, limit: u32) -> bool {
        // serde_json's map is ordered, so equal inputs print equal.
        let key = format!("{name}\u{0}{input}");
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key).or_insert(0);
        *count += 1;
        *count <= limit
    }
}

/// What one round of tool calls needs.
pub struct ToolRound<'a> {
    pub host: &'a ToolHost,
    pub builtins: &'a Builtins,
    pub failures: Option<&'a FailureStore>,
    pub approvals: &'a Approvals,
    pub guard: &'a RepeatGuard,
    pub same_call_limit: u32,
    pub session: &'a Session,
    pub events: &'a EventSink,
    /// The tools this agent may use (a profile's); `None`: all.
    pub allowed: Option<&'a std::collections::BTreeSet<String>>,
}

/// The result of one call, before it becomes a block.
struct Finished {
    id: String,
    content: String,
    is_error: bool,
}

impl ToolRound<'_> {
    /// Runs every tool call of `reply` concurrently; returns the user
    /// message carrying their results, in order.
    pub async fn run(&self, reply: &Message) -> Message {
        let calls: Vec<_> = reply.tool_uses().collect();
        for (id, name, input) in &calls {
            (self.events)(&AgentEvent::ToolCall {
                id: id.to_string(),
                name: name.to_string(),
                input: (*input).clone(),
            });
        }
        let finished = futures::future::join_all(calls.iter().map(|(id, name, input)| self.one(id, name, input))).await;
        Message {
            role: Role::User,
            content: finished
                .into_iter()
                .map(|f| Block::ToolResult {
                    tool_use_id: f.id,
                    content: f.content,
                    is_error: f.is_error,
                })
                .collect(),
        }
    }

    async fn one(&self, id: &str, name: &str, input: &serde_json::Value) -> Finished {
        let started = Instant::now();
        let (outcome, content, is_error) = self.execute(id, name, input).await;
        // Each call's end is journalled as it happens: a crash before the
        // round ends must not turn a finished call into an interrupted one.
        if let Err(e) = self.session.append(Record::ToolFinished {
            time: crate::audit::now(),
            id: id.to_string(),
            tool: name.to_string(),
            content: content.clone(),
            is_error,
        }) {
            tracing::error!(error = %e, "cannot write the transcript");
        }
        (self.events)(&AgentEvent::ToolResult {
            id: id.to_string(),
            name: name.to_string(),
            outcome,
            is_error,
            content: content.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
        });
        Finished {
            id: id.to_string(),
            content,
            is_error,
        }
    }

    /// `(outcome word, content for the model, is_error)`. A failure is
    /// recorded in the failure store, and earlier failures of this tool
    /// with similar input (and what fixed them) are added to its content.
    async fn execute(&self, id: &str, name: &str, input: &serde_json::Value) -> (String, String, bool) {
        let (outcome, content, is_error) = self.run_checked(id, name, input).await;
        let Some(failures) = self.failures else {
            return (outcome, content, is_error);
        };
        let input_text = input.to_string();
        let session = self.session.id();
        if !is_error {
            if let Err(e) = failures.mark_fixed(session, name, &input_text) {
                tracing::warn!(error = %e, "cannot update the failure store");
            }
            return (outcome, content, is_error);
        }
        let earlier = failures.similar(name, &input_text, 3).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the failure store");
            Vec::new()
        });
        if let Err(e) = failures.record(session, name, &input_text, &outcome, &content) {
            tracing::warn!(error = %e, "cannot write the failure store");
        }
        match crate::memory::failures::reminder(&earlier) {
            Some(reminder) => (outcome, format!("{content}\n\n{reminder}"), is_error),
            None => (outcome, content, is_error),
        }
    }

    /// Repeat guard, approval, then the built-in or the sandboxed tool.
    async fn run_checked(&self, id: &str, name: &str, input: &serde_json::Value) -> (String, String, bool) {
        if !super::delegate::permits(self.allowed, name) {
            return (
                "unknown_tool".into(),
                format!("`{name}` is not available to this agent; use one of the tools you were given"),
                true,
            );
        }
        let registry = self.host.registry();
        let (hash, source) = if self.builtins.is_builtin(name) {
            (format!("builtin:{name}"), "built in".to_string())
        } else if let Some((_, component)) = registry.get(name) {
            (component.sha256.clone(), component.path.display().to_string())
        } else {
            let builtins = self.builtins.defs();
            let names = registry.names().chain(builtins.iter().map(|d| d.name.as_str()));
            let hint = crate::suggest::did_you_mean(name, names).unwrap_or_default();
            return (
                "unknown_tool".into(),
                format!("there is no tool named `{name}`{hint}"),
                true,
            );
        };
        if !self.guard.admit(name, input, self.same_call_limit) {
            let message = format!(
                "refused: `{name}` was already called {} times with exactly this input in this session; \
                 use the results you have, or change the input",
                self.same_call_limit
            );
            return ("refused".into(), message, true);
        }
        // `list_tools` shows only names and descriptions: nothing to approve.
        let mut origins = None;
        if name != super::builtin::LIST_TOOLS {
            let (approval, request) = ApprovalRequest::for_call(self.host, name, input, hash, source);
            let verdict = self.approvals.verdict(approval, &request).await;
            self.report_decision(id, name, &verdict.decision);
            if let Decision::Deny { reason, .. } = verdict.decision {
                return ("denied".into(), reason, true);
            }
            origins = verdict.origins;
        }
        // Before it runs: a crash from here on means "it may have run".
        if let Err(e) = self.session.append(Record::ToolStarted {
            time: crate::audit::now(),
            id: id.to_string(),
            tool: name.to_string(),
        }) {
            tracing::error!(error = %e, "cannot write the transcript");
        }
        // A shared journal must hold that record before the call starts:
        // whoever resumes this run after a crash must know it may have run.
        if let Err(e) = self.session.sync().await {
            return (
                "not_run".into(),
                format!("not run: the journal could not record that this call started ({e})"),
                true,
            );
        }
        (self.events)(&AgentEvent::ToolStarted {
            id: id.to_string(),
            name: name.to_string(),
        });
        if self.builtins.is_builtin(name) {
            return match self.builtins.call(self.host, name, input, self.events).await {
                Ok(output) => ("ok".into(), output, false),
                Err(e) => (e.outcome().into(), e.message(), true),
            };
        }
        match self.host.call_within(name, &input.to_string(), None, origins).await {
            Ok(report) if report.outcome.is_ok() => ("ok".into(), report.output.unwrap_or_default(), false),
            Ok(report) => {
                let outcome = serde_json::to_value(report.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "failed".into());
                let error = report.error.clone().unwrap_or_else(|| "the tool failed".into());
                // The tool only learns "denied"; the host knows why. Tell the model.
                let why: Vec<&str> = report
                    .http
                    .iter()
                    .filter(|r| r.denied())
                    .filter_map(|r| r.error.as_deref())
                    .collect();
                let mut content = if why.is_empty() {
                    format!("{outcome}: {error}")
                } else {
                    format!("{outcome}: {error} (the host refused: {})", why.join("; "))
                };
                // WASI says "not found" for a directory that was never granted.
                let ungranted = self.host.policy().tool(name).fs.is_empty();
                if ungranted && (error.contains("os error 44") || error.contains("No such file or directory")) {
                    content.push_str(&format!(
                        " (no policy grants `{name}` a directory: pass --workspace DIR or a --policy that grants one)"
                    ));
                }
                (outcome.clone(), content, true)
            }
            Err(e) => ("unknown_tool".into(), e.to_string(), true),
        }
    }

    fn report_decision(&self, id: &str, name: &str, decision: &Decision) {
        let reason = match decision {
            Decision::Deny { reason, .. } => Some(reason.clone()),
            Decision::Allow(_) => None,
        };
        (self.events)(&AgentEvent::Approval {
            id: id.to_string(),
            name: name.to_string(),
            decision: decision.label(),
            reason: reason.clone(),
        });
        // A refusal is audited like a refused direct call, wherever it happens.
        if let (Decision::Deny { how, reason }, Some(audit)) = (decision, self.host.audit()) {
            audit.event(&serde_json::json!({
                "time": crate::audit::now(),
                "event": "tool_denied",
                "tool": name,
                "by": how,
                "reason": reason,
                "session": self.session.id(),
            }));
        }
        if decision != &Decision::Allow("policy")
            && let Err(e) = self.session.append(Record::Approval {
                time: crate::audit::now(),
                tool: name.to_string(),
                decision: decision.label(),
                reason,
            })
        {
            tracing::error!(error = %e, "cannot write the transcript");
        }
    }
}
