//! The sandboxed tools as an MCP server for other agents (Claude Code,
//! Cursor, Codex…), built on the official Rust SDK (`rmcp`): over stdio
//! (`boram mcp`) and over streamable HTTP at `/mcp` on `boram serve`
//! ([`http`]), both protocol generations (`initialize` up to 2025-11-25,
//! stateless 2026-07-28). `tools/list` is every loaded tool the policy does not deny,
//! with its JSON Schema; `tools/call` runs it through the same
//! [`ToolHost`] as everything else — its sandbox, its policy, the audit
//! log. A tool's failure is an MCP tool error (`isError: true`), never a
//! protocol error.
//!
//! Approval: `allow` runs, `deny` is refused (and not listed), `prompt`
//! asks the user through MCP elicitation when the client supports it
//! (a direct request on protocols up to 2025-11-25, an input-required
//! result on 2026-07-28 and later); a client without elicitation gets the
//! non-interactive rule: refused, unless the server was started with
//! `--yes`.
//!
//! Hot swap: the tools directory and the policy are watched; every reload
//! sends `notifications/tools/list_changed`. Stdout carries nothing but
//! protocol: logs go to stderr.

pub mod http;

use crate::agent::builtin::{Builtins, MEMORY_SEARCH, approval_for};
use crate::memory::Notes;
use crate::policy::{Approval, summary};
use crate::registry::ToolHost;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ElicitRequest, ElicitRequestParams,
    ElicitResult, ElicitationAction, ElicitationSchema, Implementation, InputRequest, InputRequests,
    InputRequiredResult, JsonObject, ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// Key of the approval question in an input-required result.
const APPROVAL_KEY: &str = "approval";

/// How `prompt` tools are decided when the client cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unattended {
    Refuse,
    Approve,
}

#[derive(Clone)]
pub struct McpServer {
    host: Arc<ToolHost>,
    unattended: Unattended,
    /// This session's client (captured on its first message).
    peer: Arc<Mutex<Option<Peer<RoleServer>>>>,
    /// The clients of every session of this server (one on stdio, one per
    /// MCP session over HTTP), for `list_changed`.
    clients: Arc<Mutex<Vec<Peer<RoleServer>>>>,
    /// What the operator changes to run `prompt` tools for clients that cannot ask.
    unattended_fix: &'static str,
    /// The memory built-ins (`memory_search`, `memory_save`) over the user's
    /// notes, when the policy allows them.
    builtins: Option<Arc<Builtins>>,
}

impl McpServer {
    pub fn new(host: Arc<ToolHost>, unattended: Unattended) -> Self {
        Self {
            host,
            unattended,
            peer: Arc::default(),
            clients: Arc::default(),
            unattended_fix: "start `boram mcp --yes`",
            builtins: None,
        }
    }

    /// Offers the memory built-ins over `notes` beside the sandboxed tools.
    pub fn with_memory(mut self, notes: Arc<Notes>) -> Self {
        self.builtins = Some(Arc::new(Builtins::new(Some(notes), Vec::new(), None)));
        self
    }

    fn builtin(&self, name: &str) -> Option<&Builtins> {
        self.builtins.as_deref().filter(|b| b.is_builtin(name))
    }

    /// Names the setting that approves `prompt` tools for clients without
    /// elicitation, in refusals (the service's differs from the CLI's flag).
    pub fn with_unattended_fix(mut self, fix: &'static str) -> Self {
        self.unattended_fix = fix;
        self
    }

    /// A server for one more session (MCP over HTTP: one per client):
    /// the same tools, rules and `list_changed` fan-out.
    pub fn session(&self) -> Self {
        Self {
            peer: Arc::default(),
            ..self.clone()
        }
    }

    /// Tells every connected client its tool list changed (after a hot swap).
    pub async fn tools_changed(&self) {
        let clients: Vec<Peer<RoleServer>> = {
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            clients.retain(|peer| !peer.is_transport_closed());
            clients.clone()
        };
        for peer in clients {
            if let Err(e) = peer.notify_tool_list_changed().await {
                tracing::warn!(error = %e, "cannot send tools/list_changed");
            }
        }
    }

    fn remember(&self, peer: &Peer<RoleServer>) {
        let mut slot = self.peer.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(peer.clone());
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            // Sessions that ended (and stateless requests, whose transport
            // closes with the response) are dropped as new ones arrive.
            clients.retain(|peer| !peer.is_transport_closed());
            clients.push(peer.clone());
        }
    }

    fn tools(&self) -> Vec<Tool> {
        let loaded = self.host.registry();
        let policy = self.host.policy();
        let registry = loaded
            .tools()
            .filter(|(spec, _)| policy.tool(&spec.name).approval != Approval::Deny)
            .map(|(spec, _)| {
                let schema = match &spec.input_schema {
                    Value::Object(map) => map.clone(),
                    _ => JsonObject::from_iter([("type".to_string(), json!("object"))]),
                };
                let title = title(&spec.name);
                Tool::new(spec.name.clone(), spec.description.clone(), Arc::new(schema))
                    .with_title(title.clone())
                    .annotate(annotations(&policy.tool(&spec.name), title))
            });
        // The memory built-ins the policy allows: they touch only the
        // user's notes (search reads them, save adds one), never files or
        // the network.
        let builtins = self
            .builtins
            .iter()
            .flat_map(|b| b.defs())
            .filter(|def| approval_for(&def.name, &policy.tool(&def.name)) != Approval::Deny);
        let builtins = builtins.map(|def| {
            let schema = match def.input_schema {
                Value::Object(map) => map,
                _ => JsonObject::from_iter([("type".to_string(), json!("object"))]),
            };
            let title = title(&def.name);
            let hints = ToolAnnotations::with_title(title.clone())
                .read_only(def.name == MEMORY_SEARCH)
                .destructive(false)
                .open_world(false);
            Tool::new(def.name, def.description, Arc::new(schema))
                .with_title(title)
                .annotate(hints)
        });
        registry.chain(builtins).collect()
    }

    /// `Ok(())` when the tool may run now; `Err` is the response to send
    /// instead (a refusal, or a question for the user).
    async fn approve(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
        input: &Value,
    ) -> Result<(), CallToolResponse> {
        let name = request.name.as_ref();
        let tool_policy = self.host.policy().tool(name);
        let refuse = |why: String| -> CallToolResponse { CallToolResult::error(vec![ContentBlock::text(why)]).into() };
        match approval_for(name, &tool_policy) {
            Approval::Allow => return Ok(()),
            Approval::Deny => {
                return Err(refuse(format!(
                    "refused: the policy denies `{name}` ({})",
                    tool_policy.approval_source(name)
                )));
            }
            Approval::Prompt => {}
        }
        let can_ask = context.client_capabilities().is_some_and(|c| c.elicitation.is_some());
        if !can_ask {
            return match self.unattended {
                Unattended::Approve => {
                    self.audit_decision(name, "approved_unattended");
                    Ok(())
                }
                Unattended::Refuse => {
                    self.audit_decision(name, "refused_unattended");
                    Err(refuse(format!(
                        "refused: `{name}` needs approval (approval = \"prompt\" in {}) and this client cannot ask \
                         the user (no MCP elicitation); {} or allow the tool in the policy",
                        tool_policy.approval_source(name),
                        self.unattended_fix
                    )))
                }
            };
        }
        let question = approval_question(name, input, &summary(&tool_policy));
        let modern = context
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        let answer = if modern {
            // 2026-07-28: no server-to-client requests; ask with an
            // input-required result, the answer comes with the retried call.
            match request.input_responses.as_ref().and_then(|m| m.get(APPROVAL_KEY)) {
                Some(response) => serde_json::from_value::<ElicitResult>(response.clone()).ok(),
                None => {
                    let mut asks = InputRequests::new();
                    asks.insert(
                        APPROVAL_KEY.to_string(),
                        InputRequest::Elicitation(ElicitRequest::new(question)),
                    );
                    return Err(InputRequiredResult::new(Some(asks), None).into());
                }
            }
        } else {
            context.peer.create_elicitation(question).await.ok()
        };
        let approved = answer.as_ref().is_some_and(|a| {
            matches!(a.action, ElicitationAction::Accept)
                && a.content.as_ref().and_then(|c| c["approve"].as_bool()) == Some(true)
        });
        self.audit_decision(
            name,
            if approved {
                "approved_by_user"
            } else {
                "declined_by_user"
            },
        );
        if approved {
            Ok(())
        } else {
            Err(refuse(format!("refused: the user did not approve `{name}`")))
        }
    }

    fn audit_decision(&self, tool: &str, decision: &str) {
        if let Some(audit) = self.host.audit() {
            audit.event(&json!({
                "time": crate::audit::now(),
                "event": "approval",
                "via": "mcp",
                "tool": tool,
                "decision": decision,
            }));
        }
    }
}

/// The elicitation asking the user to approve one call.
fn approval_question(name: &str, input: &Value, grants: &str) -> ElicitRequestParams {
    let mut shown = input.to_string();
    if shown.chars().count() > 500 {
        shown = shown.chars().take(500).collect::<String>() + "…";
    }
    let schema = json!({
        "type": "object",
        "properties": {"approve": {"type": "boolean", "title": "Run it", "description": "Allow this one call"}},
        "required": ["approve"]
    });
    let Value::Object(schema) = schema else {
        unreachable!("a JSON object literal")
    };
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        // Clients show this on a terminal: bidi and invisible characters in
        // the input (JSON keeps them) go through the terminal sanitizer.
        message: crate::terminal::sanitize(&format!(
            "BoramClaw: allow `{name}` to run with {shown}? It may: {grants}."
        ))
        .into_owned(),
        requested_schema: ElicitationSchema::from_json_schema(schema).expect("a valid elicitation schema"),
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("boram", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "BoramClaw tools: each runs as a sandboxed WebAssembly component that can touch only what the \
                 operator's policy grants it.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.remember(&context.peer);
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.remember(&context.peer);
        let name = request.name.to_string();
        let input = Value::Object(request.arguments.clone().unwrap_or_default());
        if let Some(builtins) = self.builtin(&name) {
            if let Err(response) = self.approve(&request, &context, &input).await {
                return Ok(response);
            }
            let events: crate::agent::events::EventSink = Arc::new(|_| {});
            let (outcome, result) = match builtins.call(&self.host, &name, &input, &events).await {
                Ok(output) => ("ok", CallToolResult::success(vec![ContentBlock::text(output)])),
                Err(e) => (
                    e.outcome(),
                    CallToolResult::error(vec![ContentBlock::text(e.message())]),
                ),
            };
            // Built-ins run in the host, not a sandbox: each call is an audit line too.
            if let Some(audit) = self.host.audit() {
                audit.event(&json!({
                    "time": crate::audit::now(),
                    "event": "builtin_call",
                    "via": "mcp",
                    "tool": name,
                    "outcome": outcome,
                }));
            }
            return Ok(result.into());
        }
        if self.host.registry().get(&name).is_none() {
            let names: Vec<String> = self.tools().iter().map(|t| t.name.to_string()).collect();
            let hint = crate::suggest::did_you_mean(&name, names.iter().map(String::as_str)).unwrap_or_default();
            // The spec: an unknown tool is a protocol error (invalid params), not a tool result.
            return Err(ErrorData::invalid_params(format!("no tool named `{name}`{hint}"), None));
        }
        if let Err(response) = self.approve(&request, &context, &input).await {
            return Ok(response);
        }
        let report = self
            .host
            .call(&name, &input.to_string(), None)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        if report.outcome.is_ok() {
            let output = report.output.unwrap_or_default();
            return Ok(CallToolResult::success(vec![ContentBlock::text(output)]).into());
        }
        let outcome = serde_json::to_value(report.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut message = format!("{outcome}: {}", report.error.unwrap_or_default());
        let denied: Vec<&str> = report
            .http
            .iter()
            .filter(|r| r.denied())
            .filter_map(|r| r.error.as_deref())
            .collect();
        if !denied.is_empty() {
            message.push_str(&format!(" (the host refused: {})", denied.join("; ")));
        }
        Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.remember(&context.peer);
    }
}

/// A tool's title for people: `read_file` → "Read file".
fn title(name: &str) -> String {
    let words = name.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The hints clients use to decide what to auto-approve, from what the
/// policy grants (so they are true of the sandbox, whatever the tool
/// claims): no `rw` directory and no network → read-only; an `rw` directory
/// → may destroy; network → talks to an open world.
fn annotations(policy: &crate::policy::ToolPolicy, title: String) -> ToolAnnotations {
    let writes = policy.fs.iter().any(|g| g.access == crate::policy::Access::ReadWrite);
    let networked = !policy.net.is_empty();
    ToolAnnotations::with_title(title)
        .read_only(!writes && !networked)
        .destructive(writes)
        .open_world(networked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_elicitation_text_shows_bidi_and_invisible_characters_as_escapes_issue_15() {
        let question = approval_question(
            "write_fi\u{200b}le",
            &json!({"path": "/w/\u{202e}txt.exe"}),
            "fs /w (rw)",
        );
        let ElicitRequestParams::FormElicitationParams { message, .. } = question else {
            panic!("a form elicitation");
        };
        assert!(
            message.contains(r"write_fi\u{200b}le") && message.contains(r"\u{202e}txt.exe"),
            "{message}"
        );
        assert!(
            !message.contains('\u{202e}') && !message.contains('\u{200b}'),
            "{message}"
        );
    }
}
