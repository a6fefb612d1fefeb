//! The agent loop against scripted model servers on 127.0.0.1 that speak
//! the real Anthropic and OpenAI streaming wire formats, with real
//! sandboxed tools. Helpers build an agent wired to such a server.

mod approvals;
mod boundary_cli;
mod cli;
mod delegation;
mod failures;
mod flow;
mod hostile;
mod memory;
mod selection;
mod sessions;

use super::{host_with_audit, tools_dir};
use boram_host::agent::profiles::Profiles;
use boram_host::agent::select::SelectionOptions;
use boram_host::agent::{Agent, AgentEvent, EventSink, PromptMode, TurnResult};
use boram_host::app::agents::MemoryAt;
use boram_host::app::{AgentKit, AgentPlace, Extras};
use boram_host::audit::AuditLog;
use boram_host::config::model::ModelConfig;
use boram_host::llm::{Endpoint, Gateway, GatewayOptions, PriceTable, ProviderKind};
use scripted_llm::ScriptedServer;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Text of the file every test workspace holds.
pub const NOTES: &str = "Meeting moved to Thursday.\nBring the quarterly numbers.\n";

/// A policy granting the file tools the test workspace; `extra` is appended.
pub fn policy(extra: &str) -> String {
    format!(
        r#"version = 1
[defaults]
approval = "allow"
[tools.read_file]
fs = [{{ host = "ws", guest = "/workspace", access = "ro" }}]
[tools.list_dir]
fs = [{{ host = "ws", guest = "/workspace", access = "ro" }}]
[tools.write_file]
fs = [{{ host = "ws", guest = "/workspace", access = "rw" }}]
{extra}"#
    )
}

/// Retries fast so tests of the retry logic take milliseconds.
pub fn fast_retries() -> GatewayOptions {
    GatewayOptions {
        max_retries: 6,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        breaker_threshold: 100,
        ..GatewayOptions::default()
    }
}

/// Everything a test tunes about the agent it builds.
pub struct Setup {
    pub provider: ProviderKind,
    pub policy: String,
    pub components: Vec<PathBuf>,
    pub gateway: GatewayOptions,
    pub prices: PriceTable,
    pub mode: PromptMode,
    pub model: String,
    pub context_tokens: u64,
    pub selection: Option<SelectionOptions>,
    /// Long-term memory and the failure store live here (shared between agents of one test).
    pub memory_dir: Option<PathBuf>,
    /// Offer `create_tool`, placing created tools in `<test dir>/tools`.
    pub tool_factory: bool,
    /// Offer `delegate` with these profiles.
    pub profiles: Option<Profiles>,
    /// Largest SSE line or event the provider accepts.
    pub max_event_bytes: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Anthropic,
            policy: policy(""),
            components: ["read_file", "list_dir", "write_file"]
                .iter()
                .map(|t| tools_dir().join(format!("{t}.wasm")))
                .collect(),
            gateway: fast_retries(),
            prices: PriceTable::default(),
            mode: PromptMode::Unattended { yes: false },
            model: "claude-sonnet-4-5".into(),
            context_tokens: 200_000,
            selection: None,
            memory_dir: None,
            tool_factory: false,
            profiles: None,
            max_event_bytes: boram_host::llm::DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

/// A built agent, its data directory and the events it reported.
pub struct Harness {
    pub agent: Agent,
    pub dir: tempfile::TempDir,
    pub events: Arc<Mutex<Vec<AgentEvent>>>,
    pub sink: EventSink,
}

impl Harness {
    /// An agent built by the app's [`AgentKit`], as the CLI and the service
    /// build theirs, with the gateway pointed at `server` and only the
    /// extras the setup asks for.
    pub async fn new(server: &ScriptedServer, setup: Setup) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
        std::fs::write(dir.path().join("ws/notes.txt"), NOTES).expect("notes");
        let audit = AuditLog::open(dir.path()).expect("audit log");
        let host = host_with_audit(&setup.components, dir.path(), &setup.policy, Some(audit)).await;
        let base_url = match setup.provider {
            ProviderKind::OpenAi => format!("{}/v1", server.url()),
            _ => server.url(),
        };
        let endpoint = Endpoint {
            kind: setup.provider,
            base_url,
            api_key: Some("test-key".into()),
            max_event_bytes: setup.max_event_bytes,
        };
        let provider = boram_host::llm::connect(&endpoint).expect("provider");
        let gateway = Gateway::new(provider, setup.gateway.clone(), setup.prices.clone());
        let settings = ModelConfig {
            endpoint,
            model: setup.model.clone(),
            max_tokens: 1024,
            context_tokens: setup.context_tokens,
            gateway: setup.gateway,
            prices: setup.prices,
            system_prompt: Some("You are a test agent.".into()),
            selection: setup.selection,
        };
        let extras = Extras {
            memory: setup.memory_dir.map_or(MemoryAt::Off, MemoryAt::Dir),
            tool_factory: setup.tool_factory,
            delegation: setup.profiles.is_some(),
        };
        let kit = AgentKit::with_gateway(gateway, settings, setup.profiles.unwrap_or_default()).with_extras(extras);
        let place = AgentPlace {
            host: Arc::new(host),
            data_dir: dir.path(),
            tools_dir: &dir.path().join("tools"),
            workspace: None,
            shared: None,
        };
        let agent = kit.agent(place, setup.mode, None, None, None).expect("agent");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink: EventSink = {
            let events = events.clone();
            Arc::new(move |e: &AgentEvent| events.lock().expect("events").push(e.clone()))
        };
        Harness {
            agent,
            dir,
            events,
            sink,
        }
    }

    pub async fn turn(&mut self, prompt: &str) -> TurnResult {
        self.agent.turn(prompt, &self.sink, &CancellationToken::new()).await
    }

    pub fn events(&self) -> Vec<AgentEvent> {
        self.events.lock().expect("events").clone()
    }

    /// `(name, outcome, is_error, content)` of every tool result, in order.
    pub fn tool_results(&self) -> Vec<(String, String, bool, String)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                AgentEvent::ToolResult {
                    name,
                    outcome,
                    is_error,
                    content,
                    ..
                } => Some((name, outcome, is_error, content)),
                _ => None,
            })
            .collect()
    }
}

/// Names of the tools offered in a recorded request body.
pub fn offered(body: &serde_json::Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The `tool_result` blocks of the last message of an Anthropic request body.
pub fn last_tool_results(body: &serde_json::Value) -> Vec<serde_json::Value> {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_array())
        .map(|blocks| blocks.iter().filter(|b| b["type"] == "tool_result").cloned().collect())
        .unwrap_or_default()
}

/// `reply` cut halfway, with the connection then left open: a model call
/// that never completes.
pub fn stalled(reply: scripted_llm::Reply) -> scripted_llm::Reply {
    let half = reply.body.len() / 2;
    reply.truncated_at(half).hanging()
}
