//! `delegate`: the agent hands a sub-task to a profile. The sub-agent runs
//! its own loop in its own session (transcript kept, linked from the
//! parent's), with the profile's prompt, model and limits, and a tool set
//! that is the profile's narrowed to the parent's — never more than the
//! parent may use, under the same policy and approvals. Its final answer is
//! the tool result; its cost is added to the parent's spend. Depth is
//! limited: at the limit the sub-agent is not offered `delegate`.

use super::events::{AgentEvent, EventSink};
use super::profiles::Profiles;
use super::{Agent, AgentOptions, Approvals};
use crate::llm::Gateway;
use crate::registry::ToolHost;
use crate::session::Session;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

pub const DELEGATE: &str = "delegate";
/// Most levels of delegation below the user's agent.
pub const MAX_DEPTH: u32 = 2;

/// What a sub-agent produced.
#[derive(Debug, Clone)]
pub struct Delegated {
    pub profile: String,
    pub session: String,
    pub stop: String,
    pub answer: String,
    pub cost_usd: f64,
    pub usage: crate::llm::Usage,
    pub rounds: u32,
}

/// Everything needed to start sub-agents like the agent that holds it.
pub struct Delegator {
    pub gateway: Arc<Gateway>,
    pub host: Arc<ToolHost>,
    pub approvals: Arc<Approvals>,
    /// The parent's options: model, prompt, limits, allowed tools.
    pub parent: AgentOptions,
    pub profiles: Profiles,
    pub sessions_dir: PathBuf,
    /// Depth of the agent holding this delegator (the user's agent is 0).
    pub depth: u32,
    /// Sub-agents finished since the parent last looked (it adds their
    /// cost to its spend and links their sessions in its transcript).
    finished: Mutex<Vec<Delegated>>,
    /// The session of the agent holding this delegator: its sub-agents'
    /// sessions name it as their parent.
    parent_session: Mutex<Option<String>>,
}

impl Delegator {
    pub fn new(
        gateway: Arc<Gateway>,
        host: Arc<ToolHost>,
        approvals: Arc<Approvals>,
        parent: AgentOptions,
        profiles: Profiles,
        sessions_dir: PathBuf,
        depth: u32,
    ) -> Self {
        Self {
            gateway,
            host,
            approvals,
            parent,
            profiles,
            sessions_dir,
            depth,
            finished: Mutex::default(),
            parent_session: Mutex::default(),
        }
    }

    /// The holding agent's session (set when the agent takes this delegator).
    pub fn set_parent_session(&self, id: &str) {
        *self.parent_session.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.to_string());
    }

    /// Sub-agents finished since the last call.
    pub fn take_finished(&self) -> Vec<Delegated> {
        std::mem::take(&mut *self.finished.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The tool description, listing the profiles.
    pub fn description(&self) -> String {
        let profiles: Vec<String> = self
            .profiles
            .all()
            .map(|p| format!("`{}`: {}", p.name, p.description))
            .collect();
        format!(
            "Hand a self-contained sub-task to a specialised agent and get its final answer. It starts with no \
             memory of this conversation: put everything it needs in `task`. Profiles: {}.",
            profiles.join("; ")
        )
    }

    /// Runs `task` on a sub-agent of `profile`; `events` hears its events
    /// (as `delegated` wrappers).
    pub async fn run(&self, profile: &str, task: &str, events: &EventSink) -> Result<Delegated, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!(
                "delegation is limited to {MAX_DEPTH} levels; do this task yourself"
            ));
        }
        let profile = self.profiles.require(profile)?.clone();
        let options = AgentOptions {
            system_prompt: profile
                .system_prompt
                .clone()
                .unwrap_or_else(|| self.parent.system_prompt.clone()),
            model: profile.model.clone().unwrap_or_else(|| self.parent.model.clone()),
            max_tokens: self.parent.max_tokens,
            context_tokens: self.parent.context_tokens,
            limits: profile.limits(self.parent.limits),
            selection: self.parent.selection.clone(),
            tools: profile.narrow(self.parent.tools.as_ref()),
        };
        let session = Session::create_with_parent(
            &self.sessions_dir,
            &self.gateway.provider_kind().to_string(),
            &options.model,
            self.parent_session
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .as_deref(),
        )
        .map_err(|e| format!("cannot create the sub-agent's session: {e}"))?;
        let session_id = session.id().to_string();
        let child = Delegator::new(
            self.gateway.clone(),
            self.host.clone(),
            self.approvals.clone(),
            options.clone(),
            self.profiles.clone(),
            self.sessions_dir.clone(),
            self.depth + 1,
        );
        let mut agent = Agent::new(
            self.gateway.clone(),
            self.host.clone(),
            self.approvals.clone(),
            options,
            session,
        );
        if child.depth < MAX_DEPTH {
            agent = agent.with_delegator(Arc::new(child));
        }
        let parent_events = events.clone();
        let name = profile.name.clone();
        let sink: EventSink = Arc::new(move |event: &AgentEvent| {
            parent_events(&AgentEvent::Delegated {
                profile: name.clone(),
                event: Box::new(event.clone()),
            });
        });
        // Boxed: the sub-agent's turn may itself delegate (bounded by MAX_DEPTH).
        let turn = Box::pin(agent.turn(task, &sink, &CancellationToken::new())).await;
        let delegated = Delegated {
            profile: profile.name,
            session: session_id,
            stop: turn.stop.as_str().to_string(),
            answer: turn.text,
            cost_usd: agent.spent_usd(),
            usage: agent.usage(),
            rounds: turn.rounds,
        };
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(delegated.clone());
        Ok(delegated)
    }
}

/// `allowed` lets `name` (a sandboxed tool or a built-in) be offered and run.
pub fn permits(allowed: Option<&BTreeSet<String>>, name: &str) -> bool {
    name == DELEGATE || allowed.is_none_or(|set| set.contains(name))
}
