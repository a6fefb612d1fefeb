//! The agent loop (ReAct): send the conversation and the tools to the
//! model, run the tools it calls, give it the results, repeat until it
//! answers — within the policy's `[agent]` limits (rounds, identical-call
//! guard, spend cap, wall clock). Every message is appended to the session
//! transcript as it happens; every step is reported as an [`AgentEvent`].
//!
//! Errors the model should see (denials, bad input, tool failures) go back
//! to it as `is_error` tool results; a model call that fails for good ends
//! the turn with [`Stop::Error`] and the message.

pub mod approval;
pub mod builtin;
mod compact;
pub mod conversation;
pub mod delegate;
pub mod events;
mod offer;
pub mod profiles;
pub mod select;
mod tools;

pub use approval::{Approvals, PromptMode};
pub use events::{AgentEvent, EventSink, Stop};
pub use offer::{tool_def, tool_defs};

use crate::authoring::factory::ToolFactory;
use crate::llm::{ChatRequest, Delta, Gateway, Message, ToolChoice, ToolDef, Usage};
use crate::memory::Notes;
use crate::memory::failures::FailureStore;
use crate::policy::AgentLimits;
use crate::registry::ToolHost;
use crate::session::{Record, Session};
use builtin::Builtins;
use conversation::{Conversation, interrupted_results};
use select::{SelectionOptions, Selector};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tools::{RepeatGuard, ToolRound};

/// The system prompt unless the config replaces it.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are BoramClaw, an agent that solves tasks with tools. \
Each tool runs in a sandbox and can touch only what its policy grants (for example, files under /workspace). \
When a tool call is denied or fails, read the error and adapt instead of repeating the same call. \
Call several tools at once when they do not depend on each other. When you are done, answer the user directly and concisely.";

/// What the loop needs besides the conversation.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub system_prompt: String,
    pub model: String,
    pub max_tokens: u32,
    /// The model's context window, in tokens.
    pub context_tokens: u64,
    pub limits: AgentLimits,
    /// Offer only relevant tools (`None`: every tool on every request).
    pub selection: Option<SelectionOptions>,
    /// The only tools (and built-ins) this agent may use, e.g. a profile's;
    /// `None`: every tool the policy allows.
    pub tools: Option<BTreeSet<String>>,
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnResult {
    pub stop: Stop,
    pub rounds: u32,
    /// The final answer, when the model gave one.
    pub text: String,
    pub error: Option<String>,
}

pub struct Agent {
    gateway: Arc<Gateway>,
    host: Arc<ToolHost>,
    approvals: Arc<Approvals>,
    options: AgentOptions,
    session: Session,
    conversation: Conversation,
    guard: RepeatGuard,
    spent_usd: f64,
    usage: Usage,
    /// Context size of the last model call, for compaction.
    last_context_tokens: u64,
    builtins: Arc<Builtins>,
    selector: Option<Arc<Selector>>,
    failures: Option<Arc<FailureStore>>,
    /// Tools called in this session: always offered again.
    used: BTreeSet<String>,
    /// The tool host's generation the selector and built-ins were built for.
    generation: u64,
    delegator: Option<Arc<delegate::Delegator>>,
}

impl Agent {
    pub fn new(
        gateway: Arc<Gateway>,
        host: Arc<ToolHost>,
        approvals: Arc<Approvals>,
        options: AgentOptions,
        session: Session,
    ) -> Self {
        let catalogue = offer::allowed_defs(&host, options.tools.as_ref());
        let selector = offer::selector_for(options.selection.as_ref(), &catalogue);
        Self {
            delegator: None,
            builtins: Arc::new(Builtins::new(None, catalogue, selector.clone())),
            selector,
            failures: None,
            used: BTreeSet::new(),
            generation: host.generation(),
            gateway,
            host,
            approvals,
            options,
            session,
            conversation: Conversation::default(),
            guard: RepeatGuard::default(),
            spent_usd: 0.0,
            usage: Usage::default(),
            last_context_tokens: 0,
        }
    }

    /// Gives the agent long-term memory (the `memory_save` and
    /// `memory_search` tools, and a chance to save notes before compaction)
    /// and the failure store.
    pub fn with_memory(mut self, memory: Arc<Notes>, failures: Arc<FailureStore>) -> Self {
        self.builtins = Arc::new(
            Builtins::new(Some(memory), self.catalogue(), self.selector.clone())
                .with_factory(self.builtins.factory())
                .with_delegator(self.delegator.clone()),
        );
        self.failures = Some(failures);
        self
    }

    /// Lets the model write tools (`create_tool`), built by `factory`.
    pub fn with_tool_factory(mut self, factory: Arc<ToolFactory>) -> Self {
        let builtins = Builtins::new(self.builtins.memory(), self.catalogue(), self.selector.clone());
        self.builtins = Arc::new(
            builtins
                .with_factory(Some(factory))
                .with_delegator(self.delegator.clone()),
        );
        self
    }

    /// Lets the model hand sub-tasks to profiles (`delegate`).
    pub fn with_delegator(mut self, delegator: Arc<delegate::Delegator>) -> Self {
        delegator.set_parent_session(self.session.id());
        self.delegator = Some(delegator.clone());
        let builtins = Builtins::new(self.builtins.memory(), self.catalogue(), self.selector.clone());
        self.builtins = Arc::new(
            builtins
                .with_factory(self.builtins.factory())
                .with_delegator(Some(delegator)),
        );
        self
    }

    /// Runs `task` on a sub-agent of `profile` now (`/delegate` in chat);
    /// its cost is added to this session and its transcript linked.
    pub async fn delegate(
        &mut self,
        profile: &str,
        task: &str,
        events: &EventSink,
    ) -> Result<delegate::Delegated, String> {
        let delegator = self
            .delegator
            .clone()
            .ok_or_else(|| "delegation is not available in this session".to_string())?;
        let done = delegator.run(profile, task, events).await;
        self.account_delegations();
        done
    }

    /// The sandboxed tools this agent may use, as the model sees them.
    fn catalogue(&self) -> Vec<ToolDef> {
        offer::allowed_defs(&self.host, self.options.tools.as_ref())
    }

    /// Continues a session from its transcript: the working conversation,
    /// spend and identical-call counts are rebuilt; tool calls that never
    /// got results (the process died in between) are closed from the
    /// journal: a finished call gets its recorded result (it is not run
    /// again), one that started is "interrupted, may have run" (the request
    /// may have reached its server, the file may have been written), and
    /// one that never started is "not run".
    pub fn resume(mut self, records: &[Record]) -> Self {
        self.conversation = Conversation::from_records(records);
        for record in records {
            match record {
                Record::Usage { usage, cost_usd, .. } => {
                    self.spent_usd += cost_usd.unwrap_or(0.0);
                    self.usage.add(usage);
                }
                Record::Delegation { cost_usd, usage, .. } => {
                    self.spent_usd += cost_usd;
                    self.usage.add(usage);
                }
                Record::Message { message, .. } => {
                    for (_, name, input) in message.tool_uses() {
                        self.guard.admit(name, input, u32::MAX);
                        self.used.insert(name.to_string());
                    }
                }
                _ => {}
            }
        }
        let results = conversation::closing_results(records, &self.conversation.dangling_tool_uses());
        if !results.is_empty() {
            self.add_message(Message {
                role: crate::llm::Role::User,
                content: results,
            });
        }
        self
    }

    /// The same model, tools and approvals, continuing another transcript
    /// (follow with [`Agent::resume`] to load its conversation).
    pub fn with_session(mut self, session: Session) -> Self {
        if let Some(delegator) = &self.delegator {
            delegator.set_parent_session(session.id());
        }
        self.session = session;
        self.conversation = Conversation::default();
        self.guard = RepeatGuard::default();
        self.used.clear();
        self.spent_usd = 0.0;
        self.usage = Usage::default();
        self.last_context_tokens = 0;
        self
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn spent_usd(&self) -> f64 {
        self.spent_usd
    }

    /// Tokens used by this session so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    pub fn messages(&self) -> &[Message] {
        &self.conversation.messages
    }

    pub fn tool_host(&self) -> &ToolHost {
        &self.host
    }

    /// The tool host, shared (e.g. with the hot-swap watcher).
    pub fn shared_tool_host(&self) -> Arc<ToolHost> {
        self.host.clone()
    }

    /// Every tool the model may call: the sandboxed ones and the built-ins.
    pub fn tool_defs(&self) -> Vec<ToolDef> {
        let mut defs = self.catalogue();
        defs.extend(self.builtins_offered());
        defs
    }

    /// The built-ins this agent may use.
    fn builtins_offered(&self) -> Vec<ToolDef> {
        self.builtins
            .defs()
            .into_iter()
            .filter(|d| delegate::permits(self.options.tools.as_ref(), &d.name))
            .collect()
    }

    /// Runs one user prompt to its end. Never panics on model or tool
    /// trouble: the reason is in the result.
    pub async fn turn(&mut self, prompt: &str, events: &EventSink, cancel: &CancellationToken) -> TurnResult {
        self.add_message(Message::user_text(prompt));
        self.run_turn(prompt, events, cancel).await
    }

    /// Goes on with the turn of a resumed session (after
    /// [`Agent::resume`]) from where its journal ends, without adding a
    /// prompt: a model reply already recorded is not asked for again, and a
    /// turn that had already answered just reports that answer. `prompt`
    /// is the turn's task, for the failure store.
    pub async fn continue_turn(&mut self, prompt: &str, events: &EventSink, cancel: &CancellationToken) -> TurnResult {
        if let Some(last) = self.conversation.messages.last()
            && last.role == crate::llm::Role::Assistant
            && last.tool_uses().next().is_none()
        {
            let text = last.text();
            events(&AgentEvent::Done {
                stop: Stop::Answered,
                rounds: 0,
                text: text.clone(),
                error: None,
            });
            return TurnResult {
                stop: Stop::Answered,
                rounds: 0,
                text,
                error: None,
            };
        }
        self.run_turn(prompt, events, cancel).await
    }

    async fn run_turn(&mut self, prompt: &str, events: &EventSink, cancel: &CancellationToken) -> TurnResult {
        let deadline = Instant::now() + self.options.limits.time_limit;
        let mut rounds = 0;
        let mut text = String::new();
        let mut error = None;
        let stop = loop {
            if let Some(stop) = self.limit_reached(rounds, deadline) {
                break stop;
            }
            if compact::needed(self.last_context_tokens, self.options.context_tokens)
                && let Err(e) = self.compact(events).await
            {
                tracing::warn!(error = %e, "compaction failed; continuing with the full conversation");
            }
            rounds += 1;
            self.refresh_tools();
            events(&AgentEvent::TurnStarted {
                session: self.session.id().to_string(),
                round: rounds,
            });
            // What the next request builds on (the last results) must be
            // in a shared journal first, or a crash would ask again.
            if let Err(e) = self.session.sync().await {
                error = Some(format!("the session's journal cannot be written: {e}"));
                break Stop::Error;
            }
            let request = self.request();
            let shown = std::sync::Mutex::new(crate::scrub::StreamScrubber::default());
            let sink = |delta: Delta| forward_delta(events, &shown, delta);
            let result = tokio::select! {
                result = self.gateway.send(&request, &sink, self.session.id()) => result,
                _ = cancel.cancelled() => break Stop::Cancelled,
                _ = tokio::time::sleep_until(deadline) => break Stop::TimeLimit,
            };
            let rest = shown.lock().unwrap_or_else(|e| e.into_inner()).finish();
            if !rest.is_empty() {
                events(&AgentEvent::TextDelta { text: rest });
            }
            let completion = match result {
                Ok(completion) => completion,
                Err(e) => {
                    error = Some(crate::scrub::scrub(&e.to_string()).into_owned());
                    break Stop::Error;
                }
            };
            self.account(&completion.response.usage, completion.cost_usd, events);
            let reply = self.unique_tool_ids(scrub_message(completion.response.message));
            self.used.extend(reply.tool_uses().map(|(_, name, _)| name.to_string()));
            self.add_message(reply.clone());
            if reply.tool_uses().next().is_none() {
                text = reply.text();
                break Stop::Answered;
            }
            let round = self.tool_round(events);
            let ids: Vec<String> = reply.tool_uses().map(|(id, _, _)| id.to_string()).collect();
            let (results, stopped) = tokio::select! {
                results = round.run(&reply) => (results, None),
                _ = cancel.cancelled() => (interrupted_results(&ids, "cancelled before it finished (by the user, or by the service shutting down); it may have run, and its side effects are unknown"), Some(Stop::Cancelled)),
                _ = tokio::time::sleep_until(deadline) => (interrupted_results(&ids, "stopped: the turn's time limit passed before it finished; it may have run, and its side effects are unknown"), Some(Stop::TimeLimit)),
            };
            self.add_message(results);
            self.account_delegations();
            if let Some(stop) = stopped {
                break stop;
            }
        };
        self.record(Record::TurnEnded {
            time: crate::audit::now(),
            stop: stop.as_str().to_string(),
            rounds,
        });
        // The turn is in its transcript, and its usage in usage.jsonl,
        // before anyone hears it ended.
        if let Err(e) = self.session.sync().await {
            tracing::error!(session = %self.session.id(), error = %e, "the end of the turn is not in the transcript");
        }
        self.gateway.flush_usage().await;
        if !stop.is_success()
            && stop != Stop::Cancelled
            && let Some(failures) = &self.failures
        {
            let message = error
                .clone()
                .unwrap_or_else(|| format!("the turn stopped: {}", stop.as_str()));
            if let Err(e) = failures.record(self.session.id(), "task", prompt, stop.as_str(), &message) {
                tracing::warn!(error = %e, "cannot write the failure store");
            }
        }
        events(&AgentEvent::Done {
            stop,
            rounds,
            text: text.clone(),
            error: error.clone(),
        });
        TurnResult {
            stop,
            rounds,
            text,
            error,
        }
    }

    /// Summarises everything before the latest prompt now (`/compact`).
    /// `Ok(false)` when there is nothing to summarise.
    pub async fn compact(&mut self, events: &EventSink) -> Result<bool, crate::llm::LlmError> {
        let Some(point) = self.conversation.compaction_point() else {
            return Ok(false);
        };
        self.save_notes_before_compaction(events).await;
        let (summary, cost) = compact::summarise(
            &self.gateway,
            &self.options.model,
            self.options.max_tokens,
            self.options.context_tokens,
            &self.conversation.messages[..point],
            self.session.id(),
        )
        .await?;
        self.spent_usd += cost.unwrap_or(0.0);
        self.conversation.compact(point, &summary);
        self.last_context_tokens = 0;
        self.record(Record::Compaction {
            time: crate::audit::now(),
            replaced: point,
            summary: summary.clone(),
        });
        events(&AgentEvent::Compacted {
            replaced_messages: point,
            summary_chars: summary.chars().count(),
        });
        Ok(true)
    }

    /// Gives the model one request, offering only `memory_save`, to keep
    /// what should outlive the compaction; its saves run (under the
    /// policy's approval) and nothing of the exchange enters the
    /// conversation. Skipped without memory or when the policy denies it.
    async fn save_notes_before_compaction(&mut self, events: &EventSink) {
        let save = self
            .builtins
            .defs()
            .into_iter()
            .find(|d| d.name == builtin::MEMORY_SAVE);
        let Some(save) = save else { return };
        if self.host.policy().tool(builtin::MEMORY_SAVE).approval == crate::policy::Approval::Deny {
            return;
        }
        let mut conversation = self.conversation.clone();
        conversation.push(Message::user_text(compact::SAVE_NOTES_PROMPT));
        let request = ChatRequest {
            model: self.options.model.clone(),
            system: self.options.system_prompt.clone(),
            messages: conversation.messages,
            tools: vec![save],
            tool_choice: ToolChoice::Auto,
            max_tokens: self.options.max_tokens,
        };
        let completion = match self.gateway.send(&request, &|_| {}, self.session.id()).await {
            Ok(completion) => completion,
            Err(e) => {
                tracing::warn!(error = %e, "the note-saving request before compaction failed");
                return;
            }
        };
        self.account(&completion.response.usage, completion.cost_usd, events);
        let saves = Message {
            role: crate::llm::Role::Assistant,
            content: completion
                .response
                .message
                .content
                .into_iter()
                .filter(|b| matches!(b, crate::llm::Block::ToolUse { name, .. } if name == builtin::MEMORY_SAVE))
                .collect(),
        };
        let round = self.tool_round(events);
        let results = round.run(&saves).await;
        let saved = results
            .content
            .iter()
            .filter(|b| matches!(b, crate::llm::Block::ToolResult { is_error: false, .. }))
            .count();
        self.record(Record::NotesSaved {
            time: crate::audit::now(),
            notes: saved,
        });
    }

    /// Adds the cost of sub-agents that finished to this session's spend and
    /// links their transcripts.
    fn account_delegations(&mut self) {
        let Some(delegator) = &self.delegator else { return };
        for done in delegator.take_finished() {
            self.spent_usd += done.cost_usd;
            self.usage.add(&done.usage);
            self.record(Record::Delegation {
                time: crate::audit::now(),
                profile: done.profile,
                session: done.session,
                stop: done.stop,
                usage: done.usage,
                cost_usd: done.cost_usd,
            });
        }
    }

    /// What running one reply's tool calls needs from this agent.
    fn tool_round<'a>(&'a self, events: &'a EventSink) -> ToolRound<'a> {
        ToolRound {
            host: &self.host,
            builtins: &self.builtins,
            failures: self.failures.as_deref(),
            approvals: &self.approvals,
            guard: &self.guard,
            same_call_limit: self.options.limits.same_call_limit,
            session: &self.session,
            events,
            allowed: self.options.tools.as_ref(),
        }
    }

    fn limit_reached(&self, rounds: u32, deadline: Instant) -> Option<Stop> {
        let limits = &self.options.limits;
        if rounds >= limits.max_rounds {
            Some(Stop::MaxRounds)
        } else if self.spent_usd >= limits.budget_usd {
            Some(Stop::Budget)
        } else if Instant::now() >= deadline {
            Some(Stop::TimeLimit)
        } else {
            None
        }
    }

    fn request(&self) -> ChatRequest {
        ChatRequest {
            model: self.options.model.clone(),
            system: self.options.system_prompt.clone(),
            messages: self.conversation.messages.clone(),
            tools: self.offered_tools(),
            tool_choice: ToolChoice::Auto,
            max_tokens: self.options.max_tokens,
        }
    }

    /// Gives a tool call whose id an earlier reply already used a fresh one
    /// (`id_2`, …). Some local servers number calls per reply (`call_0`
    /// every time); sent back twice, one id would pair two calls with one
    /// result and the provider would refuse the conversation from then on.
    /// (Two calls with one id inside one reply are refused by the provider
    /// module: which of them would the result belong to?)
    fn unique_tool_ids(&self, mut reply: Message) -> Message {
        let mut taken: Vec<String> = reply.tool_uses().map(|(id, _, _)| id.to_string()).collect();
        for block in &mut reply.content {
            if let crate::llm::Block::ToolUse { id, .. } = block
                && self.conversation.has_tool_use(id)
            {
                // Unused in the conversation and in this reply.
                let fresh = (2..)
                    .map(|n| format!("{id}_{n}"))
                    .find(|candidate| !self.conversation.has_tool_use(candidate) && !taken.contains(candidate))
                    .expect("an unused id exists");
                taken.push(fresh.clone());
                tracing::warn!(old = %id, new = %fresh, "the model reused a tool call id; renamed");
                *id = fresh;
            }
        }
        reply
    }

    fn account(&mut self, usage: &Usage, cost: Option<f64>, events: &EventSink) {
        self.spent_usd += cost.unwrap_or(0.0);
        self.usage.add(usage);
        self.last_context_tokens = usage.context_tokens() + usage.output_tokens;
        self.record(Record::Usage {
            time: crate::audit::now(),
            usage: *usage,
            cost_usd: cost,
        });
        events(&AgentEvent::Usage {
            usage: *usage,
            cost_usd: cost,
            session_cost_usd: self.spent_usd,
        });
    }

    fn add_message(&mut self, message: Message) {
        self.record(Record::Message {
            time: crate::audit::now(),
            message: message.clone(),
        });
        self.conversation.push(message);
    }

    /// A transcript that cannot be written is logged, not fatal: the turn
    /// goes on (the user sees the error on stderr).
    fn record(&self, record: Record) {
        if let Err(e) = self.session.append(record) {
            tracing::error!(error = %e, transcript = %self.session.location(), "cannot write the transcript");
        }
    }
}

/// Reports a streamed piece: text passes the secret scrubber (which holds
/// back a possible secret's start until the next piece); a retry drops
/// what the scrubber held, since that attempt's text is discarded.
fn forward_delta(events: &EventSink, shown: &std::sync::Mutex<crate::scrub::StreamScrubber>, delta: Delta) {
    let mut shown = shown.lock().unwrap_or_else(|e| e.into_inner());
    match delta {
        Delta::Text(text) => {
            let text = shown.push(&text);
            if !text.is_empty() {
                events(&AgentEvent::TextDelta { text });
            }
        }
        Delta::Retrying { attempt, wait, reason } => {
            *shown = crate::scrub::StreamScrubber::default();
            events(&AgentEvent::Retrying {
                attempt,
                wait_ms: wait.as_millis() as u64,
                reason: crate::scrub::scrub(&reason).into_owned(),
            })
        }
        Delta::ToolUseStarted { .. } => {}
    }
}

/// The model's reply with every configured secret scrubbed from its text
/// and tool inputs: a server echoing a key cannot make a tool send it on.
fn scrub_message(mut message: Message) -> Message {
    use crate::llm::Block;
    for block in &mut message.content {
        match block {
            Block::Text { text } => *text = crate::scrub::scrub(text).into_owned(),
            Block::ToolUse { input, .. } => {
                let text = input.to_string();
                let scrubbed = crate::scrub::scrub(&text);
                if scrubbed != text
                    && let Ok(value) = serde_json::from_str(&scrubbed)
                {
                    *input = value;
                }
            }
            Block::ToolResult { .. } => {}
        }
    }
    message
}
