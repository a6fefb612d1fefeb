//! What the agent reports while it works. The terminal UI renders these,
//! `boram run --json` prints them as JSON lines, and later the HTTP
//! service streams them; the loop itself never prints.

use crate::llm::Usage;
use serde::Serialize;

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The model answered.
    Answered,
    /// `max_rounds` model calls without a final answer.
    MaxRounds,
    /// The session's spend reached `budget_usd`.
    Budget,
    /// The turn ran longer than `time_limit_s`.
    TimeLimit,
    /// The user cancelled (Ctrl-C).
    Cancelled,
    /// The model could not be reached or answered with an error.
    Error,
}

impl Stop {
    pub fn is_success(self) -> bool {
        self == Stop::Answered
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Answered => "answered",
            Stop::MaxRounds => "max_rounds",
            Stop::Budget => "budget",
            Stop::TimeLimit => "time_limit",
            Stop::Cancelled => "cancelled",
            Stop::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    TurnStarted {
        session: String,
        round: u32,
    },
    /// Model text as it streams in.
    TextDelta {
        text: String,
    },
    /// The model call failed transiently and will be retried; text streamed since the last round is void.
    Retrying {
        attempt: u32,
        wait_ms: u64,
        reason: String,
    },
    ToolCall {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    /// The tool started running in its sandbox.
    ToolStarted {
        id: String,
        name: String,
    },
    Approval {
        id: String,
        name: String,
        decision: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    ToolResult {
        id: String,
        name: String,
        /// `ok`, `denied`, `invalid_input`, `failed`, `timeout`, … or `refused` (repeat guard).
        outcome: String,
        is_error: bool,
        /// What the model is given (the output, or the error).
        content: String,
        duration_ms: u64,
    },
    Usage {
        usage: Usage,
        cost_usd: Option<f64>,
        session_cost_usd: f64,
    },
    Compacted {
        replaced_messages: usize,
        summary_chars: usize,
    },
    Done {
        stop: Stop,
        rounds: u32,
        /// The final answer (empty unless the model answered).
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// An event of a sub-agent started with `delegate`.
    Delegated {
        profile: String,
        event: Box<AgentEvent>,
    },
}

/// Receives every event, in order, from the task running the turn.
pub type EventSink = std::sync::Arc<dyn Fn(&AgentEvent) + Send + Sync>;
