//! Record and replay. `--record FILE` appends every model response to a
//! JSONL file; `--replay FILE` serves them back in order, without network,
//! as a [`Provider`] — so a session re-runs offline and deterministically
//! (the tools still run for real, under the policy). Used for demos, bug
//! reports and tests.

use super::error::{LlmError, Result};
use super::types::*;
use super::{Provider, ProviderKind};
use crate::audit::JsonlFile;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One line of a recording.
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    provider: ProviderKind,
    response: ChatResponse,
}

/// Appends responses to a recording.
pub struct Recorder {
    file: JsonlFile,
}

impl Recorder {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: JsonlFile::open(path)?,
        })
    }

    pub fn record(&self, provider: ProviderKind, response: &ChatResponse) -> std::io::Result<()> {
        self.file.append(&Recorded {
            provider,
            response: response.clone(),
        })
    }
}

/// Serves a recording's responses in order.
pub struct Replay {
    path: PathBuf,
    total: usize,
    responses: Mutex<VecDeque<ChatResponse>>,
}

impl Replay {
    pub fn open(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LlmError::Replay(format!("cannot read the recording {}: {e}", path.display())))?;
        let mut responses = VecDeque::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let recorded: Recorded = serde_json::from_str(line).map_err(|e| {
                LlmError::Replay(format!(
                    "{}:{}: not a recorded response ({e}); record one with --record",
                    path.display(),
                    n + 1
                ))
            })?;
            responses.push_back(recorded.response);
        }
        Ok(Self {
            path: path.to_path_buf(),
            total: responses.len(),
            responses: Mutex::new(responses),
        })
    }
}

#[async_trait::async_trait]
impl Provider for Replay {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Replay
    }

    async fn send(&self, _request: &ChatRequest, deltas: DeltaSink<'_>) -> Result<ChatResponse> {
        let next = self.responses.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let response = next.ok_or_else(|| {
            LlmError::Replay(format!(
                "the recording {} holds {} responses and this session asked for more",
                self.path.display(),
                self.total
            ))
        })?;
        for block in &response.message.content {
            match block {
                Block::Text { text } => deltas(Delta::Text(text.clone())),
                Block::ToolUse { name, .. } => deltas(Delta::ToolUseStarted { name: name.clone() }),
                Block::ToolResult { .. } => {}
            }
        }
        Ok(response)
    }
}
