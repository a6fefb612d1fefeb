//! [`ToolHost`]: registry + policy + audit. Every tool call, from the CLI
//! and the agent loop (and later MCP and the HTTP service), goes through
//! [`ToolHost::call`].
//!
//! The registry, the policy and the sandbox templates built from them form
//! one immutable [`HostState`] held in an `ArcSwap`: a call takes the
//! current state when it starts and finishes on it, while a hot swap (a
//! rebuilt tool, an edited policy) builds a new state off the request path
//! and swaps it in atomically — calls are never blocked or failed by it.

use super::Registry;
use super::input::InputCheck;
use crate::audit::AuditLog;
use crate::policy::{Approval, Policy, Severity, ToolPolicy, TrustedPaths, check_placement, scan_grants};
use crate::runtime::{CallReport, HttpRecordSink, LoadedComponent, ProgressSink, SandboxTemplate};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// A call that names no loaded tool.
#[derive(Debug, thiserror::Error)]
#[error("no tool named `{name}`{hint}")]
pub struct CallError {
    pub name: String,
    hint: String,
}

/// What calls run against: tools, policy, and each tool's sandbox template.
pub struct HostState {
    pub registry: Registry,
    pub policy: Policy,
    templates: HashMap<String, (ToolPolicy, SandboxTemplate, InputCheck)>,
    /// Bumped by every swap, so holders of derived data (the agent's tool
    /// list) know to rebuild it.
    pub generation: u64,
}

impl HostState {
    fn new(registry: Registry, policy: Policy, audit: &Option<Arc<AuditLog>>, generation: u64) -> Self {
        let templates = registry
            .tools()
            .map(|(spec, _)| {
                let name = spec.name.as_str();
                let tool_policy = policy.tool(name);
                let sink = audit
                    .clone()
                    .map(|log| -> HttpRecordSink { Arc::new(move |r| log.http_request(r)) });
                let template = SandboxTemplate::for_tool(name, &tool_policy, sink);
                let input = InputCheck::new(name, &spec.input_schema);
                (name.to_string(), (tool_policy, template, input))
            })
            .collect();
        Self {
            registry,
            policy,
            templates,
            generation,
        }
    }
}

/// Hears about every finished call (metrics).
pub type CallObserver = Arc<dyn Fn(&CallReport) + Send + Sync>;

pub struct ToolHost {
    state: ArcSwap<HostState>,
    audit: Option<Arc<AuditLog>>,
    observer: Option<CallObserver>,
    /// The host's own files; no policy may put them in a `rw` preopen.
    trusted: TrustedPaths,
}

/// The registry of the state current when it was taken.
pub struct RegistryRef(Arc<HostState>);

impl Deref for RegistryRef {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.0.registry
    }
}

/// The policy of the state current when it was taken.
pub struct PolicyRef(Arc<HostState>);

impl Deref for PolicyRef {
    type Target = Policy;
    fn deref(&self) -> &Policy {
        &self.0.policy
    }
}

impl ToolHost {
    /// Prepares each loaded tool's sandbox template from `policy`.
    pub fn new(registry: Registry, policy: Policy, audit: Option<AuditLog>) -> Self {
        let audit = audit.map(Arc::new);
        Self {
            state: ArcSwap::from_pointee(HostState::new(registry, policy, &audit, 0)),
            audit,
            observer: None,
            trusted: TrustedPaths::new(),
        }
    }

    /// Checks every policy swapped in later against `trusted` (the start-up
    /// policy is checked by whoever builds the host, with [`check_grants`]).
    pub fn with_trusted(mut self, trusted: TrustedPaths) -> Self {
        self.trusted = trusted;
        self
    }

    pub fn trusted(&self) -> &TrustedPaths {
        &self.trusted
    }

    /// Reports every finished call to `observer` too.
    pub fn with_observer(mut self, observer: CallObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The current state (tools, policy); it stays valid while held.
    pub fn current(&self) -> Arc<HostState> {
        self.state.load_full()
    }

    pub fn registry(&self) -> RegistryRef {
        RegistryRef(self.current())
    }

    pub fn policy(&self) -> PolicyRef {
        PolicyRef(self.current())
    }

    pub fn generation(&self) -> u64 {
        self.state.load().generation
    }

    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_deref()
    }

    /// Swaps in a new state built from the current one.
    fn swap(&self, change: impl Fn(&HostState) -> (Registry, Policy)) {
        self.state.rcu(|current| {
            let (registry, policy) = change(current);
            HostState::new(registry, policy, &self.audit, current.generation + 1)
        });
    }

    /// Serves `component` from now on in place of what its file provided
    /// before; refused (nothing changes) when it claims another file's tool.
    pub fn swap_component(&self, component: Arc<LoadedComponent>) -> Result<(), String> {
        let mut refused = None;
        self.state
            .rcu(|current| match current.registry.with_component(component.clone()) {
                Ok(registry) => {
                    refused = None;
                    Arc::new(HostState::new(
                        registry,
                        current.policy.clone(),
                        &self.audit,
                        current.generation + 1,
                    ))
                }
                Err(e) => {
                    refused = Some(e);
                    Arc::clone(current)
                }
            });
        refused.map_or(Ok(()), Err)
    }

    /// Unloads the tools that came from `path`.
    pub fn remove_file(&self, path: &Path) {
        self.swap(|s| (s.registry.without_file(path), s.policy.clone()));
    }

    /// Applies `policy` to every call from now on, unless one of its
    /// preopens reaches the host's own files; then the current policy stays
    /// and the refusal says why. Returns the warnings otherwise.
    pub fn set_policy(&self, policy: Policy) -> Result<Vec<String>, String> {
        let warnings = check_grants(&policy, &self.trusted)?;
        self.set_checked_policy(policy);
        Ok(warnings)
    }

    /// Applies `policy`, which the caller has already passed through
    /// [`check_grants`] with this host's [`Self::trusted`] paths (the
    /// service checks every user's policy before applying any).
    pub fn set_checked_policy(&self, policy: Policy) {
        self.swap(|s| (s.registry.clone(), policy.clone()));
    }

    /// Waits until the audit lines of the calls made so far are in the
    /// file (for a reader in this process: a test, a command that reads
    /// the log next).
    pub async fn flush_audit(&self) {
        if let Some(audit) = &self.audit
            && let Err(e) = audit.flush().await
        {
            tracing::debug!(error = %e, "audit lines were lost");
        }
    }

    /// Runs tool `name` on `input` under the policy and records it in the
    /// audit log. A tool whose approval is `deny` is refused without running.
    pub async fn call(&self, name: &str, input: &str, progress: Option<ProgressSink>) -> Result<CallReport, CallError> {
        self.call_within(name, input, progress, None).await
    }

    /// [`Self::call`], its HTTP requests limited to `origins` when given
    /// (the hosts the user approved this call for).
    pub async fn call_within(
        &self,
        name: &str,
        input: &str,
        progress: Option<ProgressSink>,
        origins: Option<Arc<[String]>>,
    ) -> Result<CallReport, CallError> {
        let state = self.current();
        let Some((_, component)) = state.registry.get(name) else {
            return Err(CallError {
                name: name.to_string(),
                hint: did_you_mean(&state.registry, name),
            });
        };
        let (tool_policy, template, input_check) = &state.templates[name];
        let refused = if tool_policy.approval == Approval::Deny {
            let reason = format!(
                "the policy {} denies `{name}` (approval = \"deny\" in {})",
                state.policy.display_source(),
                tool_policy.approval_source(name)
            );
            Some(CallReport::denied(name, &component.sha256, reason))
        } else {
            (input_check.check(input).err()).map(|problem| CallReport::invalid_input(name, &component.sha256, problem))
        };
        let report = match refused {
            Some(report) => report,
            None => {
                // The intent line is written before the call runs.
                let started = match &self.audit {
                    Some(audit) => audit.call_started(name, &component.sha256, input).await,
                    None => Ok(()),
                };
                match started {
                    Err(reason) => CallReport::denied(name, &component.sha256, reason),
                    Ok(()) => {
                        state
                            .registry
                            .runtime()
                            .call_within(component, name, input, template, progress, origins)
                            .await
                    }
                }
            }
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
        if let Some(observer) = &self.observer {
            observer(&report);
        }
        Ok(report)
    }
}

/// Everything checked about `policy` when it is applied (at start and on
/// every reload): trust placement against `trusted`, and a scan of the
/// granted trees for special files and hard links. `Err` with every
/// refusal, one per line; `Ok` with the warnings.
pub fn check_grants(policy: &Policy, trusted: &TrustedPaths) -> Result<Vec<String>, String> {
    let findings = check_placement(policy, trusted);
    let (errors, warnings): (Vec<_>, Vec<_>) = findings.iter().partition(|f| f.severity == Severity::Error);
    let scan = scan_grants(policy);
    let mut errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    errors.extend(scan.errors);
    let mut warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    warnings.extend(scan.warnings);
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(errors.join("\n"))
    }
}

fn did_you_mean(registry: &Registry, name: &str) -> String {
    match crate::suggest::did_you_mean(name, registry.names()) {
        Some(hint) => hint,
        None => format!("; loaded tools: {}", registry.names().collect::<Vec<_>>().join(", ")),
    }
}
