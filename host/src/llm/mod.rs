//! Talking to models. [`Provider`] is one API dialect (Anthropic Messages,
//! OpenAI-compatible Chat Completions, or a recording being replayed); the
//! [`Gateway`] wraps one provider with the queue, retries, circuit breaker,
//! usage log and recorder, and is the only way the agent calls a model.
//! Start with [`types`] for the conversation model.

pub mod anthropic;
mod error;
pub mod gateway;
mod http;
pub mod openai;
pub mod pricing;
pub mod record;
pub mod sse;
pub mod types;

pub use error::{LlmError, Result, Retry};
pub use gateway::{Completion, Gateway, GatewayOptions, UsageObserver};
pub use pricing::{Price, PriceTable};
pub use types::*;

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Which API dialect a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Anthropic,
    /// OpenAI and every server speaking its Chat Completions API.
    #[serde(rename = "openai")]
    OpenAi,
    /// A recording served back by `--replay`.
    Replay,
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Replay => "replay",
        })
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "anthropic" => Ok(Self::Anthropic),
            "openai" => Ok(Self::OpenAi),
            other => Err(format!("unknown provider `{other}` (expected `anthropic` or `openai`)")),
        }
    }
}

/// One API dialect. `send` streams one reply, calling `deltas` as text
/// arrives, and returns it only once complete.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    async fn send(&self, request: &ChatRequest, deltas: DeltaSink<'_>) -> Result<ChatResponse>;
}

/// Longest wait for the response head and between two stream chunks; a
/// connection silent for longer counts as broken (and is retried).
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The HTTP client every provider uses. A proxy from the environment is
/// used for remote APIs but never for a server on this machine (a local
/// model server behind a corporate proxy setting would be unreachable).
pub fn http_client(base_url: &str) -> Result<reqwest::Client> {
    let builder = if is_local(base_url) {
        reqwest::Client::builder().no_proxy()
    } else {
        reqwest::Client::builder()
    };
    builder
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("boram/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| LlmError::NotConfigured(format!("cannot build the HTTP client: {e}")))
}

/// Largest SSE line or event a provider may send unless the config says
/// otherwise (`[model] max_stream_event_kib`): far above any real event (a
/// long tool input is a few hundred KiB), far below what hurts.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 << 20;

/// Whether `url` names a server on this machine (`localhost`, a loopback
/// address): no proxy for it, and a refused connection there means nothing
/// is listening.
pub(crate) fn is_local(url: &str) -> bool {
    url::Url::parse(url).ok().is_some_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}

/// Where and how to reach the model, after config, environment and flags.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<String>,
    /// Largest SSE line or event accepted from the stream.
    pub max_event_bytes: usize,
}

/// Builds the provider for `endpoint`.
pub fn connect(endpoint: &Endpoint) -> Result<Arc<dyn Provider>> {
    if let Some(key) = &endpoint.api_key {
        crate::scrub::register(key);
    }
    let client = http_client(&endpoint.base_url)?;
    Ok(match endpoint.kind {
        ProviderKind::Anthropic => Arc::new(
            anthropic::Anthropic::new(client, &endpoint.base_url, endpoint.api_key.clone())
                .with_max_event_bytes(endpoint.max_event_bytes),
        ),
        ProviderKind::OpenAi => Arc::new(
            openai::OpenAi::new(client, &endpoint.base_url, endpoint.api_key.clone())
                .with_max_event_bytes(endpoint.max_event_bytes),
        ),
        ProviderKind::Replay => {
            return Err(LlmError::NotConfigured(
                "a replay provider is opened from its file with `record::Replay::open`".into(),
            ));
        }
    })
}
